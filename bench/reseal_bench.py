"""Re-sealing (``statekeeper reencrypt``): the cost of one scan batch with few and with
many rows in a table, on SQLite and PostgreSQL.

    python bench/reseal_bench.py                       # 1,000 and 100,000 rows
    python bench/reseal_bench.py --quick               # 1,000 and 20,000 (under a minute)
    python bench/reseal_bench.py --sizes 1000 20000 --backend postgres
    python bench/reseal_bench.py --kinds workflows archive

For each size, a fresh database holds that many rows in one namespace of each table
measured, their payloads not sealed by the primary key (plaintext, as before a keyring
was configured), the tables never analyzed (nor vacuumed: autovacuum is off for them, and
the app's upkeep is off). Then the namespace is walked the way reencrypt walks it, batch
by batch from the cursor of the last row, each scan timed; nothing is written back, so
every row after the cursor still matches (the worst case for a plan that reads the rest
of the range and sorts it). A scan reads its index in order from its cursor, so a batch
should cost the same however many rows the table holds.

The last line is the headline: the median time per batch with many rows over with few
(flat cost: about 1.0). The mean shows batches a plan made to read much more (the
first read of fresh rows also sets their hint bits on PostgreSQL: a one-off).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

import benchlib
from statekeeper import App, Keyring
from statekeeper.sealing import Sealer

PG = os.environ.get("STATEKEEPER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
NAMESPACE = "bench"
BATCH = 500  # reencrypt's default batch size
KINDS = ("workflows", "archive", "stream_events", "messages")
TABLES = {"workflows": "sk_workflows", "archive": "sk_message_archive",
          "stream_events": "sk_events", "messages": "sk_messages"}  # fmt: skip


def rows_of(kind: str, size: int, now: float) -> tuple[str, list[tuple[Any, ...]]]:
    """The INSERT (its placeholders ``{}``) and the rows of ``size`` rows of ``kind``."""
    ns, body = NAMESPACE, b'{"n": 1}'
    rows: list[tuple[Any, ...]]
    if kind == "workflows":
        rows = [(ns, f"w{n:07d}", "w", "succeeded", body, now, now) for n in range(size)]
        return ("INSERT INTO sk_workflows (namespace, id, name, status, input, created_at, "
                "updated_at) VALUES ({})", rows)  # fmt: skip
    if kind == "archive":
        rows = [
            (f"a{n:07d}", ns, f"q{n % 4}", body, 1, now, now - n) for n in range(size)
        ]  # fmt: skip
        return ("INSERT INTO sk_message_archive (id, namespace, queue, body, attempts, "
                "enqueued_at, completed_at) VALUES ({})", rows)  # fmt: skip
    if kind == "stream_events":
        rows = [
            (ns, n + 1, f"s-{n // 10}", n % 10 + 1, f"c{n % 7}", f"e{n}", "t", body, now)
            for n in range(size)
        ]
        return ("INSERT INTO sk_events (namespace, position, stream, version, category, id, "
                "type, data, recorded_at) VALUES ({})", rows)  # fmt: skip
    rows = [(f"m{n:07d}", ns, "jobs", body, "ready", now, now) for n in range(size)]
    return ("INSERT INTO sk_messages (id, namespace, queue, body, state, available_at, "
            "enqueued_at) VALUES ({})", rows)  # fmt: skip


async def fill(app: App, kinds: list[str], size: int, now: float) -> None:
    backend: Any = app.backend
    if backend.dialect == "postgres":  # no autovacuum racing the measurement
        async with backend.pool.acquire() as conn:
            for kind in kinds:
                await conn.execute(f"ALTER TABLE {TABLES[kind]} SET (autovacuum_enabled = false)")
    for kind in kinds:
        sql, rows = rows_of(kind, size, now)
        await benchlib.fill(app, sql, rows)


async def walk(app: App, kind: str, size: int) -> list[float]:
    """Seconds per full scan batch, walking the namespace from its start to its end."""
    keyring = Keyring.parse(f"k2:{Keyring.generate_key()}")
    bytes_prefix, text_prefix = Sealer(keyring).primary_prefixes()
    times: list[float] = []
    after: tuple[Any, ...] | None = None
    seen = 0
    while True:
        began = time.perf_counter()
        rows = await app.backend.reseal.scan(
            kind, after, namespace=NAMESPACE, limit=BATCH, primary=keyring.primary,
            bytes_prefix=bytes_prefix, text_prefix=text_prefix,
        )  # fmt: skip
        elapsed = time.perf_counter() - began
        seen += len(rows)
        if len(rows) < BATCH:
            break
        times.append(elapsed)
        after = rows[-1].cursor
    assert seen == size, (kind, seen, size)
    return times


async def measure(url: str, kinds: list[str], size: int) -> dict[str, list[float]]:
    async with App(
        url, namespace=NAMESPACE, purge_interval=None, maintenance_interval=None, encryption=None
    ) as app:
        await fill(app, kinds, size, time.time())
        return {kind: await walk(app, kind, size) for kind in kinds}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 20,000 rows")
    parser.add_argument("--sizes", type=int, nargs=2, default=None)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = parser.parse_args()
    small, big = args.sizes or ((1_000, 20_000) if args.quick else (1_000, 100_000))
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        async with benchlib.scratch_schemas(PG, "sk_resealbench", "_b") as schemas:
            for backend in backends:
                medians: dict[int, dict[str, float]] = {}
                for size, schema in zip((small, big), schemas, strict=True):
                    url = (
                        f"sqlite:///{tmp}/{backend}-{size}.db"
                        if backend == "sqlite"
                        else benchlib.with_schema(PG, schema)
                    )
                    times = await measure(url, args.kinds, size)
                    medians[size] = {kind: statistics.median(t) for kind, t in times.items()}
                    for kind, t in times.items():
                        print(
                            f"{backend}: {kind:<13} {size:>7} rows: {len(t):>3} batches of "
                            f"{BATCH}: {statistics.median(t) * 1e3:7.2f} ms per batch median, "
                            f"{statistics.mean(t) * 1e3:7.2f} mean, {max(t) * 1e3:7.2f} slowest"
                        )
                for kind in args.kinds:
                    ratio = medians[big][kind] / medians[small][kind]
                    ratios.append(ratio)
                    print(f"{backend}: {kind:<13} {big} rows / {small} rows = {ratio:.2f}x")
    print(
        f"headline: time per scan batch, {big} rows over {small} rows: {max(ratios):.2f}x at "
        "worst (flat: about 1)"
    )


if __name__ == "__main__":
    asyncio.run(main())
