"""The state store against the raw driver doing the same SQL, in the same run.

    python bench/state_bench.py --quick                 # under a minute
    python bench/state_bench.py                         # longer, stabler figures
    python bench/state_bench.py --backend sqlite --json results.json

For each backend (SQLite, PostgreSQL), operation and concurrency (1 and 32
asyncio tasks) it measures throughput of ``App.state`` and of a plain program
that runs statekeeper's own SQL text (from ``storage/queries``) on the same
table, one transaction per operation, and reports the ratio:

* ``get``     an existing key out of 1000, JSON-decoded (~200-byte dict)
* ``put``     a random key out of 1000, JSON-encoded, unconditional upsert
* ``update``  read, change ``n``, write back only if the ETag still matches

Raw SQLite reads run on the event loop thread (as statekeeper's do); raw writes
run in one dedicated thread (``ThreadPoolExecutor(max_workers=1)``), each op its
own ``BEGIN IMMEDIATE ... COMMIT`` in WAL mode with ``synchronous=FULL``. Raw
PostgreSQL is an asyncpg pool of statekeeper's default size, one autocommit
statement per round trip. Statekeeper and raw runs alternate (ABBA) within each
cell so drift hits both sides alike. The last line printed is the headline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

# A sibling module: ``python bench/state_bench.py`` puts bench/ on sys.path.
import benchlib
from benchlib import NAMES, Backend, Plan, Tally
from statekeeper import App
from statekeeper.constants import ENV_CACHE_URL
from statekeeper.storage.queries import load

OpName = Literal["get", "put", "update"]
OpFn = Callable[[str], Awaitable[None]]

N_KEYS = 1000
KEYS: list[str] = [f"user:{i:05d}" for i in range(N_KEYS)]
SK_NS = "sk_bench"
RAW_NS = "raw_bench"
OPS: tuple[OpName, ...] = ("get", "put", "update")
CONCURRENCIES = (1, 32)
SIDES = ("sk", "raw")

# A ~200-byte JSON document, the value every put writes and every key starts with.
VALUE: dict[str, Any] = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "plan": "pro",
    "tags": ["alpha", "beta", "gamma"],
    "prefs": {"theme": "dark", "lang": "en", "tz": "Europe/London"},
    "n": 0,
    "note": "the analytical engine weaves algebraic patterns",
}

# The same statements statekeeper runs, compiled for each dialect.
SQ = load("sqlite")
PQ = load("postgres")
for _q in (SQ, PQ):
    assert _q["state_get"].params == ("namespace", "key", "now")
    assert _q["state_put"].params == ("namespace", "key", "value", "etag", "expires_at", "key_id")
    assert _q["state_put_if_match"].params == (
        "value", "etag", "expires_at", "key_id", "namespace", "key", "if_match", "now"
    )  # fmt: skip


def bump(value: dict[str, Any]) -> dict[str, Any]:
    """The update every ``update`` op applies."""
    return {**value, "n": value["n"] + 1}


def new_etag() -> str:
    return base64.urlsafe_b64encode(os.urandom(9)).decode()


def target_for(backend: Backend, op: OpName, concurrency: int) -> float:
    if backend == "sqlite" and op == "put" and concurrency > 1:
        return 3.0  # group commit
    return 0.7


# --- the statekeeper side ---------------------------------------------------------------


def statekeeper_ops(app: App) -> dict[OpName, OpFn]:
    store = app.state

    async def get(key: str) -> None:
        if await store.get(key) is None:
            raise RuntimeError(f"statekeeper lost key {key!r}")

    async def put(key: str) -> None:
        await store.put(key, VALUE)

    async def update(key: str) -> None:
        await store.update(key, bump)

    return {"get": get, "put": put, "update": update}


# --- raw SQLite: sqlite3 reads on the loop, writes in one thread, a transaction each ----


class RawSQLite:
    """The plain way an asyncio program uses sqlite3 with durable commits."""

    GET = SQ["state_get"].sql
    PUT = SQ["state_put"].sql
    PUT_IF_MATCH = SQ["state_put_if_match"].sql

    def __init__(self, path: str) -> None:
        self.writer = benchlib.SQLiteWriter(path, "raw-sqlite-writer")
        self.reader = benchlib.sqlite_connect(path)
        self.reader.execute("PRAGMA query_only = 1")
        self.conflicts = 0

    async def open(self) -> None:
        await self.writer.open()

    async def close(self) -> None:
        await self.writer.close()
        self.reader.close()

    async def populate(self) -> None:
        data = json.dumps(VALUE).encode()
        rows = [(RAW_NS, k, data, new_etag(), None, None) for k in KEYS]

        def insert() -> None:
            conn = self.writer.conn
            assert conn is not None
            with conn:  # BEGIN ... COMMIT, or ROLLBACK on error
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(self.PUT, rows)

        await self.writer.call(insert)

    def ops(self) -> dict[OpName, OpFn]:
        loop = asyncio.get_running_loop()
        executor = self.writer.executor
        transaction = self.writer.transaction
        reader = self.reader
        get_sql, put_sql, if_match_sql = self.GET, self.PUT, self.PUT_IF_MATCH

        async def get(key: str) -> None:
            row = reader.execute(get_sql, (RAW_NS, key, time.time())).fetchone()
            if row is None:
                raise RuntimeError(f"raw SQLite lost key {key!r}")
            json.loads(row[0].decode())

        async def put(key: str) -> None:
            args = (RAW_NS, key, json.dumps(VALUE).encode(), new_etag(), None, None)
            await loop.run_in_executor(executor, transaction, put_sql, args)

        def update_sync(key: str) -> None:
            conn = self.writer.conn
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                row = conn.execute(get_sql, (RAW_NS, key, now)).fetchone()
                if row is None:
                    raise RuntimeError(f"raw SQLite lost key {key!r}")
                data = json.dumps(bump(json.loads(row[0].decode()))).encode()
                args = (data, new_etag(), None, None, RAW_NS, key, row[1], now)
                if conn.execute(if_match_sql, args).fetchone() is None:
                    self.conflicts += 1  # cannot happen: the write lock is held throughout
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        async def update(key: str) -> None:
            await loop.run_in_executor(executor, update_sync, key)

        return {"get": get, "put": put, "update": update}


# --- raw PostgreSQL: an asyncpg pool, one autocommit statement per round trip ------------


class RawPostgres:
    GET = PQ["state_get"].sql
    PUT = PQ["state_put"].sql
    PUT_IF_MATCH = PQ["state_put_if_match"].sql

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.conflicts = 0

    async def populate(self) -> None:
        data = json.dumps(VALUE).encode()
        await self.pool.executemany(
            self.PUT, [(RAW_NS, k, data, new_etag(), None, None) for k in KEYS]
        )

    def ops(self) -> dict[OpName, OpFn]:
        pool = self.pool
        get_sql, put_sql, if_match_sql = self.GET, self.PUT, self.PUT_IF_MATCH

        async def get(key: str) -> None:
            row = await pool.fetchrow(get_sql, RAW_NS, key, time.time())
            if row is None:
                raise RuntimeError(f"raw PostgreSQL lost key {key!r}")
            json.loads(row[0].decode())

        async def put(key: str) -> None:
            await pool.execute(
                put_sql, RAW_NS, key, json.dumps(VALUE).encode(), new_etag(), None, None
            )

        async def update(key: str) -> None:
            while True:
                now = time.time()
                row = await pool.fetchrow(get_sql, RAW_NS, key, now)
                if row is None:
                    raise RuntimeError(f"raw PostgreSQL lost key {key!r}")
                data = json.dumps(bump(json.loads(row[0].decode()))).encode()
                done = await pool.fetchrow(
                    if_match_sql, data, new_etag(), None, None, RAW_NS, key, row[1], now
                )
                if done is not None:
                    return
                self.conflicts += 1

        return {"get": get, "put": put, "update": update}


# --- measuring ----------------------------------------------------------------------------


async def drive(op: OpFn, concurrency: int, seconds: float, seed: int) -> Tally:
    """Run ``op`` from ``concurrency`` tasks for ``seconds``; latencies when alone."""
    clock = time.perf_counter_ns
    deadline = clock() + int(seconds * 1e9)
    latencies: list[int] = []
    counts = [0] * concurrency

    async def timed_worker() -> None:
        choose = random.Random(seed).choice
        record = latencies.append
        n = 0
        while True:
            t0 = clock()
            await op(choose(KEYS))
            t1 = clock()
            record(t1 - t0)
            n += 1
            if t1 >= deadline:
                break
        counts[0] = n

    async def worker(index: int) -> None:
        choose = random.Random(seed * 1000 + index).choice
        n = 0
        while clock() < deadline:
            await op(choose(KEYS))
            n += 1
        counts[index] = n

    start = clock()
    if concurrency == 1:
        await timed_worker()
    else:
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return Tally(sum(counts), (clock() - start) / 1e9, latencies)


@dataclass
class Cell:
    backend: Backend
    op: OpName
    concurrency: int
    sk_ops_per_s: float
    raw_ops_per_s: float
    ratio: float
    target: float
    met: bool
    sk_p50_us: float | None
    sk_p99_us: float | None
    raw_p50_us: float | None
    raw_p99_us: float | None
    sk_ops: int
    raw_ops: int
    sk_commit_batch: float | None = None  # SQLite: statekeeper jobs per commit


async def measure(
    backend: Backend,
    sides: dict[str, dict[OpName, OpFn]],
    plan: Plan,
    writer_stats: Callable[[], tuple[int, int]] | None,
) -> list[Cell]:
    cells: list[Cell] = []
    seed = 0
    for op in OPS:
        for concurrency in CONCURRENCIES:
            for side in SIDES:
                seed += 1
                await drive(sides[side][op], concurrency, plan.warmup, seed)
            tallies = {side: Tally() for side in SIDES}
            jobs = batches = 0
            for side in benchlib.turns(SIDES, plan.slices):
                seed += 1
                gc.collect()
                before = writer_stats() if writer_stats and side == "sk" else None
                tallies[side].add(
                    await drive(sides[side][op], concurrency, plan.slice_seconds, seed)
                )
                if before is not None and writer_stats is not None:
                    after = writer_stats()
                    jobs += after[0] - before[0]
                    batches += after[1] - before[1]
            sk, raw = tallies["sk"], tallies["raw"]
            ratio = sk.rate / raw.rate if raw.rate else float("inf")
            target = target_for(backend, op, concurrency)
            cell = Cell(
                backend=backend,
                op=op,
                concurrency=concurrency,
                sk_ops_per_s=sk.rate,
                raw_ops_per_s=raw.rate,
                ratio=ratio,
                target=target,
                met=ratio >= target,
                sk_p50_us=sk.percentile_us(50),
                sk_p99_us=sk.percentile_us(99),
                raw_p50_us=raw.percentile_us(50),
                raw_p99_us=raw.percentile_us(99),
                sk_ops=sk.count,
                raw_ops=raw.count,
                sk_commit_batch=jobs / batches if batches else None,
            )
            print_row(cell)
            cells.append(cell)
    return cells


# --- the backends ---------------------------------------------------------------------------


async def populate_statekeeper(app: App) -> None:
    for start in range(0, N_KEYS, 100):
        await app.state.put_many([(k, VALUE) for k in KEYS[start : start + 100]])


async def bench_sqlite(plan: Plan, directory: str) -> tuple[list[Cell], dict[str, Any]]:
    pair = benchlib.sqlite_pair(directory, SK_NS)
    async with pair as (app, raw_path), AsyncExitStack() as stack:
        raw = RawSQLite(raw_path)
        await raw.open()
        stack.push_async_callback(raw.close)
        await populate_statekeeper(app)
        await raw.populate()
        cells = await measure(
            "sqlite",
            {"sk": statekeeper_ops(app), "raw": raw.ops()},
            plan,
            benchlib.commit_stats(app),
        )
        info = {**benchlib.sqlite_info(directory), "raw_update_conflicts": raw.conflicts}
        return cells, info


async def bench_postgres(plan: Plan, base_url: str) -> tuple[list[Cell], dict[str, Any]]:
    async with (
        benchlib.scratch_schemas(base_url, "sk_bench") as (schema,),
        AsyncExitStack() as stack,
    ):
        app = await stack.enter_async_context(
            benchlib.statekeeper_app(benchlib.with_schema(base_url, schema), SK_NS)
        )
        pool = await benchlib.raw_pool(base_url, schema)
        stack.push_async_callback(pool.close)
        raw = RawPostgres(pool)
        await populate_statekeeper(app)
        await raw.populate()
        cells = await measure(
            "postgres", {"sk": statekeeper_ops(app), "raw": raw.ops()}, plan, None
        )
        info = {
            **await benchlib.postgres_info(pool),
            "schema": schema,
            "raw_update_conflicts": raw.conflicts,
        }
        return cells, info


# --- output -------------------------------------------------------------------------------

HEADER = (
    f"{'backend':<10} {'op':<7} {'conc':>4} {'sk ops/s':>10} {'raw ops/s':>10} "
    f"{'ratio':>7} {'target':>7} {'met?':<4}  {'sk p50/p99 us':>15}  {'raw p50/p99 us':>15}"
)


def print_row(cell: Cell) -> None:
    print(
        f"{NAMES[cell.backend]:<10} {cell.op:<7} {cell.concurrency:>4} "
        f"{cell.sk_ops_per_s:>10.0f} {cell.raw_ops_per_s:>10.0f} {cell.ratio:>6.2f}x "
        f"{cell.target:>6.1f}x {'yes' if cell.met else 'NO':<4}  "
        f"{benchlib.latency_pair(cell.sk_p50_us, cell.sk_p99_us, 0):>15}  "
        f"{benchlib.latency_pair(cell.raw_p50_us, cell.raw_p99_us, 0):>15}",
        flush=True,
    )


def headline(cells: list[Cell]) -> str:
    for backend in ("sqlite", "postgres"):
        for cell in cells:
            if cell.backend == backend and cell.op == "put" and cell.concurrency > 1:
                name = NAMES[backend]
                return f"headline: {name} concurrent put vs raw = {cell.ratio:.2f}x"
    return "headline: nothing measured"


# --- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    # A Redis cache configured in the environment would turn gets into cache hits.
    os.environ.pop(ENV_CACHE_URL, None)
    # Many short slices, alternated, so that drift on a shared machine hits both sides.
    plan = benchlib.choose_plan(
        args,
        quick=Plan(warmup=0.2, slices=6, slice_seconds=0.2),
        full=Plan(warmup=1.0, slices=20, slice_seconds=0.25),
    )
    benchlib.announce("statekeeper state store vs raw driver: ", plan, HEADER, "side and cell")

    async def sqlite() -> tuple[list[Cell], dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="sk-state-bench-") as directory:
            return await bench_sqlite(plan, directory)

    got = await benchlib.each_backend(args, sqlite, lambda: bench_postgres(plan, args.pg_url))
    if got is None:
        return 2
    cells = got.results
    for cell in cells:
        if cell.sk_commit_batch is not None and cell.op != "get":
            print(
                f"note: SQLite {cell.op} c={cell.concurrency}: statekeeper committed "
                f"{cell.sk_commit_batch:.1f} jobs per fsync"
            )
    missed = [c for c in cells if not c.met]
    print(f"{len(cells) - len(missed)}/{len(cells)} cells met their target; {got.seconds:.1f} s")
    return benchlib.finish(args, plan, headline(cells), got, "cells")


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.bench_parser(
        __doc__,
        quick_help="short cells, under a minute",
        seconds_help="measured seconds per side and cell",
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
