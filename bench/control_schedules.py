"""Schedule lateness: 1,000 schedules firing every second, on SQLite and PostgreSQL,
beside few and beside many schedules that are not due.

    python bench/control_schedules.py --quick      # under a minute
    python bench/control_schedules.py --schedules 1000 --seconds 20 --dormant 100000

Each run of ``lateness(url)`` creates ``schedules`` interval schedules (every 1 s, all on
the same whole-second grid, overlap ``allow_all``, no jitter: the worst case, every
schedule due at the same instant), then runs one scheduler (``Scheduler.run``, the
service every worker runs) on the real clock for ``seconds``. Lateness of a fire is
measured in the scheduler's process as the time its write (the schedule moved past the
fire, and the fire's run created, in one transaction) returned, minus the fire's nominal
time: an upper bound of the run's ``created_at`` (which is when the round began) and
the earliest a runner could lease it. Fires in the first second after the scheduler
starts are left out (those due while the schedules were being created). No workflow
runner runs meanwhile (the runs stay pending), so this is the scheduler's own cost.
SQLite in a temporary file; PostgreSQL in a fresh schema, dropped at the end.

Two sizes, each in a database of its own: the firing schedules alone, and beside
``--dormant`` schedules (10,000 with ``--quick``, 100,000 by default) that fire once a
day, created first: the scheduler must find what is due without reading what is not.

Prints p50 and p99 lateness (ms) per backend and size; the last line is the headline:
the worst p99 beside the dormant schedules over the worst p99 without them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from statekeeper import App
from statekeeper.schedules import Definition, Scheduler, make_spec
from statekeeper.schedules.policy import fire_time_of

PG_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def lateness(
    url: str, schedules: int = 1000, seconds: float = 10.0, dormant: int = 0
) -> tuple[float, float]:
    """(p50, p99) lateness in ms of ``schedules`` schedules firing every second for
    ``seconds`` on the database at ``url``, beside ``dormant`` daily ones (see the
    module's docstring)."""
    app = App(url, namespace="schedbench", purge_interval=None, encryption=None)

    @app.workflow
    async def noop(ctx: Any, input: Any) -> None:
        return None

    samples: list[float] = []
    async with app:
        anchor = float(math.floor(time.time()))
        await _create_dormant(app, dormant, anchor)
        for n in range(schedules):
            definition = Definition.checked(
                f"s{n:06d}", "noop", make_spec(every=1, anchor=anchor), overlap="allow_all"
            )
            await app.schedules.create(definition)
        begun = time.time()

        def observe(runs: list[str], committed: float) -> None:
            for run in runs:
                fire = fire_time_of(run)
                if fire is not None and fire > begun + 1:
                    samples.append((committed - fire) * 1000)

        stopping = asyncio.Event()
        scheduler = Scheduler(app.schedules, observe=observe)
        task = asyncio.create_task(scheduler.run(stopping))
        await asyncio.sleep(seconds)
        stopping.set()
        await task
    if not samples:
        raise RuntimeError("no fire was measured")
    return statistics.median(samples), percentile(samples, 0.99)


async def _create_dormant(app: App, count: int, anchor: float) -> None:
    """``count`` schedules firing once a day (not due during the run), 64 at a time."""
    day = make_spec(every=86_400, anchor=anchor + 43_200)
    for low in range(0, count, 64):
        await asyncio.gather(*(
            app.schedules.create(Definition.checked(f"d{n:07d}", "noop", day))
            for n in range(low, min(count, low + 64))
        ))  # fmt: skip


async def one_backend(backend: str, args: argparse.Namespace, dormant: int) -> tuple[float, float]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'schedules.db'}"
            return await lateness(url, args.schedules, args.seconds, dormant)
    schema = f"sk_schedbench_{os.getpid()}_{dormant}"
    try:
        return await lateness(f"{PG_DSN}?schema={schema}", args.schedules, args.seconds, dormant)
    finally:
        conn = await asyncpg.connect(PG_DSN)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def main_async(args: argparse.Namespace) -> None:
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    worst = {0: 0.0, args.dormant: 0.0}
    for backend in backends:
        for dormant in (0, args.dormant):
            p50, p99 = await one_backend(backend, args, dormant)
            worst[dormant] = max(worst[dormant], p99)
            print(f"{backend:<9} beside {dormant:>7,} dormant: p50 {p50:7.1f} ms   p99 "
                  f"{p99:7.1f} ms", flush=True)  # fmt: skip
    print(f"schedule lateness of {args.schedules} schedules every second: worst p99 "
          f"{worst[0]:.1f} ms alone, {worst[args.dormant]:.1f} ms beside {args.dormant:,} "
          f"dormant (target < 100 ms): {worst[args.dormant] / worst[0]:.2f}x")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="short runs (under 30 s)")
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--dormant", type=int, default=None, help="schedules not due")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 6.0 if args.quick else 20.0
    if args.dormant is None:
        args.dormant = 10_000 if args.quick else 100_000
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main(sys.argv[1:])
