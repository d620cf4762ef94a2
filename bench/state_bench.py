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
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg

from statekeeper import App
from statekeeper.constants import ENV_CACHE_URL
from statekeeper.storage.queries import load
from statekeeper.storage.sqlite import SQLiteBackend

Backend = Literal["sqlite", "postgres"]
OpName = Literal["get", "put", "update"]
OpFn = Callable[[str], Awaitable[None]]

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_POOL_MIN, PG_POOL_MAX = 2, 16  # statekeeper's defaults
SQLITE_BUSY_TIMEOUT_MS = 30_000
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
        self.path = path
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raw-sqlite-writer")
        self.reader = self._connect()
        self.reader.execute("PRAGMA query_only = 1")
        self.writer: sqlite3.Connection | None = None
        self.conflicts = 0

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        return conn

    async def open(self) -> None:
        def connect_writer() -> sqlite3.Connection:
            conn = self._connect()
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            return conn

        self.writer = await self._in_writer(connect_writer)

    async def close(self) -> None:
        if self.writer is not None:
            await self._in_writer(self.writer.close)
        self.executor.shutdown(wait=True)
        self.reader.close()

    def _in_writer(self, fn: Callable[[], Any]) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self.executor, fn)

    async def populate(self) -> None:
        data = json.dumps(VALUE).encode()
        rows = [(RAW_NS, k, data, new_etag(), None, None) for k in KEYS]

        def insert() -> None:
            conn = self.writer
            assert conn is not None
            with conn:  # BEGIN ... COMMIT, or ROLLBACK on error
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(self.PUT, rows)

        await self._in_writer(insert)

    def ops(self) -> dict[OpName, OpFn]:
        loop = asyncio.get_running_loop()
        executor = self.executor
        reader = self.reader
        get_sql, put_sql, if_match_sql = self.GET, self.PUT, self.PUT_IF_MATCH

        async def get(key: str) -> None:
            row = reader.execute(get_sql, (RAW_NS, key, time.time())).fetchone()
            if row is None:
                raise RuntimeError(f"raw SQLite lost key {key!r}")
            json.loads(row[0].decode())

        def put_sync(key: str, data: bytes, etag: str) -> None:
            conn = self.writer
            assert conn is not None
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(put_sql, (RAW_NS, key, data, etag, None, None))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        async def put(key: str) -> None:
            await loop.run_in_executor(
                executor, put_sync, key, json.dumps(VALUE).encode(), new_etag()
            )

        def update_sync(key: str) -> None:
            conn = self.writer
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


@dataclass
class Tally:
    ops: int = 0
    seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.ops += other.ops
        self.seconds += other.seconds
        self.latencies_ns.extend(other.latencies_ns)

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile_us(self, pct: float) -> float | None:
        if not self.latencies_ns:
            return None
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
        return ordered[index] / 1000


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


@dataclass(frozen=True)
class Plan:
    warmup: float
    slices: int
    slice_seconds: float


def abba(slices: int) -> Iterator[str]:
    """sk, raw, raw, sk, sk, raw, ...: each side gets the same share of early and late."""
    for index in range(slices):
        yield from (SIDES if index % 2 == 0 else SIDES[::-1])


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
            for side in abba(plan.slices):
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
                sk_ops=sk.ops,
                raw_ops=raw.ops,
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
    sk_path = str(Path(directory) / "statekeeper.db")
    raw_path = str(Path(directory) / "raw.db")
    # The raw file gets its table from statekeeper's own schema, then is left alone.
    async with App(f"sqlite:///{raw_path}", purge_interval=None, encryption=None):
        pass
    async with AsyncExitStack() as stack:
        app = await stack.enter_async_context(
            App(f"sqlite:///{sk_path}", namespace=SK_NS, purge_interval=None, encryption=None)
        )
        raw = RawSQLite(raw_path)
        await raw.open()
        stack.push_async_callback(raw.close)
        await populate_statekeeper(app)
        await raw.populate()
        backend = app.backend
        assert isinstance(backend, SQLiteBackend)
        writer = backend.writer
        cells = await measure(
            "sqlite",
            {"sk": statekeeper_ops(app), "raw": raw.ops()},
            plan,
            lambda: (writer.jobs, writer.batches),
        )
        info = {
            "sqlite_version": sqlite3.sqlite_version,
            "directory": directory,
            "raw_update_conflicts": raw.conflicts,
        }
        return cells, info


