"""The durable queue against the raw driver doing the same cycle, in the same run.

    python bench/queue_bench.py --quick                 # under a minute
    python bench/queue_bench.py                         # longer, stabler figures
    python bench/queue_bench.py --backend sqlite --json results.json

For each backend (SQLite, PostgreSQL), 32 asyncio tasks each loop over one end-to-end
cycle: send a ~200-byte JSON dict, receive one message (again if none came back),
acknowledge it. It counts completed cycles per second of:

* ``sk``          ``App.queue("bench", archive=False)``: ``send``, ``receive(1)``, ``ack``
* ``sk archive``  the same with ``archive=True`` (the ack also copies into the
                  archive); information only, compared with the same raw cycle
* ``raw``         a plain program on a table of the same layout (made by statekeeper's
                  schema in its own file or PostgreSQL schema, then left alone):
                  insert a ready row; lease the oldest due row with one
                  ``UPDATE ... WHERE seq IN (SELECT ... ORDER BY seq LIMIT 1
                  [FOR UPDATE SKIP LOCKED]) RETURNING ...``; ``DELETE ... WHERE id AND
                  lease_token RETURNING id``. Each op its own transaction.

Raw SQLite runs every op in one dedicated thread (``ThreadPoolExecutor(max_workers=1)``),
each its own ``BEGIN IMMEDIATE ... COMMIT`` in WAL mode with ``synchronous=FULL``
(statekeeper's default). Raw PostgreSQL is an asyncpg pool of statekeeper's default
size, one autocommit statement per op. The three sides take turns in short slices,
in every order in turn, so drift on a shared machine hits all alike. The last line
printed is the headline.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal, Self

import asyncpg

# A sibling module: ``python bench/queue_bench.py`` puts bench/ on sys.path.
import benchlib
from benchlib import NAMES, Backend, Plan
from statekeeper import App
from statekeeper.constants import ENV_CACHE_URL
from statekeeper.queues.queue import Queue

Side = Literal["sk", "raw", "sk_archive"]
# One end-to-end cycle (send, receive, ack) of message number n; how many receives
# came back empty before one got a message.
CycleFn = Callable[[int], Awaitable[int]]

CONCURRENCY = 32
TARGET = 0.7
NAMESPACE = "qbench"
QUEUE = "bench"
ARCHIVE_QUEUE = "bench_archive"
LEASE_SECONDS = 30.0  # statekeeper's default visibility timeout
MAX_EMPTY_RECEIVES = 10_000  # one cycle giving up: the queue lost a message
SIDES: tuple[Side, ...] = ("sk", "raw", "sk_archive")
COMPACT = (",", ":")  # the JSON statekeeper writes: the same bytes on both sides

# The ~200-byte JSON body every message carries (``n`` numbers the message).
BODY: dict[str, Any] = {
    "order": "ord-000000",
    "customer": "ada@example.com",
    "items": [{"sku": "AE-1843", "qty": 1}, {"sku": "BE-1822", "qty": 2}],
    "total": 184.3,
    "currency": "GBP",
    "note": "the engine weaves algebraic patterns",
    "n": 0,
}


def body(n: int) -> dict[str, Any]:
    return {**BODY, "n": n}


# The raw cycle's statements: statekeeper's table, the lease without its group and
# dead-letter clauses (no groups, nothing expires during a run).
RAW_INSERT = """
INSERT INTO sk_messages (id, namespace, queue, body, attributes, correlation_id, group_id,
                         state, available_at, attempts, enqueued_at, reply_to)
VALUES ({0}, {1}, {2}, {3}, NULL, NULL, NULL, 'ready', {4}, 0, {5}, NULL)
"""
RAW_LEASE = """
UPDATE sk_messages
SET state = 'leased', lease_token = {0}, available_at = {1}, attempts = attempts + 1
WHERE seq IN (
    SELECT seq FROM sk_messages
    WHERE namespace = {2} AND queue = {3} AND state <> 'dead' AND available_at <= {4}
    ORDER BY seq
    LIMIT 1{5}
)
RETURNING seq, id, body, attributes, correlation_id, group_id, attempts, available_at,
          enqueued_at, last_error, state, dead_at, reply_to
"""
RAW_ACK = "DELETE FROM sk_messages WHERE id = {0} AND lease_token = {1} RETURNING id"


def raw_sql(dialect: Backend) -> tuple[str, str, str]:
    """The insert, lease and ack statements with the dialect's placeholders."""

    def marks(count: int) -> list[str]:
        return ["?" if dialect == "sqlite" else f"${i}" for i in range(1, count + 1)]

    lock = "" if dialect == "sqlite" else "\n    FOR UPDATE SKIP LOCKED"
    return (
        RAW_INSERT.format(*marks(6)).strip(),
        RAW_LEASE.format(*marks(5), lock).strip(),
        RAW_ACK.format(*marks(2)),
    )


