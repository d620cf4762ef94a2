"""Workflow control: flow-controlled workflow throughput against plain starts, in one run.

    python bench/control_bench.py --quick        # under a minute
    python bench/control_bench.py                # more runs per measurement
    python bench/control_bench.py --backend sqlite

Per backend (SQLite file in a temporary directory, WAL; PostgreSQL in a scratch schema
``sk_cbench_<pid>``, dropped at the end), one app and one runner in this process with
``concurrency`` 16 run the same workflow (3 steps, each a trivial async function):

* plain: ``app.workflows.start(wf, n)``; the runner runs them as they are due.
* flow-controlled: ``app.workflows.start(wf, n, queue="bench", key=f"k{n}")`` into
  ``app.workflow_queue("bench", concurrency=16, per_key_concurrency=1)``: one key per run,
  so every run goes through admission (at its start, and at the end of the run before
  it), and the database keeps 16 running at most.

Each measurement starts ``runs`` workflows (50 at a time) and waits until the runner
has finished them all: workflows per second from the first start to the last end.
Plain and flow-controlled alternate, ``rounds`` times each; the best of each is kept.
Then the cost of one admission with 1,000 and 100,000 runs waiting in a queue (a
queue at its limit: nothing admitted; and one run's end admitting the next), which
should not grow with the backlog.

Schedule lateness (bench/control_schedules.py, written separately) is printed before
the headline when that module is present. The last line printed is the headline: the
ratio of flow-controlled to plain throughput per backend (target >= 0.7).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
from statekeeper import App
from statekeeper.errors import ErrorRecord
from statekeeper.storage.rows import LeasedWorkflow
from statekeeper.workflows import WorkflowContext, WorkflowRunner

CONCURRENCY = 16
STEPS = 3
QUEUE = "bench"


async def bump(i: int) -> int:
    return i + 1


class CountingRunner(WorkflowRunner):
    """A runner that counts the workflow ends it committed."""

    def __init__(self, app: App) -> None:
        super().__init__(app.workflows, concurrency=CONCURRENCY, poll=0.05)
        self.ended = 0
        self.changed = asyncio.Event()

    async def _finish(
        self, leased: LeasedWorkflow, status: str, output: bytes | None, error: ErrorRecord | None
    ) -> None:
        await super()._finish(leased, status, output, error)
        self.ended += 1
        self.changed.set()


async def one_measure(app: App, runner: CountingRunner, phase: str, runs: int, flow: bool) -> float:
    """Start ``runs`` workflows and wait until all ended: workflows per second."""
    target = runner.ended + runs
    began = time.perf_counter()
    for at in range(0, runs, 50):
        starts = []
        for n in range(at, min(runs, at + 50)):
            options: dict[str, Any] = {"queue": QUEUE, "key": f"k{n}"} if flow else {}
            starts.append(app.workflows.start("steps", n, id=f"{phase}-{n}", **options))
        await asyncio.gather(*starts)
    while runner.ended < target:
        runner.changed.clear()
        await asyncio.wait_for(runner.changed.wait(), 60)
    return runs / (time.perf_counter() - began)


async def throughput(url: str, runs: int, rounds: int) -> tuple[float, float]:
    """(plain, flow-controlled) workflows per second, the best of ``rounds`` each."""
    async with App(url, namespace="cbench", purge_interval=None, encryption=None) as app:

        @app.workflow(name="steps")
        async def steps(ctx: WorkflowContext, n: int) -> int:
            total = n
            for _ in range(STEPS):
                total = await ctx.step(bump, total)
            return total

        app.workflow_queue(QUEUE, concurrency=CONCURRENCY, per_key_concurrency=1)
        runner = CountingRunner(app)
        stopping = asyncio.Event()
        task = asyncio.create_task(runner.run(stopping))
        plain: list[float] = []
        flow: list[float] = []
        try:
            await one_measure(app, runner, "warm", min(runs, 100), False)
            for r in range(rounds):
                plain.append(await one_measure(app, runner, f"plain{r}", runs, False))
                flow.append(await one_measure(app, runner, f"flow{r}", runs, True))
                print(f"  round {r + 1}: plain {plain[-1]:.0f}/s, flow-controlled {flow[-1]:.0f}/s",
                      flush=True)  # fmt: skip
        finally:
            stopping.set()
            await task
    return max(plain), max(flow)


async def admission_cost(url: str, waiting: int, repeat: int = 100) -> tuple[float, float]:
    """(ms of an admission pass on a full queue, ms of an end admitting the next) with
    ``waiting`` runs queued."""
    namespace = f"cflat{waiting}"
    async with App(url, namespace=namespace, purge_interval=None, encryption=None) as app:
        app.workflow_queue("q", concurrency=4, per_key_concurrency=1, rate=(10**6, 1.0))
        await app.workflows.flow.store_limits()
        now = time.time()
        runs = [
            (namespace, f"w{i}", "q", f"k{i}", i % 3, "admitted" if i < 4 else "waiting", now,
             now if i < 4 else None, None, now)
            for i in range(waiting)
        ]  # fmt: skip
        rows = [(namespace, f"w{i}", "x", "pending", b"0", now, now) for i in range(waiting)]
        insert_runs = (
            "INSERT INTO sk_flow_runs (namespace, id, queue, key, priority, state, not_before, "
            "admitted_at, lock, created_at) VALUES ({})"
        )
        insert_rows = (
            "INSERT INTO sk_workflows (namespace, id, name, status, input, created_at, "
            "updated_at) VALUES ({})"
        )
        backend: Any = app.backend
        if backend.dialect == "sqlite":
            for sql, values in ((insert_runs, runs), (insert_rows, rows)):
                statement = sql.format(", ".join("?" * len(values[0])))
                await backend.writer.run(
                    lambda c, s=statement, v=values: c.executemany(s, v), "fill"
                )
            await backend.writer.run(lambda c: c.execute("ANALYZE"), "analyze")
        else:
            async with backend.pool.acquire() as conn:
                for sql, values in ((insert_runs, runs), (insert_rows, rows)):
                    table = sql.split()[2]
                    columns = [c.strip() for c in sql.split("(", 1)[1].split(")", 1)[0].split(",")]
                    await conn.copy_records_to_table(table, records=values, columns=columns)
                # sk_workflows is left unanalyzed: admission must not lean on its
                # statistics (new runs often arrive faster than autovacuum analyzes).
                await conn.execute("ANALYZE sk_flow_runs")
        flow = backend.flow
        began = time.perf_counter()
        for _ in range(repeat):
            assert await flow.admit(namespace, "q", time.time(), 16) == 0
        full = (time.perf_counter() - began) / repeat * 1e3
        began = time.perf_counter()
        for i in range(repeat):
            await backend.run_atomic(flow.release_script(namespace, f"w{i}", time.time()), "end")
        ending = (time.perf_counter() - began) / repeat * 1e3
        return full, ending


async def schedule_lateness(url: str, quick: bool) -> str:
    """Schedule lateness (bench/control_schedules.py): 1,000 schedules firing every second."""
    from control_schedules import lateness

    p50, p99 = await lateness(url, schedules=1000, seconds=6 if quick else 30)
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < 100 ms)"


async def run(args: argparse.Namespace) -> int:
    runs, rounds = (200, 2) if args.quick else (1000, 3)
    sizes = (1000, 100_000)
    ratios: dict[str, float] = {}
    lateness: dict[str, str] = {}
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        name = benchlib.NAMES[backend]
        print(f"{name}: {runs} workflows of {STEPS} steps a measurement, runner concurrency "
              f"{CONCURRENCY}", flush=True)  # fmt: skip
        with tempfile.TemporaryDirectory() as directory:
            async with benchlib.scratch_schemas(args.pg_url, "sk_cbench") as (schema,):
                if backend == "sqlite":
                    url = f"sqlite:///{directory}/control.db"
                else:
                    url = benchlib.with_schema(args.pg_url, schema)
                plain, flow = await throughput(url, runs, rounds)
                ratios[backend] = flow / plain
                print(f"{name}: plain {plain:.0f} workflows/s, flow-controlled {flow:.0f} "
                      f"workflows/s: {flow / plain:.2f}x", flush=True)  # fmt: skip
                for waiting in sizes:
                    flat = f"sqlite:///{directory}/flat{waiting}.db" if backend == "sqlite" else url
                    full, ending = await admission_cost(flat, waiting)
                    print(f"{name}: admission with {waiting:,} runs waiting: queue full "
                          f"{full:.2f} ms, an end admitting the next {ending:.2f} ms",
                          flush=True)  # fmt: skip
                lateness[backend] = await schedule_lateness(url, args.quick)
    for backend in backends:
        print(f"schedule lateness {benchlib.NAMES[backend]}: {lateness[backend]}")
    shown = ", ".join(f"{benchlib.NAMES[b]} {r:.2f}x" for b, r in ratios.items())
    print(f"flow-controlled / plain workflow throughput (concurrency {CONCURRENCY}, one key "
          f"per run; target >= 0.7x): {shown}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=benchlib.PG_URL)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
