"""Durable workflows: statekeeper against DBOS Transact on the same databases, in one run.

    python bench/workflow_bench.py --quick              # under a minute (after a one-time install)
    python bench/workflow_bench.py                      # 500 workflows per measurement
    python bench/workflow_bench.py --backend postgres --json results.json

Both sides run the same workflow: 10 steps, each a trivial async function (returns
its argument plus one), each step checkpointed durably before the next. Both run
in this process, on one event loop:

* statekeeper ``App(url, namespace="wbench", purge_interval=None)``; the workflow is
  started with ``app.workflows.start`` and run by a ``WorkflowRunner`` in this process
  whose ``concurrency`` is the number in flight (1, 16 or 64).
* DBOS Transact ``@DBOS.workflow()`` / ``@DBOS.step()`` async functions, started with
  ``DBOS.start_workflow_async`` and awaited through the handle's ``get_result()``.
  DBOS's defaults otherwise (a 20-connection system database pool).

The databases: SQLite files side by side in one temporary directory (statekeeper:
WAL, ``synchronous=FULL``; DBOS: its own defaults), and the same PostgreSQL database,
statekeeper in schema ``sk_wbench_<pid>``, DBOS in ``sk_wbench_<pid>_dbos`` (its
``dbos_system_schema``); both dropped at the end.

Measured per backend and side:

* step latency p50/p99: workflows run one at a time (start, wait until done, next);
  each step is timed inside the workflow body around ``await step(...)``: running the
  step and its durable checkpoint, until the workflow goes on. The target is one
  durable commit: twice the p50 of a plain one-row INSERT transaction on the same backend
  (and, as a second row, twice that of a plain two-row INSERT)
  (a sqlite3 thread in WAL, ``synchronous=FULL``; an asyncpg autocommit INSERT), as a
  checkpoint commits two rows (the lease renewal and the step) in its one transaction.
* workflow latency p50: start to finished, one at a time (information).
* throughput with 16 and 64 in flight: that many clients each start a workflow,
  wait until it has finished (its result is committed), and start the next, until
  all are done. Workflows per second; steps per second is ten times that.

DBOS is not a dependency of the project: when ``import dbos`` fails, this script
creates a virtual environment outside the repository (``--dbos-venv``, default
``~/.cache/statekeeper-bench/dbos-venv``), installs DBOS and statekeeper's own
dependencies there (pinned to the versions running now), and runs itself again with
that interpreter. If that is impossible, it measures statekeeper alone and says so.
The last line printed is the headline.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

# A sibling module: ``python bench/workflow_bench.py`` puts bench/ on sys.path.
import benchlib
from benchlib import NAMES, Backend, Tally
from statekeeper import App
from statekeeper.constants import ENV_CACHE_URL
from statekeeper.errors import ErrorRecord
from statekeeper.storage.rows import LeasedWorkflow
from statekeeper.workflows import WorkflowContext, WorkflowRunner

STEPS = 10
EXPECTED = sum(i + 1 for i in range(STEPS))  # what every workflow returns
NAMESPACE = "wbench"
WORKFLOW = "ten_steps"
IN_FLIGHT = (16, 64)
THROUGHPUT_TARGET = 5.0  # statekeeper workflows/s over DBOS's, same database
# A step is one transaction that writes two rows (the lease renewal and the step) in one
# statement; the reference writes one row. A step may take this many reference commits.
COMMIT_SLACK = 2.0
# A plain two-row commit: what a step writes, with nothing else around it.
TWO_ROWS_SQLITE = "INSERT INTO probe VALUES (?1), (?1)"
TWO_ROWS_POSTGRES = "INSERT INTO probe VALUES ($1), ($1)"
WAIT_LIMIT = 120.0  # one workflow taking longer than this fails the run

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV = benchlib.PEER_HOME / "dbos-venv"
SIDES = ("statekeeper", "dbos")


@dataclass(frozen=True)
class Sizes:
    """How many workflows each measurement runs, and a time cap on starting more."""

    warmup: int
    sequential: int
    throughput: int
    commits: int  # plain commits timed for the reference
    cap_seconds: float | None  # stop starting workflows after this long (None: no cap)


QUICK = Sizes(warmup=10, sequential=40, throughput=100, commits=100, cap_seconds=4.0)
FULL = Sizes(warmup=50, sequential=500, throughput=500, commits=500, cap_seconds=None)


# --- measuring --------------------------------------------------------------------------


class StepClock:
    """Each step's time as the workflow body sees it: from calling the step until the
    workflow goes on (the step ran and its checkpoint committed)."""

    def __init__(self) -> None:
        self.latencies_ns: list[int] = []
        self.on = False

    def record(self, ns: int) -> None:
        if self.on:
            self.latencies_ns.append(ns)


RunOne = Callable[[int], Awaitable[None]]  # run workflow number n until it has finished


@dataclass
class Measured:
    """One side on one backend."""

    step: Tally = field(default_factory=Tally)  # step latencies, one workflow at a time
    workflow: Tally = field(default_factory=Tally)  # workflow latencies, one at a time
    throughput: dict[int, Tally] = field(default_factory=dict)  # in flight -> tally
    info: dict[str, Any] = field(default_factory=dict)


async def closed_loop(run_one: RunOne, in_flight: int, total: int, sizes: Sizes) -> Tally:
    """``in_flight`` clients, each running one workflow after another, until ``total``
    have run (or the time cap stops new starts)."""
    clock = time.perf_counter
    numbers = itertools.count()
    started = clock()
    deadline = None if sizes.cap_seconds is None else started + sizes.cap_seconds
    done = [0]

    async def client() -> None:
        while True:
            n = next(numbers)
            if n >= total or (deadline is not None and clock() > deadline):
                return
            await run_one(n)
            done[0] += 1

    await asyncio.gather(*(client() for _ in range(min(in_flight, total))))
    return Tally(done[0], clock() - started)


async def one_at_a_time(run_one: RunOne, total: int, sizes: Sizes, steps: StepClock) -> Tally:
    """Workflows one after another; their latencies (steps are recorded in ``steps``)."""
    clock = time.perf_counter_ns
    deadline = None if sizes.cap_seconds is None else clock() + int(sizes.cap_seconds * 1e9)
    tally = Tally()
    started = clock()
    steps.on = True
    try:
        for n in range(total):
            if deadline is not None and clock() > deadline:
                break
            t0 = clock()
            await run_one(n)
            tally.latencies_ns.append(clock() - t0)
            tally.count += 1
    finally:
        steps.on = False
    tally.seconds = (clock() - started) / 1e9
    return tally


async def measure(
    side: str,
    backend: Backend,
    make_run: Callable[[str, int], Awaitable[RunOne]],
    sizes: Sizes,
    steps: StepClock,
    commits: Callable[[], int] | None = None,
) -> Measured:
    """Warm up, then latency one at a time, then throughput at each in-flight count.
    ``make_run(phase, in_flight)`` readies the side for a phase and returns its runner;
    ``commits()``, when given, counts the side's commits so far."""
    result = Measured()
    await closed_loop(await make_run("warm", 4), 4, sizes.warmup, sizes)
    gc.collect()
    steps.latencies_ns = []
    run = await make_run("seq", 1)
    before = commits() if commits else 0
    result.workflow = await one_at_a_time(run, sizes.sequential, sizes, steps)
    if commits is not None and result.workflow.count:
        per_workflow = (commits() - before) / result.workflow.count
        result.info["commits_per_workflow_1_at_a_time"] = round(per_workflow, 2)
    result.step = Tally(len(steps.latencies_ns), 0.0, steps.latencies_ns)
    print_progress(side, backend, "one at a time", result.workflow)
    for in_flight in IN_FLIGHT:
        gc.collect()
        run = await make_run(f"c{in_flight}", in_flight)
        tally = await closed_loop(run, in_flight, sizes.throughput, sizes)
        result.throughput[in_flight] = tally
        print_progress(side, backend, f"{in_flight} in flight", tally)
    return result


