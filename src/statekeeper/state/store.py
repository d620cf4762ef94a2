"""The key/value state store: ETags, TTL, conditional writes, listing, updates.

``StateStore`` turns user values into stored rows (JSON, optionally sealed) and
back, checks every input before it reaches the database, keeps the cache
coherent, and logs each mutation. Atomic multi-key writes live in
``transaction.py``. A value above the app's blob threshold is stored out of line: its
row holds a reference (never sealed by the keyring, so the database counts it) and its
blob, sealed chunk by chunk, is inserted in the transaction that writes the row.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import functools
import inspect
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from statekeeper.blobs.refs import is_ref
from statekeeper.codec import decode_value, encode_value
from statekeeper.constants import MAX_KEY_BYTES, MAX_LIST_LIMIT, MAX_TRANSACTION_OPS, REF_MAGIC
from statekeeper.errors import (
    AlreadyTracked,
    BlobMissing,
    BlobUnavailable,
    ConflictError,
    DecryptionError,
    EncryptionError,
    InvalidCursor,
    InvalidFilter,
    TooManyRetries,
    TransactionConflict,
    ValidationError,
)
from statekeeper.identifiers import has_control, shown, utf8_length
from statekeeper.logs import correlation_id
from statekeeper.observability import metrics, tracing
from statekeeper.state.cache import CacheStats, StateCache
from statekeeper.state.encryption import Keyring, associated_data
from statekeeper.state.item import Entry, Item, Page
from statekeeper.state.validation import check_key, check_text, check_ttl
from statekeeper.storage.contracts import Storage
from statekeeper.storage.rows import (
    Checkpoint,
    DeleteOp,
    NewMessage,
    PreparedBlob,
    PutOp,
    StepRecord,
    StoredItem,
    StreamAppend,
    UnitOfWork,
    UnitResult,
    WriteOp,
)
from statekeeper.storage.state_ops import put_failed
from statekeeper.storage.state_query import QueryRow, StateQuery

if TYPE_CHECKING:
    from statekeeper.state.transaction import Outbox, Transaction
    from statekeeper.storage.replica import Replica

log = logging.getLogger("statekeeper.state")

UpdateFn = Callable[[Any], Any | Awaitable[Any]]
P = ParamSpec("P")
R = TypeVar("R")
MAX_REREADS = 5  # reads of a value out of line overwritten meanwhile, before giving up
# A large value out of line (the app's payloads): (namespace, JSON) -> its blob, or
# None below the threshold; and a stored value's bytes, read from its blob.
Spill = Callable[[str, bytes], PreparedBlob | None]
Fill = Callable[[str, bytes], Awaitable[bytes]]
T = TypeVar("T")


def measured(
    operation: str,
) -> Callable[[Callable[Concatenate[StateStore, P], Coroutine[Any, Any, R]]],
              Callable[Concatenate[StateStore, P], Coroutine[Any, Any, R]]]:  # fmt: skip
    """Time a store operation, and count the conditions that fail (metrics.py); trace it
    as part of traced work (tracing.py)."""

    def wrap(
        fn: Callable[Concatenate[StateStore, P], Coroutine[Any, Any, R]],
    ) -> Callable[Concatenate[StateStore, P], Coroutine[Any, Any, R]]:
        async def timed(store: StateStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
            began = time.perf_counter()
            try:
                with tracing.span(f"state {operation}", only_within=True):
                    return await fn(store, *args, **kwargs)
            except AlreadyTracked:  # a subscription's position, not a state write
                raise
            except ConflictError:
                metrics.state_conflict(store.namespace)
                raise
            finally:
                metrics.state_operation(store.namespace, operation, time.perf_counter() - began)

        functools.update_wrapper(timed, fn)  # its name and docstring
        return timed

    return wrap


def new_etag() -> str:
    """An opaque, unguessable ETag; a fresh one on every write."""
    return base64.urlsafe_b64encode(os.urandom(9)).decode()


@dataclass(frozen=True, slots=True)
class ReencryptReport:
    examined: int
    rewritten: int
    changed_meanwhile: int


class StateStore:
    """Keyed JSON state of one namespace."""

    def __init__(
        self,
        backend: Storage,
        namespace: str,
        *,
        clock: Callable[[], float],
        max_value_bytes: int,
        keyring: Keyring | None = None,
        cache: StateCache | None = None,
        outbox: Callable[[str], Outbox] | None = None,
        on_sent: Callable[[set[str]], None] | None = None,
        spill: Spill | None = None,
        fill: Fill | None = None,
        replica: Replica | None = None,
    ) -> None:
        self._backend = backend
        self._replica = replica  # reads with consistent=False (storage/replica.py)
        self.namespace = namespace
        self._clock = clock
        self.max_value_bytes = max_value_bytes
        self._keyring = keyring
        self._cache = cache
        self._background: set[asyncio.Future[None]] = set()
        self.outbox = outbox  # queue name -> what builds its messages, for tx.send
        self._on_sent = on_sent  # told which queues got messages, after commit
        self._spill = spill
        self._fill = fill

    # --- reads --------------------------------------------------------------------------

    @measured("get")
    async def get(self, key: str, *, consistent: bool = True) -> Item | None:
        """The item under ``key``, or None when absent or expired. ``consistent=False``
        accepts a value up to the replica's ``max_staleness`` old: read from the replica
        when one is configured and that fresh (never from the cache, never into it), else
        as a consistent read."""
        check_key(key)
        if not consistent and await self._replica_fresh():
            assert self._replica is not None
            stored = await self._replica.state.get(self.namespace, key, self._clock())
            return None if stored is None else await self._item(stored)
        if self._cache is not None:
            return await self._get_cached(self._cache, key, self._clock())
        stored = await self._backend.state.get(self.namespace, key, self._clock())
        if stored is None:
            return None
        if stored.key_id is None and not is_ref(stored.value):  # the common case
            return Item(key, decode_value(key, stored.value), stored.etag, stored.expires_at)
        return await self._item(stored)

    async def _get_cached(self, cache: StateCache, key: str, now: float) -> Item | None:
        lookup = await cache.lookup(key)
        if lookup is not None and lookup.item is not None:
            cached = lookup.item
            if cached.expires_at is None or cached.expires_at > now:
                return await self._item(cached)
        stored = await self._backend.state.get(self.namespace, key, now)
        if stored is None:
            return None
        if lookup is not None:
            await cache.fill(lookup, stored, now)
        return await self._item(stored)

    async def get_many(self, keys: Iterable[str]) -> dict[str, Item | None]:
        """Every requested key, mapped to its item or to None when missing."""
        wanted = [check_key(k) for k in keys]
        if not wanted:
            return {}
        found = await self._backend.state.get_many(self.namespace, wanted, self._clock())
        return {k: (await self._item(found[k]) if k in found else None) for k in wanted}

    async def list(
        self, prefix: str = "", *, limit: int = 100, cursor: str | None = None,
        consistent: bool = True,
    ) -> Page:  # fmt: skip
        """Items whose key starts with ``prefix``, in key order, ``limit`` at a time;
        ``consistent=False`` reads the replica as ``get`` does."""
        replica = not consistent and await self._replica_fresh()
        rows, next_cursor = await self._page(prefix, limit, cursor, replica=replica)
        items = [item for row in rows if (item := await self._item(row)) is not None]
        return Page(items, next_cursor)

    async def entries(
        self, prefix: str = "", *, limit: int = 100, cursor: str | None = None
    ) -> tuple[builtins.list[Entry], str | None]:
        """What ``list`` finds, without reading, opening or decoding a value (an
        operator's listing: keys, ETags, expiries and stored sizes), and the cursor of
        the next page (None when done)."""
        rows, next_cursor = await self._page(prefix, limit, cursor)
        return [_entry(row) for row in rows], next_cursor

    async def entry(self, key: str) -> Entry | None:
        """What ``get`` would find under ``key``, its value left unread (None when
        absent or expired): whether to read it (a value stored out of line may be
        large)."""
        check_key(key)
        stored = await self._backend.state.get(self.namespace, key, self._clock())
        return None if stored is None else _entry(stored)

    async def _replica_fresh(self) -> bool:
        return self._replica is not None and await self._replica.fresh()

    async def _page(
        self, prefix: str, limit: int, cursor: str | None, *, replica: bool = False
    ) -> tuple[builtins.list[StoredItem], str | None]:
        _check_prefix(prefix)
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not 1 <= limit <= MAX_LIST_LIMIT
        ):
            raise ValidationError(
                f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {limit!r}"
            )
        after = _decode_cursor(cursor, prefix) if cursor else ""
        storage = self._replica.state if replica and self._replica else self._backend.state
        rows = await storage.list(
            self.namespace,
            after=after,
            low=prefix,
            high=_prefix_end(prefix),
            limit=limit + 1,
            now=self._clock(),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, _encode_cursor(rows[-1].key) if more and rows else None

    async def query(self, query: StateQuery, *, prefix: str = "") -> Sequence[QueryRow]:
        """One page of ``query`` (a filter on the JSON of values, a sort, a position) over
        the items whose key starts with ``prefix``, computed by the database (the rules:
        ``storage/state_query.py``). Sealed values cannot be read there: with encryption
        keys configured, InvalidFilter. A value stored out of line has no fields there:
        it matches no filter and sorts as missing; rows carry its bytes all the same."""
        _check_prefix(prefix)
        if self._keyring is not None:
            raise InvalidFilter("queries are not supported on an encrypted store")
        rows = await self._backend.state_query.query(
            self.namespace, low=prefix, high=_prefix_end(prefix), query=query, now=self._clock()
        )
        return [
            replace(row, value=await self._value_bytes(row.value)) if is_ref(row.value) else row
            for row in rows
        ]

    # --- writes -------------------------------------------------------------------------

    @measured("put")
    async def put(
        self,
        key: str,
        value: Any,
        *,
        if_match: str | None = None,
        only_if_absent: bool = False,
        ttl: float | None = None,
    ) -> Item:
        """Store ``value``; the returned item carries the new ETag."""
        op = self.put_op(key, value, if_match=if_match, only_if_absent=only_if_absent, ttl=ttl)
        if op.blob is not None:  # out of line: the blob and the row in one transaction
            try:
                await self._apply([op])
            except TransactionConflict:
                raise put_failed(op) from None  # as a put alone says it
            return Item(key, value, op.etag, op.expires_at)
        await self._write([key], self._backend.state.put(self.namespace, op, self._clock()))
        self._log("state put", key, op.etag)
        return Item(key, value, op.etag, op.expires_at)

    async def put_many(
        self, items: Mapping[str, Any] | Iterable[tuple[str, Any]], *, ttl: float | None = None
    ) -> dict[str, Item]:
        """Store several values at once, all or nothing; last write wins per key."""
        pairs = list(items.items() if isinstance(items, Mapping) else items)
        ops = [self.put_op(k, v, ttl=ttl) for k, v in pairs]
        await self.apply(ops)
        return {
            op.key: Item(op.key, v, op.etag, op.expires_at)
            for op, (_, v) in zip(ops, pairs, strict=True)
        }

    @measured("delete")
    async def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete ``key``; True if it existed. A stale ``if_match`` raises ConflictError."""
        check_key(key)
        _check_etag(if_match)
        deleted = await self._write(
            [key], self._backend.state.delete(self.namespace, key, if_match, self._clock())
        )
        self._log("state delete", key, None)
        return deleted

    async def update(
        self,
        key: str,
        fn: UpdateFn,
        *,
        ttl: float | None = None,
        max_attempts: int = 100,
        base_delay: float = 0.001,
        max_delay: float = 0.1,
    ) -> Item:
        """Read, apply ``fn`` to the value (None when absent), write back conditionally.

        On a conflict with a concurrent writer it retries after a fully jittered
        exponential backoff, up to ``max_attempts`` times.
        """
        check_key(key)
        check_ttl(ttl)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValidationError(f"max_attempts must be a positive integer, got {max_attempts!r}")
        for attempt in range(max_attempts):
            current = await self.get(key)
            new_value = fn(None if current is None else current.value)
            if inspect.isawaitable(new_value):
                new_value = await new_value
            try:
                if current is None:
                    return await self.put(key, new_value, only_if_absent=True, ttl=ttl)
                return await self.put(key, new_value, if_match=current.etag, ttl=ttl)
            except ConflictError:
                await asyncio.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))
        raise TooManyRetries(
            f"update of key {key!r} conflicted {max_attempts} times in a row", key=key
        )

    def transaction(self) -> Transaction:
        """``async with store.transaction() as tx:`` puts and deletes, all or nothing."""
        from statekeeper.state.transaction import Transaction

        return Transaction(self)

    # --- building blocks shared with transactions ---------------------------------------

    def put_op(
        self,
        key: str,
        value: Any,
        *,
        if_match: str | None = None,
        only_if_absent: bool = False,
        ttl: float | None = None,
    ) -> PutOp:
        """A checked, encoded (and sealed) put, ready for the backend."""
        check_key(key)
        _check_etag(if_match)
        if if_match is not None and only_if_absent:
            raise ValidationError("if_match and only_if_absent cannot be combined", key=key)
        seconds = check_ttl(ttl)
        data = encode_value(key, value, self.max_value_bytes)
        expires_at = None if seconds is None else self._clock() + seconds
        blob = None if self._spill is None else self._spill(self.namespace, data)
        if blob is not None:  # out of line: the row refers to the blob (sealed by chunk)
            ref, etag = REF_MAGIC + blob.id, new_etag()
            return PutOp(key, ref, etag, expires_at, None, if_match, only_if_absent, blob=blob)
        key_id = None
        if self._keyring is not None:
            data, key_id = self._keyring.seal(data, associated_data(self.namespace, key))
        return PutOp(key, data, new_etag(), expires_at, key_id, if_match, only_if_absent)

    def delete_op(self, key: str, *, if_match: str | None = None) -> DeleteOp:
        check_key(key)
        _check_etag(if_match)
        return DeleteOp(key, if_match)

    async def _apply(
        self,
        ops: Sequence[WriteOp],
        messages: Sequence[NewMessage] = (),
        *,
        step: StepRecord | None = None,
        checkpoint: Checkpoint | None = None,
        appends: Sequence[StreamAppend] = (),
    ) -> UnitResult:
        """Apply checked ops, and enqueue ``messages``, atomically (with a workflow's
        ``step``, under its fence, or a subscription's ``checkpoint``, under its lease:
        a lost one applies nothing, ``applied`` False; and events ``appends``); then
        invalidate and log. (``apply`` is this, measured; a put out of line calls it
        unmeasured, being measured as a put.)"""
        if len(ops) + len(messages) > MAX_TRANSACTION_OPS:
            raise ValidationError(
                f"a transaction holds at most {MAX_TRANSACTION_OPS} operations and messages, "
                f"got {len(ops) + len(messages)}"
            )
        if not ops and not messages and step is None and checkpoint is None and not appends:
            return UnitResult(True)
        unit = UnitOfWork(
            self.namespace, self._clock(), writes=ops, messages=messages, step=step,
            checkpoint=checkpoint, appends=appends,
        )  # fmt: skip
        done = await self._write([op.key for op in ops], self._backend.commit(unit))
        if not done.applied:
            return done
        for op in ops:
            self._log(f"state {op.kind}", op.key, op.etag if isinstance(op, PutOp) else None)
        if messages and self._on_sent is not None:
            self._on_sent({m.queue for m in messages})
        return done

    apply = measured("transaction")(_apply)

    # --- maintenance --------------------------------------------------------------------

    async def purge_expired(self, batch: int = 1000) -> int:
        """Delete expired items (every namespace) until none is left; how many."""
        total = 0
        while True:
            purged = await self._backend.state.purge_expired(self._clock(), batch)
            total += purged
            if purged < batch:
                return total

    async def reencrypt(self, page_size: int = 500) -> ReencryptReport:
        """Re-seal every item not sealed by the primary key (plaintext ones too)."""
        keyring = self._keyring
        if keyring is None:
            raise EncryptionError("no encryption keys are configured; nothing to re-encrypt with")
        examined = rewritten = changed = 0
        after = ""
        while True:
            rows = await self._backend.state.list(
                self.namespace, after=after, low="", high=None, limit=page_size, now=self._clock()
            )
            for row in rows:
                examined += 1
                if row.key_id == keyring.primary or (row.key_id is None and is_ref(row.value)):
                    continue  # sealed by the primary key, or out of line (chunks sealed)
                aad = associated_data(self.namespace, row.key)
                plain = (
                    row.value if row.key_id is None else keyring.open(row.value, row.key_id, aad)
                )
                sealed, key_id = keyring.seal(plain, aad)
                if await self._backend.state.reseal(
                    self.namespace, row.key, row.etag, sealed, key_id
                ):
                    rewritten += 1
                else:
                    changed += 1  # rewritten by its owner meanwhile, under the primary key
            await self._written([row.key for row in rows if row.key_id != keyring.primary])
            if len(rows) < page_size:
                return ReencryptReport(examined, rewritten, changed)
            after = rows[-1].key

    def cache_stats(self) -> CacheStats | None:
        """Hit, miss, fill and error counters of the Redis cache, when one is configured."""
        return None if self._cache is None else self._cache.stats()

    # --- internals ----------------------------------------------------------------------

    async def _item(self, stored: StoredItem) -> Item | None:
        """The item a row holds (None: it went while its value was read)."""
        if stored.key_id is None and is_ref(stored.value):
            return await self._out_of_line(stored)
        return self._inline(stored)

    def _inline(self, stored: StoredItem) -> Item:
        data = stored.value
        if stored.key_id is not None:
            if self._keyring is None:
                raise DecryptionError(
                    f"key {stored.key!r} is encrypted (key id {stored.key_id!r}) but no "
                    "encryption keys are configured",
                    key=stored.key,
                )
            try:
                data = self._keyring.open(
                    data, stored.key_id, associated_data(self.namespace, stored.key)
                )
            except DecryptionError as exc:
                raise DecryptionError(
                    f"key {stored.key!r}: {exc.message}", key=stored.key
                ) from None
        return Item(stored.key, decode_value(stored.key, data), stored.etag, stored.expires_at)

    async def _out_of_line(self, stored: StoredItem) -> Item | None:
        """An item stored out of line, its value read from its blob. A value overwritten
        or deleted since its row was read may have had its blob released and swept: then
        the row is read again (and the cache's entry dropped), a few times at most; None
        if the item is gone."""
        for _ in range(MAX_REREADS):
            try:
                data = await self._value_bytes(stored.value)
            except BlobMissing:
                await self._written([stored.key])  # the cached reference may be the stale one
                fresh = await self._backend.state.get(self.namespace, stored.key, self._clock())
                if fresh is None:
                    return None
                if fresh.value == stored.value:
                    raise  # still referred to, and missing: damage, not a race
                if fresh.key_id is not None or not is_ref(fresh.value):
                    return self._inline(fresh)
                stored = fresh
                continue
            return Item(stored.key, decode_value(stored.key, data), stored.etag, stored.expires_at)
        raise BlobMissing(f"the value of key {stored.key!r} kept changing while it was read")

    async def _value_bytes(self, ref: bytes) -> bytes:
        if self._fill is None:
            raise BlobUnavailable("a value is stored out of line but this store reads no blobs")
        return await self._fill(self.namespace, ref)

    async def _write(self, keys: Sequence[str], operation: Awaitable[T]) -> T:
        """Run a backend write, then drop ``keys`` from the cache whatever the outcome.

        After a conflict the cached entry may be what was stale, so it goes too. If
        the caller is cancelled, the write may still commit: it runs on, shielded,
        and the keys are dropped once it has landed, never before.
        """
        cache = self._cache
        if cache is None:
            return await operation
        write = asyncio.ensure_future(operation)
        try:
            return await asyncio.shield(write)
        finally:
            if write.done():
                await asyncio.shield(cache.invalidate(keys))
            else:
                write.add_done_callback(lambda done: self._invalidate_later(done, keys))

    def _invalidate_later(self, write: asyncio.Future[Any], keys: Sequence[str]) -> None:
        if not write.cancelled():
            write.exception()  # retrieved: the caller who would have seen it is gone
        if self._cache is not None:
            task = asyncio.ensure_future(self._cache.invalidate(keys))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _written(self, keys: Sequence[str]) -> None:
        if self._cache is not None:
            await self._cache.invalidate(keys)

    def _log(self, event: str, key: str, etag: str | None) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                event,
                extra={
                    "namespace": self.namespace,
                    "key": key,
                    "etag": etag,
                    "correlation_id": correlation_id.get(),
                },
            )


