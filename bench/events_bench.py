"""Event store: statekeeper's ``app.events`` against the eventsourcing library's own
recorders, on SQLite and PostgreSQL, in one run.

    python bench/events_bench.py --quick              # under a minute
    python bench/events_bench.py                      # longer slices; 1k vs 100k events
    python bench/events_bench.py --backend sqlite --json results.json

The sides, both in this process:

* statekeeper: ``App(url, namespace="evbench", purge_interval=None, encryption=None)``;
  ``app.events.append(stream, [EventData("Placed", data)], expected_version=v)`` and
  ``app.events.read_stream(stream)`` (its events' data decoded from JSON).
* eventsourcing 9.5.6 (not a dependency of the project): its application recorders on
  its datastores, its defaults otherwise (originator ids are UUIDs):
  ``SQLiteApplicationRecorder(SQLiteDatastore(path))`` and
  ``PostgresApplicationRecorder(PostgresDatastore(..., schema=..., pool_size=8))``,
  tables made by ``create_table()``; ``insert_events([StoredEvent(id, version, topic,
  state)])`` and ``select_events(id)``. It is synchronous and is called directly on
  this thread (no hop to another). ``state`` is the same compact JSON statekeeper
  stores, encoded for each event on the way in and decoded on the way out, as
  statekeeper does inside its API, so that both hand their caller the same thing.

Operations; each side appends to streams of its own and knows their versions:

1. single-event appends/s, one client: one event to an existing stream (16 in turn),
   with statekeeper's ``expected_version`` the stream's version, and eventsourcing's
   ``originator_version`` the next one (its primary key refuses a repeat);
2. batch-of-50 appends/s (and events/s): 50 events to an existing stream in one call;
3. stream reads/s: a whole 50-event stream (16 in turn), its events decoded;
4. 8 concurrent single-event appends/s (information): statekeeper from 8 asyncio tasks
   (on SQLite its writer thread commits the appends waiting together, in one
   transaction; on PostgreSQL its asyncpg pool of 2-16), eventsourcing from 8 threads
   (its SQLite pool hands out one writer connection at a time; on PostgreSQL a
   pool of 8 connections, each insert taking its table's EXCLUSIVE lock); each task or
   thread appends to 16 streams of its own.

Durability alike: SQLite files in one temporary directory, both in WAL mode with
``synchronous=FULL`` (statekeeper's default; eventsourcing turns WAL on and leaves
``synchronous`` at SQLite's default: the run reads both from the sides' own
connections and prints them). PostgreSQL: the same server and database, statekeeper
in schema ``sk_evbench_<pid>``, eventsourcing in ``sk_evbench_<pid>_es``, dropped at
the end. Both keep the global order gap-free (statekeeper locks its log's row,
eventsourcing its table). After a warm-up, slices of each operation alternate between
the sides (a, b, b, a, ...), so that drift on a shared machine falls on both. On SQLite,
the run then counts the WAL pages each side writes per append (50 single appends and 10
batches from an emptied WAL): what each commit writes whole and fsyncs.

5. Flat cost, statekeeper alone: one event appended to one of 20 streams of 50 events
   (in turn) and then that whole stream read, in a database holding 1k events and in
   one holding 20k (``--quick``) or 100k, the others in streams of 50 in the same
   namespace. Each slice runs the same number of operations in each database, in
   turns, so that the streams read grow alike. Ratio: the big one's rate over the
   small one's.

eventsourcing is not a dependency of the project: when it is not importable, this script
installs it (``eventsourcing[postgres]==9.5.6``) into a virtual environment of its own
outside the repository (``--peer-venv``) and runs itself again there; ``--no-peer``
measures statekeeper alone. The last line is the headline: the smallest ratio,
statekeeper over eventsourcing, of single-event appends, batch-of-50 appends and stream
reads on both backends.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import asyncpg

# A sibling module: ``python bench/events_bench.py`` puts bench/ on sys.path.
import benchlib
from benchlib import NAMES, Backend, Plan, Tally
from statekeeper import App
from statekeeper.constants import ENV_CACHE_URL
from statekeeper.events.model import NO_STREAM, EventData
from statekeeper.events.store import EventStore

Cell = Literal["single", "batch", "read", "concurrent"]
CELLS: tuple[Cell, ...] = ("single", "batch", "read", "concurrent")
PEER_PACKAGE = "eventsourcing[postgres]==9.5.6"
DEFAULT_VENV = benchlib.PEER_HOME / "eventsourcing-venv"
NAMESPACE = "evbench"
STREAMS = 16  # per worker and operation
BATCH = 50  # events per batch append
READ_LENGTH = 50  # events per stream read
CONCURRENCY = 8
TARGET = 2.0  # statekeeper's ops/s over eventsourcing's
FLAT_TARGET = 0.8  # append+read/s with the big store over the small one's
PROBES = 20  # streams of the flat-cost check, READ_LENGTH events each at the start
FILL_PER_COMMIT = 20  # streams of READ_LENGTH events per commit while filling
EVENT_TYPE = "Placed"
TOPIC = "bench.events:Placed"  # eventsourcing's topic of the same event
COMPACT = (",", ":")  # the JSON statekeeper writes: the same bytes on both sides
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}

# A ~200-byte JSON document, the data of every event.
DATA: dict[str, Any] = {
    "order": "ord-000042",
    "customer": "ada@example.com",
    "items": [{"sku": "AE-1843", "qty": 1}, {"sku": "BE-1822", "qty": 2}],
    "total": 184.3,
    "currency": "GBP",
    "note": "the engine weaves algebraic patterns",
}
ONE = [EventData(EVENT_TYPE, DATA)]
FIFTY = ONE * BATCH  # each gets its own id when appended

QUICK = Plan(warmup=0.2, slices=6, slice_seconds=0.25)
FULL = Plan(warmup=1.0, slices=20, slice_seconds=0.5)


@dataclass(frozen=True)
class Sizes:
    """The flat-cost check: events in the small and the big store, operations per slice."""

    small: int
    big: int
    slices: int  # per size
    ops: int  # append+read operations per slice


# Few enough operations that the streams read (50 events at the start) stay short.
QUICK_SIZES = Sizes(small=1_000, big=20_000, slices=6, ops=50)
FULL_SIZES = Sizes(small=1_000, big=100_000, slices=10, ops=100)


# --- running an operation for a while ---------------------------------------------------


async def timed(op: Callable[[], Awaitable[None]], seconds: float) -> Tally:
    """``op`` one call after another for ``seconds``, each call timed."""
    clock = time.perf_counter_ns
    latencies: list[int] = []
    start = clock()
    deadline = start + int(seconds * 1e9)
    while True:
        t0 = clock()
        await op()
        t1 = clock()
        latencies.append(t1 - t0)
        if t1 >= deadline:
            break
    return Tally(len(latencies), (clock() - start) / 1e9, latencies)


def timed_sync(op: Callable[[], None], seconds: float) -> Tally:
    """The same for a synchronous ``op``, on this thread."""
    clock = time.perf_counter_ns
    latencies: list[int] = []
    start = clock()
    deadline = start + int(seconds * 1e9)
    while True:
        t0 = clock()
        op()
        t1 = clock()
        latencies.append(t1 - t0)
        if t1 >= deadline:
            break
    return Tally(len(latencies), (clock() - start) / 1e9, latencies)


async def in_tasks(op: Callable[[int], Awaitable[None]], seconds: float) -> Tally:
    """``op(worker)`` from CONCURRENCY asyncio tasks for ``seconds``."""
    clock = time.perf_counter
    deadline = clock() + seconds
    counts = [0] * CONCURRENCY

    async def worker(index: int) -> None:
        while clock() < deadline:
            await op(index)
            counts[index] += 1

    start = clock()
    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))
    return Tally(sum(counts), clock() - start)


async def in_threads(
    op: Callable[[int], None], seconds: float, executor: ThreadPoolExecutor
) -> Tally:
    """``op(worker)`` from CONCURRENCY threads for ``seconds``."""
    clock = time.perf_counter
    deadline = clock() + seconds
    counts = [0] * CONCURRENCY

    def worker(index: int) -> None:
        while clock() < deadline:
            op(index)
            counts[index] += 1

    loop = asyncio.get_running_loop()
    start = clock()
    await asyncio.gather(*(loop.run_in_executor(executor, worker, i) for i in range(CONCURRENCY)))
    return Tally(sum(counts), clock() - start)


class Turns:
    """Streams taken in turn, with the version each is at."""

    def __init__(self, names: list[Any], version: int) -> None:
        self.names = names
        self.versions = [version] * len(names)
        self.at = 0

    def next(self) -> tuple[int, Any, int]:
        index = self.at % len(self.names)
        self.at += 1
        return index, self.names[index], self.versions[index]


# --- statekeeper ----------------------------------------------------------------------------


async def create_streams(events: EventStore, names: list[str], length: int) -> None:
    """Streams of ``length`` events each, FILL_PER_COMMIT streams a commit."""
    batch = ONE * length
    for start in range(0, len(names), FILL_PER_COMMIT):
        await events.commit(
            [events.intent(name, batch, expected_version=NO_STREAM)
             for name in names[start : start + FILL_PER_COMMIT]]
        )  # fmt: skip


class StatekeeperSide:
    name = "statekeeper"

    def __init__(self, app: App) -> None:
        self.app = app
        self.events = app.events
        self.singles = [
            Turns([f"order-single{w}_{i}" for i in range(STREAMS)], 1) for w in range(CONCURRENCY)
        ]
        self.batches = Turns([f"order-batch_{i}" for i in range(STREAMS)], 1)
        self.reads = Turns([f"order-read_{i}" for i in range(STREAMS)], READ_LENGTH)

    async def prepare(self) -> None:
        for turns in self.singles:
            await create_streams(self.events, turns.names, 1)
        await create_streams(self.events, self.batches.names, 1)
        await create_streams(self.events, self.reads.names, READ_LENGTH)

    async def single(self, worker: int) -> None:
        turns = self.singles[worker]
        index, name, version = turns.next()
        done = await self.events.append(name, ONE, expected_version=version)
        turns.versions[index] = done.version

    async def batch(self) -> None:
        index, name, version = self.batches.next()
        done = await self.events.append(name, FIFTY, expected_version=version)
        self.batches.versions[index] = done.version

    async def read(self) -> None:
        _, name, _ = self.reads.next()
        found = await self.events.read_stream(name)
        if len(found) != READ_LENGTH or found[-1].data != DATA:
            raise RuntimeError(f"statekeeper read {len(found)} events of {name!r}")

    async def run(self, cell: Cell, seconds: float) -> Tally:
        if cell == "single":
            return await timed(lambda: self.single(0), seconds)
        if cell == "batch":
            return await timed(self.batch, seconds)
        if cell == "read":
            return await timed(self.read, seconds)
        return await in_tasks(self.single, seconds)

    async def settings(self) -> dict[str, Any]:
        backend: Any = self.app.backend
        if backend.dialect != "sqlite":
            return {"driver": "asyncpg", "pool": f"{benchlib.PG_POOL_MIN}-{benchlib.PG_POOL_MAX}"}
        found: dict[str, Any] = await backend.writer.run(sqlite_settings, "cannot read settings")
        return found


def sqlite_settings(conn: Any) -> dict[str, Any]:
    """journal_mode and synchronous of a sqlite3 connection (or a cursor of one)."""
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
    return {"journal_mode": journal, "synchronous": SYNCHRONOUS.get(synchronous, synchronous)}


# --- eventsourcing ----------------------------------------------------------------------------


def encoded(data: Any) -> bytes:
    return json.dumps(data, separators=COMPACT, ensure_ascii=False).encode("utf-8")


class EventsourcingSide:
    """eventsourcing's application recorder, called as a synchronous program does."""

    name = "eventsourcing"

    def __init__(self, datastore: Any, recorder: Any, executor: ThreadPoolExecutor) -> None:
        persistence: Any = importlib.import_module("eventsourcing.persistence")
        self.stored_event = persistence.StoredEvent
        self.datastore = datastore
        self.recorder = recorder
        self.executor = executor
        self.singles = [
            Turns([uuid.uuid4() for _ in range(STREAMS)], 1) for _ in range(CONCURRENCY)
        ]
        self.batches = Turns([uuid.uuid4() for _ in range(STREAMS)], 1)
        self.reads = Turns([uuid.uuid4() for _ in range(STREAMS)], READ_LENGTH)

    def _events(self, id: uuid.UUID, after: int, count: int) -> list[Any]:
        new = self.stored_event
        return [new(id, after + n, TOPIC, encoded(DATA)) for n in range(1, count + 1)]

    def prepare(self) -> None:
        self.recorder.create_table()
        for turns in [*self.singles, self.batches, self.reads]:
            for id, version in zip(turns.names, turns.versions, strict=True):
                self.recorder.insert_events(self._events(id, 0, version))

    def single(self, worker: int) -> None:
        turns = self.singles[worker]
        index, id, version = turns.next()
        self.recorder.insert_events(self._events(id, version, 1))
        turns.versions[index] = version + 1

    def batch(self) -> None:
        index, id, version = self.batches.next()
        self.recorder.insert_events(self._events(id, version, BATCH))
        self.batches.versions[index] = version + BATCH

    def read(self) -> None:
        _, id, _ = self.reads.next()
        found = [json.loads(e.state.decode("utf-8")) for e in self.recorder.select_events(id)]
        if len(found) != READ_LENGTH or found[-1] != DATA:
            raise RuntimeError(f"eventsourcing read {len(found)} events of {id}")

    async def run(self, cell: Cell, seconds: float) -> Tally:
        if cell == "single":
            return timed_sync(lambda: self.single(0), seconds)
        if cell == "batch":
            return timed_sync(self.batch, seconds)
        if cell == "read":
            return timed_sync(self.read, seconds)
        return await in_threads(self.single, seconds, self.executor)

    def close(self) -> None:
        self.datastore.close()
        self.executor.shutdown(wait=True)


