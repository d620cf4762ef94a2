"""What one durable workflow step costs PostgreSQL, and the throughput that predicts,
checked against a run at another concurrency in the same run.

    python bench/capacity_model.py --quick
    python bench/capacity_model.py --json capacity.json

One worker in this process (a ``WorkflowRunner``) runs workflows of 10 trivial steps on
the PostgreSQL server on this machine, with 8 workflows in flight, then with 64. For
each: steps per second, and per step the database round trips (statekeeper's own count,
``statekeeper_db_round_trip_seconds``), the WAL written (``pg_current_wal_lsn()``
before and after), the CPU time of the server's processes (``/proc``, every process of
the ``postgres`` account) and of this process. Per-step costs are measured with 8 in
flight and with 64; the model predicts the throughput with 64 in flight from the costs
measured with 8: with the machine's cores shared by the worker and the database,
``cores / (server CPU + worker CPU per step)``; and what one database core would carry
with the workers elsewhere, ``1 / server CPU per step``. The last line compares the
prediction with the measured 64-in-flight throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

import benchlib
from benchlib import Plan
from statekeeper import App
from statekeeper.observability.metrics import ROUND_TRIPS
from statekeeper.workflows import WorkflowContext
from workflow_bench import SignallingRunner

STEPS = 10
QUICK = Plan(warmup=2.0, slices=1, slice_seconds=8.0)
FULL = Plan(warmup=3.0, slices=1, slice_seconds=30.0)


@dataclass
class Costs:
    in_flight: int
    steps_per_second: float
    round_trips_per_step: float
    wal_bytes_per_step: float
    server_cpu_ms_per_step: float
    worker_cpu_ms_per_step: float


async def bump(i: int) -> int:
    return i + 1


async def ten_steps(ctx: WorkflowContext, n: int) -> int:
    total = n
    for i in range(STEPS):
        total += await ctx.step(bump, i)
    return total


def server_cpu_seconds() -> float:
    """User and system CPU of every process of the ``postgres`` account, so far."""
    uid = pwd.getpwnam("postgres").pw_uid
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def round_trips() -> float:
    return sum(
        sample.value
        for metric in ROUND_TRIPS.collect()
        for sample in metric.samples
        if sample.name.endswith("_count")
    )


async def measure(app: App, in_flight: int, seconds: float, phase: str) -> Costs:
    runner = SignallingRunner(app, in_flight, {})
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    conn = await asyncpg.connect(benchlib.PG_URL)
    try:
        wal_before = await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        server_before, own_before, trips_before = (
            server_cpu_seconds(), own_cpu_seconds(), round_trips()
        )  # fmt: skip
        started = time.perf_counter()
        done = await benchlib.workflow_clients(
            app, runner.waiting, "ten_steps", in_flight, seconds, phase
        )
        elapsed = time.perf_counter() - started
        server_after, own_after, trips_after = (
            server_cpu_seconds(), own_cpu_seconds(), round_trips()
        )  # fmt: skip
        wal_after = await conn.fetchval("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
    finally:
        await conn.close()
    stopping.set()
    await task
    steps = done * STEPS
    return Costs(
        in_flight=in_flight,
        steps_per_second=round(steps / elapsed, 1),
        # A workflow's start and its end are round trips of their own: per step, a
        # tenth of theirs besides the step's own.
        round_trips_per_step=round((trips_after - trips_before) / steps, 2),
        wal_bytes_per_step=round(float(wal_after - wal_before) / steps),
        server_cpu_ms_per_step=round((server_after - server_before) * 1000 / steps, 3),
        worker_cpu_ms_per_step=round((own_after - own_before) * 1000 / steps, 3),
    )


def write_json(path: str, results: list[Costs]) -> None:
    Path(path).write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


async def main() -> int:
    parser = benchlib.bench_parser(__doc__)
    args = parser.parse_args()
    plan = benchlib.choose_plan(args, QUICK, FULL)
    if not await benchlib.require_postgres(args.pg_url):
        return 2
    cores = os.cpu_count() or 1
    benchlib.announce(
        "per-step costs on PostgreSQL (one worker, this process) at 8 and 64 in flight; ",
        plan,
        f"{'in flight':>9} {'steps/s':>9} {'trips/step':>10} {'WAL B/step':>10} "
        f"{'server CPU ms':>13} {'worker CPU ms':>13}",
    )
    results: list[Costs] = []
    async with benchlib.postgres_scratch(args.pg_url, "sk_capacity") as url:
        app = benchlib.statekeeper_app(url + "&pool_max=32", "capacity")
        app.workflow(ten_steps, name="ten_steps")
        async with app:
            await measure(app, 8, plan.warmup, "warm")
            for in_flight in (8, 64):
                costs = await measure(app, in_flight, plan.slice_seconds, f"c{in_flight}")
                results.append(costs)
                print(f"{costs.in_flight:>9} {costs.steps_per_second:>9.0f} "
                      f"{costs.round_trips_per_step:>10.2f} {costs.wal_bytes_per_step:>10.0f} "
                      f"{costs.server_cpu_ms_per_step:>13.3f} "
                      f"{costs.worker_cpu_ms_per_step:>13.3f}", flush=True)  # fmt: skip
    low, high = results
    per_step = low.server_cpu_ms_per_step + low.worker_cpu_ms_per_step
    predicted = cores * 1000 / per_step
    per_db_core = 1000 / low.server_cpu_ms_per_step
    print(f"model from 8 in flight: {per_step:.3f} ms of CPU per step on {cores} cores -> "
          f"at most {predicted:.0f} steps/s here; one database core alone carries "
          f"{per_db_core:.0f} steps/s ({low.wal_bytes_per_step:.0f} B of WAL each)")  # fmt: skip
    if args.json:
        await asyncio.to_thread(write_json, args.json, results)
    print(
        f"measured with 64 in flight / predicted from 8 in flight: "
        f"{high.steps_per_second / predicted:.2f}x ({high.steps_per_second:.0f} of "
        f"{predicted:.0f} steps/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