def print_progress(side: str, backend: Backend, what: str, tally: Tally) -> None:
    print(
        f"  ({NAMES[backend]}, {side}, {what}: {tally.count} workflows in {tally.seconds:.2f} s)",
        flush=True,
    )


# --- statekeeper --------------------------------------------------------------------------


async def bump(i: int) -> int:
    """The step: trivial work, so that the time is the engine's."""
    return i + 1


class SignallingRunner(WorkflowRunner):
    """A runner that tells the waiting client when a workflow's end has committed."""

    def __init__(self, app: App, concurrency: int, waiting: dict[str, asyncio.Future[str]]) -> None:
        super().__init__(app.workflows, concurrency=concurrency)
        self.waiting = waiting

    async def _finish(
        self, leased: LeasedWorkflow, status: str, output: bytes | None, error: ErrorRecord | None
    ) -> None:
        await super()._finish(leased, status, output, error)
        future = self.waiting.pop(leased.id, None)
        if future is not None and not future.done():
            future.set_result(status if error is None else f"{status}: {error}")


class StatekeeperSide:
    """statekeeper with a runner in this process whose concurrency is the in-flight count."""

    def __init__(self, app: App, steps: StepClock) -> None:
        self.app = app
        self.waiting: dict[str, asyncio.Future[str]] = {}
        self.runner: asyncio.Task[None] | None = None
        self.stopping = asyncio.Event()
        clock = time.perf_counter_ns

        async def ten_steps(ctx: WorkflowContext, n: int) -> int:
            total = 0
            for i in range(STEPS):
                t0 = clock()
                total += await ctx.step(bump, i)
                steps.record(clock() - t0)
            return total

        app.workflow(ten_steps, name=WORKFLOW)

    async def stop_runner(self) -> None:
        if self.runner is not None:
            self.stopping.set()
            await self.runner
            self.runner = None

    async def make_run(self, phase: str, in_flight: int) -> RunOne:
        await self.stop_runner()
        self.stopping = asyncio.Event()
        runner = SignallingRunner(self.app, in_flight, self.waiting)
        self.runner = asyncio.create_task(runner.run(self.stopping))
        start = self.app.workflows.start
        waiting = self.waiting
        loop = asyncio.get_running_loop()

        async def run_one(n: int) -> None:
            id = f"{phase}-{n}"
            future: asyncio.Future[str] = loop.create_future()
            waiting[id] = future
            await start(WORKFLOW, n, id=id)
            status = await asyncio.wait_for(future, WAIT_LIMIT)
            if status != "succeeded":
                raise RuntimeError(f"statekeeper workflow {id} ended {status}")

        return run_one