def eventsourcing_sqlite(path: str) -> EventsourcingSide:
    sqlite: Any = importlib.import_module("eventsourcing.sqlite")
    datastore = sqlite.SQLiteDatastore(path)
    recorder = sqlite.SQLiteApplicationRecorder(datastore)
    return EventsourcingSide(datastore, recorder, ThreadPoolExecutor(CONCURRENCY, "es-client"))


def eventsourcing_postgres(base_url: str, schema: str) -> EventsourcingSide:
    postgres: Any = importlib.import_module("eventsourcing.postgres")
    url = urlsplit(base_url)
    datastore = postgres.PostgresDatastore(
        dbname=unquote(url.path.lstrip("/")) or "postgres",
        host=url.hostname or "127.0.0.1",
        port=url.port or 5432,
        user=unquote(url.username or "postgres"),
        password=unquote(url.password or ""),
        schema=schema,
        pool_size=CONCURRENCY,
    )
    recorder = postgres.PostgresApplicationRecorder(datastore)
    return EventsourcingSide(datastore, recorder, ThreadPoolExecutor(CONCURRENCY, "es-client"))


def eventsourcing_settings(side: EventsourcingSide) -> dict[str, Any]:
    """What its SQLite connections run with, read from one of them."""
    with side.datastore.transaction(commit=False) as cursor:
        return sqlite_settings(cursor.sqlite_cursor)


