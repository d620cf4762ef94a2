"""Compare asyncpg and psycopg 3 on statekeeper's own PostgreSQL operations.

Run from a throwaway virtualenv that has ``asyncpg``, ``psycopg[binary]`` and
``psycopg-pool`` installed::

    python bench/driver_choice.py            # full run, a few minutes
    python bench/driver_choice.py --quick    # smoke run, under a minute

Everything lives in a private schema ``sk_driver_bench_<pid>`` that is created
at start and dropped (CASCADE) at the end; every connection gets it as its
``search_path`` through the startup packet, so nothing collides with other runs.

Operations (namespace/key point access on ``sk_state``):

* ``get``      one SELECT by primary key with an expiry check
* ``put``      one INSERT ... ON CONFLICT DO UPDATE ... RETURNING etag
* ``update``   a ``get`` for the current etag, then a conditional UPDATE on it
               (two round trips, counted as one op)
* ``txn5``     BEGIN; five upserts; COMMIT (seven round trips)

Each op is measured at concurrency 1 (one dedicated connection) and at
concurrency 32 (32 asyncio tasks sharing one pool; latency includes waiting for
a pooled connection). Each measurement is repeated and the better run kept.
Each driver is used the way it is fastest (see ``bench()``); the
"settings" section shows what the defaults and alternatives cost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg
import psycopg
import psycopg_pool

NAMESPACE = "bench"
N_KEYS = 1000
KEYS: list[str] = [f"user:{i:05d}" for i in range(N_KEYS)]
TXN_SIZE = 5
FAR_FUTURE = 4.0e9  # an expires_at that never passes during the run

DDL = """
CREATE TABLE sk_state (
  namespace  TEXT NOT NULL,
  key        TEXT COLLATE "C" NOT NULL,
  value      BYTEA NOT NULL,
  etag       TEXT NOT NULL,
  expires_at DOUBLE PRECISION,
  key_id     TEXT,
  PRIMARY KEY (namespace, key)
)
"""

# The same statements in each driver's placeholder style.
GET_PG = (
    "SELECT value, etag, expires_at, key_id FROM sk_state"
    " WHERE namespace=$1 AND key=$2 AND (expires_at IS NULL OR expires_at > $3)"
)
PUT_PG = (
    "INSERT INTO sk_state(namespace,key,value,etag,expires_at,key_id)"
    " VALUES($1,$2,$3,$4,$5,$6)"
    " ON CONFLICT (namespace,key) DO UPDATE SET value=EXCLUDED.value,"
    " etag=EXCLUDED.etag, expires_at=EXCLUDED.expires_at, key_id=EXCLUDED.key_id"
    " RETURNING etag"
)
UPDATE_PG = (
    "UPDATE sk_state SET value=$3, etag=$4, expires_at=$5, key_id=$6"
    " WHERE namespace=$1 AND key=$2 AND etag=$7"
    " AND (expires_at IS NULL OR expires_at > $8) RETURNING etag"
)


def to_pyformat(sql: str) -> tuple[str, tuple[int, ...]]:
    """Turn ``$n`` placeholders into psycopg's ``%s`` ones.

    Returns the new SQL and, for each ``%s`` in order, the 0-based index of the
    ``$n`` argument it stands for (UPDATE uses its arguments out of order).
    """
    order = tuple(int(m) - 1 for m in re.findall(r"\$(\d+)", sql))
    return re.sub(r"\$\d+", "%s", sql), order


GET_PY, GET_ORDER = to_pyformat(GET_PG)
PUT_PY, PUT_ORDER = to_pyformat(PUT_PG)
UPDATE_PY, UPDATE_ORDER = to_pyformat(UPDATE_PG)


# The psycopg adapter passes its arguments already in this order.
assert GET_ORDER == (0, 1, 2) and PUT_ORDER == (0, 1, 2, 3, 4, 5)
assert UPDATE_ORDER == (2, 3, 4, 5, 0, 1, 6, 7)


def make_value(rng: random.Random) -> bytes:
    """A JSON document of about 200 bytes."""
    doc = {
        "user": rng.randrange(10**9),
        "name": "Ada Lovelace",
        "email": "ada@example.invalid",
        "plan": "pro",
        "seats": rng.randrange(100),
        "tags": ["beta", "eu-west", "annual"],
        "updated": round(time.time(), 3),
        "flags": {"dark": True, "digest": False, "tz": "Europe/London"},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def new_etag(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


Row = tuple[str, bytes, str, float | None, str | None]  # key, value, etag, exp, key_id


def make_row(rng: random.Random, key: str) -> Row:
    exp = None if rng.random() < 0.5 else time.time() + 3600.0
    return (key, make_value(rng), new_etag(rng), exp, "k1")


# --------------------------------------------------------------------------
# Driver adapters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnParams:
    host: str
    port: int
    user: str
    dbname: str
    schema: str


class Backend(Protocol):
    label: str

    async def connect(self) -> Any: ...
    async def close(self, conn: Any) -> None: ...
    async def open_pool(self, size: int) -> Any: ...
    async def close_pool(self, pool: Any) -> None: ...
    def acquire(self, pool: Any) -> AbstractAsyncContextManager[Any]: ...

    async def get(self, conn: Any, key: str, now: float) -> tuple[Any, ...] | None: ...
    async def put(self, conn: Any, row: Row) -> str: ...
    async def update(self, conn: Any, row: Row, expected: str, now: float) -> str | None: ...
    async def txn5(self, conn: Any, rows: Sequence[Row]) -> None: ...
    async def txn5_batched(self, conn: Any, rows: Sequence[Row]) -> None: ...


async def _noop_reset(conn: asyncpg.Connection) -> None:
    """Pool reset for statekeeper: it never LISTENs, SETs, locks or opens cursors.

    asyncpg still rolls back an unfinished transaction before calling this.
    """


class AsyncpgBackend:
    def __init__(
        self, cp: ConnParams, *, statement_cache_size: int = 100, cheap_reset: bool = True
    ) -> None:
        self.cp = cp
        self.statement_cache_size = statement_cache_size
        self.cheap_reset = cheap_reset
        parts = []
        if statement_cache_size != 100:
            parts.append(f"statement_cache_size={statement_cache_size}")
        if not cheap_reset:
            parts.append("default pool reset")
        self.label = "asyncpg" + (f" ({', '.join(parts)})" if parts else "")

    def _kwargs(self) -> dict[str, Any]:
        return {
            "host": self.cp.host,
            "port": self.cp.port,
            "user": self.cp.user,
            "database": self.cp.dbname,
            "statement_cache_size": self.statement_cache_size,
            "server_settings": {"search_path": self.cp.schema},
        }

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(**self._kwargs())

    async def close(self, conn: asyncpg.Connection) -> None:
        await conn.close()

    async def open_pool(self, size: int) -> asyncpg.Pool:
        reset = _noop_reset if self.cheap_reset else None
        return await asyncpg.create_pool(
            min_size=size, max_size=size, reset=reset, **self._kwargs()
        )

    async def close_pool(self, pool: asyncpg.Pool) -> None:
        await pool.close()

    def acquire(self, pool: asyncpg.Pool) -> AbstractAsyncContextManager[Any]:
        return pool.acquire()

    async def get(self, conn: asyncpg.Connection, key: str, now: float) -> Any:
        return await conn.fetchrow(GET_PG, NAMESPACE, key, now)

    async def put(self, conn: asyncpg.Connection, row: Row) -> str:
        key, value, etag, exp, key_id = row
        etag_out: str = await conn.fetchval(PUT_PG, NAMESPACE, key, value, etag, exp, key_id)
        return etag_out

    async def update(
        self, conn: asyncpg.Connection, row: Row, expected: str, now: float
    ) -> str | None:
        key, value, etag, exp, key_id = row
        return await conn.fetchval(  # type: ignore[no-any-return]
            UPDATE_PG, NAMESPACE, key, value, etag, exp, key_id, expected, now
        )

    async def txn5(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> None:
        async with conn.transaction():
            for key, value, etag, exp, key_id in rows:
                await conn.fetchval(PUT_PG, NAMESPACE, key, value, etag, exp, key_id)

    async def txn5_batched(self, conn: asyncpg.Connection, rows: Sequence[Row]) -> None:
        # executemany pipelines the five executions (RETURNING rows are dropped).
        async with conn.transaction():
            await conn.executemany(
                PUT_PG, [(NAMESPACE, k, v, e, x, kid) for k, v, e, x, kid in rows]
            )


class PsycopgBackend:
    def __init__(
        self, cp: ConnParams, *, prepare_threshold: int | None = 0, binary: bool = True
    ) -> None:
        self.cp = cp
        self.prepare_threshold = prepare_threshold
        self.binary = binary
        self.label = f"psycopg (prepare_threshold={prepare_threshold}, " + (
            "binary)" if binary else "text)"
        )
        self.conninfo = psycopg.conninfo.make_conninfo(
            host=cp.host,
            port=cp.port,
            user=cp.user,
            dbname=cp.dbname,
            options=f"-c search_path={cp.schema}",
        )

    def _kwargs(self) -> dict[str, Any]:
        return {"autocommit": True, "prepare_threshold": self.prepare_threshold}

    async def connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.conninfo, **self._kwargs())

    async def close(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.close()

    async def open_pool(self, size: int) -> psycopg_pool.AsyncConnectionPool:
        pool: psycopg_pool.AsyncConnectionPool = psycopg_pool.AsyncConnectionPool(
            self.conninfo, min_size=size, max_size=size, kwargs=self._kwargs(), open=False
        )
        await pool.open(wait=True)
        return pool

    async def close_pool(self, pool: psycopg_pool.AsyncConnectionPool) -> None:
        await pool.close()

    def acquire(self, pool: psycopg_pool.AsyncConnectionPool) -> AbstractAsyncContextManager[Any]:
        return pool.connection()

    async def _one(
        self, conn: psycopg.AsyncConnection[Any], sql: str, params: tuple[Any, ...]
    ) -> tuple[Any, ...] | None:
        cur = conn.cursor(binary=self.binary)
        await cur.execute(sql, params)
        return await cur.fetchone()

    async def get(self, conn: psycopg.AsyncConnection[Any], key: str, now: float) -> Any:
        return await self._one(conn, GET_PY, (NAMESPACE, key, now))

    async def put(self, conn: psycopg.AsyncConnection[Any], row: Row) -> str:
        key, value, etag, exp, key_id = row
        res = await self._one(conn, PUT_PY, (NAMESPACE, key, value, etag, exp, key_id))
        assert res is not None
        return res[0]  # type: ignore[no-any-return]

    async def update(
        self, conn: psycopg.AsyncConnection[Any], row: Row, expected: str, now: float
    ) -> str | None:
        key, value, etag, exp, key_id = row
        res = await self._one(
            conn, UPDATE_PY, (value, etag, exp, key_id, NAMESPACE, key, expected, now)
        )
        return None if res is None else res[0]

    async def txn5(self, conn: psycopg.AsyncConnection[Any], rows: Sequence[Row]) -> None:
        async with conn.transaction():
            for key, value, etag, exp, key_id in rows:
                await self._one(conn, PUT_PY, (NAMESPACE, key, value, etag, exp, key_id))

    async def txn5_batched(self, conn: psycopg.AsyncConnection[Any], rows: Sequence[Row]) -> None:
        # Pipeline mode: BEGIN, five upserts and COMMIT leave without waiting
        # and their results come back together: one round trip. Plain
        # BEGIN/COMMIT statements, because conn.transaction() inside a
        # pipeline syncs on entry and exit (about four round trips instead).
        curs = []
        async with conn.pipeline():
            await conn.execute("BEGIN")
            for key, value, etag, exp, key_id in rows:
                cur = conn.cursor(binary=self.binary)
                await cur.execute(PUT_PY, (NAMESPACE, key, value, etag, exp, key_id))
                curs.append(cur)
            await conn.execute("COMMIT")
        for cur in curs:
            await cur.fetchone()


# --------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------

Op = Callable[[Backend, Any, random.Random], Awaitable[None]]


async def op_get(b: Backend, conn: Any, rng: random.Random) -> None:
    await b.get(conn, rng.choice(KEYS), time.time())


async def op_put(b: Backend, conn: Any, rng: random.Random) -> None:
    await b.put(conn, make_row(rng, rng.choice(KEYS)))


async def op_update(b: Backend, conn: Any, rng: random.Random) -> None:
    key = rng.choice(KEYS)
    now = time.time()
    cur = await b.get(conn, key, now)
    if cur is None:  # cannot happen with the preloaded data; keep the op honest
        raise RuntimeError(f"key {key} missing")
    # A concurrent writer may win the race; a None result is a normal conflict.
    await b.update(conn, make_row(rng, key), cur[1], now)


def _txn_rows(rng: random.Random) -> list[Row]:
    # Sorted keys: concurrent transactions lock rows in one order, no deadlocks.
    return [make_row(rng, k) for k in sorted(rng.sample(KEYS, TXN_SIZE))]


async def op_txn5(b: Backend, conn: Any, rng: random.Random) -> None:
    await b.txn5(conn, _txn_rows(rng))


async def op_txn5_batched(b: Backend, conn: Any, rng: random.Random) -> None:
    await b.txn5_batched(conn, _txn_rows(rng))


MAIN_OPS: dict[str, Op] = {
    "get": op_get,
    "put": op_put,
    "update": op_update,
    "txn5": op_txn5,
}


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    ops_per_s: float
    p50_us: float
    p99_us: float
    cpu_us: float  # this process's CPU time per op: driver + pool + asyncio cost
    n: int


def summarize(lat_ns: list[int], elapsed_s: float, cpu_s: float) -> Result:
    lat_ns.sort()
    n = len(lat_ns)

    def pct(p: float) -> float:
        return lat_ns[min(n - 1, int(p * n))] / 1000.0

    return Result(n / elapsed_s, pct(0.50), pct(0.99), cpu_s / n * 1e6, n)


def better(a: Result | None, b: Result) -> Result:
    return b if a is None or b.ops_per_s > a.ops_per_s else a


async def run_single(b: Backend, conn: Any, op: Op, duration: float, seed: int) -> Result:
    rng = random.Random(seed)
    clock = time.perf_counter_ns
    warm_end = time.perf_counter() + min(0.3, duration * 0.2)
    while time.perf_counter() < warm_end:
        await op(b, conn, rng)
    lat: list[int] = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    end = start + duration
    while True:
        t0 = clock()
        await op(b, conn, rng)
        lat.append(clock() - t0)
        if time.perf_counter() >= end:
            break
    elapsed = time.perf_counter() - start
    return summarize(lat, elapsed, time.process_time() - cpu0)


async def run_pooled(
    b: Backend, pool: Any, op: Op, duration: float, tasks: int, seed: int
) -> Result:
    clock = time.perf_counter_ns
    lat: list[int] = []
    phase = {"record": False, "stop": False}

    async def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        while not phase["stop"]:
            t0 = clock()
            async with b.acquire(pool) as conn:
                await op(b, conn, rng)
            if phase["record"] and not phase["stop"]:
                lat.append(clock() - t0)

    workers = [asyncio.create_task(worker(i)) for i in range(tasks)]
    await asyncio.sleep(min(0.3, duration * 0.2))  # warm-up
    phase["record"] = True
    cpu0 = time.process_time()
    start = time.perf_counter()
    await asyncio.sleep(duration)
    phase["stop"] = True
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    await asyncio.gather(*workers)
    return summarize(lat, elapsed, cpu)


async def run_acquire(b: Backend, pool: Any, duration: float) -> Result:
    """Cost of one uncontended acquire + release, no query."""
    clock = time.perf_counter_ns
    lat: list[int] = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    end = start + duration
    while time.perf_counter() < end:
        t0 = clock()
        async with b.acquire(pool):
            pass
        lat.append(clock() - t0)
    elapsed = time.perf_counter() - start
    return summarize(lat, elapsed, time.process_time() - cpu0)


# --------------------------------------------------------------------------
# Setup / teardown
# --------------------------------------------------------------------------


async def setup_schema(cp: ConnParams) -> None:
    conn = await asyncpg.connect(host=cp.host, port=cp.port, user=cp.user, database=cp.dbname)
    try:
        await conn.execute(f"CREATE SCHEMA {cp.schema}")
        await conn.execute(f"SET search_path TO {cp.schema}")
        await conn.execute(DDL)
        rng = random.Random(7)
        rows = []
        for i, key in enumerate(KEYS):
            exp = None if i % 2 else FAR_FUTURE
            rows.append((NAMESPACE, key, make_value(rng), new_etag(rng), exp, "k1"))
        await conn.executemany(PUT_PG, rows)
        await conn.execute("VACUUM ANALYZE sk_state")
    finally:
        await conn.close()


async def drop_schema(cp: ConnParams) -> None:
    conn = await asyncpg.connect(host=cp.host, port=cp.port, user=cp.user, database=cp.dbname)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {cp.schema} CASCADE")
    finally:
        await conn.close()


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def fmt(r: Result) -> str:
    return f"{r.ops_per_s:8.0f} {r.p50_us:7.0f} {r.p99_us:7.0f} {r.cpu_us:6.0f}"


SUB_HEAD = f"{'ops/s':>8} {'p50 µs':>7} {'p99 µs':>7} {'cpu µs':>6}"


def print_compare(
    title: str,
    names: tuple[str, str],
    rows: list[tuple[str, int, Result, Result]],
) -> list[float]:
    print(f"\n{title}")
    head = f"{'op':<14} {'conc':>4} | "
    width = len(SUB_HEAD)
    print(f"{'':<14} {'':>4} | {names[0]:^{width}} | {names[1]:^{width}} |")
    print(f"{head}{SUB_HEAD} | {SUB_HEAD} | {'ratio':>6}")
    print("-" * (33 + 2 * width))
    ratios = []
    for op, conc, a, b in rows:  # ratio = first driver's ops/s over the second's
        ratio = a.ops_per_s / b.ops_per_s
        ratios.append(ratio)
        print(f"{op:<14} {conc:>4} | {fmt(a)} | {fmt(b)} | {ratio:5.2f}x")
    return ratios


def geomean(xs: Sequence[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def print_single(title: str, rows: list[tuple[str, Result]]) -> None:
    print(f"\n{title}")
    print(f"{'configuration':<58} {SUB_HEAD}")
    print("-" * (59 + len(SUB_HEAD)))
    for label, r in rows:
        print(f"{label:<58} {fmt(r)}")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


T = TypeVar("T")


def rotated(items: Sequence[T], rep: int) -> list[T]:
    """The same items, starting at a different one on every repeat."""
    k = rep % len(items)
    return [*items[k:], *items[:k]]


class Settler:
    """Starts every measurement from the same table state.

    Without this, whichever run follows a write-heavy one pays for the dead rows
    and background work that the writes left behind.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def __call__(self) -> None:
        await self.conn.execute("VACUUM sk_state")
        await asyncio.sleep(0.1)


