"""Fixtures shared by every test: real databases, one schema per run, a fake clock.

At session start, a private PostgreSQL or Redis is started for the run when nothing
listens where the tests expect one (see tests/servers.py); it is removed at the end."""

from __future__ import annotations

import asyncio
import os
import pathlib
import secrets
import sys
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from statekeeper import App
from tests.servers import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    ENV_TEST_PG,
    ENV_TEST_REDIS,
    INTERRUPTED,
    ServerUnavailable,
    TestServers,
)

SERVERS = TestServers(os.environ)
RUN_ID = f"{os.getpid()}_{secrets.token_hex(3)}"
BACKENDS = ["sqlite", "postgres"]


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Make sure PostgreSQL and Redis answer where the tests look for them."""
    try:
        started = SERVERS.start_missing()
    except ServerUnavailable as problem:
        SERVERS.stop()
        raise pytest.UsageError(str(problem)) from None
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for line in started:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A run ended by SIGTERM or SIGHUP is interrupted, even if the signal's
    KeyboardInterrupt was swallowed by a finalizer (tests/servers.py)."""
    if INTERRUPTED and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.INTERRUPTED


def pytest_unconfigure(config: pytest.Config) -> None:
    SERVERS.stop()


def pg_dsn() -> str:
    """The PostgreSQL server of the run: ``STATEKEEPER_TEST_PG``, or the private one."""
    return os.environ.get(ENV_TEST_PG, DEFAULT_PG)


def redis_url() -> str:
    """The Redis server of the run: ``STATEKEEPER_TEST_REDIS``, or the private one."""
    return os.environ.get(ENV_TEST_REDIS, DEFAULT_REDIS)


class FakeClock:
    """An injectable clock: Unix seconds that move only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pg_url(schema: str) -> str:
    return f"{pg_dsn()}?schema={schema}"


async def _drop_schemas(prefix: str) -> None:
    conn = await asyncpg.connect(pg_dsn())
    try:
        rows = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", prefix + "%"
        )
        for row in rows:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{row[0]}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_schema_prefix() -> Iterator[str]:
    """Every PostgreSQL schema of this run starts with this; all are dropped at the end."""
    prefix = f"sk_test_{RUN_ID}"
    yield prefix
    asyncio.run(_drop_schemas(prefix))


@pytest.fixture(scope="session")
def pg_shared_url(pg_schema_prefix: str) -> str:
    """One schema for the contract suite; tests keep apart by namespace."""
    return pg_url(f"{pg_schema_prefix}_shared")


@pytest.fixture
def fresh_pg_url(pg_schema_prefix: str) -> str:
    """A schema of this test's own (for migrations and processes)."""
    return pg_url(f"{pg_schema_prefix}_{secrets.token_hex(4)}")


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(backend_name: str, tmp_path: object, pg_shared_url: str) -> str:
    if backend_name == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return pg_shared_url


@pytest.fixture
def own_database_url(backend_name: str, tmp_path: object, fresh_pg_url: str) -> str:
    """A database of this test's own: a new SQLite file, or a new PostgreSQL schema."""
    if backend_name == "sqlite":
        return f"sqlite:///{tmp_path}/own.db"
    return fresh_pg_url


@pytest.fixture
def browser_database(tmp_path: pathlib.Path) -> str:
    """The database of a browser test's server: SQLite. The browser tests check the
    pages; every page is also checked over HTTP on both backends (the tests without a
    browser), so a browser is driven once, not once per backend."""
    return f"sqlite:///{tmp_path / 'ui.db'}"


@pytest.fixture
def namespace() -> str:
    return f"ns_{secrets.token_hex(6)}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def app(database_url: str, namespace: str, clock: FakeClock) -> AsyncIterator[App]:
    async with App(
        database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None
    ) as opened:
        yield opened


@pytest.fixture
async def live_app(database_url: str, namespace: str) -> AsyncIterator[App]:
    """An app on the real clock: a worker's waits and leases are real."""
    async with App(database_url, namespace=namespace, purge_interval=None) as opened:
        yield opened
