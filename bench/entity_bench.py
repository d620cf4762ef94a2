"""Entity calls against optimistic state updates doing the same increments, in one run.

    python bench/entity_bench.py --quick          # under a minute
    python bench/entity_bench.py                  # longer, stabler figures
    python bench/entity_bench.py --backend postgres --json results.json

For each backend (SQLite, PostgreSQL) and each spread of keys (1 hot key; 1,000 keys
picked at random), 32 asyncio tasks increment counters for a slice of time, either
as ``app.entities.call("counter", key, "increment", 1)`` (one writer per key: calls to
a key queue in the process and are committed in batches under the key's lease) or as
``app.state.update(key, lambda v: (v or 0) + 1)`` (read, then write back if the ETag
still matches, retrying after a jittered backoff on a conflict). Both sides run in the
same app and database, in alternating slices (ABBA). Each side's counters are checked
at the end: their sum must equal the increments it counted, or the run fails. The
ratio is entity calls per second over updates per second; the last line printed is
the headline (the 1,000-key ratios).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchlib
from benchlib import NAMES, Plan
from statekeeper import App
from statekeeper.entities import EntityContext

CONCURRENCY = 32
SPREADS = {"1 hot key": 1, "1,000 keys": 1000}
SIDES = ("entity", "update")


@dataclass
class Row:
    backend: str
    spread: str
    entity_per_s: float
    update_per_s: float

    @property
    def ratio(self) -> float:
        return self.entity_per_s / self.update_per_s if self.update_per_s else 0.0


def declare(app: App) -> None:
    counter = app.entity("counter", initial=0)

    @counter.handler
    async def increment(ctx: EntityContext, by: int) -> int:
        ctx.state += by
        return int(ctx.state)


async def run_side(app: App, side: str, keys: int, seconds: float) -> int:
    """How many increments ``CONCURRENCY`` tasks made in ``seconds``."""
    stop = time.perf_counter() + seconds
    done = 0

    async def task(seed: int) -> None:
        nonlocal done
        rng = random.Random(seed)
        while time.perf_counter() < stop:
            key = f"k{rng.randrange(keys)}"
            if side == "entity":
                await app.entities.call("counter", key, "increment", 1)
            else:
                await app.state.update(key, lambda v: (v or 0) + 1)
            done += 1

    await asyncio.gather(*[task(n) for n in range(CONCURRENCY)])
    return done


async def measure(app: App, backend: str, plan: Plan) -> list[Row]:
    rows = []
    totals = {"entity": 0, "update": 0}
    for spread, keys in SPREADS.items():
        counts = {side: 0 for side in SIDES}
        seconds = {side: 0.0 for side in SIDES}
        for side in SIDES:  # warm-up, counted for the final check only
            totals[side] += await run_side(app, side, keys, plan.warmup)
        for side in benchlib.turns(SIDES, plan.slices):
            started = time.perf_counter()
            made = await run_side(app, side, keys, plan.slice_seconds)
            seconds[side] += time.perf_counter() - started
            counts[side] += made
            totals[side] += made
        row = Row(NAMES[backend], spread, counts["entity"] / seconds["entity"],
                  counts["update"] / seconds["update"])  # fmt: skip
        print(f"{row.backend:<10} {row.spread:<10} {row.entity_per_s:>12,.0f} "
              f"{row.update_per_s:>12,.0f} {row.ratio:>7.2f}x", flush=True)  # fmt: skip
        rows.append(row)
    await check(app, totals)
    return rows


async def check(app: App, totals: dict[str, int]) -> None:
    """Every increment counted is in the counters, no more, no less."""
    entity_sum = 0
    after = ""
    while page := await app.entities.list("counter", after=after, limit=1000):
        entity_sum += sum(int(e.state) for e in page)
        after = page[-1].key
    state_sum = 0
    for n in range(max(SPREADS.values())):
        item = await app.state.get(f"k{n}")
        state_sum += 0 if item is None else int(item.value)
    if (entity_sum, state_sum) != (totals["entity"], totals["update"]):
        raise SystemExit(
            f"lost or doubled increments: entities {entity_sum} of {totals['entity']}, "
            f"state {state_sum} of {totals['update']}"
        )


async def main() -> int:
    parser = benchlib.bench_parser(__doc__)
    args = parser.parse_args()
    plan = benchlib.choose_plan(args, Plan(0.5, 2, 1.5), Plan(2.0, 6, 3.0))
    benchlib.announce(
        f"entity calls vs state.update() increments, {CONCURRENCY} tasks, ", plan,
        f"{'backend':<10} {'keys':<10} {'entity/s':>12} {'update/s':>12} {'ratio':>8}",
    )  # fmt: skip

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / 'entities.db'}"
            async with benchlib.statekeeper_app(url, "entity_bench") as app:
                declare(app)
                rows = await measure(app, "sqlite", plan)
            return rows, benchlib.sqlite_info(directory)

    async def postgres() -> tuple[list[Row], dict[str, Any]]:
        async with benchlib.scratch_schemas(args.pg_url, "sk_entity_bench") as (schema,):
            url = benchlib.with_schema(args.pg_url, schema)
            async with benchlib.statekeeper_app(url, "entity_bench") as app:
                declare(app)
                rows = await measure(app, "postgres", plan)
                backend: Any = app.backend
                info = await benchlib.postgres_info(backend.pool)
            return rows, info

    collected = await benchlib.each_backend(args, sqlite, postgres)
    if collected is None:
        return 2
    spread = [r for r in collected.results if r.spread == "1,000 keys"]
    hot = [r for r in collected.results if r.spread == "1 hot key"]
    headline = (
        "entity calls / state.update() increments at concurrency 32, 1,000 keys: "
        + ", ".join(f"{r.backend} {r.ratio:.2f}x" for r in spread)
        + " (1 hot key: " + ", ".join(f"{r.backend} {r.ratio:.2f}x" for r in hot) + ")"
    )  # fmt: skip
    return benchlib.finish(args, plan, headline, collected, "rows", {"concurrency": CONCURRENCY})


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
