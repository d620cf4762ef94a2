"""Reads from a hot standby: a stale value is possible only with ``consistent=False``,
and never older than the replica URL's ``max_staleness``; the cache stays coherent."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from statekeeper import App
from statekeeper.errors import ConfigurationError, InvalidDatabaseURL
from tests.conftest import redis_url
from tests.contract.test_sidecar_state import client_of, sidecar_of
from tests.servers import PostgresServer, StandbyServer, free_port, postgres_bindir

pytestmark = pytest.mark.postgres
BOUND = 1.5  # seconds: the replica URL's max_staleness


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    """A primary of this module's own and a standby streaming from it; their URLs."""
    bindir = postgres_bindir()
    if bindir is None:
        pytest.fail("no PostgreSQL server binaries (initdb) to start a primary and a standby")
    root = Path(tempfile.mkdtemp(prefix="statekeeper-replica-"))
    root.chmod(0o755)  # the servers run as another account when the tests run as root
    (root / "primary").mkdir()
    (root / "standby").mkdir()
    primary = PostgresServer(root / "primary", bindir)
    primary.start()
    standby = StandbyServer(root / "standby", primary)
    try:
        standby.start()
        yield primary.dsn, standby.dsn
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


async def replay(standby: str, paused: bool) -> None:
    conn = await asyncpg.connect(standby)
    try:
        await conn.execute(f"SELECT pg_wal_replay_{'pause' if paused else 'resume'}()")
    finally:
        await conn.close()


async def caught_up(primary: str, standby: str) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    conn = await asyncpg.connect(primary)
    try:
        written = await conn.fetchval("SELECT pg_current_wal_lsn()")
    finally:
        await conn.close()
    conn = await asyncpg.connect(standby)
    try:
        deadline = time.monotonic() + 30
        while not await conn.fetchval(
            "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn "
            "AND pg_last_xact_replay_timestamp() IS NOT NULL", written,
        ):  # fmt: skip
            assert time.monotonic() < deadline, "the standby did not catch up"
            await asyncio.sleep(0.05)
    finally:
        await conn.close()


async def test_a_stale_read_only_with_consistent_false_and_within_the_bound(
    servers: tuple[str, str],
) -> None:
    primary, standby = servers
    replica_url = f"{standby}?max_staleness={BOUND}"
    async with App(primary, replica_url=replica_url, purge_interval=None) as app:
        await app.state.put("k", {"v": 1})
        await caught_up(primary, standby)
        first = await app.state.get("k", consistent=False)
        assert first is not None and first.value == {"v": 1}
        await replay(standby, paused=True)
        try:
            await app.state.put("k", {"v": 2})
            written = time.monotonic()
            stale = fresh = 0
            while time.monotonic() - written < BOUND * 2:
                consistent = await app.state.get("k")
                assert consistent is not None and consistent.value == {"v": 2}  # always
                eventual = await app.state.get("k", consistent=False)
                assert eventual is not None
                age = time.monotonic() - written
                if eventual.value == {"v": 1}:
                    stale += 1
                    assert age <= BOUND + 0.1, f"a value {age:.2f} s stale was read"
                else:
                    fresh += 1
                page = await app.state.list("k", consistent=False)
                assert [i.value for i in page.items] in ([{"v": 1}], [{"v": 2}])
                await asyncio.sleep(0.05)
        finally:
            await replay(standby, paused=False)
        print(f"\nwith replay paused: {stale} stale reads (all within {BOUND} s), {fresh} "
              "from the primary once the standby was further behind")  # fmt: skip
        assert stale > 0, "no stale read was seen: the standby was not read"
        assert fresh > 0, "past the bound, reads did not go back to the primary"
        await caught_up(primary, standby)
        last = await app.state.get("k", consistent=False)
        assert last is not None and last.value == {"v": 2}


@pytest.mark.redis
async def test_the_cache_is_never_filled_from_the_standby(servers: tuple[str, str]) -> None:
    primary, standby = servers
    async with App(
        primary, replica_url=f"{standby}?max_staleness=60", cache_url=redis_url(),
        purge_interval=None, namespace="cached",
    ) as app:  # fmt: skip
        await app.state.put("c", {"v": 1})
        await caught_up(primary, standby)
        await replay(standby, paused=True)
        try:
            await app.state.put("c", {"v": 2})
            stale = await app.state.get("c", consistent=False)
            assert stale is not None and stale.value == {"v": 1}
            cached = await app.state.get("c")  # through the cache: the primary's value
            assert cached is not None and cached.value == {"v": 2}
        finally:
            await replay(standby, paused=False)


async def test_an_unreachable_standby_is_read_around(servers: tuple[str, str]) -> None:
    """A standby that is down (from the start, here) leaves the app working: reads
    with consistent=False go to the primary."""
    primary, _ = servers
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=1"
    async with App(primary, replica_url=dead, purge_interval=None, namespace="around") as app:
        await app.state.put("u", {"v": 3})
        item = await app.state.get("u", consistent=False)
        assert item is not None and item.value == {"v": 3}
        page = await app.state.list("u", consistent=False)
        assert [i.value for i in page.items] == [{"v": 3}]


def test_a_replica_url_is_checked() -> None:
    with pytest.raises(InvalidDatabaseURL, match="max_staleness must be a positive"):
        App("sqlite:///x.db", replica_url="postgresql://h/db?max_staleness=-1")
    with pytest.raises(ConfigurationError, match="must be a PostgreSQL URL"):
        App("sqlite:///x.db", replica_url="sqlite:///y.db")


async def test_the_sidecars_eventual_reads_go_to_the_standby(servers: tuple[str, str]) -> None:
    """Dapr's ``consistency=eventual`` on a state read is ``consistent=False``; strong
    (or none) stays on the primary."""
    primary, standby = servers
    app = App(
        primary, replica_url=f"{standby}?max_staleness=60", purge_interval=None,
        namespace="sidecar",
    )  # fmt: skip
    async with app, client_of(sidecar_of(app)) as dapr:
        url = "/v1.0/state/statestore"
        assert (await dapr.post(url, json=[{"key": "s", "value": 1}])).status_code == 204
        await caught_up(primary, standby)
        await replay(standby, paused=True)
        try:
            assert (await dapr.post(url, json=[{"key": "s", "value": 2}])).status_code == 204
            eventual = await dapr.get(f"{url}/s", params={"consistency": "eventual"})
            strong = await dapr.get(f"{url}/s", params={"consistency": "strong"})
            plain = await dapr.get(f"{url}/s")
        finally:
            await replay(standby, paused=False)
    assert (eventual.json(), strong.json(), plain.json()) == (1, 2, 2)