Key = tuple[str, int, str]  # (op name, concurrency, backend label)


async def measure_main(
    args: argparse.Namespace, backends: list[Backend], settle: Settler
) -> tuple[dict[Key, Result], dict[str, Result]]:
    """Every op at concurrency 1 and N for each backend, plus pool acquire cost."""
    dur, reps, conc = args.duration, args.repeats, args.concurrency
    cases: list[tuple[str, Op]] = list(MAIN_OPS.items())
    if not args.skip_extras:
        cases.append(("txn5 batched", op_txn5_batched))
    conns = {b.label: await b.connect() for b in backends}
    pools = {b.label: await b.open_pool(args.pool_size) for b in backends}
    best: dict[Key, Result] = {}
    acquire: dict[str, Result] = {}
    try:
        for rep in range(reps):
            for name, op in cases:
                for c in (1, conc):
                    for b in rotated(backends, rep):  # outside drift hits both alike
                        await settle()
                        if c == 1:
                            r = await run_single(b, conns[b.label], op, dur, seed=rep)
                        else:
                            r = await run_pooled(b, pools[b.label], op, dur, c, seed=rep)
                        key = (name, c, b.label)
                        best[key] = better(best.get(key), r)
                        print(
                            f"  rep {rep + 1} {name:<12} c={c:<3} {b.label:<40}"
                            f" {r.ops_per_s:8.0f} ops/s",
                            file=sys.stderr,
                        )
            for b in rotated(backends, rep):
                r = await run_acquire(b, pools[b.label], dur)
                acquire[b.label] = better(acquire.get(b.label), r)
    finally:
        for b in backends:
            await b.close_pool(pools[b.label])
            await b.close(conns[b.label])
    return best, acquire


