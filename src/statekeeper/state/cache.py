"""Cache-aside on Redis for state reads, never serving a value older than a write.

A read looks up the item; on a miss it takes a short fill lease, reads the
database, and fills the cache only if its lease survived. Every write deletes
the item and its lease after the database commit, so a reader that read the
database before that commit finds its lease gone and cannot fill the old value.

All keys of a namespace carry an epoch. When Redis cannot be told about a write
(it is down), the cache is bypassed until Redis answers again, and then the
epoch is bumped first, which drops every entry cached before the outage.

Redis is never the truth: any Redis failure makes reads fall through to the
database, logged once per outage.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from statekeeper.constants import cache_epoch_key, cache_item_prefix, cache_lease_prefix
from statekeeper.errors import ConfigurationError
from statekeeper.storage.rows import StoredItem
from statekeeper.storage.url import AT_AFTER_HOST, at_after_host, redact

log = logging.getLogger("statekeeper.cache")

# KEYS[1] epoch; ARGV: item prefix, lease prefix, state key, lease token, lease ms.
_LOOKUP = """
local epoch = redis.call('GET', KEYS[1]) or '0'
local suffix = epoch .. ':' .. ARGV[3]
local cached = redis.call('GET', ARGV[1] .. suffix)
if cached then return {epoch, cached, 0} end
if redis.call('SET', ARGV[2] .. suffix, ARGV[4], 'NX', 'PX', ARGV[5]) then
  return {epoch, '', 1}
end
return {epoch, '', 0}
"""

# KEYS[1] epoch; ARGV: item prefix, lease prefix, state key, lease token, epoch seen,
# payload, ttl ms.
_FILL = """
local epoch = redis.call('GET', KEYS[1]) or '0'
if epoch ~= ARGV[5] then return 0 end
local suffix = epoch .. ':' .. ARGV[3]
if redis.call('GET', ARGV[2] .. suffix) ~= ARGV[4] then return 0 end
redis.call('SET', ARGV[1] .. suffix, ARGV[6], 'PX', ARGV[7])
redis.call('DEL', ARGV[2] .. suffix)
return 1
"""

# KEYS[1] epoch; ARGV: item prefix, lease prefix, then the state keys.
_INVALIDATE = """
local epoch = redis.call('GET', KEYS[1]) or '0'
for i = 3, #ARGV do
  local suffix = epoch .. ':' .. ARGV[i]
  redis.call('DEL', ARGV[1] .. suffix, ARGV[2] .. suffix)
end
return 1
"""

_LEASE_MS = 10_000
_RETRY_AFTER = 1.0  # seconds the cache is bypassed after a Redis failure


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache hit (``item``), or a miss that may be filled with ``lease``."""

    item: StoredItem | None
    lease: str | None
    epoch: bytes


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    fills: int
    errors: int
    available: bool


