"""Entity calls with 1k vs 100k entities (and answers) stored: cost must stay flat.

    python bench/entity_sizes.py --quick
    python bench/entity_sizes.py --backend postgres

32 asyncio tasks call ``increment`` on the same 1,000 keys, without and with call ids,
while the entity table holds 1,000 or 100,000 rows (and the answers table as many);
the sizes run in turn (1k, 100k, 1k, 100k) in fresh databases and each figure is the
mean of its two runs. The ratio is calls per second at 100k over calls per second at
1k (1.0: flat); the last line printed is the headline.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

import benchlib
from benchlib import NAMES, Plan
from statekeeper import App
from statekeeper.entities import EntityContext

SIZES = (1_000, 100_000)
ACTIVE = 1000
CONCURRENCY = 32


@dataclass
class Row:
    backend: str
    ids: bool
    small_per_s: float
    large_per_s: float

    @property
    def ratio(self) -> float:
        return self.large_per_s / self.small_per_s if self.small_per_s else 0.0


async def one_database(app: App, rows: int, calls: int) -> tuple[float, float]:
    """Calls per second without and with call ids, with ``rows`` entities stored."""
    counter = app.entity("counter", initial=0)

    @counter.handler
    async def increment(ctx: EntityContext, by: int) -> int:
        ctx.state += by
        return int(ctx.state)

    stored = [(app.namespace, "counter", f"k{n}", b"0", 0, 0, 0.0) for n in range(rows)]
    await benchlib.fill(app, "INSERT INTO sk_entities (namespace, type, key, state, version, "
                        "lease_token, updated_at) VALUES ({})", stored)  # fmt: skip
    answers = [(app.namespace, "counter", f"k{n % ACTIVE}", f"old-{n}", "increment", b"0", 1,
                2e9) for n in range(rows)]  # fmt: skip
    await benchlib.fill(app, "INSERT INTO sk_entity_calls (namespace, type, key, call_id, "
                        "handler, result, version, expires_at) VALUES ({})", answers)  # fmt: skip
    backend: Any = app.backend
    if backend.dialect == "postgres":
        await backend.pool.execute("ANALYZE sk_entities; ANALYZE sk_entity_calls")

    async def task(seed: int, n: int, ids: bool) -> None:
        rng = random.Random(seed)
        for i in range(n):
            call_id = f"new-{seed}-{i}" if ids else None
            key = f"k{rng.randrange(ACTIVE)}"
            await app.entities.call("counter", key, "increment", 1, call_id=call_id)

    await asyncio.gather(*[task(s, calls // 4, False) for s in range(CONCURRENCY)])  # warm-up
    rates = []
    for ids in (False, True):
        started = time.perf_counter()
        await asyncio.gather(*[task(1000 * (1 + ids) + s, calls, ids) for s in range(CONCURRENCY)])
        rates.append(CONCURRENCY * calls / (time.perf_counter() - started))
    return rates[0], rates[1]


async def main() -> int:
    parser = benchlib.bench_parser(__doc__)
    args = parser.parse_args()
    plan = benchlib.choose_plan(args, Plan(0.0, 2, 1.0), Plan(0.0, 2, 1.0))
    calls = 100 if args.quick else 400
    print(
        f"entity calls on {ACTIVE} active keys with 1k vs 100k entities stored, "
        f"{CONCURRENCY} tasks x {calls} calls, each size {plan.slices} times in turn"
    )
    print(f"{'backend':<10} {'call ids':<9} {'1k rows/s':>10} {'100k rows/s':>12} {'ratio':>7}",
          flush=True)  # fmt: skip

    async def measure(backend: str, url_for: Any) -> tuple[list[Row], dict[str, Any]]:
        sums = {size: [0.0, 0.0] for size in SIZES}
        for size in SIZES * plan.slices:
            async with url_for(size) as url, benchlib.statekeeper_app(url, "sizes") as app:
                got = await one_database(app, size, calls)
            sums[size] = [a + b / plan.slices for a, b in zip(sums[size], got, strict=True)]
        rows = []
        for index, ids in enumerate((False, True)):
            row = Row(NAMES[backend], ids, sums[SIZES[0]][index], sums[SIZES[1]][index])
            print(f"{row.backend:<10} {'yes' if ids else 'no':<9} {row.small_per_s:>10,.0f} "
                  f"{row.large_per_s:>12,.0f} {row.ratio:>6.2f}x", flush=True)  # fmt: skip
            rows.append(row)
        return rows, {}

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        return await measure("sqlite", lambda size: benchlib.sqlite_scratch("entities.db"))

    async def postgres() -> tuple[list[Row], dict[str, Any]]:
        return await measure(
            "postgres",
            lambda size: benchlib.postgres_scratch(args.pg_url, f"sk_entity_sizes_{size}"),
        )

    collected = await benchlib.each_backend(args, sqlite, postgres)
    if collected is None:
        return 2
    headline = "entity calls/s at 100k over 1k entities stored: " + ", ".join(
        f"{r.backend} {'with' if r.ids else 'without'} call ids {r.ratio:.2f}x"
        for r in collected.results
    )
    return benchlib.finish(args, plan, headline, collected, "rows")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