async def measure_settings(
    args: argparse.Namespace, cp: ConnParams, settle: Settler
) -> list[tuple[str, Result]]:
    """What each driver's defaults and alternatives cost, on the get op."""
    dur, reps, conc = args.duration, args.repeats, args.concurrency
    single_variants: list[Backend] = [
        AsyncpgBackend(cp),
        AsyncpgBackend(cp, statement_cache_size=0),
        PsycopgBackend(cp, prepare_threshold=0, binary=True),
        PsycopgBackend(cp, prepare_threshold=0, binary=False),
        PsycopgBackend(cp, prepare_threshold=5, binary=False),  # psycopg's default
        PsycopgBackend(cp, prepare_threshold=None, binary=True),
        PsycopgBackend(cp, prepare_threshold=None, binary=False),
    ]
    pool_variants: list[Backend] = [
        AsyncpgBackend(cp),
        AsyncpgBackend(cp, cheap_reset=False),
        PsycopgBackend(cp),
    ]
    # Each variant has its own connection or pool; repeats go round all of them.
    vconns = [await b.connect() for b in single_variants]
    vpools = [await b.open_pool(args.pool_size) for b in pool_variants]
    best: dict[str, Result] = {}

    def keep(label: str, r: Result) -> None:
        best[label] = better(best.get(label), r)

    try:
        for rep in range(reps):
            for b, conn in rotated(list(zip(single_variants, vconns, strict=True)), rep):
                await settle()
                keep(f"get c=1  {b.label}", await run_single(b, conn, op_get, dur, rep))
            for b, pool in rotated(list(zip(pool_variants, vpools, strict=True)), rep):
                await settle()
                keep(f"acquire+release c=1  {b.label}", await run_acquire(b, pool, dur))
                r = await run_pooled(b, pool, op_get, dur, conc, rep)
                keep(f"get c={conc} pool  {b.label}", r)
    finally:
        for b, conn in zip(single_variants, vconns, strict=True):
            await b.close(conn)
        for b, pool in zip(pool_variants, vpools, strict=True):
            await b.close_pool(pool)
    order = [f"get c=1  {b.label}" for b in single_variants]
    for b in pool_variants:
        order += [f"acquire+release c=1  {b.label}", f"get c={conc} pool  {b.label}"]
    return [(label, best[label]) for label in order]