def _check_etag(etag: object) -> None:
    if etag is not None:
        check_text("if_match", etag)


def _check_prefix(prefix: object) -> None:
    """A prefix that could match a key: a string of at most MAX_KEY_BYTES UTF-8 bytes
    without control characters (or empty); InvalidFilter otherwise, whatever is wrong."""
    if type(prefix) is not str:
        raise InvalidFilter(f"invalid prefix filter {shown(prefix)}: a prefix is a string")
    size = utf8_length(prefix)
    if size is None:
        raise InvalidFilter(
            f"invalid prefix filter {shown(prefix)}: it is not Unicode text (lone surrogate)"
        )
    if size > MAX_KEY_BYTES:
        raise InvalidFilter(
            f"invalid prefix filter {shown(prefix)}: it is {size} bytes; keys are at most "
            f"{MAX_KEY_BYTES}"
        )
    if has_control(prefix):
        raise InvalidFilter(
            f"invalid prefix filter {shown(prefix)}: keys hold no control characters"
        )


def _prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix``.

    Keys compare bytewise as UTF-8 on both backends, which is code point order.
    """
    chars = list(prefix)
    while chars:
        point = ord(chars[-1])
        if point < 0x10FFFF:
            point += 1
            if 0xD800 <= point <= 0xDFFF:
                point = 0xE000
            chars[-1] = chr(point)
            return "".join(chars)
        chars.pop()
    return None


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, prefix: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeError):
        key = ""
    if not key:
        raise InvalidCursor(f"cursor {cursor!r} is not one this store returned")
    if not key.startswith(prefix):
        raise InvalidCursor(f"cursor {cursor!r} belongs to another prefix than {prefix!r}")
    return key


def _entry(stored: StoredItem) -> Entry:
    out_of_line = stored.key_id is None and is_ref(stored.value)
    return Entry(stored.key, stored.etag, stored.expires_at, len(stored.value), out_of_line)
