"""Soak: the HTTP ingress, consumers and workflows on PostgreSQL for minutes on end. Does
throughput hold, and do the tables stay bounded?

    python bench/soak.py --minutes 30              # the report in the issue's closing note
    python bench/soak.py --quick                   # 45 s, 15 s intervals: a smoke run
    python bench/soak.py --minutes 5 --json soak.json

What runs, in a schema of its own (dropped at the end):

* ``statekeeper serve --app soak_app:app`` (HTTP API and consumers) and ``--workers``
  more ``statekeeper worker`` processes (default 1), with ``bench/soak_app.py``: a queue
  ``orders`` whose consumer (concurrency 16 a process) increments a per-customer count in
  the state store and starts a workflow for every tenth order (two steps, a one-second
  durable sleep, one more step). Acknowledged orders are archived for a minute.
* A load generator in this process: ``--connections`` httpx clients (default 16) that
  POST orders (``{"n": ...}``) as fast as the server answers, pausing while the queue
  holds more than ``--backlog`` ready messages (default 2000), so that the consumers
  are always busy and the backlog stays bounded: the throughput measured is what the
  consumers sustain.

Every interval (default 60 s) one line: orders accepted and processed per second
(processed: the sum of the per-customer counts), workflows finished per second, the
ingress latency p50/p99, the backlog, and the size (table + indexes) of each table.
At the end: processed/s of the last interval over the first (the target is >= 0.9), and
whether the tables that hold only live work (messages, groups, dedup claims,
idempotency records) stayed bounded: their size in the second half at most 1.5x the
largest of the first half (plus 1 MB). The tables of history (the archive, kept a minute,
the workflows and their steps, kept until retention exists) grow with the work done and
are reported, not judged. The last line printed is the headline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import benchlib

TOKEN = "soak-token-0123456789abcdef-0123"
HOT = ("sk_messages", "sk_queue_groups", "sk_queue_dedup", "sk_idempotency")
TARGET = 0.9
BENCH = Path(__file__).resolve().parent


@dataclass
class Interval:
    minute: float
    accepted_per_s: float
    processed_per_s: float
    workflows_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    backlog: int
    sizes_kb: dict[str, int] = field(default_factory=dict)
    dead_rows: dict[str, int] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Load:
    """Closed-loop POSTs from ``connections`` clients, paused while the backlog is high."""

    def __init__(self, url: str, connections: int) -> None:
        self.url = url
        self.connections = connections
        self.latencies_ns: list[int] = []
        self.accepted = 0
        self.errors: dict[str, int] = {}
        self.paused = False
        self.serial = 0
        self.stop = asyncio.Event()

    async def client(self) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30) as http:
            while not self.stop.is_set():
                if self.paused:
                    await asyncio.sleep(0.05)
                    continue
                self.serial += 1
                body = {"n": self.serial, "sku": "A-1", "quantity": 1 + self.serial % 5}
                t0 = time.perf_counter_ns()
                try:
                    answer = await http.post("/v1/queues/orders/messages", json=body)
                except httpx.HTTPError as exc:
                    kind = type(exc).__name__
                    self.errors[kind] = self.errors.get(kind, 0) + 1
                    await asyncio.sleep(0.1)
                    continue
                if answer.status_code == 202:
                    self.latencies_ns.append(time.perf_counter_ns() - t0)
                    self.accepted += 1
                else:
                    kind = str(answer.status_code)
                    self.errors[kind] = self.errors.get(kind, 0) + 1

    def take_latencies(self) -> tuple[float | None, float | None]:
        taken, self.latencies_ns = sorted(self.latencies_ns), []
        if not taken:
            return None, None

        def pct(p: float) -> float:
            return taken[min(len(taken) - 1, round(p / 100 * (len(taken) - 1)))] / 1e6

        return pct(50), pct(99)


async def processed(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(convert_from(value, 'UTF8')::bigint), 0) FROM sk_state "
            "WHERE namespace = 'soak' AND key LIKE 'customer:%'"
        )
    )


async def finished_workflows(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM sk_workflows WHERE namespace = 'soak' AND status = 'succeeded'"
        )
    )


async def backlog(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM sk_messages WHERE namespace = 'soak' AND queue = 'orders' "
            "AND state IN ('ready', 'leased')"
        )
    )


async def sizes(conn: asyncpg.Connection, schema: str) -> tuple[dict[str, int], dict[str, int]]:
    rows = await conn.fetch(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS total, "
        "coalesce(s.n_dead_tup, 0) AS dead "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE 'sk\\_%' "
        "ORDER BY c.relname",
        schema,
    )
    return {r["relname"]: r["total"] // 1024 for r in rows}, {
        r["relname"]: int(r["dead"]) for r in rows
    }


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "statekeeper", *args],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


SHORT = {
    "sk_messages": "msgs",
    "sk_queue_groups": "groups",
    "sk_queue_dedup": "dedup",
    "sk_idempotency": "idem",
    "sk_message_archive": "archive",
    "sk_state": "state",
    "sk_workflows": "wflows",
    "sk_workflow_steps": "steps",
    "sk_workflow_events": "events",
}


def print_interval(row: Interval) -> None:
    latency = (
        "" if row.p50_ms is None or row.p99_ms is None else f"{row.p50_ms:.1f}/{row.p99_ms:.1f}"
    )
    shown = " ".join(
        f"{SHORT[name]}={kb / 1024:.1f}" for name, kb in row.sizes_kb.items() if name in SHORT
    )
    print(
        f"{row.minute:6.2f} {row.accepted_per_s:9.0f} {row.processed_per_s:9.0f} "
        f"{row.workflows_per_s:7.1f} {latency:>12} {row.backlog:8d}  MB: {shown}",
        flush=True,
    )


async def soak(args: argparse.Namespace, logs: Path) -> tuple[list[Interval], dict[str, Any]]:
    schema = f"sk_soak_{os.getpid()}_{uuid.uuid4().hex[:4]}"
    url = benchlib.with_schema(args.pg_url, schema)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(BENCH.parent / "src"), str(BENCH)]),
        "SOAK_DATABASE_URL": url,
        "STATEKEEPER_API_TOKEN": TOKEN,
        "STATEKEEPER_LOG_LEVEL": "WARNING",
    }
    env.pop("STATEKEEPER_CACHE_URL", None)
    port = free_port()
    processes = []
    conn = await asyncpg.connect(args.pg_url)
    info: dict[str, Any] = {"schema": schema}
    try:
        processes.append(
            spawn(["serve", "--app", "soak_app:app", "--port", str(port), "--grace", "5"],
                  env, logs / "serve.log")
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                async with httpx.AsyncClient() as http:
                    if (await http.get(f"{base}/healthz", timeout=1)).status_code == 200:
                        break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"the server did not start; see {logs / 'serve.log'}")
        for index in range(args.workers):
            processes.append(
                spawn(["worker", "--app", "soak_app:app", "--grace", "5"], env,
                      logs / f"worker{index}.log")
            )  # fmt: skip
        await conn.execute(f'SET search_path TO "{schema}"')
        load = Load(base, args.connections)
        clients = [asyncio.create_task(load.client()) for _ in range(args.connections)]
        started = time.monotonic()
        intervals: list[Interval] = []
        last = (started, 0, await processed(conn), await finished_workflows(conn))
        next_report = started + args.interval
        end = started + args.minutes * 60
        print(
            f"{'minute':>6} {'accept/s':>9} {'process/s':>9} {'wflow/s':>7} "
            f"{'p50/p99 ms':>12} {'backlog':>8}  table + index sizes",
            flush=True,
        )
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            depth = await backlog(conn)
            load.paused = depth > args.backlog
            if time.monotonic() < next_report:
                continue
            now = time.monotonic()
            done, flows = await processed(conn), await finished_workflows(conn)
            seconds = now - last[0]
            p50, p99 = load.take_latencies()
            table_sizes, dead = await sizes(conn, schema)
            row = Interval(
                minute=(now - started) / 60,
                accepted_per_s=(load.accepted - last[1]) / seconds,
                processed_per_s=(done - last[2]) / seconds,
                workflows_per_s=(flows - last[3]) / seconds,
                p50_ms=p50,
                p99_ms=p99,
                backlog=depth,
                sizes_kb=table_sizes,
                dead_rows=dead,
            )
            intervals.append(row)
            print_interval(row)
            last = (now, load.accepted, done, flows)
            next_report += args.interval
        load.stop.set()
        await asyncio.gather(*clients, return_exceptions=True)
        info["errors"] = load.errors
        info["accepted"] = load.accepted
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    info["logs_with_tracebacks"] = logs_with_tracebacks(logs)
    return intervals, info


def write_json(path: str, document: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2, default=str)


def logs_with_tracebacks(logs: Path) -> list[str]:
    return [
        log.name
        for log in sorted(logs.glob("*.log"))
        if "Traceback" in log.read_text(encoding="utf-8", errors="replace")
    ]


def judge(intervals: list[Interval]) -> tuple[float | None, dict[str, tuple[int, int]], bool]:
    """(last over first processed/s; per hot table, (max first half, max second half) KB;
    whether every hot table stayed bounded)."""
    if len(intervals) < 2:
        return None, {}, True
    first, last = intervals[0].processed_per_s, intervals[-1].processed_per_s
    held = last / first if first else None
    half = len(intervals) // 2
    bounds: dict[str, tuple[int, int]] = {}
    bounded = True
    for name in HOT:
        early = max(i.sizes_kb.get(name, 0) for i in intervals[: max(1, half)])
        late = max(i.sizes_kb.get(name, 0) for i in intervals[half:])
        bounds[name] = (early, late)
        bounded = bounded and late <= 1.5 * early + 1024
    return held, bounds, bounded


async def main_async(args: argparse.Namespace) -> int:
    if not await benchlib.require_postgres(args.pg_url):
        return 2
    logs = Path(args.logs or f"/tmp/statekeeper-soak-{os.getpid()}")
    os.makedirs(logs, exist_ok=True)
    print(
        f"soak on PostgreSQL: serve + {args.workers} worker process(es), {args.connections} "
        f"connections, backlog held under {args.backlog}, {args.minutes:g} min in "
        f"{args.interval:g} s intervals; logs in {logs}",
        flush=True,
    )
    intervals, info = await soak(args, logs)
    held, bounds, bounded = judge(intervals)
    for name, (early, late) in bounds.items():
        print(f"  {name}: largest {early / 1024:.1f} MB in the first half, "
              f"{late / 1024:.1f} MB in the second")  # fmt: skip
    if info.get("errors"):
        print(f"  load generator errors: {info['errors']}")
    if info.get("logs_with_tracebacks"):
        print(f"  tracebacks in: {', '.join(info['logs_with_tracebacks'])}")
    if args.json:
        document = {"args": vars(args), "info": info, "intervals": [asdict(i) for i in intervals]}
        write_json(args.json, document)
    held_text = "n/a" if held is None else f"{held:.2f}x"
    verdict = "bounded" if bounded else "NOT bounded"
    print(
        f"headline: soak processed/s in the last interval vs the first = {held_text} "
        f"(target >= {TARGET}x); live-work tables {verdict}"
    )
    ok = (held is None or held >= TARGET) and bounded and not info.get("logs_with_tracebacks")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=5.0, help="how long (default 5)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds per line (60)")
    parser.add_argument("--quick", action="store_true", help="45 s in 15 s intervals")
    parser.add_argument("--connections", type=int, default=16, help="load clients (16)")
    parser.add_argument("--backlog", type=int, default=2000, help="pause posting above (2000)")
    parser.add_argument("--workers", type=int, default=1, help="extra worker processes (1)")
    parser.add_argument("--pg-url", default=benchlib.PG_URL, help="PostgreSQL URL")
    parser.add_argument("--logs", help="directory for the processes' logs")
    parser.add_argument("--json", metavar="PATH", help="write the intervals as JSON to PATH")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.interval = 0.75, 15.0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
