"""One chaos run: a mixed workload on test hosts, a fault in the middle of it, and a
report of what clients saw and whether anything acknowledged was lost or applied twice.

The cluster (chaos/cluster.py): a database host (PostgreSQL behind a relay adding
0.5 ms each way) and two worker hosts, each running ``statekeeper worker`` with the
workload app (chaos/workload_app.py). The harness is the client: eight writers, on
the database's Unix socket, each in turn put a state item, send a message to the
``work`` queue and start a ``booking`` workflow (three steps with effects, then a
transaction step writing state and a ``ledger`` message exactly once). A call is
acknowledged when it returns; one that fails is counted by its error's kind and not
tried again (its item is in doubt, a new one comes next).

Timeline: ``warmup`` seconds of work, the fault for ``seconds``, ``after`` seconds more,
then the writers stop and the workers finish. The report (``Report``, as a table and as
JSON): the fault's window, calls acknowledged, errors by kind, p99 of acknowledged
calls before, during and after the fault, the recovery time (from the fault's end until
the first call started after the last failure was acknowledged), tries repeated, and
the invariants, which must all be zero: acknowledged items lost, effects applied twice
(a workflow with two ledger messages), stuck leases (messages still in flight, or
workflows not finished, once the workers have had two minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

import asyncpg

from statekeeper.app import App
from statekeeper.chaos.cluster import Cluster
from statekeeper.chaos.scenarios import SCENARIOS, Fleet, Scenario
from statekeeper.chaos.tables import TABLES
from statekeeper.constants import ENV_CACHE_URL, ENV_CHAOS_DSN, ENV_CHAOS_HOST, ENV_LOG_LEVEL
from statekeeper.errors import StatekeeperError

WRITERS = 8
SETTLE = 120.0  # seconds the workers have to finish once the writers stop
WORKER_APP = "statekeeper.chaos.workload_app:app"


@dataclass
class Report:
    scenario: str
    what: str
    fault_start: float  # seconds from the workload's start
    fault_end: float
    acknowledged: dict[str, int]
    errors: dict[str, int]
    p99_ms: dict[str, float | None]
    effects_per_second: dict[str, float]  # the workers' pace, by the effects' times
    recovery_seconds: float
    tries_repeated: int
    invariants: dict[str, int] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)  # the harness's cache counters

    @property
    def passed(self) -> bool:
        return not any(self.invariants.values())

    def table(self) -> str:
        p99 = " / ".join("-" if v is None else f"{v:.1f}" for v in self.p99_ms.values())
        rows = [
            ("scenario", f"{self.scenario}: {self.what}"),
            ("fault", f"{self.fault_start:.1f} s to {self.fault_end:.1f} s"),
            ("acknowledged", ", ".join(f"{n} {k}" for k, n in self.acknowledged.items())),
            ("errors", ", ".join(f"{n} {k}" for k, n in self.errors.items()) or "none"),
            ("p99 ms before / during / after", p99),
            (
                "effects/s before / during / after",
                " / ".join(f"{v:.0f}" for v in self.effects_per_second.values()),
            ),
            ("recovery", f"{self.recovery_seconds:.1f} s after the fault ended"),
            ("tries repeated", str(self.tries_repeated)),
            ("cache (harness)", ", ".join(f"{n} {k}" for k, n in self.cache.items()) or "none"),
            *((f"invariant: {k}", str(v)) for k, v in self.invariants.items()),
            ("verdict", "pass" if self.passed else "FAIL"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@dataclass
class Calls:
    """What the writers' calls did: acknowledged items by kind, timings, failures."""

    acked: dict[str, list[str]] = field(
        default_factory=lambda: {"state": [], "message": [], "workflow": []}
    )
    done: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    failed: list[float] = field(default_factory=list)  # when each failure came
    errors: Counter[str] = field(default_factory=Counter)
    stale: int = 0  # reads after an acknowledged put that did not return it

    def available_again(self, since: float) -> float | None:
        """When the first call started after the last failure (and after ``since``) was
        acknowledged: the end of the unavailability; None if none was."""
        last_failure = max(self.failed, default=since)
        back = [end for start, end in self.done if start >= last_failure]
        return back[0] if back else None


def harness_app(url: str, cache_url: str | None = None) -> App:
    """The harness's client of the workload app: it sends to ``work`` and starts
    ``booking`` runs, which only the worker hosts run."""
    app = App(url, namespace="chaos", purge_interval=None, encryption=None, cache_url=cache_url)

    @app.workflow
    async def booking(ctx: object, workflow_id: str) -> int:
        raise AssertionError("runs only on the worker hosts")

    app.queue("work")
    return app


