"""What the benchmarks in this folder share, so that they differ only in what they measure.

Imported as a sibling module (``import benchlib``): ``python bench/NAME.py`` puts this
folder first on ``sys.path``. Not a benchmark itself.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import itertools
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, Self, TypeVar

import asyncpg

from statekeeper import App
from statekeeper.storage.sqlite import SQLiteBackend

Backend = Literal["sqlite", "postgres"]
T = TypeVar("T")

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
PG_POOL_MIN, PG_POOL_MAX = 2, 16  # statekeeper's defaults
SQLITE_BUSY_TIMEOUT_MS = 30_000
NAMES: dict[str, str] = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


# --- peers: installed in environments of their own, outside the project's ---------------

PEER_HOME = Path.home() / ".cache" / "statekeeper-bench"
REPO = Path(__file__).resolve().parent.parent
_REEXEC_ENV = "STATEKEEPER_BENCH_REEXEC"


def project_requirements() -> list[str]:
    """statekeeper's dependencies (pyproject), pinned to the versions running now."""
    with (REPO / "pyproject.toml").open("rb") as f:
        specs: list[str] = tomllib.load(f)["project"]["dependencies"]
    pinned = []
    for spec in specs:
        name = re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0]
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(spec)
    return pinned


def run_with_peer(package: str, venv: Path, script: Path, argv: list[str]) -> str:
    """Run ``script`` again under ``venv``, where ``package`` (a peer the benchmark compares
    with, not a dependency of the project) is installed beside statekeeper's own
    dependencies, creating it once. Returns only when that cannot be done: why the peer is
    unavailable."""
    if os.environ.get(_REEXEC_ENV):
        return f"{package} is still not importable under {sys.executable}"
    python = venv / "bin" / "python"
    requirements = [package, *project_requirements()]
    marker = venv / "statekeeper-bench.json"
    try:
        installed = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        installed = None
    if installed != requirements or not python.exists():
        print(f"installing {package} into {venv} (once; outside the project's environment)",
              flush=True)  # fmt: skip
        log_path = venv.parent / f"{venv.name}-pip.log"
        try:
            venv.parent.mkdir(parents=True, exist_ok=True)
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            with log_path.open("w", encoding="utf-8") as log:
                done = subprocess.run(
                    [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                     *requirements],
                    stdout=log, stderr=subprocess.STDOUT, check=False, timeout=600,
                )  # fmt: skip
            if done.returncode != 0:
                return f"installing it failed (pip exit status {done.returncode}; see {log_path})"
            marker.write_text(json.dumps(requirements), encoding="utf-8")
        except (OSError, subprocess.SubprocessError) as exc:
            return f"installing it failed: {type(exc).__name__}: {exc}"
    paths = [str(REPO / "src"), str(script.resolve().parent)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env = {**os.environ, _REEXEC_ENV: "1", "PYTHONPATH": os.pathsep.join(paths)}
    sys.stdout.flush()
    try:
        os.execve(str(python), [str(python), str(script.resolve()), *argv], env)
    except OSError as exc:
        return f"cannot run {python}: {exc}"
    return "unreachable"  # execve does not return


# --- options and plan ---------------------------------------------------------------------


def bench_parser(
    doc: str | None,
    *,
    quick_help: str = "short slices, under a minute",
    seconds_help: str = "measured seconds per side and backend",
) -> argparse.ArgumentParser:
    """The options every benchmark takes, so that they are driven alike."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres", "all"), default="all", help="default: all"
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--pg-url", default=PG_URL, help=f"PostgreSQL URL (default {PG_URL})")
    parser.add_argument("--seconds", type=float, help=seconds_help)
    return parser


@dataclass(frozen=True)
class Plan:
    """How long each side runs: a warm-up, then ``slices`` turns of ``slice_seconds``."""

    warmup: float
    slices: int
    slice_seconds: float


def choose_plan(
    args: argparse.Namespace, quick: Plan, full: Plan, *, whole_seconds: bool = False
) -> Plan:
    """``quick`` or ``full``; ``--seconds`` spread over its slices (whole ones for wrk)."""
    plan = quick if args.quick else full
    if args.seconds:
        share = args.seconds / plan.slices
        if whole_seconds:
            share = max(1.0, round(share))
        plan = Plan(plan.warmup, plan.slices, share)
    return plan


def turns(sides: Sequence[T], slices: int) -> Iterator[T]:
    """The sides in turn, every order in turn (for two: a, b, b, a, a, b, ...), so that
    drift on a shared machine gives each side the same share of early and late places."""
    orders = itertools.cycle(itertools.permutations(sides))
    for _ in range(slices):
        yield from next(orders)


# --- running the backends -----------------------------------------------------------------


async def require_postgres(base_url: str) -> bool:
    """Whether PostgreSQL can be reached; if not, why, on standard error."""
    problem = await postgres_reachable(base_url)
    if problem is not None:
        print(f"PostgreSQL is not reachable: {problem}", file=sys.stderr)
    return problem is None


async def postgres_reachable(base_url: str) -> str | None:
    """Why PostgreSQL cannot be reached, or None when it can."""
    try:
        conn = await asyncpg.connect(base_url, timeout=3)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@dataclass
class Collected(Generic[T]):
    """What the backends gave: table rows, details per backend, and the time it took."""

    results: list[T] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


BenchFn = Callable[[], Awaitable[tuple[list[T], dict[str, Any]]]]


async def each_backend(
    args: argparse.Namespace, sqlite: BenchFn[T], postgres: BenchFn[T]
) -> Collected[T] | None:
    """Run the chosen backends' benchmarks in turn; None when the run failed (exit status 2).

    An unreachable PostgreSQL is skipped with a note when all backends were asked for,
    and fails the run when it was asked for alone.
    """
    backends: list[Backend] = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    collected: Collected[T] = Collected()
    started = time.perf_counter()
    for backend in backends:
        if backend == "postgres":
            problem = await postgres_reachable(args.pg_url)
            if problem is not None:
                if args.backend == "postgres":
                    print(f"PostgreSQL is not reachable: {problem}", file=sys.stderr)
                    return None
                print(f"(PostgreSQL skipped, not reachable: {problem})")
                continue
        found, collected.info[backend] = await (sqlite if backend == "sqlite" else postgres)()
        collected.results.extend(found)
    collected.seconds = time.perf_counter() - started
    return collected


def statekeeper_app(url: str, namespace: str) -> App:
    """Statekeeper as the benchmarks run it: no background purger and no encryption,
    which the raw sides do not have either."""
    return App(url, namespace=namespace, purge_interval=None, encryption=None)


def commit_stats(app: App) -> Callable[[], tuple[int, int]]:
    """(jobs, commits) of statekeeper's SQLite writer so far: how many writes each fsync
    carried."""
    backend = app.backend
    assert isinstance(backend, SQLiteBackend)
    writer = backend.writer
    return lambda: (writer.jobs, writer.batches)


async def create_tables(url: str) -> None:
    """Statekeeper's own schema (tables and indexes) at ``url``, for a raw side to use."""
    async with App(url, purge_interval=None, encryption=None):
        pass


@asynccontextmanager
async def sqlite_pair(directory: str, namespace: str) -> AsyncIterator[tuple[App, str]]:
    """Statekeeper open on its own file, and the path of the raw side's file, which gets
    its tables from statekeeper's own schema and is then left alone."""
    raw_path = str(Path(directory) / "raw.db")
    await create_tables(f"sqlite:///{raw_path}")
    sk_path = Path(directory) / "statekeeper.db"
    async with statekeeper_app(f"sqlite:///{sk_path}", namespace) as app:
        yield app, raw_path


async def fill(app: App, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``rows`` straight into the app's database: ``sql`` with ``{}`` where the
    placeholders go (one per column), in one batch."""
    backend: Any = app.backend
    width = len(rows[0])
    if backend.dialect == "sqlite":
        statement = sql.format(", ".join("?" * width))
        await backend.writer.run(lambda c: c.executemany(statement, rows), "fill")
    else:
        statement = sql.format(", ".join(f"${i}" for i in range(1, width + 1)))
        async with backend.pool.acquire() as conn:
            await conn.executemany(statement, rows)


@asynccontextmanager
async def sqlite_scratch(name: str) -> AsyncIterator[str]:
    """The URL of a new SQLite file ``name`` in a directory removed at the end."""
    with tempfile.TemporaryDirectory() as directory:
        yield f"sqlite:///{Path(directory) / name}"


@asynccontextmanager
async def postgres_scratch(base_url: str, stem: str) -> AsyncIterator[str]:
    """The URL of a new schema ``<stem>_<pid>`` of ``base_url``, dropped at the end."""
    async with scratch_schemas(base_url, stem) as (schema,):
        yield with_schema(base_url, schema)


def with_schema(base_url: str, schema: str) -> str:
    """A PostgreSQL URL that makes statekeeper use ``schema``."""
    return f"{base_url}{'&' if '?' in base_url else '?'}schema={schema}"


@asynccontextmanager
async def scratch_schemas(
    base_url: str, stem: str, *suffixes: str
) -> AsyncIterator[tuple[str, ...]]:
    """``<stem>_<pid>`` and one more per suffix, dropped (CASCADE) at the end whatever
    happens, so that runs neither collide nor leave tables behind."""
    first = f"{stem}_{os.getpid()}"
    schemas = (first, *(first + suffix for suffix in suffixes))
    try:
        yield schemas
    finally:
        conn = await asyncpg.connect(base_url)
        try:
            for schema in schemas:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def raw_pool(base_url: str, schema: str, **options: Any) -> asyncpg.Pool:
    """An asyncpg pool of statekeeper's default size working in ``schema``."""
    return await asyncpg.create_pool(
        base_url,
        min_size=PG_POOL_MIN,
        max_size=PG_POOL_MAX,
        server_settings={"search_path": schema},
        **options,
    )


async def postgres_info(db: asyncpg.Pool | asyncpg.Connection) -> dict[str, Any]:
    """The server settings that explain PostgreSQL figures."""
    return {
        "server_version": await db.fetchval("SHOW server_version"),
        "synchronous_commit": await db.fetchval("SHOW synchronous_commit"),
    }


def sqlite_info(directory: str) -> dict[str, Any]:
    """The library version and place that explain SQLite figures."""
    return {"sqlite_version": sqlite3.sqlite_version, "directory": directory}


# --- raw SQLite -----------------------------------------------------------------------------


def sqlite_connect(path: str) -> sqlite3.Connection:
    """A plain sqlite3 connection: autocommit (explicit transactions), any thread."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    return conn


class SQLiteWriter:
    """A durable sqlite3 connection owned by one thread (WAL, ``synchronous=FULL``):
    the plain way an asyncio program keeps blocking commits off the event loop."""

    def __init__(self, path: str, thread_name: str) -> None:
        self.path = path
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self.conn: sqlite3.Connection | None = None

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` in the writer thread."""
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def open(self) -> None:
        def connect() -> sqlite3.Connection:
            conn = sqlite_connect(self.path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            return conn

        self.conn = await self.call(connect)

    async def close(self) -> None:
        if self.conn is not None:
            await self.call(self.conn.close)
        self.executor.shutdown(wait=True)

    def transaction(self, sql: str, args: Sequence[Any]) -> Any:
        """One statement in its own ``BEGIN IMMEDIATE ... COMMIT``; its first row.
        Runs in the writer thread (through ``call``)."""
        conn = self.conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(sql, args).fetchone()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return row


# --- measuring ------------------------------------------------------------------------------


@dataclass
class Tally:
    """Operations done in measured slices, their time and (when timed) each one's latency."""

    count: int = 0
    seconds: float = 0.0
    latencies_ns: list[int] = field(default_factory=list)

    def add(self, other: Self) -> None:
        self.count += other.count
        self.seconds += other.seconds
        self.latencies_ns.extend(other.latencies_ns)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile_ns(self, pct: float) -> int | None:
        """The nearest-rank ``pct`` percentile of the latencies, None without timings."""
        if not self.latencies_ns:
            return None
        ordered = sorted(self.latencies_ns)
        return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]

    def percentile_us(self, pct: float) -> float | None:
        ns = self.percentile_ns(pct)
        return None if ns is None else ns / 1000

    def percentile_ms(self, pct: float) -> float | None:
        ns = self.percentile_ns(pct)
        return None if ns is None else ns / 1e6


# --- output ---------------------------------------------------------------------------------


def latency_pair(p50: float | None, p99: float | None, digits: int = 1) -> str:
    """A table cell ``p50/p99``, empty when there were no timings."""
    return "" if p50 is None or p99 is None else f"{p50:.{digits}f}/{p99:.{digits}f}"


def announce(what: str, plan: Plan, header: str, per: str = "side") -> None:
    """The first two lines: what is compared, for how long, on what (figures depend on
    the machine), then the table's header."""
    print(
        f"{what}{plan.slices} x {plan.slice_seconds:g} s per {per} after {plan.warmup:g} s "
        f"warm-up; Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(header, flush=True)


def finish(
    args: argparse.Namespace,
    plan: Plan,
    headline: str,
    collected: Collected[Any],
    key: str,
    settings: dict[str, Any] | None = None,
) -> int:
    """Write the JSON document when ``--json`` asks for it, then print ``headline``: always
    the last line, so that scripts can take it with ``tail -1``. The exit status."""
    if args.json:
        document = {
            "quick": args.quick,
            "plan": asdict(plan),
            **(settings or {}),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "info": collected.info,
            key: [asdict(result) for result in collected.results],
            "headline": headline,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(headline)
    return 0


async def workflow_clients(
    app: App,
    waiting: dict[str, asyncio.Future[str]],
    workflow: str,
    in_flight: int,
    seconds: float,
    phase: str,
) -> int:
    """``in_flight`` clients, each starting ``workflow`` and waiting until its end has
    committed (a runner that resolves ``waiting[id]``, as workflow_bench's
    ``SignallingRunner`` does), then the next, for ``seconds``; how many finished."""
    loop = asyncio.get_running_loop()
    deadline = time.perf_counter() + seconds
    finished = 0

    async def client(c: int) -> None:
        nonlocal finished
        n = 0
        while time.perf_counter() < deadline:
            id = f"{phase}-{c}-{n}"
            n += 1
            future: asyncio.Future[str] = loop.create_future()
            waiting[id] = future
            await app.workflows.start(workflow, 0, id=id)
            if await asyncio.wait_for(future, 120) != "succeeded":
                raise RuntimeError(f"workflow {id} did not succeed")
            finished += 1

    await asyncio.gather(*(client(c) for c in range(in_flight)))
    return finished