async def run_statekeeper(url: str, backend: Backend, sizes: Sizes, steps: StepClock) -> Measured:
    async with benchlib.statekeeper_app(url, NAMESPACE) as app:
        side = StatekeeperSide(app, steps)
        stats = benchlib.commit_stats(app) if backend == "sqlite" else None
        try:
            before = stats() if stats else (0, 0)
            result = await measure(
                "statekeeper", backend, side.make_run, sizes, steps,
                (lambda: stats()[1]) if stats else None,
            )  # fmt: skip
        finally:
            await side.stop_runner()
        if stats is not None:
            jobs, batches = (a - b for a, b in zip(stats(), before, strict=True))
            result.info.update(writer_jobs=jobs, writer_commits=batches)
        ok = await app.workflows.list(status="succeeded", limit=1000)
        result.info["succeeded_listed"] = len(ok)
    return result


# --- DBOS Transact ------------------------------------------------------------------------

_dbos_functions: dict[str, Any] = {}  # DBOS keeps its registry across instances


def dbos_workflow(steps: StepClock) -> Any:
    """The same workflow for DBOS, registered once per process."""
    if "workflow" not in _dbos_functions:
        dbos: Any = importlib.import_module("dbos")
        DBOS = dbos.DBOS
        clock = time.perf_counter_ns

        async def dbos_bump(i: int) -> int:
            return i + 1

        step = DBOS.step()(dbos_bump)

        async def dbos_ten_steps(n: int) -> int:
            total = 0
            for i in range(STEPS):
                t0 = clock()
                total += await step(i)
                steps.record(clock() - t0)
            return total

        _dbos_functions["workflow"] = DBOS.workflow(name="dbos_ten_steps")(dbos_ten_steps)
    return _dbos_functions["workflow"]


def dbos_version() -> str:
    try:
        return importlib.metadata.version("dbos")
    except importlib.metadata.PackageNotFoundError:
        return "?"


async def run_dbos(
    config: dict[str, Any], backend: Backend, sizes: Sizes, steps: StepClock
) -> Measured:
    dbos: Any = importlib.import_module("dbos")
    DBOS = dbos.DBOS
    workflow = dbos_workflow(steps)
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    DBOS(config=config)
    try:
        DBOS.launch()
        launch_seconds = time.perf_counter() - started

        async def make_run(phase: str, in_flight: int) -> RunOne:
            async def run_one(n: int) -> None:
                handle = await DBOS.start_workflow_async(workflow, n)
                result = await asyncio.wait_for(handle.get_result(), WAIT_LIMIT)
                if result != EXPECTED:
                    raise RuntimeError(f"DBOS workflow {n} returned {result!r}")

            return run_one

        result = await measure("DBOS", backend, make_run, sizes, steps)
        result.info["launch_seconds"] = round(launch_seconds, 3)
    finally:
        DBOS.destroy()
        # DBOS made its (now shut down) executor this loop's default: give one back.
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="wbench-default"))
    return result


