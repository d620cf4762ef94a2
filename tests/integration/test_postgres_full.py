"""A PostgreSQL server with no free connection ("too many clients", SQLSTATE 53300):
statekeeper waits for a slot, up to its connect timeout, instead of failing at once.
And every TCP connection to the server bounds how long what it sent may go
unacknowledged (tcp_user_timeout), so a dead link fails calls instead of hanging them.

A role's CONNECTION LIMIT gives the same refusal as a server at max_connections, so
the shared test server stays open to every other test."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest

from statekeeper import App
from statekeeper.errors import DatabaseUnavailable
from statekeeper.storage.postgres import PostgresBackend
from statekeeper.storage.postgres_common import connect_waiting
from tests.conftest import pg_dsn

pytestmark = pytest.mark.postgres


@pytest.fixture
async def limited() -> AsyncIterator[str]:
    """The DSN of a new role allowed two connections at a time."""
    role = f"sk_limited_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_dsn())
    real = urlsplit(pg_dsn())
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT 2")
        await admin.execute(f"GRANT CREATE ON DATABASE {real.path.lstrip('/')} TO {role}")
        yield f"postgresql://{role}@{real.hostname}:{real.port or 5432}{real.path}"
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        await admin.execute(f"DROP OWNED BY {role} CASCADE")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()


async def _hold_all(dsn: str) -> list[asyncpg.Connection]:
    held = [await asyncpg.connect(dsn) for _ in range(2)]
    with pytest.raises(asyncpg.exceptions.TooManyConnectionsError):
        await asyncpg.connect(dsn)  # the limit holds: a plain connect fails at once
    return held


async def test_a_connection_waits_for_a_free_slot(limited: str) -> None:
    held = await _hold_all(limited)
    started = time.monotonic()
    waiting = asyncio.create_task(connect_waiting(limited, timeout=5))
    await asyncio.sleep(0.4)
    assert not waiting.done()
    await held.pop().close()
    conn = await asyncio.wait_for(waiting, 5)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert time.monotonic() - started >= 0.4
    finally:
        await conn.close()
        for other in held:
            await other.close()


async def test_a_server_that_stays_full_is_a_clear_error_after_the_timeout(
    limited: str,
) -> None:
    held = await _hold_all(limited)
    try:
        started = time.monotonic()
        with pytest.raises(asyncpg.exceptions.TooManyConnectionsError):
            await connect_waiting(limited, timeout=0.6)
        assert 0.6 <= time.monotonic() - started < 3  # tried until the timeout, no longer
        url = f"{limited}?schema=sk_full_{secrets.token_hex(4)}&connect_timeout=1"
        with pytest.raises(DatabaseUnavailable, match="cannot connect to PostgreSQL"):
            async with App(url):
                pass
    finally:
        for conn in held:
            await conn.close()


async def test_an_app_opened_on_a_full_server_works_once_slots_free(limited: str) -> None:
    """Migration, pool and listener connections all wait; the app then works."""
    held = await _hold_all(limited)
    url = f"{limited}?schema=sk_full_{secrets.token_hex(4)}&pool_min=1&pool_max=1"

    async def release_soon() -> None:
        await asyncio.sleep(0.5)
        for conn in held:
            await conn.close()

    releasing = asyncio.create_task(release_soon())
    async with App(url) as app:
        await releasing
        await asyncio.gather(*(app.state.put(f"k{i}", {"i": i}) for i in range(20)))
        items = await asyncio.gather(*(app.state.get(f"k{i}") for i in range(20)))
        assert [item.value["i"] for item in items if item] == list(range(20))


async def _user_timeouts(app: App) -> list[int]:
    """TCP_USER_TIMEOUT of every connection the app's pool holds (asyncpg's transport)."""
    backend = app.backend
    assert isinstance(backend, PostgresBackend)
    found = []
    async with backend.pool.acquire() as conn:
        sock = conn._transport.get_extra_info("socket")  # type: ignore[attr-defined]
        found.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
    return found


@pytest.mark.parametrize(("query", "expected"), [("", 10_000), ("&tcp_user_timeout=2500", 2500),
                                                 ("&tcp_user_timeout=0", 0)])  # fmt: skip
async def test_unacknowledged_data_is_bounded_on_every_tcp_connection(
    fresh_pg_url: str, query: str, expected: int
) -> None:
    """A statement sent on a dead link fails after tcp_user_timeout (10 s by default),
    not after TCP's own minutes of resends: the kernel holds the bound per socket."""
    async with App(fresh_pg_url + query) as app:
        assert await _user_timeouts(app) == [expected]