# --- the statekeeper side ---------------------------------------------------------------


def statekeeper_cycle(queue: Queue) -> CycleFn:
    async def cycle(n: int) -> int:
        await queue.send(body(n))
        empty = 0
        while True:
            got = await queue.receive(1)
            if got:
                break
            empty += 1
            if empty >= MAX_EMPTY_RECEIVES:
                raise RuntimeError(f"statekeeper queue {queue.name!r} stays empty")
        await got[0].ack()
        return empty

    return cycle


# --- raw SQLite: every op in one writer thread, each its own transaction ---------------


class RawSQLite:
    """The plain way an asyncio program uses sqlite3 with durable commits."""

    INSERT, LEASE, ACK = raw_sql("sqlite")

    def __init__(self, path: str) -> None:
        self.writer = benchlib.SQLiteWriter(path, "raw-sqlite-writer")

    async def open(self) -> None:
        await self.writer.open()

    async def close(self) -> None:
        await self.writer.close()

    async def remaining(self) -> int:
        def count() -> int:
            conn = self.writer.conn
            assert conn is not None
            return int(conn.execute("SELECT count(*) FROM sk_messages").fetchone()[0])

        return await self.writer.call(count)

    def cycle(self) -> CycleFn:
        loop = asyncio.get_running_loop()
        executor = self.writer.executor
        transaction = self.writer.transaction
        insert_sql, lease_sql, ack_sql = self.INSERT, self.LEASE, self.ACK

        async def cycle(n: int) -> int:
            now = time.time()
            data = json.dumps(body(n), separators=COMPACT).encode()
            insert = (uuid.uuid4().hex, NAMESPACE, QUEUE, data, now, now)
            await loop.run_in_executor(executor, transaction, insert_sql, insert)
            empty = 0
            while True:
                now = time.time()
                token = secrets.token_hex(12)
                lease = (token, now + LEASE_SECONDS, NAMESPACE, QUEUE, now)
                row = await loop.run_in_executor(executor, transaction, lease_sql, lease)
                if row is not None:
                    break
                empty += 1
                if empty >= MAX_EMPTY_RECEIVES:
                    raise RuntimeError("raw SQLite queue stays empty")
            json.loads(row[2].decode())
            done = await loop.run_in_executor(executor, transaction, ack_sql, (row[1], token))
            if done is None:
                raise RuntimeError(f"raw SQLite lost the lease of {row[1]!r}")
            return empty

        return cycle


# --- raw PostgreSQL: an asyncpg pool, one autocommit statement per op ------------------