# --- a plain durable commit, the target for one step ----------------------------------------


async def sqlite_commit_latency(path: str, count: int) -> tuple[Tally, Tally]:
    """Plain commits of one row and of two rows, taken in turns."""
    writer = benchlib.SQLiteWriter(path, "wbench-probe")
    await writer.open()
    try:
        await writer.call(writer.transaction, "CREATE TABLE probe (n INTEGER)", ())
        one, two = Tally(), Tally()
        for n in range(count):
            for tally, sql in ((one, "INSERT INTO probe VALUES (?)"), (two, TWO_ROWS_SQLITE)):
                t0 = time.perf_counter_ns()
                await writer.call(writer.transaction, sql, (n,))
                tally.latencies_ns.append(time.perf_counter_ns() - t0)
        return one, two
    finally:
        await writer.close()


async def postgres_commit_latency(base_url: str, schema: str, count: int) -> tuple[Tally, Tally]:
    """Plain commits of one row and of two rows, taken in turns."""
    conn = await asyncpg.connect(base_url, server_settings={"search_path": schema})
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute("CREATE TABLE probe (n bigint)")
        one, two = Tally(), Tally()
        for n in range(count):
            for tally, sql in ((one, "INSERT INTO probe VALUES ($1)"), (two, TWO_ROWS_POSTGRES)):
                t0 = time.perf_counter_ns()
                await conn.execute(sql, n)
                tally.latencies_ns.append(time.perf_counter_ns() - t0)
        return one, two
    finally:
        await conn.close()


# --- the backends ---------------------------------------------------------------------------


@dataclass
class Row:
    backend: Backend
    measure: str
    statekeeper: float | None
    dbos: float | None
    ratio: float | None  # better for statekeeper when above 1
    target: str
    met: bool | None
    statekeeper_p99: float | None = None
    dbos_p99: float | None = None