class StateCache:
    """The Redis cache in front of one namespace of the state store."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        ttl: float = 60.0,
        timeout: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Imported here: a process without a cache (most CLI commands) does not load it.
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self._failures = (RedisError, OSError)  # what makes the cache unusable for a while
        # No client-side retries: a failure bypasses the cache at once instead of
        # stalling the read that met it.
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._epoch_key = cache_epoch_key(namespace)
        self._prefix = cache_item_prefix(namespace)
        self._lease_prefix = cache_lease_prefix(namespace)
        self._ttl_ms = int(ttl * 1000)
        self._monotonic = monotonic
        self._lookup = self._redis.register_script(_LOOKUP)
        self._fill = self._redis.register_script(_FILL)
        self._invalidate = self._redis.register_script(_INVALIDATE)
        self._down = False
        self._retry_at = 0.0
        self._bump_needed = False
        self.hits = self.misses = self.fills = self.errors = 0

    async def close(self) -> None:
        await self._redis.aclose()

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, self.fills, self.errors, not self._down)

    # --- the three operations ----------------------------------------------------------

    async def lookup(self, key: str) -> Lookup | None:
        """The cached item or a fill lease; None when the cache is unusable now."""
        if not await self._usable():
            return None
        lease = secrets.token_hex(8)
        try:
            epoch, payload, leased = await self._lookup(
                keys=[self._epoch_key],
                args=[self._prefix, self._lease_prefix, key, lease, _LEASE_MS],
            )
        except self._failures as exc:
            self._failed(exc)
            return None
        self._recovered()
        if payload:
            try:
                item = _decode(key, payload)
            except (ValueError, TypeError) as exc:  # not ours: count it, read the database
                self.errors += 1
                log.warning("unreadable cache entry ignored", extra={"key": key, "error": str(exc)})
                return Lookup(None, None, epoch)
            self.hits += 1
            return Lookup(item, None, epoch)
        self.misses += 1
        return Lookup(None, lease if leased else None, epoch)

    async def fill(self, lookup: Lookup, item: StoredItem, now: float) -> None:
        """Cache ``item`` (read from the database) if the lookup's lease survived."""
        if lookup.lease is None or not await self._usable():
            return  # _usable bumps a pending epoch first, which voids this lease
        ttl_ms = self._ttl_ms
        if item.expires_at is not None:
            ttl_ms = min(ttl_ms, int((item.expires_at - now) * 1000))
        if ttl_ms <= 0:
            return
        try:
            filled = await self._fill(
                keys=[self._epoch_key],
                args=[
                    self._prefix,
                    self._lease_prefix,
                    item.key,
                    lookup.lease,
                    lookup.epoch,
                    _encode(item),
                    ttl_ms,
                ],
            )
        except self._failures as exc:
            self._failed(exc)
            return
        self.fills += int(filled)

    async def invalidate(self, keys: Sequence[str]) -> None:
        """Forget ``keys``; called after the write that changed them has committed."""
        if not keys:
            return
        if not await self._usable():
            self._bump_needed = True
            return
        try:
            await self._invalidate(
                keys=[self._epoch_key], args=[self._prefix, self._lease_prefix, *keys]
            )
        except self._failures as exc:
            self._bump_needed = True
            self._failed(exc)
            return
        self._recovered()

    # --- outage handling ---------------------------------------------------------------

    async def _usable(self) -> bool:
        if self._down and self._monotonic() < self._retry_at:
            return False
        if self._bump_needed:
            try:
                await self._redis.incr(self._epoch_key)
            except self._failures as exc:
                self._failed(exc)
                return False
            self._bump_needed = False
            log.info("cache epoch bumped: entries cached before the outage are dropped")
        return True

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self._retry_at = self._monotonic() + _RETRY_AFTER
        if not self._down:
            self._down = True
            log.warning(
                "cache unavailable; reading from the database until it is back",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            log.info("cache available again")


def _encode(item: StoredItem) -> bytes:
    header = json.dumps([item.etag, item.expires_at, item.key_id]).encode()
    return header + b"\n" + item.value


def _decode(key: str, payload: Any) -> StoredItem:
    data = bytes(payload)
    header, newline, value = data.partition(b"\n")
    etag, expires_at, key_id = json.loads(header)
    if not newline or not isinstance(etag, str):
        raise ValueError("not a statekeeper cache entry")
    return StoredItem(key, value, etag, expires_at, key_id)


def check_cache_url(url: str) -> None:
    """Parse the cache URL (connecting on first use); errors show it redacted, and the
    parser's own messages only when they cannot echo part of a password."""
    if url.partition("://")[0].lower() in ("redis", "rediss") and at_after_host(url):
        raise ConfigurationError(f"cache URL {redact(url)!r} {AT_AFTER_HOST}")
    import redis.asyncio as aioredis

    try:
        aioredis.ConnectionPool.from_url(url)
    except ValueError as exc:
        said = str(exc)
        reason = (
            said
            if said.startswith(("Redis URL must specify", "Invalid value for"))
            else "its host or port cannot be parsed (a port is a number from 0 to 65535)"
        )
        raise ConfigurationError(f"cache URL {redact(url)!r} is invalid: {reason}") from None