def peer_version() -> str:
    return importlib.metadata.version("eventsourcing")


# --- measuring the sides ----------------------------------------------------------------------

Side = StatekeeperSide | EventsourcingSide


@dataclass
class Measured:
    tallies: dict[str, dict[str, Tally]] = field(default_factory=dict)  # cell -> side -> tally
    jobs_per_commit: dict[str, float] = field(default_factory=dict)  # cell -> sk SQLite


async def measure(
    backend: Backend,
    sides: list[Side],
    plan: Plan,
    writer_stats: Callable[[], tuple[int, int]] | None,
) -> Measured:
    """Each operation on every side: a warm-up, then slices in turns."""
    measured = Measured()
    names = [side.name for side in sides]
    by_name = {side.name: side for side in sides}
    for cell in CELLS:
        for side in sides:
            await side.run(cell, plan.warmup)
        tallies = {name: Tally() for name in names}
        jobs = commits = 0
        for name in benchlib.turns(names, plan.slices):
            gc.collect()
            before = writer_stats() if writer_stats and name == "statekeeper" else None
            tallies[name].add(await by_name[name].run(cell, plan.slice_seconds))
            if before is not None and writer_stats is not None:
                after = writer_stats()
                jobs += after[0] - before[0]
                commits += after[1] - before[1]
        measured.tallies[cell] = tallies
        if commits:
            measured.jobs_per_commit[cell] = jobs / commits
        rates = ", ".join(f"{name} {tally.rate:,.0f}/s" for name, tally in tallies.items())
        print(f"  ({NAMES[backend]}, {cell}: {rates})", flush=True)
    return measured


