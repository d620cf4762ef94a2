"""Cache-aside on real Redis: hits, invalidation, no stale reads, Redis stopping mid-test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from statekeeper import App
from statekeeper.state.cache import StateCache
from statekeeper.storage.rows import StoredItem
from tests.conftest import FakeClock, redis_url
from tests.servers import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def cached_app(
    database_url: str, namespace: str, clock: FakeClock, redis_server: RedisServer
) -> AsyncIterator[App]:
    async with App(
        database_url,
        namespace=namespace,
        clock=clock,
        cache_url=redis_server.url,
        purge_interval=None,
        encryption=None,
    ) as app:
        yield app


async def test_reads_are_served_from_redis(cached_app: App) -> None:
    app = cached_app
    await app.state.put("k", {"v": 1})
    for _ in range(5):
        item = await app.state.get("k")
        assert item is not None and item.value == {"v": 1}
    stats = app.state.cache_stats()
    assert stats is not None
    assert (stats.misses, stats.fills, stats.hits) == (1, 1, 4)


async def test_the_runs_redis_serves_the_cache(database_url: str, namespace: str) -> None:
    """The Redis the run found listening (STATEKEEPER_TEST_REDIS), or its private one."""
    async with App(
        database_url, namespace=namespace, cache_url=redis_url(), purge_interval=None
    ) as app:
        await app.state.put("k", {"v": 1})
        for _ in range(3):
            await app.state.get("k")
        stats = app.state.cache_stats()
        assert stats is not None and stats.available and stats.hits == 2


async def test_writes_and_deletes_invalidate(cached_app: App) -> None:
    app = cached_app
    first = await app.state.put("k", 1)
    await app.state.get("k")
    second = await app.state.put("k", 2, if_match=first.etag)
    got = await app.state.get("k")
    assert got is not None and got.value == 2 and got.etag == second.etag
    await app.state.get("k")
    await app.state.delete("k")
    assert await app.state.get("k") is None
    await app.state.put("k", 3)
    await app.state.get("k")
    async with app.state.transaction() as tx:
        tx.put("k", 4)
    got = await app.state.get("k")
    assert got is not None and got.value == 4


async def test_a_reader_racing_a_writer_never_fills_the_old_value(
    cached_app: App, namespace: str
) -> None:
    """The reader misses and reads the database; the write commits and invalidates;
    only then does the reader try to fill: its lease is gone, so the cache stays empty."""
    app = cached_app
    cache = app.state._cache  # the race needs the steps one by one
    assert cache is not None
    await app.state.put("k", "old")
    lookup = await cache.lookup("k")
    assert lookup is not None and lookup.item is None and lookup.lease is not None
    stored_old = await app.backend.state.get(namespace, "k", app.clock())
    assert stored_old is not None
    await app.state.put("k", "new")  # commits, then invalidates the lease
    await cache.fill(lookup, stored_old, app.clock())
    got = await app.state.get("k")
    assert got is not None and got.value == "new"
    got = await app.state.get("k")
    assert got is not None and got.value == "new"


async def test_concurrent_readers_and_writers_never_see_an_older_value(cached_app: App) -> None:
    app = cached_app
    await app.state.put("n", 0)
    latest_written = 0
    stop = asyncio.Event()
    stale: list[tuple[int, int]] = []

    async def writer() -> None:
        nonlocal latest_written
        for i in range(1, 200):
            await app.state.put("n", i)
            latest_written = i
        stop.set()

    async def reader() -> None:
        while not stop.is_set():
            floor = latest_written  # written before this read started
            item = await app.state.get("n")
            assert item is not None
            if item.value < floor:
                stale.append((item.value, floor))

    await asyncio.gather(writer(), *(reader() for _ in range(4)))
    assert stale == []


async def test_cached_items_keep_their_expiry(cached_app: App, clock: FakeClock) -> None:
    app = cached_app
    await app.state.put("k", 1, ttl=5)
    await app.state.get("k")
    got = await app.state.get("k")  # a hit
    assert got is not None and got.expires_at == clock.now + 5
    clock.advance(6)
    assert await app.state.get("k") is None


async def test_redis_stopped_mid_test(
    cached_app: App, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app = cached_app
    await app.state.put("k", "v1")
    await app.state.get("k")
    assert (await app.state.get("k")) is not None
    redis_server.stop()
    with caplog.at_level(logging.INFO, logger="statekeeper.cache"):
        for _ in range(20):  # reads never fail, they fall through to the database
            item = await app.state.get("k")
            assert item is not None and item.value == "v1"
        await app.state.put("k", "v2")  # the invalidation cannot reach Redis
        item = await app.state.get("k")
        assert item is not None and item.value == "v2"
    warnings = [r for r in caplog.records if "cache unavailable" in r.getMessage()]
    assert len(warnings) == 1, "an outage is logged once"
    stats = app.state.cache_stats()
    assert stats is not None and stats.errors >= 1 and not stats.available


async def test_lost_invalidation_drops_the_whole_cache_when_redis_returns(
    database_url: str, namespace: str, redis_server: RedisServer
) -> None:
    """Redis keeps its data but is unreachable while a write happens: when it answers
    again, the old entry must not be served."""
    async with App(
        database_url, namespace=namespace, cache_url=redis_server.url, purge_interval=None
    ) as app:
        await app.state.put("k", "v1")
        await app.state.get("k")  # cached now
        cache = app.state._cache
        assert cache is not None
        healthy, healthy_invalidate = cache._redis, cache._invalidate
        # Point the cache at a port where nothing listens: every call fails.
        cache._redis = aioredis.Redis(
            host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
        )
        cache._invalidate = cache._redis.register_script("return 1")
        await app.state.put("k", "v2")
        item = await app.state.get("k")
        assert item is not None and item.value == "v2"
        # Redis is reachable again, still holding "v1" for key k.
        await cache._redis.aclose()
        cache._redis, cache._invalidate = healthy, healthy_invalidate
        cache._retry_at = 0.0
        item = await app.state.get("k")
        assert item is not None and item.value == "v2"


async def test_unreachable_redis_from_the_start_never_fails_reads(
    database_url: str, namespace: str
) -> None:
    async with App(
        database_url,
        namespace=namespace,
        cache_url="redis://127.0.0.1:1/0",
        purge_interval=None,
    ) as app:
        await app.state.put("k", 1)
        item = await app.state.get("k")
        assert item is not None and item.value == 1


async def test_cache_codec_round_trip(redis_server: RedisServer) -> None:
    cache = StateCache(redis_server.url, "codec")
    try:
        item = StoredItem("k", b'{"a":1}\n\x00binary', "etag1", 123.5, "k1")
        lookup = await cache.lookup("k")
        assert lookup is not None
        await cache.fill(lookup, item, now=100.0)
        hit = await cache.lookup("k")
        assert hit is not None and hit.item == item
    finally:
        await cache.close()


async def test_a_cancelled_write_still_invalidates_once_it_lands(cached_app: App) -> None:
    app = cached_app
    await app.state.put("k", 1)
    await app.state.get("k")
    await app.state.get("k")  # cached
    task = asyncio.create_task(app.state.put("k", 2))
    await asyncio.sleep(0)  # the put is in flight
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):  # the write lands and its invalidation follows
        await asyncio.sleep(0.01)
        stored = await app.backend.state.get(app.namespace, "k", app.clock())
        if stored is not None and stored.value == b"2":
            break
    await asyncio.sleep(0.05)
    item = await app.state.get("k")
    assert item is not None and item.value == 2


async def test_update_recovers_from_a_write_the_cache_never_saw(
    database_url: str, namespace: str, redis_server: RedisServer
) -> None:
    """Another app without the cache writes the key; update() through the cache
    conflicts once, drops the stale entry and succeeds."""
    async with (
        App(database_url, namespace=namespace, cache_url=redis_server.url) as cached,
        App(database_url, namespace=namespace) as uncached,
    ):
        await cached.state.put("n", 1)
        await cached.state.get("n")
        await uncached.state.put("n", 5)
        item = await cached.state.update("n", lambda v: v + 1, max_attempts=5)
        assert item.value == 6


async def test_keys_that_look_like_cache_internals(cached_app: App) -> None:
    app = cached_app
    assert await app.state.get("x") is None  # leaves a fill lease for x
    await app.state.put("x:lease", {"v": 1})
    for _ in range(2):
        item = await app.state.get("x:lease")
        assert item is not None and item.value == {"v": 1}


async def test_a_foreign_cache_entry_is_a_miss(cached_app: App, redis_server: RedisServer) -> None:
    app = cached_app
    await app.state.put("k", 1)
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        from statekeeper.constants import cache_item_prefix

        await client.set(cache_item_prefix(app.namespace) + "0:k", b"garbage")
    finally:
        await client.aclose()
    item = await app.state.get("k")
    assert item is not None and item.value == 1
    stats = app.state.cache_stats()
    assert stats is not None and stats.errors == 1


def test_an_invalid_cache_url_is_a_configuration_error(database_url: str) -> None:
    from statekeeper.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="cache URL 'localhost:6379' is invalid"):
        App(database_url, cache_url="localhost:6379")