@asynccontextmanager
async def bench_schema(base_url: str) -> AsyncIterator[str]:
    schema = f"sk_bench_{os.getpid()}"
    try:
        yield schema
    finally:
        conn = await asyncpg.connect(base_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def bench_postgres(plan: Plan, base_url: str) -> tuple[list[Cell], dict[str, Any]]:
    async with bench_schema(base_url) as schema, AsyncExitStack() as stack:
        sep = "&" if "?" in base_url else "?"
        app = await stack.enter_async_context(
            App(
                f"{base_url}{sep}schema={schema}",
                namespace=SK_NS,
                purge_interval=None,
                encryption=None,
            )
        )
        pool = await asyncpg.create_pool(
            base_url,
            min_size=PG_POOL_MIN,
            max_size=PG_POOL_MAX,
            server_settings={"search_path": schema},
        )
        stack.push_async_callback(pool.close)
        raw = RawPostgres(pool)
        await populate_statekeeper(app)
        await raw.populate()
        cells = await measure(
            "postgres", {"sk": statekeeper_ops(app), "raw": raw.ops()}, plan, None
        )
        version = await pool.fetchval("SHOW server_version")
        sync_commit = await pool.fetchval("SHOW synchronous_commit")
        info = {
            "server_version": version,
            "synchronous_commit": sync_commit,
            "schema": schema,
            "raw_update_conflicts": raw.conflicts,
        }
        return cells, info


async def postgres_reachable(base_url: str) -> str | None:
    try:
        conn = await asyncpg.connect(base_url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


# --- output -------------------------------------------------------------------------------

NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
HEADER = (
    f"{'backend':<10} {'op':<7} {'conc':>4} {'sk ops/s':>10} {'raw ops/s':>10} "
    f"{'ratio':>7} {'target':>7} {'met?':<4}  {'sk p50/p99 us':>15}  {'raw p50/p99 us':>15}"
)


def _latency(p50: float | None, p99: float | None) -> str:
    return "" if p50 is None or p99 is None else f"{p50:.0f}/{p99:.0f}"


def print_row(cell: Cell) -> None:
    print(
        f"{NAMES[cell.backend]:<10} {cell.op:<7} {cell.concurrency:>4} "
        f"{cell.sk_ops_per_s:>10.0f} {cell.raw_ops_per_s:>10.0f} {cell.ratio:>6.2f}x "
        f"{cell.target:>6.1f}x {'yes' if cell.met else 'NO':<4}  "
        f"{_latency(cell.sk_p50_us, cell.sk_p99_us):>15}  "
        f"{_latency(cell.raw_p50_us, cell.raw_p99_us):>15}",
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


def write_json(path: str, document: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short cells, under a minute")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres", "all"), default="all", help="default: all"
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL URL (default {PG_URL})")
    parser.add_argument("--seconds", type=float, help="measured seconds per side and cell")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    # A Redis cache configured in the environment would turn gets into cache hits.
    os.environ.pop(ENV_CACHE_URL, None)
    # Many short slices, alternated, so that drift on a shared machine hits both sides.
    if args.quick:
        plan = Plan(warmup=0.2, slices=6, slice_seconds=0.2)
    else:
        plan = Plan(warmup=1.0, slices=20, slice_seconds=0.25)
    if args.seconds:
        plan = Plan(plan.warmup, plan.slices, args.seconds / plan.slices)
    backends: list[Backend] = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    print(
        f"statekeeper state store vs raw driver: {plan.slices} x {plan.slice_seconds:g} s "
        f"per side and cell after {plan.warmup:g} s warm-up; Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(HEADER)
    cells: list[Cell] = []
    info: dict[str, Any] = {}
    started = time.perf_counter()
    for backend in backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="sk-state-bench-") as directory:
                found, info["sqlite"] = await bench_sqlite(plan, directory)
        else:
            problem = await postgres_reachable(args.pg_url)
            if problem is not None:
                if args.backend == "postgres":
                    print(f"PostgreSQL is not reachable: {problem}", file=sys.stderr)
                    return 2
                print(f"(PostgreSQL skipped, not reachable: {problem})")
                continue
            found, info["postgres"] = await bench_postgres(plan, args.pg_url)
        cells.extend(found)
    elapsed = time.perf_counter() - started
    for cell in cells:
        if cell.sk_commit_batch is not None and cell.op != "get":
            print(
                f"note: SQLite {cell.op} c={cell.concurrency}: statekeeper committed "
                f"{cell.sk_commit_batch:.1f} jobs per fsync"
            )
    missed = [c for c in cells if not c.met]
    print(f"{len(cells) - len(missed)}/{len(cells)} cells met their target; {elapsed:.1f} s")
    if args.json:
        document = {
            "quick": args.quick,
            "plan": asdict(plan),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "info": info,
            "cells": [asdict(c) for c in cells],
            "headline": headline(cells),
        }
        write_json(args.json, document)
    print(headline(cells))
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
