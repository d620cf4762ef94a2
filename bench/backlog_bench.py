"""Backlogs: does work cost the same when much of it is waiting? On SQLite and PostgreSQL,
in one run, statekeeper at a small and a big size of the same work:

    python bench/backlog_bench.py --quick        # 1k vs 50k messages, under a minute
    python bench/backlog_bench.py                # 1k vs 100k messages
    python bench/backlog_bench.py --backend postgres --json results.json

* Drain rate: a worker (``statekeeper.runtime.Worker``) with one consumer of concurrency
  16 and a handler that does nothing drains a queue holding a backlog of the small or the
  big size: each measured slice tops the queue up to its size (not timed), then times the
  worker from its start until it has received and acknowledged ``--drain`` messages
  (500). The queue's defaults otherwise (acknowledged messages are archived).
* Receive latency: in each slice, 30 ``receive(10)`` calls one after another at that
  backlog (each batch then acknowledged, not timed): p50/p99.
* Workflow step throughput: 100 vs 10,000 sleeping workflows (rows due tomorrow) beside
  the work; each slice starts ``--workflows`` workflows of 10 trivial steps and times a
  runner of concurrency 32 until all have finished: steps per second.
* procrastinate (PostgreSQL only): the same drain (a backlog of jobs, a worker of
  concurrency 16, a task that does nothing, a pool of 16 connections as statekeeper's),
  procrastinate's defaults otherwise; first as filled, then after ANALYZE. It is not a
  dependency: when it is not importable, this script installs it into its own virtual
  environment outside the repository (``--peer-venv``) and runs itself again there.

statekeeper is measured as filled: its tables are new and never analyzed, as after a
spike into a queue that was empty when autovacuum last looked. Its plans must not
depend on statistics (docs/decisions/0005-flat-cost.md); procrastinate's second phase
shows what statistics do for a peer whose plans do.

Sizes interleave (small, big, big, small, ...) so drift on a shared machine falls on both.
The last line is the headline: the lower of the backends' big/small drain-rate ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

# A sibling module: ``python bench/backlog_bench.py`` puts bench/ on sys.path.
import benchlib
from benchlib import NAMES, Backend, Tally
from statekeeper import App, Message
from statekeeper.constants import ENV_CACHE_URL
from statekeeper.workflows import WorkflowContext, WorkflowRunner

QUEUE = "backlog"
CONCURRENCY = 16
RECEIVES = 30  # timed receive(10) calls per slice
STEPS = 10
SLEEPERS = (100, 10_000)
TARGET = 0.8  # the big backlog's drain rate over the small one's
DEFAULT_VENV = benchlib.PEER_HOME / "procrastinate-venv"


@dataclass(frozen=True)
class Sizes:
    small: int
    big: int
    slices: int  # per size
    drain: int  # messages drained per slice
    workflows: int  # workflows per slice
    peer_slices: int = 2  # per size and phase
    peer_drain: int = 200


QUICK = Sizes(small=1_000, big=50_000, slices=3, drain=500, workflows=50)
FULL = Sizes(
    small=1_000, big=100_000, slices=6, drain=500, workflows=200, peer_slices=4, peer_drain=500
)
PHASES = ("as filled", "after ANALYZE")


@dataclass
class Side:
    """What one size measured."""

    drain: Tally = field(default_factory=Tally)
    receive: Tally = field(default_factory=Tally)
    steps: Tally = field(default_factory=Tally)


@dataclass
class Row:
    backend: Backend
    what: str
    small: str
    big: str
    ratio: float | None
    target: str = ""


# --- statekeeper ----------------------------------------------------------------------------


async def bump(i: int) -> int:
    return i + 1


async def ten_steps(ctx: WorkflowContext, n: int) -> int:
    total = 0
    for i in range(STEPS):
        total += await ctx.step(bump, i)
    return total


class Subject:
    """One statekeeper app holding a backlog of one size."""

    def __init__(self, app: App, size: int) -> None:
        self.app = app
        self.size = size
        self.queue = app.queue(QUEUE)
        self.handled = 0
        self.target = 0
        self.reached = asyncio.Event()
        self.serial = 0

        async def noop(message: Message) -> None:
            self.handled += 1
            if self.handled >= self.target:
                self.reached.set()

        app.consumer(QUEUE, concurrency=CONCURRENCY)(noop)
        app.workflow(ten_steps, name="ten_steps")

    async def top_up(self) -> None:
        stats = await self.queue.stats()
        missing = self.size - (stats.ready + stats.delayed + stats.in_flight)
        while missing > 0:
            chunk = min(missing, 2000)
            await self.queue.send_batch([{"n": self.serial + i} for i in range(chunk)])
            self.serial += chunk
            missing -= chunk

    async def drain(self, count: int) -> Tally:
        self.handled, self.target = 0, count
        self.reached.clear()
        worker = self.app.worker([QUEUE], poll=0.05)
        started = time.perf_counter()
        running = asyncio.create_task(worker.run())
        await asyncio.wait_for(self.reached.wait(), 300)
        seconds = time.perf_counter() - started
        worker.stop()
        await running
        return Tally(count, seconds)

    async def receive_latency(self) -> Tally:
        tally = Tally()
        for _ in range(RECEIVES):
            t0 = time.perf_counter_ns()
            messages = await self.queue.receive(10)
            tally.latencies_ns.append(time.perf_counter_ns() - t0)
            for message in messages:
                await message.ack()
        return tally

    async def run_workflows(self, count: int) -> Tally:
        ids = [await self.app.workflows.start("ten_steps", n) for n in range(count)]
        stopping = asyncio.Event()
        runner = WorkflowRunner(self.app.workflows, concurrency=32, poll=0.05)
        started = time.perf_counter()
        running = asyncio.create_task(runner.run(stopping))
        while runner.completed < count:  # noqa: ASYNC110 (the runner has no event to wait on)
            await asyncio.sleep(0.002)
        seconds = time.perf_counter() - started
        stopping.set()
        await running
        for id in ids[:3]:
            assert (await self.app.workflows.status(id)).status == "succeeded"
        return Tally(count * STEPS, seconds)


async def add_sleepers(app: App, count: int) -> None:
    """``count`` workflows asleep until tomorrow, written as rows (what sleeping is)."""
    now = time.time()
    rows = [
        (app.namespace, f"sleeper-{i}", "ten_steps", "sleeping", b"0", now + 86_400 + i, now, now)
        for i in range(count)
    ]
    sql = (
        "INSERT INTO sk_workflows (namespace, id, name, status, input, wake_at, created_at, "
        "updated_at) VALUES ({})"
    )
    backend: Any = app.backend
    if backend.dialect == "sqlite":
        statement = sql.format(", ".join("?" * 8))
        await backend.writer.run(lambda conn: conn.executemany(statement, rows), "sleepers")
    else:
        async with backend.pool.acquire() as conn:
            await conn.executemany(sql.format(", ".join(f"${i}" for i in range(1, 9))), rows)


async def measure_statekeeper(
    backend: Backend, urls: Callable[[str], str], sizes: Sizes
) -> dict[str, dict[int, Side]]:
    """Queue drain and receive latency per backlog size; step throughput per sleepers."""
    results: dict[str, dict[int, Side]] = {"queue": {}, "workflows": {}}
    apps = {
        size: benchlib.statekeeper_app(urls(f"q{size}"), "backlog")
        for size in (sizes.small, sizes.big)
    }
    subjects = {size: Subject(await app.open(), size) for size, app in apps.items()}
    try:
        for subject in subjects.values():
            await subject.top_up()
        for subject in subjects.values():  # warm-up: caches, pools and plans of each
            await subject.drain(100)
            await subject.receive_latency()
        for size in benchlib.turns([sizes.small, sizes.big], sizes.slices):
            subject = subjects[size]
            side = results["queue"].setdefault(size, Side())
            await subject.top_up()
            side.drain.add(await subject.drain(sizes.drain))
            side.receive.add(await subject.receive_latency())
        for size, side in sorted(results["queue"].items()):
            print(
                f"  ({NAMES[backend]}, backlog {size}: {side.drain.count} drained in "
                f"{side.drain.seconds:.2f} s)",
                flush=True,
            )
    finally:
        for app in apps.values():
            await app.close()
    flows = {count: benchlib.statekeeper_app(urls(f"w{count}"), "backlog") for count in SLEEPERS}
    runners = {count: Subject(await app.open(), 0) for count, app in flows.items()}
    try:
        for count, subject in runners.items():
            await add_sleepers(subject.app, count)
        for subject in runners.values():  # warm-up
            await subject.run_workflows(10)
        for count in benchlib.turns(list(SLEEPERS), sizes.slices):
            side = results["workflows"].setdefault(count, Side())
            side.steps.add(await runners[count].run_workflows(sizes.workflows))
    finally:
        for app in flows.values():
            await app.close()
    return results


# --- procrastinate (PostgreSQL) ------------------------------------------------------------


async def measure_procrastinate(
    base_url: str, schema_of: Callable[[str], str], sizes: Sizes
) -> dict[str, dict[int, Side]]:
    """The drain at both sizes, first as filled (statistics of a table that was empty),
    then after ANALYZE (what autovacuum gives a backlog that has sat for a minute or
    two): procrastinate's plans depend on them, which statekeeper's do not."""
    procrastinate: Any = importlib.import_module("procrastinate")
    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # its start-up advice
    results: dict[str, dict[int, Side]] = {phase: {} for phase in PHASES}
    state: dict[str, Any] = {"handled": 0, "target": 0, "event": asyncio.Event()}
    apps: dict[int, Any] = {}
    tasks: dict[int, Any] = {}
    serial = {size: 0 for size in (sizes.small, sizes.big)}
    conn = await asyncpg.connect(base_url)
    try:
        for size in (sizes.small, sizes.big):
            schema = schema_of(f"p{size}")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            connector = procrastinate.PsycopgConnector(
                conninfo=base_url,
                kwargs={"options": f"-c search_path={schema}"},
                min_size=CONCURRENCY,
                max_size=CONCURRENCY,
            )
            app = procrastinate.App(connector=connector)

            async def noop(n: int) -> None:
                state["handled"] += 1
                if state["handled"] >= state["target"]:
                    state["event"].set()

            tasks[size] = app.task(name="noop", queue=QUEUE)(noop)
            await app.open_async()
            await app.schema_manager.apply_schema_async()
            apps[size] = app

        async def top_up(size: int) -> None:
            schema = schema_of(f"p{size}")
            waiting = await conn.fetchval(
                f"SELECT count(*) FROM \"{schema}\".procrastinate_jobs WHERE status = 'todo'"
            )
            missing = size - int(waiting)
            while missing > 0:
                chunk = min(missing, 2000)
                await tasks[size].batch_defer_async(
                    *({"n": serial[size] + i} for i in range(chunk))
                )
                serial[size] += chunk
                missing -= chunk

        async def drain(size: int, count: int) -> Tally:
            state["handled"], state["target"] = 0, count
            state["event"] = asyncio.Event()
            started = time.perf_counter()
            worker = asyncio.create_task(
                apps[size].run_worker_async(
                    queues=[QUEUE],
                    concurrency=CONCURRENCY,
                    wait=True,
                    install_signal_handlers=False,
                    fetch_job_polling_interval=0.05,
                )
            )
            await asyncio.wait_for(state["event"].wait(), 300)
            seconds = time.perf_counter() - started
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            return Tally(count, seconds)

        for size in (sizes.small, sizes.big):
            await top_up(size)
        for size in (sizes.small, sizes.big):  # warm-up
            await drain(size, 50)
        for phase in PHASES:
            if phase != PHASES[0]:
                for size in (sizes.small, sizes.big):
                    await conn.execute(f'ANALYZE "{schema_of(f"p{size}")}".procrastinate_jobs')
            for size in benchlib.turns([sizes.small, sizes.big], sizes.peer_slices):
                await top_up(size)
                side = results[phase].setdefault(size, Side())
                side.drain.add(await drain(size, sizes.peer_drain))
    finally:
        for app in apps.values():
            await app.close_async()
        await conn.close()
    return results


# --- the run ----------------------------------------------------------------------------------


def latencies(tally: Tally) -> str:
    return benchlib.latency_pair(tally.percentile_ms(50), tally.percentile_ms(99), 2)


def ratio(small: float, big: float) -> float | None:
    return big / small if small else None


def rows_for(
    backend: Backend,
    measured: dict[str, dict[int, Side]],
    sizes: Sizes,
    peer: dict[str, dict[int, Side]] | None,
) -> list[Row]:
    queue = measured["queue"]
    small, big = queue[sizes.small], queue[sizes.big]
    target = f">= {TARGET}x"
    rows = [
        Row(backend, f"drain msg/s, c={CONCURRENCY}", f"{small.drain.rate:.0f}",
            f"{big.drain.rate:.0f}", ratio(small.drain.rate, big.drain.rate), target),
        Row(backend, "receive(10) p50/p99 ms", latencies(small.receive), latencies(big.receive),
            ratio(big.receive.percentile_ms(50) or 0, small.receive.percentile_ms(50) or 0)),
    ]  # fmt: skip
    flows = measured["workflows"]
    few, many = flows[SLEEPERS[0]].steps, flows[SLEEPERS[1]].steps
    rows.append(
        Row(backend, f"workflow steps/s, {SLEEPERS[0]} vs {SLEEPERS[1]} asleep",
            f"{few.rate:.0f}", f"{many.rate:.0f}", ratio(few.rate, many.rate), target)
    )  # fmt: skip
    if peer is not None:
        for phase in PHASES:
            p_small, p_big = peer[phase][sizes.small].drain, peer[phase][sizes.big].drain
            rows.append(
                Row(backend, f"procrastinate drain jobs/s, {phase}", f"{p_small.rate:.0f}",
                    f"{p_big.rate:.0f}", ratio(p_small.rate, p_big.rate), "info")
            )  # fmt: skip
        p_small, p_big = peer[PHASES[-1]][sizes.small].drain, peer[PHASES[-1]][sizes.big].drain
        rows.append(
            Row(backend, "statekeeper / procrastinate (analyzed)",
                f"{small.drain.rate / p_small.rate:.2f}x" if p_small.rate else "",
                f"{big.drain.rate / p_big.rate:.2f}x" if p_big.rate else "", None, "info")
        )  # fmt: skip
    return rows


def print_rows(rows: list[Row]) -> None:
    for r in rows:
        shown = "" if r.ratio is None else f"{r.ratio:.2f}x"
        met = ""
        if r.target.startswith(">=") and r.ratio is not None:
            met = "yes" if r.ratio >= TARGET else "NO"
        print(
            f"{NAMES[r.backend]:<11}{r.what:<42}{r.small:>12}{r.big:>12}{shown:>9}  "
            f"{r.target:<8}{met}",
            flush=True,
        )


async def run(args: argparse.Namespace, peer_problem: str | None) -> int:
    os.environ.pop(ENV_CACHE_URL, None)
    sizes = QUICK if args.quick else FULL
    if args.drain:
        sizes = Sizes(sizes.small, sizes.big, sizes.slices, args.drain, sizes.workflows)
    if args.big:
        sizes = Sizes(sizes.small, args.big, sizes.slices, sizes.drain, sizes.workflows)
    peer = "procrastinate unavailable" if peer_problem else (
        f"procrastinate {importlib.metadata.version('procrastinate')}"
    )  # fmt: skip
    print(
        f"backlogs of {sizes.small} vs {sizes.big} messages ({sizes.drain} drained per slice, "
        f"{sizes.slices} slices each) and {SLEEPERS[0]} vs {SLEEPERS[1]} sleeping workflows "
        f"({sizes.workflows} x {STEPS} steps per slice); peer: {peer}; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    if peer_problem:
        print(f"(procrastinate unavailable: {peer_problem})")
    print(f"{'backend':<11}{'what':<42}{'small':>12}{'big':>12}{'big/small':>9}  target",
          flush=True)  # fmt: skip

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="sk-backlog-bench-") as directory:
            measured = await measure_statekeeper(
                "sqlite", lambda name: f"sqlite:///{directory}/{name}.db", sizes
            )
        rows = rows_for("sqlite", measured, sizes, None)
        print_rows(rows)
        return rows, {}

    async def postgres() -> tuple[list[Row], dict[str, Any]]:
        stem = f"sk_backlog_{uuid.uuid4().hex[:6]}"
        names = ["q", "w", "p"]
        suffixes = [f"_{n}{s}" for n in names for s in (sizes.small, sizes.big, *SLEEPERS)]
        async with benchlib.scratch_schemas(args.pg_url, stem, *suffixes) as schemas:
            first = schemas[0]

            def schema_of(name: str) -> str:
                return f"{first}_{name}"

            measured = await measure_statekeeper(
                "postgres", lambda name: benchlib.with_schema(args.pg_url, schema_of(name)), sizes
            )
            peer_side = None
            if peer_problem is None:
                peer_side = await measure_procrastinate(args.pg_url, schema_of, sizes)
        rows = rows_for("postgres", measured, sizes, peer_side)
        print_rows(rows)
        return rows, {}

    got = await benchlib.each_backend(args, sqlite, postgres)
    if got is None:
        return 2
    drains = {r.backend: r.ratio for r in got.results if r.what.startswith("drain") and r.ratio}
    lowest = min(drains, key=lambda b: drains[b])
    detail = ", ".join(f"{NAMES[b]} {v:.2f}x" for b, v in drains.items())
    headline = (
        f"headline: drain rate at a {sizes.big} vs {sizes.small} message backlog "
        f"(the lowest of {detail}) = {drains[lowest]:.2f}x"
    )
    plan = benchlib.Plan(0.0, sizes.slices, 0.0)
    return benchlib.finish(args, plan, headline, got, "rows", {"sizes": sizes.__dict__})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = benchlib.bench_parser(__doc__)
    parser.add_argument("--drain", type=int, help="messages drained per slice (500)")
    parser.add_argument("--big", type=int, help="the big backlog (quick 50000, full 100000)")
    parser.add_argument(
        "--peer-venv", type=Path, default=DEFAULT_VENV,
        help=f"where procrastinate gets installed when it is not importable ({DEFAULT_VENV})",
    )  # fmt: skip
    parser.add_argument("--no-peer", action="store_true", help="measure statekeeper alone")
    args = parser.parse_args(argv)
    problem = None
    if args.no_peer:
        problem = "--no-peer"
    elif args.backend != "sqlite" and importlib.util.find_spec("procrastinate") is None:
        problem = benchlib.run_with_peer("procrastinate", args.peer_venv, Path(__file__), argv)
    return asyncio.run(run(args, problem))


if __name__ == "__main__":
    sys.exit(main())
