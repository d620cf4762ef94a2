"""Large payloads through the blob store vs the raw driver, at two sizes, and what the
blob reference triggers cost the hot paths.

    python bench/large_payloads.py --quick
    python bench/large_payloads.py --backend postgres

Payloads: a workflow is started with an input of 4 MiB or 64 MiB (a string: out of
line, as a blob) and returns its length; the start, the run and the result are timed,
so the payload is written once (encoded, chunked, stored) and read once (read back,
decoded). A state value of the same size is put and read back (``state.put`` then
``state.get``: its blob inserted in the put's transaction). The baseline writes the
same bytes in 1 MiB rows with the driver in one transaction and reads them back
(SQLite: WAL, synchronous=FULL, as statekeeper). The
ratio is statekeeper's MB/s over the raw driver's; 4 MiB vs 64 MiB shows whether the
cost per byte stays flat.

Triggers: 2,000 small messages sent in batches of 100, received and acknowledged, with
the blob reference triggers on every payload column, then with them dropped (same
database kind, fresh each time): messages per second with over without (1.0: free).
The last line printed is the headline.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

import benchlib
from benchlib import NAMES, Plan
from statekeeper import App
from statekeeper.workflows import WorkflowContext, WorkflowRunner

MiB = 1 << 20
SIZES = (4, 64)  # MiB
MESSAGES = 2_000


@dataclass
class Row:
    backend: str
    measure: str
    statekeeper: float
    baseline: float
    unit: str

    @property
    def ratio(self) -> float:
        return self.statekeeper / self.baseline if self.baseline else 0.0


async def payload_round_trip(app: App, mib: int) -> float:
    """MB/s of a workflow started with a ``mib`` MiB input that returns its length."""

    @app.workflow(name="measure")
    async def measure(ctx: WorkflowContext, data: str) -> int:
        return len(data)

    runner = WorkflowRunner(app.workflows)
    warm = await app.workflows.start("measure", "warm-up")  # imports, the type's validator
    while not (await app.workflows.status(warm)).done:
        await runner.run_due()
    data = "p" * (mib * MiB)
    started = time.perf_counter()
    run = await app.workflows.start("measure", data)
    del data
    while not (await app.workflows.status(run)).done:
        await runner.run_due()
    assert await app.workflows.result(run) == mib * MiB
    return mib * MiB / 1e6 / (time.perf_counter() - started)


async def state_round_trip(app: App, mib: int) -> float:
    """MB/s of a ``mib`` MiB state value put and read back."""
    await app.state.put("warm", "warm-up")
    data = "s" * (mib * MiB)
    started = time.perf_counter()
    await app.state.put("big", data)
    del data
    item = await app.state.get("big")
    assert item is not None and len(item.value) == mib * MiB
    return mib * MiB / 1e6 / (time.perf_counter() - started)


async def raw_sqlite(path: str, mib: int) -> float:
    writer = benchlib.SQLiteWriter(path, "raw-blobs")
    await writer.open()
    data = b"p" * (mib * MiB)

    def write_and_read() -> int:
        conn = writer.conn
        assert conn is not None
        conn.execute("CREATE TABLE IF NOT EXISTS chunks (seq INTEGER PRIMARY KEY, data BLOB)")
        conn.execute("BEGIN IMMEDIATE")
        view = memoryview(data)
        conn.executemany(
            "INSERT INTO chunks VALUES (?, ?)",
            ((n, bytes(view[n * MiB : (n + 1) * MiB])) for n in range(mib)),
        )
        conn.execute("COMMIT")
        back = bytearray()
        for (chunk,) in conn.execute("SELECT data FROM chunks ORDER BY seq"):
            back += chunk
        return len(back)

    try:
        started = time.perf_counter()
        assert await writer.call(write_and_read) == mib * MiB
        return mib * MiB / 1e6 / (time.perf_counter() - started)
    finally:
        await writer.close()


async def raw_postgres(base_url: str, schema: str, mib: int) -> float:
    conn = await asyncpg.connect(base_url, server_settings={"search_path": schema})
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute("CREATE TABLE chunks (seq BIGINT PRIMARY KEY, data BYTEA)")
        data = b"p" * (mib * MiB)
        view = memoryview(data)
        started = time.perf_counter()
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO chunks VALUES ($1, $2)",
                [(n, bytes(view[n * MiB : (n + 1) * MiB])) for n in range(mib)],
            )
        back = bytearray()
        for row in await conn.fetch("SELECT data FROM chunks ORDER BY seq"):
            back += row["data"]
        assert len(back) == mib * MiB
        return mib * MiB / 1e6 / (time.perf_counter() - started)
    finally:
        await conn.close()


async def messages_per_second(app: App, triggers: bool) -> float:
    """Send, receive and acknowledge MESSAGES small messages (triggers dropped first if
    ``triggers`` is False)."""
    backend: Any = app.backend
    if not triggers:
        await drop_triggers(backend)
    queue = app.queue("jobs")
    started = time.perf_counter()
    for first in range(0, MESSAGES, 100):
        await queue.send_batch([{"n": n} for n in range(first, first + 100)])
    done = 0
    while done < MESSAGES:
        for message in await queue.receive(100):
            await message.ack({"ok": True})
            done += 1
    return MESSAGES / (time.perf_counter() - started)


async def drop_triggers(backend: Any) -> None:
    if backend.dialect == "sqlite":
        names = await backend.run_many(
            ("SELECT name FROM sqlite_master WHERE type = 'trigger' "
             "AND name LIKE 'sk_blob_ref_%'", ()), "triggers",
        )  # fmt: skip
        for (name,) in names:
            await backend.run_write((f"DROP TRIGGER {name}", ()), "drop", "rowcount")
        return
    async with backend.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT tgname, tgrelid::regclass::text FROM pg_trigger "
            "WHERE tgname LIKE 'sk_blob_ref_%'"
        )
        for name, table in rows:
            await conn.execute(f'DROP TRIGGER "{name}" ON {table}')


async def main() -> int:
    parser = benchlib.bench_parser(__doc__)
    args = parser.parse_args()
    plan = benchlib.choose_plan(args, Plan(0.0, 1, 1.0), Plan(0.0, 3, 1.0))
    print(
        f"large payloads: a workflow input and a state value of {SIZES[0]} and {SIZES[1]} MiB "
        "written and read "
        f"back vs the raw driver; {MESSAGES} messages with and without the blob triggers; "
        f"each {plan.slices} time(s)"
    )
    print(f"{'backend':<10} {'measure':<22} {'statekeeper':>12} {'baseline':>12} {'ratio':>7}",
          flush=True)  # fmt: skip

    async def measure(backend: str, url_for: Any, raw: Any) -> tuple[list[Row], dict[str, Any]]:
        rows = []
        for mib in SIZES:
            ours = state = base = 0.0
            for turn in range(plan.slices):
                async with (
                    url_for(f"p{mib}_{turn}") as url,
                    benchlib.statekeeper_app(url, "blobs") as app,
                ):
                    ours += await payload_round_trip(app, mib) / plan.slices
                    state += await state_round_trip(app, mib) / plan.slices
                base += await raw(mib, turn) / plan.slices
            rows.append(Row(NAMES[backend], f"{mib} MiB input MB/s", ours, base, "MB/s"))
            rows.append(Row(NAMES[backend], f"{mib} MiB state MB/s", state, base, "MB/s"))
        with_triggers = without = 0.0
        for turn in range(plan.slices):
            for triggers in (True, False):
                async with (
                    url_for(f"t{int(triggers)}_{turn}") as url,
                    benchlib.statekeeper_app(url, "blobs") as app,
                ):
                    got = await messages_per_second(app, triggers)
                if triggers:
                    with_triggers += got / plan.slices
                else:
                    without += got / plan.slices
        rows.append(Row(NAMES[backend], "messages/s, triggers", with_triggers, without, "msg/s"))
        for row in rows:
            print(f"{row.backend:<10} {row.measure:<22} {row.statekeeper:>12,.1f} "
                  f"{row.baseline:>12,.1f} {row.ratio:>6.2f}x", flush=True)  # fmt: skip
        return rows, {}

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        async def raw(mib: int, turn: int) -> float:
            async with benchlib.sqlite_scratch("raw.db") as url:
                return await raw_sqlite(url[len("sqlite:///") :], mib)

        return await measure("sqlite", lambda name: benchlib.sqlite_scratch(f"{name}.db"), raw)

    async def postgres() -> tuple[list[Row], dict[str, Any]]:
        async def raw(mib: int, turn: int) -> float:
            async with benchlib.scratch_schemas(args.pg_url, f"sk_raw_blobs_{mib}_{turn}") as (
                schema,
            ):
                return await raw_postgres(args.pg_url, schema, mib)

        return await measure(
            "postgres",
            lambda name: benchlib.postgres_scratch(args.pg_url, f"sk_large_{name}"),
            raw,
        )

    collected = await benchlib.each_backend(args, sqlite, postgres)
    if collected is None:
        return 2
    headline = "large payloads vs the raw driver, and messages/s with the blob triggers: " + (
        ", ".join(
            f"{r.backend} {r.measure.split(',')[0]} {r.ratio:.2f}x" for r in collected.results
        )
    )
    return benchlib.finish(args, plan, headline, collected, "rows")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