# --- SQLite: what a commit writes ------------------------------------------------------------

WAL_SINGLES, WAL_BATCHES = 50, 10  # appends measured; fewer WAL pages than a checkpoint's 1000


def empty_wal(path: str) -> int | None:
    """Check the WAL of the database at ``path`` into it and empty it: its page size, or
    None when that could not be done (a reader held it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        page: int = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return None if busy or wal_bytes(path) else page


def wal_bytes(path: str) -> int:
    return os.path.getsize(f"{path}-wal") if os.path.exists(f"{path}-wal") else 0


async def wal_pages(path: str, op: Callable[[], object], count: int) -> float | None:
    """WAL pages written per call of ``op`` from an emptied WAL (a commit writes each
    page it changed, whole, and fsyncs them); None when the WAL could not be emptied."""
    page = empty_wal(path)
    if page is None:
        return None
    for _ in range(count):
        done = op()
        if inspect.isawaitable(done):
            await done
    return wal_bytes(path) / count / (page + 24)  # a frame: a 24-byte header and a page


async def wal_info(sides: list[Side], paths: dict[str, str]) -> dict[str, Any]:
    """WAL pages per single-event and per batch append of each side."""
    found: dict[str, Any] = {}
    for side in sides:

        def single(side: Side = side) -> object:
            return side.single(0)

        path = paths[side.name]
        found[side.name] = {
            "single": await wal_pages(path, single, WAL_SINGLES),
            "batch": await wal_pages(path, side.batch, WAL_BATCHES),
        }
    return found


# --- flat cost: statekeeper at two sizes --------------------------------------------------------


class Store:
    """One statekeeper database holding ``size`` events, PROBES streams of them probed."""

    def __init__(self, app: App, size: int) -> None:
        self.app = app
        self.size = size
        self.probes = Turns([f"probe-{i}" for i in range(PROBES)], READ_LENGTH)

    async def fill(self) -> None:
        events = self.app.events
        await create_streams(events, self.probes.names, READ_LENGTH)
        others = (self.size - PROBES * READ_LENGTH) // READ_LENGTH
        await create_streams(events, [f"filler-{n}" for n in range(others)], READ_LENGTH)
        head = await events.head()
        if head != PROBES * READ_LENGTH + others * READ_LENGTH:
            raise RuntimeError(f"the store of {self.size} events holds {head}")

    async def slice(self, ops: int) -> Tally:
        """``ops`` appends of one event, each followed by a read of its whole stream."""
        events = self.app.events
        clock = time.perf_counter
        start = clock()
        for _ in range(ops):
            index, name, version = self.probes.next()
            done = await events.append(name, ONE, expected_version=version)
            self.probes.versions[index] = done.version
            found = await events.read_stream(name)
            if len(found) != done.version:
                raise RuntimeError(f"read {len(found)} events of {name!r} at {done.version}")
        return Tally(ops, clock() - start)


async def measure_flat(urls: Callable[[int], str], sizes: Sizes) -> dict[int, Tally]:
    """Append+read operations per second with the small and the big store, in turns."""
    tallies = {size: Tally() for size in (sizes.small, sizes.big)}
    apps = {size: benchlib.statekeeper_app(urls(size), NAMESPACE) for size in tallies}
    stores: dict[int, Store] = {}
    try:
        for size, app in apps.items():
            stores[size] = Store(await app.open(), size)
            await stores[size].fill()
        for size in stores:  # a warm-up
            await stores[size].slice(max(1, sizes.ops // 5))
        for size in benchlib.turns(list(stores), sizes.slices):
            gc.collect()
            tallies[size].add(await stores[size].slice(sizes.ops))
    finally:
        for app in apps.values():
            await app.close()
    return tallies


# --- output ---------------------------------------------------------------------------------


@dataclass
class Row:
    backend: Backend
    operation: str
    statekeeper: float | None
    eventsourcing: float | None
    ratio: float | None
    target: float | None
    met: bool | None
    headline: bool = False  # one of the ratios the headline takes the smallest of
    baseline_name: str = ""  # when the second column is not eventsourcing
    sk_p50_ms: float | None = None
    sk_p99_ms: float | None = None
    es_p50_ms: float | None = None
    es_p99_ms: float | None = None


HEADER = (
    f"{'backend':<10} {'operation':<34} {'statekeeper':>11} {'eventsourcing':>16} "
    f"{'ratio':>7}  {'target':<7} {'met?':<4}  {'sk p50/p99 ms':>13}  {'es p50/p99 ms':>13}"
)


def print_row(row: Row) -> None:
    ours = "-" if row.statekeeper is None else f"{row.statekeeper:,.0f}"
    theirs = "-" if row.eventsourcing is None else f"{row.eventsourcing:,.0f}"
    if row.baseline_name and row.eventsourcing is not None:
        theirs = f"{theirs} {row.baseline_name}"
    ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
    target = "" if row.target is None else f">= {row.target:g}x"
    met = "" if row.met is None else ("yes" if row.met else "NO")
    print(
        f"{NAMES[row.backend]:<10} {row.operation:<34} {ours:>11} {theirs:>16} {ratio:>7}  "
        f"{target:<7} {met:<4}  {benchlib.latency_pair(row.sk_p50_ms, row.sk_p99_ms, 2):>13}  "
        f"{benchlib.latency_pair(row.es_p50_ms, row.es_p99_ms, 2):>13}",
        flush=True,
    )


def over(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def comparison_rows(backend: Backend, measured: Measured) -> list[Row]:
    labels: dict[Cell, str] = {
        "single": "single-event appends/s",
        "batch": f"batch-of-{BATCH} appends/s",
        "read": f"stream reads/s ({READ_LENGTH} events)",
        "concurrent": f"single appends/s, {CONCURRENCY} concurrent",
    }
    rows: list[Row] = []
    for cell in CELLS:
        tallies = measured.tallies[cell]
        sk = tallies["statekeeper"]
        es = tallies.get("eventsourcing")
        ratio = over(sk.rate, es.rate if es else None)
        target = None if cell == "concurrent" else TARGET
        row = Row(
            backend=backend,
            operation=labels[cell],
            statekeeper=sk.rate,
            eventsourcing=es.rate if es else None,
            ratio=ratio,
            target=target,
            met=None if ratio is None or target is None else ratio >= target,
            headline=cell != "concurrent",
            sk_p50_ms=sk.percentile_ms(50),
            sk_p99_ms=sk.percentile_ms(99),
            es_p50_ms=es.percentile_ms(50) if es else None,
            es_p99_ms=es.percentile_ms(99) if es else None,
        )
        rows.append(row)
        if cell == "batch":  # the same measurement counted in events
            rows.append(Row(
                backend=backend, operation=f"batch-of-{BATCH} events/s",
                statekeeper=sk.rate * BATCH,
                eventsourcing=es.rate * BATCH if es else None,
                ratio=ratio, target=None, met=None,
            ))  # fmt: skip
    return rows


def flat_row(backend: Backend, tallies: dict[int, Tally], sizes: Sizes) -> Row:
    small, big = tallies[sizes.small].rate, tallies[sizes.big].rate
    ratio = over(big, small)
    return Row(
        backend=backend,
        operation=f"sk append+read/s, {sizes.big // 1000}k vs {sizes.small // 1000}k",
        statekeeper=big,
        eventsourcing=small,
        ratio=ratio,
        target=FLAT_TARGET,
        met=None if ratio is None else ratio >= FLAT_TARGET,
        baseline_name=f"at {sizes.small // 1000}k",
    )


def headline(rows: list[Row], peer_problem: str | None) -> str:
    stem = (
        "headline: event store ops/s vs eventsourcing, the lowest of single-event appends, "
        f"batch-of-{BATCH} appends and stream reads"
    )
    counted = [row for row in rows if row.headline and row.ratio is not None]
    if peer_problem is not None or not counted:
        return f"{stem} = n/a (eventsourcing {'unavailable' if peer_problem else 'not measured'})"
    lowest = min(counted, key=lambda row: row.ratio or 0.0)
    backends = " and ".join(NAMES[b] for b in dict.fromkeys(row.backend for row in counted))
    return (
        f"{stem} on {backends} ({NAMES[lowest.backend]} {lowest.operation}) = "
        f"{lowest.ratio:.2f}x (target >= {TARGET:g}x)"
    )


# --- the backends ---------------------------------------------------------------------------


@dataclass
class Context:
    plan: Plan
    sizes: Sizes
    peer_problem: str | None


async def bench_backend(
    backend: Backend,
    ctx: Context,
    sk_url: str,
    peer: Callable[[], EventsourcingSide] | None,
    flat_urls: Callable[[int], str],
    files: dict[str, str] | None = None,
) -> tuple[list[Row], dict[str, Any]]:
    info: dict[str, Any] = {}
    es: EventsourcingSide | None = None
    async with benchlib.statekeeper_app(sk_url, NAMESPACE) as app:
        try:
            sk = StatekeeperSide(app)
            await sk.prepare()
            sides: list[Side] = [sk]
            info["statekeeper"] = await sk.settings()
            if peer is not None:
                es = peer()
                es.prepare()
                sides.append(es)
                info["eventsourcing"] = (
                    eventsourcing_settings(es)
                    if backend == "sqlite"
                    else {"driver": "psycopg", "pool": CONCURRENCY}
                )
            stats = benchlib.commit_stats(app) if backend == "sqlite" else None
            measured = await measure(backend, sides, ctx.plan, stats)
            if files is not None:
                info["wal_pages_per_append"] = await wal_info(sides, files)
        finally:
            if es is not None:
                es.close()
    rows = comparison_rows(backend, measured)
    for row in rows:
        print_row(row)
    info["statekeeper"]["jobs_per_commit"] = measured.jobs_per_commit
    flat = await measure_flat(flat_urls, ctx.sizes)
    row = flat_row(backend, flat, ctx.sizes)
    print_row(row)
    rows.append(row)
    return rows, info


async def bench_sqlite(ctx: Context, directory: str) -> tuple[list[Row], dict[str, Any]]:
    peer = None if ctx.peer_problem else (lambda: eventsourcing_sqlite(f"{directory}/es.db"))
    files = {"statekeeper": f"{directory}/statekeeper.db", "eventsourcing": f"{directory}/es.db"}
    rows, info = await bench_backend(
        "sqlite", ctx, f"sqlite:///{files['statekeeper']}", peer,
        lambda size: f"sqlite:///{directory}/e{size}.db", files,
    )  # fmt: skip
    return rows, {**info, **benchlib.sqlite_info(directory)}


async def bench_postgres(ctx: Context, base_url: str) -> tuple[list[Row], dict[str, Any]]:
    small, big = ctx.sizes.small, ctx.sizes.big
    stem = "sk_evbench"
    async with benchlib.scratch_schemas(base_url, stem, "_es", f"_e{small}", f"_e{big}") as names:
        schema, es_schema = names[0], names[1]
        by_size = {small: names[2], big: names[3]}
        conn = await asyncpg.connect(base_url)
        try:
            await conn.execute(f'CREATE SCHEMA "{es_schema}"')
            settings = await benchlib.postgres_info(conn)
            settings["fsync"] = await conn.fetchval("SHOW fsync")
        finally:
            await conn.close()
        peer = None if ctx.peer_problem else (lambda: eventsourcing_postgres(base_url, es_schema))
        rows, info = await bench_backend(
            "postgres", ctx, benchlib.with_schema(base_url, schema), peer,
            lambda size: benchlib.with_schema(base_url, by_size[size]),
        )  # fmt: skip
    return rows, {**info, **settings, "schema": schema, "es_schema": es_schema}


# --- main -----------------------------------------------------------------------------------


def settings_note(backend: str, info: dict[str, Any]) -> str:
    sk, es = info.get("statekeeper", {}), info.get("eventsourcing")
    if backend == "sqlite":
        mine = f"statekeeper journal_mode={sk['journal_mode']}, synchronous={sk['synchronous']}"
        theirs = (
            ""
            if es is None
            else f"; eventsourcing journal_mode={es['journal_mode']}, "
            f"synchronous={es['synchronous']} (not set by it: SQLite's default)"
        )
        return f"note: SQLite {info['sqlite_version']}: {mine}{theirs}"
    theirs = "" if es is None else f", eventsourcing psycopg pool of {es['pool']}"
    return (
        f"note: PostgreSQL {info['server_version']} (synchronous_commit="
        f"{info['synchronous_commit']}, fsync={info['fsync']}), the same server and "
        f"database for both: statekeeper asyncpg pool of {sk['pool']}{theirs}"
    )


def wal_note(pages: dict[str, dict[str, float | None]]) -> str:
    def shown(value: float | None) -> str:
        return "?" if value is None else f"{value:.1f}"

    return "; ".join(
        f"{op if op == 'single' else f'batch-of-{BATCH}'}: "
        + ", ".join(f"{side} {shown(found[op])}" for side, found in pages.items())
        for op in ("single", "batch")
    )


async def run(args: argparse.Namespace, peer_problem: str | None) -> int:
    os.environ.pop(ENV_CACHE_URL, None)  # as in the other benchmarks: no Redis cache
    plan = benchlib.choose_plan(args, QUICK, FULL)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.big:
        sizes = Sizes(sizes.small, args.big, sizes.slices, sizes.ops)
    peer = "eventsourcing unavailable" if peer_problem else f"eventsourcing {peer_version()}"
    benchlib.announce(
        f"event store, statekeeper vs {peer} recorders (single and batch-of-{BATCH} appends, "
        f"{READ_LENGTH}-event stream reads, {CONCURRENCY} concurrent appends), and "
        f"statekeeper at {sizes.small} vs {sizes.big} events ({sizes.slices} x {sizes.ops} "
        "append+read per size); ",
        plan,
        HEADER,
    )
    if peer_problem is not None:
        print(f"(eventsourcing unavailable: {peer_problem}; statekeeper figures only)")
    ctx = Context(plan, sizes, peer_problem)

    async def sqlite() -> tuple[list[Row], dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="sk-events-bench-") as directory:
            return await bench_sqlite(ctx, directory)

    got = await benchlib.each_backend(args, sqlite, lambda: bench_postgres(ctx, args.pg_url))
    if got is None:
        return 2
    for backend, info in got.info.items():
        print(settings_note(backend, info))
        pages = info.get("wal_pages_per_append")
        if pages:
            print(f"note: SQLite: WAL pages written (and fsynced) per append: {wal_note(pages)}")
        grouped = info.get("statekeeper", {}).get("jobs_per_commit", {})
        if "concurrent" in grouped:
            print(
                f"note: SQLite: statekeeper committed {grouped['concurrent']:.1f} appends per "
                f"transaction with {CONCURRENCY} concurrent, "
                f"{grouped.get('single', 1.0):.1f} one at a time"
            )
    print(
        "note: ratios are statekeeper over eventsourcing, except the last row of each "
        "backend: statekeeper with the big store over the small one"
    )
    print(f"{got.seconds:.1f} s")
    line = headline(got.results, peer_problem)
    settings = {"sizes": asdict(sizes), "eventsourcing": peer_problem or peer_version()}
    return benchlib.finish(args, plan, line, got, "rows", settings)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = benchlib.bench_parser(__doc__)
    parser.add_argument("--big", type=int, help="events in the big store (quick 20000, 100000)")
    parser.add_argument(
        "--peer-venv", type=Path, default=DEFAULT_VENV,
        help=f"where eventsourcing gets installed when it is not importable ({DEFAULT_VENV})",
    )  # fmt: skip
    parser.add_argument("--no-peer", action="store_true", help="measure statekeeper alone")
    args = parser.parse_args(argv)
    problem = None
    if args.no_peer:
        problem = "--no-peer"
    elif importlib.util.find_spec("eventsourcing") is None:
        problem = benchlib.run_with_peer(PEER_PACKAGE, args.peer_venv, Path(__file__), argv)
    return asyncio.run(run(args, problem))


if __name__ == "__main__":
    sys.exit(main())
