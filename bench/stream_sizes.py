"""Durable stream writes and reads with 1k vs 100k values already in the stream: cost
must stay flat.

    python bench/stream_sizes.py --quick
    python bench/stream_sizes.py --backend postgres

A workflow appends values to a stream (``ctx.write_stream``) that holds 1,000 or
100,000 values before it starts (written straight into the table); then a reader reads
the new values back (``app.workflows.read_stream`` from the first new offset). The sizes
run in turn (1k, 100k, 1k, 100k) in fresh databases and each figure is the mean of its
runs. The ratio is values per second at 100k over values per second at 1k (1.0: flat);
the last line printed is the headline.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

import benchlib
from benchlib import NAMES, Plan
from statekeeper import App
from statekeeper.workflows import WorkflowContext, WorkflowRunner

SIZES = (1_000, 100_000)
RUN = "bench-stream"


@dataclass
class Row:
    backend: str
    side: str
    small_per_s: float
    large_per_s: float

    @property
    def ratio(self) -> float:
        return self.large_per_s / self.small_per_s if self.small_per_s else 0.0


async def one_database(app: App, stored: int, writes: int) -> tuple[float, float]:
    """Values written and read per second, with ``stored`` values in the stream first."""

    @app.workflow(name="writer")
    async def writer(ctx: WorkflowContext, n: int) -> int:
        for i in range(n):
            await ctx.write_stream("k", {"i": i, "pad": "x" * 64})
        return n

    rows = [(app.namespace, RUN, "k", n, b'{"old":1}', 0, n, 0.0) for n in range(stored)]
    await benchlib.fill(app, "INSERT INTO sk_workflow_streams (namespace, workflow_id, key, "
                        "seq, value, run, position, written_at) VALUES ({})", rows)  # fmt: skip
    backend: Any = app.backend
    if backend.dialect == "postgres":
        await backend.pool.execute("ANALYZE sk_workflow_streams")
    await app.workflows.start("writer", writes, id=RUN)
    runner = WorkflowRunner(app.workflows)
    started = time.perf_counter()
    while not (await app.workflows.status(RUN)).done:
        await runner.run_due()
    written = writes / (time.perf_counter() - started)
    started = time.perf_counter()
    count = 0
    async for _ in app.workflows.read_stream(RUN, "k", offset=stored):
        count += 1
    read = count / (time.perf_counter() - started)
    assert count == writes, count
    return written, read


async def main() -> int:
    parser = benchlib.bench_parser(__doc__)
    args = parser.parse_args()
    plan = benchlib.choose_plan(args, Plan(0.0, 2, 1.0), Plan(0.0, 2, 1.0))
    writes = 300 if args.quick else 2000
    print(
        f"durable stream: {writes} writes by one workflow, then read back, with 1k vs 100k "
        f"values in the stream first, each size {plan.slices} times in turn"
    )
    print(f"{'backend':<10} {'side':<7} {'1k values/s':>12} {'100k values/s':>14} {'ratio':>7}",
          flush=True)  # fmt: skip

    async def measure(backend: str, url_for: Any) -> tuple[list[Row], dict[str, Any]]:
        sums = {size: [0.0, 0.0] for size in SIZES}
        for size in SIZES * plan.slices:
            async with url_for(size) as url, benchlib.statekeeper_app(url, "streams") as app:
                got = await one_database(app, size, writes)
            sums[size] = [a + b / plan.slices for a, b in zip(sums[size], got, strict=True)]
        rows = []
        for index, side in enumerate(("write", "read")):
            row = Row(NAMES[backend], side, sums[SIZES[0]][index], sums[SIZES[1]][index])
            print(f"{row.backend:<10} {side:<7} {row.small_per_s:>12,.0f} "
                  f"{row.large_per_s:>14,.0f} {row.ratio:>6.2f}x", flush=True)  # fmt: skip
            rows.append(row)
        return rows, {}

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        return await measure("sqlite", lambda size: benchlib.sqlite_scratch("streams.db"))

    async def postgres() -> tuple[list[Row], dict[str, Any]]:
        return await measure(
            "postgres",
            lambda size: benchlib.postgres_scratch(args.pg_url, f"sk_stream_sizes_{size}"),
        )

    collected = await benchlib.each_backend(args, sqlite, postgres)
    if collected is None:
        return 2
    headline = "durable stream values/s at 100k over 1k values stored: " + ", ".join(
        f"{r.backend} {r.side} {r.ratio:.2f}x" for r in collected.results
    )
    return benchlib.finish(args, plan, headline, collected, "rows")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