async def create_tables(url: str) -> None:
    """The workload's effect tables (chaos/tables.py), empty."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(TABLES)
    finally:
        await conn.close()


async def write_mixed(app: App, calls: Calls, writer: int, stop: asyncio.Event) -> None:
    """Put, send, start, in turn, until ``stop``; each failure counted, not retried."""
    i = 0
    while not stop.is_set():
        kind = ("state", "message", "workflow")[i % 3]
        key = f"{kind}-{writer}-{i}"
        i += 1
        started = time.monotonic()
        try:
            if kind == "state":
                await app.state.put(key, {"i": i})
                read = await app.state.get(key)  # through the cache, when there is one
                if read is None or read.value != {"i": i}:
                    calls.stale += 1
            elif kind == "message":
                key = (await app.queue("work").send({"key": key})).id
            else:
                await app.workflows.start("booking", key, id=key)
        except StatekeeperError as error:
            calls.errors[type(error).__name__] += 1
            calls.failed.append(time.monotonic())
            await asyncio.sleep(0.1)
            continue
        calls.done.append((started, time.monotonic()))
        calls.acked[kind].append(key)
        await asyncio.sleep(0.02)


def p99(spans: list[float]) -> float | None:
    """The 99th percentile of ``spans`` (seconds), in milliseconds; None when empty."""
    if not spans:
        return None
    ordered = sorted(spans)
    return round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000, 1)


class ChaosRun:
    def __init__(
        self, scenario: Scenario, *, seconds: float = 10.0, warmup: float = 5.0,
        after: float = 5.0,
    ) -> None:  # fmt: skip
        self.scenario = scenario
        self.seconds, self.warmup, self.after = seconds, warmup, after

    def _worker(self, cluster: Cluster, host: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            ENV_CHAOS_HOST: host,
            ENV_CHAOS_DSN: cluster.worker_dsn,
            **({ENV_CACHE_URL: cluster.cache_url} if cluster.cache_url else {}),
            ENV_LOG_LEVEL: "INFO",
            **(cluster.clock_env(host) if host == "w1" else {}),  # its clock may jump
        }
        return cluster.start_statekeeper(host, ["worker", "--app", WORKER_APP], env,
                                         log=f"{host}.log")  # fmt: skip

    async def run(self, cluster: Cluster) -> Report:
        await create_tables(cluster.socket_url)
        fleet = Fleet(lambda host: self._worker(cluster, host))
        for host in cluster.worker_names:
            fleet.launch(host)
        app = harness_app(cluster.socket_url, cluster.socket_cache_url)
        calls = Calls()
        stop = asyncio.Event()
        async with app:
            begun = time.monotonic()
            writers = [
                asyncio.create_task(write_mixed(app, calls, n, stop)) for n in range(WRITERS)
            ]
            await asyncio.sleep(self.warmup)
            fault_start, wall_start = time.monotonic(), time.time()
            await asyncio.to_thread(self.scenario.begin, cluster, fleet)
            await asyncio.sleep(self.seconds)
            # The fault ends when its end begins (a restart takes its own time).
            fault_end, wall_end = time.monotonic(), time.time()
            await asyncio.to_thread(self.scenario.end, cluster, fleet)
            await asyncio.sleep(self.after)
            stop.set()
            await asyncio.gather(*writers)
            wall_stop = time.time()
            invariants, repeated = await settle(cluster.socket_url, app, calls)
            counted = app.state.cache_stats()
            cache = (
                {} if counted is None else
                {"hits": counted.hits, "misses": counted.misses, "errors": counted.errors}
            )  # fmt: skip
            pace = await self._pace(
                cluster, (wall_start - self.warmup / 2, wall_start, wall_end, wall_stop)
            )
        for worker in fleet.workers.values():
            worker.terminate()
        for worker in fleet.workers.values():
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        warm = begun + self.warmup / 2  # "before" leaves the start-up out
        back = calls.available_again(fault_start)
        recovery = max(0.0, (back if back is not None else time.monotonic()) - fault_end)
        return Report(
            scenario=self.scenario.name,
            what=self.scenario.what,
            fault_start=round(fault_start - begun, 2),
            fault_end=round(fault_end - begun, 2),
            acknowledged={k: len(v) for k, v in calls.acked.items()},
            errors=dict(calls.errors),
            p99_ms={
                "before": p99([e - s for s, e in calls.done if warm <= s and e < fault_start]),
                "during": p99([e - s for s, e in calls.done if fault_start <= s < fault_end]),
                "after": p99([e - s for s, e in calls.done if s >= fault_end]),
            },
            effects_per_second=pace,
            recovery_seconds=round(recovery, 2),
            tries_repeated=repeated,
            invariants=invariants,
            cache=cache,
        )

    async def _pace(self, cluster: Cluster, marks: tuple[float, ...]) -> dict[str, float]:
        """Effects per second in the windows between ``marks`` (Unix times): before
        (the second half of the warm-up), during and after the fault."""
        conn = await asyncpg.connect(cluster.socket_url)
        try:
            window = (
                "SELECT count(*) FROM effects WHERE at >= to_timestamp($1) "
                "AND at < to_timestamp($2)"
            )
            counts = [await conn.fetchval(window, low, high) for low, high in pairwise(marks)]
        finally:
            await conn.close()
        spans = [high - low for low, high in pairwise(marks)]
        names = ("before", "during", "after")
        return {n: round(c / s, 1) for n, c, s in zip(names, counts, spans, strict=True)}


async def settle(url: str, app: App, calls: Calls) -> tuple[dict[str, int], int]:
    """Wait (up to SETTLE seconds) for the workers to finish what ``calls`` had
    acknowledged, at the database ``url``; the invariants, and how many tries were
    repeated."""
    workflows = calls.acked["workflow"]
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline:
            finished = await conn.fetchval(
                "SELECT count(*) FROM sk_workflows WHERE namespace = 'chaos' "
                "AND id = ANY($1) AND status = 'succeeded'", workflows,
            )  # fmt: skip
            stats = await app.queue("work").stats()
            ledger = await app.queue("ledger").stats()
            waiting = [q.ready + q.in_flight + q.delayed for q in (stats, ledger)]
            idle = sum(waiting) == 0
            if finished == len(workflows) and idle:
                break
            await asyncio.sleep(0.5)
        effects = {(r[0], r[1]) for r in await conn.fetch("SELECT kind, key FROM effects")}
        attempts = int(await conn.fetchval("SELECT count(*) FROM attempts"))
        twice = await conn.fetchval(
            "SELECT count(*) FROM (SELECT split_part(key, '/', 1) FROM effects "
            "WHERE kind = 'ledger' GROUP BY 1 HAVING count(*) > 1) t"
        )
        unfinished = await conn.fetchval(
            "SELECT count(*) FROM sk_workflows WHERE namespace = 'chaos' AND id = ANY($1) "
            "AND status <> 'succeeded'", workflows,
        )  # fmt: skip
    finally:
        await conn.close()
    keys = calls.acked["state"]
    lost = 0
    for low in range(0, len(keys), 1000):  # a thousand keys a round trip
        found = await app.state.get_many(keys[low : low + 1000])
        lost += sum(1 for item in found.values() if item is None)
    lost += sum(1 for m in calls.acked["message"] if ("message", m) not in effects)
    booked = {key.split("/")[0] for kind, key in effects if kind == "ledger"}
    lost += sum(1 for w in workflows if w not in booked)
    # Still in flight, or still delayed (sent by a process whose clock is ahead: it
    # stamps the message visible from its own "now").
    in_flight = 0
    for queue in ("work", "ledger"):
        left = await app.queue(queue).stats()
        in_flight += left.in_flight + left.delayed
    invariants = {
        "acknowledged_lost": lost,
        "stale_reads": calls.stale,
        "applied_twice": int(twice),
        "stuck_leases": int(unfinished) + in_flight,
    }
    return invariants, attempts - len(effects)


def run_scenario(name: str, *, seconds: float = 10.0, report_dir: Path | None = None) -> Report:
    """Build the hosts, run ``name``'s fault in the workload, tear it all down; the
    report (also written to ``report_dir/NAME.json`` and ``.txt`` when given)."""
    scenario = SCENARIOS[name]
    with Cluster(workers=2, delay_ms=0.5) as cluster:
        try:
            report = asyncio.run(ChaosRun(scenario, seconds=seconds).run(cluster))
        finally:
            if report_dir is not None:
                logs = report_dir / f"{name}-logs"
                logs.mkdir(parents=True, exist_ok=True)
                for log in cluster.logs.glob("*.log"):
                    (logs / log.name).write_bytes(log.read_bytes())
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / f"{name}.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
        (report_dir / f"{name}.txt").write_text(report.table() + "\n")
    return report


if __name__ == "__main__":  # python -m statekeeper.chaos.run SCENARIO
    print(run_scenario(sys.argv[1], report_dir=Path("chaos-reports")).table())
