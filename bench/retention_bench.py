"""Workflow retention: the cost of one upkeep batch purging expired runs, with few and
with many finished runs kept (not yet expired), on SQLite and PostgreSQL.

    python bench/retention_bench.py --quick          # 1,000, 10,000 and 20,000 kept
    python bench/retention_bench.py                  # 1,000, 10,000 and 100,000 kept
    python bench/retention_bench.py --backend sqlite

For each size, a fresh database holds ``kept`` finished runs whose purge time is in the
future (each with 3 journal entries) and ``expired`` runs past it (each with 3 journal
entries and an event), the tables never analyzed (nor vacuumed: autovacuum is off for
them); then ``purge_expired(now, batch)`` (what ``App.forget_old_records`` runs each
round) is timed batch by batch until nothing
is left to purge. Purging reads the index of purge times from its start, so a batch
should cost the same however many runs are kept.

The last line is the headline: the time per purged run with many kept over with few
(flat cost: about 1.0). On PostgreSQL the smallest table may be read whole (cheaper
than the index before any statistics); the ratio to the middle size compares index
reads with index reads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

import asyncpg

import benchlib
from statekeeper import App

PG = os.environ.get("STATEKEEPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def fill(app: App, kept: int, expired: int, now: float) -> None:
    backend: Any = app.backend
    ns = app.namespace
    runs = [
        (ns, f"k{n}", "w", "succeeded", b"0", now - 10, now - 10, "v1", now + 86400 + n)
        for n in range(kept)
    ] + [
        (ns, f"e{n}", "w", "succeeded", b"0", now - 10, now - 10, "v1", now - 1 - n % 100)
        for n in range(expired)
    ]
    ids = [r[1] for r in runs]
    steps = [(ns, i, p, "step", "s", now) for i in ids for p in (1, 2, 3)]
    events = [(ns, f"e{n}", "go", b"1", now) for n in range(expired)]
    inserts: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("INSERT INTO sk_workflows (namespace, id, name, status, input, created_at, "
         "updated_at, version, purge_at) VALUES ({})", runs),
        ("INSERT INTO sk_workflow_steps (namespace, workflow_id, position, kind, name, "
         "finished_at) VALUES ({})", steps),
        ("INSERT INTO sk_workflow_events (namespace, workflow_id, name, data, received_at) "
         "VALUES ({})", events),
    ]  # fmt: skip
    if backend.dialect == "postgres":  # no autovacuum racing the measurement
        async with backend.pool.acquire() as conn:
            for table in ("sk_workflows", "sk_workflow_steps", "sk_workflow_events"):
                await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    for sql, rows in inserts:
        await benchlib.fill(app, sql, rows)


async def measure(url: str, kept: int, expired: int, batch: int) -> float:
    """Seconds per purged run, over the batches that purge ``expired`` runs."""
    async with App(url, namespace="bench", purge_interval=None, encryption=None) as app:
        now = time.time()
        await fill(app, kept, expired, now)
        times: list[float] = []
        purged = 0
        while True:
            began = time.perf_counter()
            done = await app.backend.workflows.purge_expired(now, batch)
            elapsed = time.perf_counter() - began
            if not done:
                break
            purged += done
            times.append(elapsed / done)
        assert purged == expired, (purged, expired)
        return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    sizes = (1_000, 10_000, 20_000) if args.quick else (1_000, 10_000, 100_000)
    expired, batch = 5_000, 1_000
    ratios = []
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory() as tmp:
        async with benchlib.scratch_schemas(PG, "sk_retbench", "_b", "_c") as schemas:
            for backend in backends:
                per_run = {}
                for kept, schema in zip(sizes, schemas, strict=True):
                    url = (
                        f"sqlite:///{tmp}/{backend}-{kept}.db"
                        if backend == "sqlite"
                        else benchlib.with_schema(PG, f"{schema}")
                    )
                    per_run[kept] = await measure(url, kept, expired, batch)
                    print(
                        f"{backend}: {kept:>7} kept, {expired} expired, batches of {batch}: "
                        f"{per_run[kept] * 1e6:.1f} us per purged run"
                    )
                if backend == "postgres":  # the schemas are used again by the next backend
                    await drop(schemas)
                small, middle, big = sizes
                for low in (small, middle):
                    print(
                        f"{backend}: {big} kept / {low} kept = {per_run[big] / per_run[low]:.2f}x"
                    )
                ratios.append(per_run[big] / per_run[small])
    print(
        f"headline: time per purged run, {big} kept over {small} kept: {max(ratios):.2f}x "
        "(flat: about 1)"
    )


async def drop(schemas: tuple[str, ...]) -> None:
    conn = await asyncpg.connect(PG)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
