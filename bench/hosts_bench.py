"""Workflow throughput with 1 ms more per round trip between worker and PostgreSQL,
against loopback, in one run.

    python bench/hosts_bench.py --quick                 # under a minute
    python bench/hosts_bench.py --in-flight 256 --json results.json

One worker (a ``WorkflowRunner`` in this process, its concurrency the number in flight)
reaches the same PostgreSQL database three ways, taken in turns:

* ``loopback``: directly, 127.0.0.1:5432;
* ``relay 0 ms``: through the chaos harness's relay (``statekeeper/chaos/relay.py``, a
  process of its own) adding nothing: what the relay itself costs;
* ``relay 1 ms``: through a relay adding 0.5 ms each way, 1 ms more per round trip, as
  between hosts some switches apart (the distance the multi-host tests put between
  their worker hosts and their database host).

The workflow has 10 trivial steps, each checkpointed before the next. Throughput:
``--in-flight`` clients each start a workflow, wait until its end has committed, and
start the next (workflows per second over the measured slices). Step latency: one
workflow at a time, each ``await ctx.step(...)`` timed (median). With enough in flight,
throughput is bound by the work, not the distance: the target is >= 0.5x of loopback.
The last line printed is the headline.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Sibling modules: ``python bench/hosts_bench.py`` puts bench/ on sys.path.
import benchlib
from benchlib import Plan
from statekeeper import App
from statekeeper.workflows import WorkflowContext
from workflow_bench import SignallingRunner

NAMESPACE = "hbench"
STEPS = 10
TARGET = 0.5
SIDES = ("loopback", "relay 0 ms", "relay 1 ms")
DELAYS_MS = {"relay 0 ms": 0.0, "relay 1 ms": 0.5}  # each way
QUICK = Plan(warmup=1.5, slices=3, slice_seconds=2.5)
FULL = Plan(warmup=3.0, slices=5, slice_seconds=8.0)


async def bump(i: int) -> int:
    return i + 1


@dataclass
class Side:
    name: str
    app: App
    runner: SignallingRunner | None = None
    task: asyncio.Task[None] | None = None
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    done: int = 0
    seconds: float = 0.0
    steps_ms: list[float] = field(default_factory=list)


def start_relay(target: tuple[str, int], delay_ms: float) -> tuple[subprocess.Popen[str], int]:
    """A relay process on a free loopback port; it and its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "statekeeper.chaos.relay", "127.0.0.1:0",
         f"{target[0]}:{target[1]}", "--delay-ms", str(delay_ms)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    banner = process.stdout.readline()  # relay 127.0.0.1:PORT -> ...
    port = int(banner.split()[1].rsplit(":", 1)[1])
    return process, port


def url_via(base: str, port: int | None, schema: str) -> str:
    parts = urlsplit(base)
    if port is not None:
        parts = parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{port}")
    return benchlib.with_schema(parts.geturl(), schema) + "&pool_max=32"


async def closed_loop(side: Side, in_flight: int, seconds: float, phase: str) -> int:
    """``in_flight`` clients starting a workflow each and waiting for its end, for
    ``seconds``; how many finished."""
    assert side.runner is not None
    return await benchlib.workflow_clients(
        side.app, side.runner.waiting, "ten_steps", in_flight, seconds, phase
    )


async def start_runner(side: Side, concurrency: int) -> None:
    await stop_runner(side)
    side.stopping = asyncio.Event()
    side.runner = SignallingRunner(side.app, concurrency, {})
    side.task = asyncio.create_task(side.runner.run(side.stopping))


async def stop_runner(side: Side) -> None:
    if side.task is not None:
        side.stopping.set()
        await side.task
        side.task = None


def ten_steps_of(
    record: Callable[[float], None],
) -> Callable[[WorkflowContext, int], Coroutine[Any, Any, int]]:
    async def ten_steps(ctx: WorkflowContext, n: int) -> int:
        total = n
        for i in range(STEPS):
            started = time.perf_counter()
            total += await ctx.step(bump, i)
            record((time.perf_counter() - started) * 1000)
        return total

    return ten_steps


async def main() -> int:
    parser = benchlib.bench_parser(__doc__)
    parser.add_argument("--in-flight", type=int, default=128, help="clients (default 128)")
    args = parser.parse_args()
    plan = benchlib.choose_plan(args, QUICK, FULL)
    if not await benchlib.require_postgres(args.pg_url):
        return 2
    target = urlsplit(args.pg_url)
    address = (target.hostname or "127.0.0.1", target.port or 5432)
    relays = {name: start_relay(address, delay) for name, delay in DELAYS_MS.items()}
    benchlib.announce(
        f"workflow throughput, {args.in_flight} in flight, 1 worker: loopback vs a relay "
        "adding 0 or 0.5 ms each way; ",
        plan,
        f"{'side':<12} {'workflows/s':>12} {'steps/s':>9} {'step p50 ms':>12} {'ratio':>6}",
    )
    sides: dict[str, Side] = {}
    timing: list[float] = []
    try:
        async with benchlib.scratch_schemas(args.pg_url, "sk_hbench") as (schema,):
            for name in SIDES:
                port = relays[name][1] if name in relays else None
                namespace = f"{NAMESPACE}{len(sides)}"  # each side its own runs
                app = benchlib.statekeeper_app(url_via(args.pg_url, port, schema), namespace)
                app.workflow(ten_steps_of(timing.append), name="ten_steps")
                await app.__aenter__()
                sides[name] = Side(name, app)
            for name, side in sides.items():  # one at a time: step latency, and warm-up
                label = name.replace(" ", "")  # run ids of this side's own
                await start_runner(side, 1)
                timing.clear()
                await closed_loop(side, 1, plan.warmup, f"alone-{label}")
                side.steps_ms = list(timing)
                await start_runner(side, args.in_flight)
                await closed_loop(side, args.in_flight, plan.warmup / 2, f"warm-{label}")
                await stop_runner(side)
            for turn, name in enumerate(benchlib.turns(SIDES, plan.slices)):
                side = sides[name]
                await start_runner(side, args.in_flight)
                started = time.perf_counter()
                side.done += await closed_loop(side, args.in_flight, plan.slice_seconds, f"t{turn}")
                side.seconds += time.perf_counter() - started
                await stop_runner(side)
            for side in sides.values():
                await side.app.__aexit__(None, None, None)
    finally:
        for process, _ in relays.values():
            process.terminate()
            process.wait()
    base = sides["loopback"].done / sides["loopback"].seconds
    for side in sides.values():
        rate = side.done / side.seconds
        step = statistics.median(side.steps_ms) if side.steps_ms else float("nan")
        print(f"{side.name:<12} {rate:>12.1f} {rate * STEPS:>9.0f} {step:>12.2f} "
              f"{rate / base:>5.2f}x")  # fmt: skip
    ratio = sides["relay 1 ms"].done / sides["relay 1 ms"].seconds / base
    verdict = "meets" if ratio >= TARGET else "misses"
    print(
        f"1 ms more per round trip vs loopback: {ratio:.2f}x workflow throughput with "
        f"{args.in_flight} in flight ({verdict} the target >= {TARGET}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