class RawPostgres:
    INSERT, LEASE, ACK = raw_sql("postgres")

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def remaining(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM sk_messages"))

    def cycle(self) -> CycleFn:
        pool = self.pool
        insert_sql, lease_sql, ack_sql = self.INSERT, self.LEASE, self.ACK

        async def cycle(n: int) -> int:
            now = time.time()
            data = json.dumps(body(n), separators=COMPACT).encode()
            await pool.execute(insert_sql, uuid.uuid4().hex, NAMESPACE, QUEUE, data, now, now)
            empty = 0
            while True:
                now = time.time()
                token = secrets.token_hex(12)
                row = await pool.fetchrow(
                    lease_sql, token, now + LEASE_SECONDS, NAMESPACE, QUEUE, now
                )
                if row is not None:
                    break
                empty += 1  # every due row was locked by other leases in flight
                if empty >= MAX_EMPTY_RECEIVES:
                    raise RuntimeError("raw PostgreSQL queue stays empty")
            json.loads(row[2].decode())
            if await pool.fetchval(ack_sql, row[1], token) is None:
                raise RuntimeError(f"raw PostgreSQL lost the lease of {row[1]!r}")
            return empty

        return cycle


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Tally(benchlib.Tally):
    """Cycles (``count``), and receives that came back empty on the way."""

    empty_receives: int = 0

    def add(self, other: Self) -> None:
        super().add(other)
        self.empty_receives += other.empty_receives


async def drive(cycle: CycleFn, concurrency: int, seconds: float, first: int) -> Tally:
    """Run ``cycle`` from ``concurrency`` tasks for ``seconds``, timing every cycle."""
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    latencies: list[int] = []
    counts = [0] * concurrency
    empties = [0] * concurrency

    async def worker(index: int) -> None:
        record = latencies.append
        n = first + index * 1_000_000
        done = empty = 0
        while True:
            t0 = clock()
            empty += await cycle(n + done)
            t1 = clock()
            record(t1 - t0)
            done += 1
            if t1 >= deadline:
                break
        counts[index], empties[index] = done, empty

    start = clock()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return Tally(sum(counts), (clock() - start) / 1e9, latencies, sum(empties))


@dataclass
class Row:
    backend: Backend
    variant: str
    concurrency: int
    sk_cycles_per_s: float
    raw_cycles_per_s: float
    ratio: float
    target: float | None  # None: information only
    met: bool | None
    sk_p50_ms: float | None
    sk_p99_ms: float | None
    raw_p50_ms: float | None
    raw_p99_ms: float | None
    sk_cycles: int
    raw_cycles: int
    sk_empty_receives: int
    raw_empty_receives: int
    sk_commit_batch: float | None = None  # SQLite: statekeeper writer jobs per commit


async def measure(
    backend: Backend,
    cycles: dict[Side, CycleFn],
    plan: Plan,
    writer_stats: Callable[[], tuple[int, int]] | None,
) -> list[Row]:
    first = 0
    for side in SIDES:
        first += 100_000_000
        await drive(cycles[side], CONCURRENCY, plan.warmup, first)
    tallies = {side: Tally() for side in SIDES}
    jobs = dict.fromkeys(SIDES, 0)
    batches = dict.fromkeys(SIDES, 0)
    for side in benchlib.turns(SIDES, plan.slices):
        first += 100_000_000
        gc.collect()
        before = writer_stats() if writer_stats is not None else (0, 0)
        tallies[side].add(await drive(cycles[side], CONCURRENCY, plan.slice_seconds, first))
        after = writer_stats() if writer_stats is not None else (0, 0)
        jobs[side] += after[0] - before[0]
        batches[side] += after[1] - before[1]
    raw = tallies["raw"]
    rows: list[Row] = []
    for side, variant, target in (
        ("sk", "archive=off", TARGET),
        ("sk_archive", "archive=on", None),
    ):
        sk = tallies[side]
        ratio = sk.rate / raw.rate if raw.rate else float("inf")
        row = Row(
            backend=backend,
            variant=variant,
            concurrency=CONCURRENCY,
            sk_cycles_per_s=sk.rate,
            raw_cycles_per_s=raw.rate,
            ratio=ratio,
            target=target,
            met=None if target is None else ratio >= target,
            sk_p50_ms=sk.percentile_ms(50),
            sk_p99_ms=sk.percentile_ms(99),
            raw_p50_ms=raw.percentile_ms(50),
            raw_p99_ms=raw.percentile_ms(99),
            sk_cycles=sk.count,
            raw_cycles=raw.count,
            sk_empty_receives=sk.empty_receives,
            raw_empty_receives=raw.empty_receives,
            sk_commit_batch=jobs[side] / batches[side] if batches[side] else None,
        )
        print_row(row)
        rows.append(row)
    return rows


async def leftovers(app: App) -> int:
    """Messages still live in statekeeper's queues: 0 when every cycle completed."""
    total = 0
    for name in (QUEUE, ARCHIVE_QUEUE):
        stats = await app.queue(name).stats()
        total += stats.ready + stats.in_flight + stats.delayed + stats.dead
    return total


def statekeeper_cycles(app: App) -> dict[Side, CycleFn]:
    return {
        "sk": statekeeper_cycle(app.queue(QUEUE, archive=False)),
        "sk_archive": statekeeper_cycle(app.queue(ARCHIVE_QUEUE, archive=True)),
    }


# --- the backends ---------------------------------------------------------------------------


async def bench_sqlite(plan: Plan, directory: str) -> tuple[list[Row], dict[str, Any]]:
    pair = benchlib.sqlite_pair(directory, NAMESPACE)
    async with pair as (app, raw_path), AsyncExitStack() as stack:
        raw = RawSQLite(raw_path)
        await raw.open()
        stack.push_async_callback(raw.close)
        cycles = statekeeper_cycles(app)
        cycles["raw"] = raw.cycle()
        rows = await measure("sqlite", cycles, plan, benchlib.commit_stats(app))
        info = {
            **benchlib.sqlite_info(directory),
            "sk_leftover_messages": await leftovers(app),
            "raw_leftover_messages": await raw.remaining(),
        }
        return rows, info


async def bench_postgres(plan: Plan, base_url: str) -> tuple[list[Row], dict[str, Any]]:
    schemas = benchlib.scratch_schemas(base_url, "sk_qbench", "_raw")
    async with schemas as (sk_schema, raw_schema), AsyncExitStack() as stack:
        # The raw schema gets its tables from statekeeper's own schema, then is left alone.
        await benchlib.create_tables(benchlib.with_schema(base_url, raw_schema))
        app = await stack.enter_async_context(
            benchlib.statekeeper_app(benchlib.with_schema(base_url, sk_schema), NAMESPACE)
        )
        pool = await benchlib.raw_pool(base_url, raw_schema)
        stack.push_async_callback(pool.close)
        raw = RawPostgres(pool)
        cycles = statekeeper_cycles(app)
        cycles["raw"] = raw.cycle()
        rows = await measure("postgres", cycles, plan, None)
        info = {
            **await benchlib.postgres_info(pool),
            "schemas": [sk_schema, raw_schema],
            "sk_leftover_messages": await leftovers(app),
            "raw_leftover_messages": await raw.remaining(),
        }
        return rows, info


# --- output -------------------------------------------------------------------------------

HEADER = (
    f"{'backend':<10} {'variant':<11} {'conc':>4} {'sk cyc/s':>9} {'raw cyc/s':>9} "
    f"{'ratio':>7} {'target':>7} {'met?':<5} {'sk p50/p99 ms':>14} {'raw p50/p99 ms':>15}"
)


def print_row(row: Row) -> None:
    target = "info" if row.target is None else f"{row.target:.1f}x"
    met = "-" if row.met is None else ("yes" if row.met else "NO")
    print(
        f"{NAMES[row.backend]:<10} {row.variant:<11} {row.concurrency:>4} "
        f"{row.sk_cycles_per_s:>9.0f} {row.raw_cycles_per_s:>9.0f} {row.ratio:>6.2f}x "
        f"{target:>7} {met:<5} {benchlib.latency_pair(row.sk_p50_ms, row.sk_p99_ms):>14} "
        f"{benchlib.latency_pair(row.raw_p50_ms, row.raw_p99_ms):>15}",
        flush=True,
    )


def headline(rows: list[Row]) -> str:
    judged = [r for r in rows if r.target is not None]
    if not judged:
        return "headline: nothing measured"
    worst = min(judged, key=lambda r: r.ratio)
    text = (
        f"headline: {NAMES[worst.backend]} queue cycle vs raw at c={worst.concurrency} "
        f"= {worst.ratio:.2f}x"
    )
    if len(judged) > 1:
        each = ", ".join(f"{NAMES[r.backend]} {r.ratio:.2f}x" for r in judged)
        text += f" (the lowest of {each}; archive off)"
    return text


# --- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    # A Redis cache configured in the environment has nothing to do with queues, but
    # keep the app the same as in the other benchmarks.
    os.environ.pop(ENV_CACHE_URL, None)
    # Many short slices, rotated, so that drift on a shared machine hits every side.
    plan = benchlib.choose_plan(
        args,
        quick=Plan(warmup=0.3, slices=6, slice_seconds=0.5),
        full=Plan(warmup=1.0, slices=24, slice_seconds=1.0),
    )
    what = f"statekeeper queue vs raw driver, send+receive+ack at c={CONCURRENCY}: "
    benchlib.announce(what, plan, HEADER)

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="sk-queue-bench-") as directory:
            return await bench_sqlite(plan, directory)

    got = await benchlib.each_backend(args, sqlite, lambda: bench_postgres(plan, args.pg_url))
    if got is None:
        return 2
    rows = got.results
    for row in rows:
        if row.sk_commit_batch is not None:
            print(
                f"note: SQLite {row.variant}: statekeeper committed {row.sk_commit_batch:.1f} "
                "writer jobs per fsync (raw: 1, three per cycle)"
            )
        raw_empty = row.raw_empty_receives if row.variant == "archive=off" else 0
        if row.sk_empty_receives or raw_empty:
            print(
                f"note: {NAMES[row.backend]} {row.variant}: empty receives retried "
                f"(SKIP LOCKED races): sk {row.sk_empty_receives}"
                + (f", raw {raw_empty}" if raw_empty else "")
            )
    for name, details in got.info.items():
        left = details["sk_leftover_messages"], details["raw_leftover_messages"]
        if any(left):
            print(f"warning: {NAMES[name]} left messages behind: sk {left[0]}, raw {left[1]}")
    missed = [r for r in rows if r.met is False]
    judged = [r for r in rows if r.met is not None]
    print(f"{len(judged) - len(missed)}/{len(judged)} rows met their target; {got.seconds:.1f} s")
    settings = {
        "concurrency": CONCURRENCY,
        "body_bytes": len(json.dumps(BODY, separators=COMPACT).encode()),
    }
    return benchlib.finish(args, plan, headline(rows), got, "rows", settings)


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(benchlib.bench_parser(__doc__).parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