def rows_for(
    backend: Backend, sk: Measured, db: Measured | None, commit: Tally, two_rows: Tally
) -> list[Row]:
    """The table rows of one backend; ``db`` is None when DBOS did not run."""

    def ms(tally: Tally | None, pct: float) -> float | None:
        return None if tally is None else tally.percentile_ms(pct)

    def over(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    limit = (commit.percentile_ms(50) or 0.0) * COMMIT_SLACK
    step_p50 = ms(sk.step, 50)
    db_step, db_flow = (None, None) if db is None else (db.step, db.workflow)
    rows = [
        Row(
            backend=backend,
            measure="step p50/p99 ms, 1 at a time",
            statekeeper=step_p50,
            dbos=ms(db_step, 50),
            ratio=over(ms(db_step, 50), step_p50),
            target=f"<= {limit:.2f} (1 commit)",
            met=None if step_p50 is None else step_p50 <= limit,
            statekeeper_p99=ms(sk.step, 99),
            dbos_p99=ms(db_step, 99),
        ),
        Row(
            backend=backend,
            measure="step p50 / two-row commit p50",  # lower is better
            statekeeper=None,
            dbos=None,
            ratio=over(step_p50, two_rows.percentile_ms(50)),
            target=f"<= {COMMIT_SLACK:g}x",
            met=None
            if step_p50 is None
            else step_p50 <= COMMIT_SLACK * (two_rows.percentile_ms(50) or 0.0),
        ),
        Row(
            backend=backend,
            measure="workflow p50/p99 ms, 1 at a time",
            statekeeper=ms(sk.workflow, 50),
            dbos=ms(db_flow, 50),
            ratio=over(ms(db_flow, 50), ms(sk.workflow, 50)),
            target="",
            met=None,
            statekeeper_p99=ms(sk.workflow, 99),
            dbos_p99=ms(db_flow, 99),
        ),
    ]
    for in_flight in IN_FLIGHT:
        sk_rate = sk.throughput[in_flight].rate
        db_rate = db.throughput[in_flight].rate if db else None
        ratio = over(sk_rate, db_rate)
        rows.append(
            Row(
                backend=backend,
                measure=f"workflows/s, {in_flight} in flight",
                statekeeper=sk_rate,
                dbos=db_rate,
                ratio=ratio,
                target=f">= {THROUGHPUT_TARGET:g}x DBOS",
                met=None if ratio is None else ratio >= THROUGHPUT_TARGET,
            )
        )
    return rows


@dataclass
class Context:
    sizes: Sizes
    dbos_problem: str | None
    steps: StepClock = field(default_factory=StepClock)


async def bench_backend(
    backend: Backend, ctx: Context, sk_url: str, dbos_config: dict[str, Any] | None,
    commit: Callable[[], Awaitable[tuple[Tally, Tally]]],
) -> tuple[list[Row], dict[str, Any]]:  # fmt: skip
    reference, two_rows = await commit()
    sk = await run_statekeeper(sk_url, backend, ctx.sizes, ctx.steps)
    db = None
    info: dict[str, Any] = {"statekeeper": sk.info}
    if dbos_config is not None and ctx.dbos_problem is None:
        db = await run_dbos(dbos_config, backend, ctx.sizes, ctx.steps)
        shown = {k: v for k, v in dbos_config.items() if k != "system_database_url"}
        info["dbos"] = {**db.info, "config": shown}
    info["commit_p50_ms"] = reference.percentile_ms(50)
    info["commit_p99_ms"] = reference.percentile_ms(99)
    info["two_row_commit_p50_ms"] = two_rows.percentile_ms(50)
    info["two_row_commit_p99_ms"] = two_rows.percentile_ms(99)
    found = rows_for(backend, sk, db, reference, two_rows)
    for row in found:
        print_row(row)
    if sk.info.get("writer_commits"):
        per_flow = sk.info["writer_jobs"] / sk.info["writer_commits"]
        info["statekeeper"]["jobs_per_commit"] = round(per_flow, 2)
    return found, info


def dbos_base(name: str) -> dict[str, Any]:
    return {"name": name, "log_level": "WARNING"}


async def bench_sqlite(ctx: Context, directory: str) -> tuple[list[Row], dict[str, Any]]:
    config = {**dbos_base("sk-wbench"), "system_database_url": f"sqlite:///{directory}/dbos.db"}
    rows, info = await bench_backend(
        "sqlite", ctx, f"sqlite:///{directory}/statekeeper.db", config,
        lambda: sqlite_commit_latency(f"{directory}/probe.db", ctx.sizes.commits),
    )  # fmt: skip
    return rows, {**info, **benchlib.sqlite_info(directory)}


def plain_url(url: str) -> str:
    """The URL without statekeeper's own ``schema`` parameter (DBOS would not know it)."""
    base, _, query = url.partition("?")
    kept = [p for p in query.split("&") if p and not p.startswith("schema=")]
    return base + ("?" + "&".join(kept) if kept else "")


async def bench_postgres(ctx: Context, base_url: str) -> tuple[list[Row], dict[str, Any]]:
    async with benchlib.scratch_schemas(base_url, "sk_wbench", "_dbos", "_probe") as schemas:
        schema, dbos_schema, probe_schema = schemas
        config = {
            **dbos_base("sk-wbench"),
            "system_database_url": plain_url(base_url),
            "dbos_system_schema": dbos_schema,
        }
        rows, info = await bench_backend(
            "postgres", ctx, benchlib.with_schema(base_url, schema), config,
            lambda: postgres_commit_latency(base_url, probe_schema, ctx.sizes.commits),
        )  # fmt: skip
        conn = await asyncpg.connect(base_url)
        try:
            settings = await benchlib.postgres_info(conn)
        finally:
            await conn.close()
        return rows, {**info, **settings, "schema": schema, "dbos_schema": dbos_schema}


# --- output -------------------------------------------------------------------------------

HEADER = (
    f"{'backend':<10} {'measure':<33} {'statekeeper':>13} {'DBOS':>13} {'ratio':>8}  "
    f"{'target':<20} {'met?':<4}"
)


def cell(value: float | None, p99: float | None) -> str:
    if value is None:
        return "-"
    if p99 is not None:
        return benchlib.latency_pair(value, p99, 2)
    return f"{value:.0f}"


def print_row(row: Row) -> None:
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    met = "" if row.met is None else ("yes" if row.met else "NO")
    print(
        f"{NAMES[row.backend]:<10} {row.measure:<33} "
        f"{cell(row.statekeeper, row.statekeeper_p99):>13} {cell(row.dbos, row.dbos_p99):>13} "
        f"{ratio:>8}  {row.target:<20} {met:<4}",
        flush=True,
    )


def headline(rows: list[Row], dbos_problem: str | None) -> str:
    stem = "headline: workflow throughput vs DBOS at 64 in flight (PostgreSQL) = "
    if dbos_problem is not None:
        return stem + "n/a (DBOS unavailable)"
    for row in rows:
        if row.backend == "postgres" and row.measure.endswith("64 in flight"):
            return stem + ("n/a" if row.ratio is None else f"{row.ratio:.2f}x")
    return stem + "n/a (PostgreSQL not measured)"


def write_json(path: str, document: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# --- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace, dbos_problem: str | None) -> int:
    os.environ.pop(ENV_CACHE_URL, None)  # as in the other benchmarks: no Redis cache
    sizes = FULL if not args.quick else QUICK
    if args.workflows:
        sizes = Sizes(sizes.warmup, args.workflows, args.workflows, sizes.commits, None)
    if args.seconds:
        sizes = Sizes(sizes.warmup, sizes.sequential, sizes.throughput, sizes.commits, args.seconds)
    cap = "" if sizes.cap_seconds is None else f", new starts capped at {sizes.cap_seconds:g} s"
    side = "DBOS unavailable" if dbos_problem else f"DBOS Transact {dbos_version()}"
    print(
        f"workflows of {STEPS} steps, statekeeper vs {side}: {sizes.sequential} one at a "
        f"time, {sizes.throughput} at each of {'/'.join(map(str, IN_FLIGHT))} in flight"
        f"{cap}; Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    if dbos_problem is not None:
        print(f"(DBOS unavailable: {dbos_problem}; statekeeper figures only)")
    print(HEADER, flush=True)
    ctx = Context(sizes, dbos_problem)

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="sk-workflow-bench-") as directory:
            return await bench_sqlite(ctx, directory)

    got = await benchlib.each_backend(args, sqlite, lambda: bench_postgres(ctx, args.pg_url))
    if got is None:
        return 2
    print(
        "method: step = time around `await step(...)` in the workflow body (the step "
        "ran and its checkpoint committed); targets = 2 x p50 of a plain one-row commit "
        "(a step commits two rows), and 2 x p50 of a plain two-row commit (one INSERT of "
        "two rows), both timed in turns on the same backend before the workflows run"
    )
    for backend, info in got.info.items():
        sk = info.get("statekeeper", {})
        if "jobs_per_commit" in sk:
            print(
                f"note: {NAMES[backend]}: statekeeper committed "
                f"{sk['commits_per_workflow_1_at_a_time']:.1f} transactions per {STEPS}-step "
                f"workflow one at a time (start, lease, steps, finish); its writer carried "
                f"{sk['jobs_per_commit']:.1f} writes per commit over the run"
            )
        two_p99 = info["two_row_commit_p99_ms"]
        print(
            f"note: {NAMES[backend]}: plain commit p50/p99 "
            f"{benchlib.latency_pair(info['commit_p50_ms'], info['commit_p99_ms'], 2)} ms "
            "(one row); "
            f"{benchlib.latency_pair(info['two_row_commit_p50_ms'], two_p99, 2)} ms (two rows)"
        )
    line = headline(got.results, dbos_problem)
    if args.json:
        document = {
            "quick": args.quick,
            "sizes": asdict(sizes),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "dbos": dbos_problem or dbos_version(),
            "info": got.info,
            "rows": [asdict(row) for row in got.results],
            "headline": line,
        }
        write_json(args.json, document)
    print(f"{got.seconds:.1f} s")
    print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = benchlib.bench_parser(
        __doc__,
        quick_help="fewer workflows and a time cap per measurement: under a minute",
        seconds_help="stop starting workflows after this many seconds per measurement",
    )
    parser.add_argument("--workflows", type=int, help="workflows per measurement")
    parser.add_argument(
        "--dbos-venv", type=Path, default=DEFAULT_VENV,
        help=f"where DBOS gets installed when it is not importable (default {DEFAULT_VENV})",
    )  # fmt: skip
    parser.add_argument("--no-dbos", action="store_true", help="measure statekeeper alone")
    args = parser.parse_args(argv)
    problem = None
    if args.no_dbos:
        problem = "--no-dbos"
    elif importlib.util.find_spec("dbos") is None:
        problem = benchlib.run_with_peer("dbos", args.dbos_venv, Path(__file__), argv)
    return asyncio.run(run(args, problem))


if __name__ == "__main__":
    sys.exit(main())