async def bench(args: argparse.Namespace, cp: ConnParams) -> None:
    load_start = os.getloadavg()[0]
    # The main comparison uses each driver the way it is fastest.
    apg = AsyncpgBackend(cp)  # statement cache on (default), no-op pool reset
    pyc = PsycopgBackend(cp, prepare_threshold=0, binary=True)
    admin = await asyncpg.connect(
        host=cp.host,
        port=cp.port,
        user=cp.user,
        database=cp.dbname,
        server_settings={"search_path": cp.schema},
    )
    try:
        settle = Settler(admin)
        best, acquire = await measure_main(args, [apg, pyc], settle)
        settings = [] if args.skip_extras else await measure_settings(args, cp, settle)
    finally:
        await admin.close()

    conc = args.concurrency
    print(
        f"\nasyncpg {asyncpg.__version__}, psycopg {psycopg.__version__}"
        f" (libpq {psycopg.pq.version()}, impl {psycopg.pq.__impl__}),"
        f" psycopg_pool {psycopg_pool.__version__}, Python {sys.version.split()[0]},"
        f" {os.cpu_count()} CPUs"
    )
    print(
        f"duration {args.duration:g}s x {args.repeats} repeats (best kept),"
        f" pool size {args.pool_size}, concurrency 1 and {conc};"
        f" 1-min load average at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}"
    )

    def pair(name: str, c: int) -> tuple[str, int, Result, Result]:
        return (name, c, best[(name, c, apg.label)], best[(name, c, pyc.label)])

    rows = [pair(name, c) for name in MAIN_OPS for c in (1, conc)]
    ratios = print_compare(
        "Main comparison (asyncpg: defaults + no-op pool reset;"
        " psycopg: prepare_threshold=0, binary)",
        ("asyncpg", "psycopg"),
        rows,
    )
    if not args.skip_extras:
        print_compare(
            "Not in the headline: txn5 batched (asyncpg executemany / psycopg pipeline mode)",
            ("asyncpg", "psycopg"),
            [pair("txn5 batched", c) for c in (1, conc)],
        )
    print_single("Pool acquire + release, uncontended, no query", list(acquire.items()))
    if settings:
        print_single("Settings (what defaults and alternatives cost)", settings)

    print(
        "\nratio = asyncpg ops/s / psycopg ops/s; cpu µs = this client process's CPU"
        " time per op\n(driver + pool + event loop), which other load on the machine"
        " disturbs far less than ops/s."
    )
    cpu_ratio = geomean([b.cpu_us / a.cpu_us for _, _, a, b in rows])
    print(f"psycopg/asyncpg client CPU per op (geometric mean over ops): {cpu_ratio:.2f}x")
    print(f"asyncpg/psycopg throughput ratio (geometric mean over ops): {geomean(ratios):.2f}x")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5432)
    p.add_argument("--user", default="postgres")
    p.add_argument("--dbname", default="test")
    p.add_argument("--duration", type=float, default=2.5, help="seconds per measurement")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--pool-size", type=int, default=12)
    p.add_argument("--skip-extras", action="store_true", help="only the headline table")
    p.add_argument("--quick", action="store_true", help="short smoke run (< 1 minute)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration = 0.25
    schema = f"sk_driver_bench_{os.getpid()}"
    cp = ConnParams(args.host, args.port, args.user, args.dbname, schema)

    async def run() -> None:
        await setup_schema(cp)
        try:
            await bench(args, cp)
        finally:
            await drop_schema(cp)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
