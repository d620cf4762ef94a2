"""Dapr's state API over statekeeper's store, the same for HTTP and gRPC.

Each Dapr state store is a component (``components.py``) living in a statekeeper
namespace; keys are stored as ``<prefix>||<key>`` (the prefix is the app id by
default, so apps sharing a store never see each other's keys). Values are bytes in
Dapr and JSON here (``values.py``). Every Dapr rule of the API is kept:

- save: an item with an ETag writes only if the stored ETag is still that one; an
  item without one writes unconditionally, unless its concurrency is ``first-write``,
  when it writes only if the key is absent. Several items are independent: each one
  succeeds or fails alone (unconditional items commit together, in one round trip);
  the answer names every key that failed.
- delete: with an ETag, only that version; a missing key is deleted successfully.
- transaction: upserts and deletes, applied in order, all or nothing; with the
  store's outbox settings, each upsert also publishes its value, atomically.
- TTL: ``ttlInSeconds`` metadata (``-1``: never expires); reads report
  ``ttlExpireTime``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from statekeeper.constants import MAX_TRANSACTION_OPS
from statekeeper.errors import (
    AlreadyExists,
    ConflictError,
    InvalidQueueName,
    StatekeeperError,
    TransactionConflict,
    ValidationError,
    ValueTooLarge,
)
from statekeeper.identifiers import check_queue_name
from statekeeper.queues import Retry
from statekeeper.sidecar.components import Component, Resources
from statekeeper.sidecar.errors import DaprError, Grpc, malformed, store_not_found
from statekeeper.sidecar.values import (
    TTL_EXPIRE_METADATA,
    check_etag,
    check_state_key,
    expire_time,
    ttl_seconds,
)
from statekeeper.state.store import StateStore
from statekeeper.storage.rows import PutOp, WriteOp

if TYPE_CHECKING:
    from statekeeper.app import App

Concurrency = Literal["first-write", "last-write"]
# The internal queue, in a store's namespace, of the values one app's transactions
# publish (the outbox): that app's sidecar relays each one to the configured topic.
# One queue per app id (``outbox_queue``), so apps sharing a store never relay each
# other's values; retried for about a week (capped backoff), so a passing outage of
# the database or the pub/sub never drops a committed publish.
OUTBOX_QUEUE = "dapr-outbox"
OUTBOX_RETRY = Retry(max_attempts=20_000, initial_interval=0.5, max_delay=30.0)


def outbox_queue(app_id: str) -> str:
    """The outbox queue of ``app_id``: ``dapr-outbox.<app id>``, or, when that is not a
    queue name (1-80 of ``[A-Za-z0-9_.-]``), ``dapr-outbox-h.<sha-256 of the app id>``."""
    name = f"{OUTBOX_QUEUE}.{app_id}"
    try:
        return check_queue_name(name)
    except InvalidQueueName:
        pass
    return f"{OUTBOX_QUEUE}-h.{hashlib.sha256(app_id.encode()).hexdigest()}"


OUTBOX_PUBSUB = "outboxPublishPubsub"
OUTBOX_TOPIC = "outboxPublishTopic"
MAX_BULK_KEYS = 1000  # keys of a bulk get, items of a save or a bulk delete
# Conditional items of one save (or bulk delete) written at once: each is a commit of
# its own; more wait, so one request cannot take every connection or the writer.
MAX_CONCURRENT_WRITES = 16


@dataclass
class Entry:
    """A state item read back: ``value`` as stored (None: missing), its ETag and
    response metadata."""

    key: str
    value: Any = None
    etag: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    error: str = ""

    @property
    def found(self) -> bool:
        return self.etag is not None


@dataclass
class SaveItem:
    """One item of a save, or an upsert of a transaction: ``value`` as stored."""

    key: str
    value: Any
    etag: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    concurrency: Concurrency | None = None


@dataclass
class DeleteItem:
    key: str
    etag: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    concurrency: Concurrency | None = None


def concurrency(value: object, code: str) -> Concurrency | None:
    """A concurrency option (``first-write`` / ``last-write``; empty: unspecified)."""
    if value in (None, "", "unspecified"):
        return None
    if value in ("first-write", "last-write"):
        return value
    raise DaprError(code, f"invalid concurrency {str(value)[:40]!r}: first-write or last-write")


def consistency(value: object, code: str) -> bool:
    """Whether a consistency option asks for a consistent read: all but ``eventual``,
    which may read the app's replica (``replica_url``, storage/replica.py) when it has
    one. Writes are always consistent: for them the option is only checked."""
    if value not in (None, "", "eventual", "strong", "unspecified"):
        raise DaprError(code, f"invalid consistency {str(value)[:40]!r}: eventual or strong")
    return value != "eventual"


class DaprState:
    """The state API of one app (``app_id``) over the stores of ``resources``."""

    def __init__(self, app: App, resources: Resources, app_id: str) -> None:
        self._app = app
        self.resources = resources
        self.app_id = app_id
        self._stores = resources.state_stores

    def component(self, name: str) -> Component:
        component = self._stores.get(name)
        if component is None:
            if not self._stores:
                raise DaprError(
                    "ERR_STATE_STORE_NOT_CONFIGURED", "state store is not configured",
                    http_status=500, grpc=Grpc.FAILED_PRECONDITION,
                )  # fmt: skip
            raise store_not_found(name)
        return component

    def store(self, component: Component) -> StateStore:
        return self._app.in_namespace(component.namespace).state

    def stored_key(self, component: Component, key: str) -> str:
        return component.key_prefix(self.app_id) + key

    # --- reads --------------------------------------------------------------------------

    async def get(self, store: str, key: str, *, consistent: bool = True) -> Entry:
        component = self.component(store)
        check_state_key(key, "ERR_MALFORMED_REQUEST")
        stored = self.stored_key(component, key)
        try:
            item = await self.store(component).get(stored, consistent=consistent)
        except StatekeeperError as problem:
            raise _failed("ERR_STATE_GET", component.name, problem) from None
        return _entry(key, item)

    async def bulk_get(self, store: str, keys: Sequence[str]) -> list[Entry]:
        component = self.component(store)
        if len(keys) > MAX_BULK_KEYS:
            raise malformed(f"a bulk get reads at most {MAX_BULK_KEYS} keys, got {len(keys)}")
        for key in keys:
            check_state_key(key, "ERR_MALFORMED_REQUEST")
        prefix = component.key_prefix(self.app_id)
        try:
            items = await self.store(component).get_many([prefix + k for k in keys])
        except StatekeeperError as problem:
            raise _failed("ERR_STATE_BULK_GET", store, problem) from None
        return [_entry(key, items.get(prefix + key)) for key in keys]

    # --- writes -------------------------------------------------------------------------

    async def save(self, store: str, items: Sequence[SaveItem]) -> None:
        """Save ``items``, each on its own; DaprError names those that failed."""
        component = self.component(store)
        state = self.store(component)
        _check_count(len(items), "a save")
        plain: list[WriteOp] = []
        conditional: list[PutOp] = []
        for item in items:
            check_state_key(item.key, "ERR_MALFORMED_REQUEST")
            etag = check_etag(item.etag, "ERR_STATE_SAVE")
            ttl = ttl_seconds(item.metadata, "ERR_MALFORMED_REQUEST")
            op = self._put_op(component, state, item, etag, ttl)
            (plain if op.if_match is None and not op.only_if_absent else conditional).append(op)
        limit = asyncio.Semaphore(MAX_CONCURRENT_WRITES)

        async def bounded(ops: list[WriteOp], key: str | None) -> None:
            async with limit:
                await self._apply(component, state, ops, item_key=key)

        work = [bounded([op], op.key) for op in conditional]
        if plain:
            work.append(bounded(plain, None))
        outcomes = await asyncio.gather(*work, return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if not failures:
            return
        for failure in failures:
            if not isinstance(failure, DaprError):
                raise failure
        if len(failures) == 1:
            raise failures[0]
        conflict = all(f.http_status == 409 for f in failures if isinstance(f, DaprError))
        raise DaprError(
            "ERR_STATE_SAVE",
            f"failed saving state in state store {store}: "
            + "; ".join(f.message for f in failures if isinstance(f, DaprError)),
            http_status=409 if conflict else 500,
            grpc=Grpc.ABORTED if conflict else Grpc.INTERNAL,
        )

    def _put_op(
        self,
        component: Component,
        state: StateStore,
        item: SaveItem,
        etag: str | None,
        ttl: float | None,
    ) -> PutOp:
        try:
            return state.put_op(
                self.stored_key(component, item.key), item.value, if_match=etag,
                only_if_absent=etag is None and item.concurrency == "first-write", ttl=ttl,
            )  # fmt: skip
        except ValueTooLarge as problem:
            raise DaprError("ERR_STATE_SAVE", problem.message, http_status=413) from None
        except ValidationError as problem:
            raise malformed(f"key {item.key!r}: {problem.message}") from None

    async def _apply(
        self,
        component: Component,
        state: StateStore,
        ops: list[WriteOp],
        *,
        item_key: str | None = None,
    ) -> None:
        try:
            await state.apply(ops)
        except (ConflictError, TransactionConflict) as problem:
            shown = self._shown(component, item_key or ops[0].key)
            why = "key already exists" if isinstance(problem, AlreadyExists) else "etag mismatch"
            raise DaprError(
                "ERR_STATE_SAVE",
                f"failed saving state in state store {component.name}: possible {why} "
                f"for key {shown}",
                http_status=409, grpc=Grpc.ABORTED,
            ) from None  # fmt: skip
        except StatekeeperError as problem:
            raise _failed("ERR_STATE_SAVE", component.name, problem) from None

    async def delete(self, store: str, item: DeleteItem) -> None:
        component = self.component(store)
        check_state_key(item.key, "ERR_MALFORMED_REQUEST")
        etag = check_etag(item.etag, "ERR_STATE_DELETE")
        try:
            await self.store(component).delete(self.stored_key(component, item.key), if_match=etag)
        except ConflictError:
            raise DaprError(
                "ERR_STATE_DELETE",
                f"failed deleting state with key {item.key}: possible etag mismatch",
                http_status=409, grpc=Grpc.ABORTED,
            ) from None  # fmt: skip
        except StatekeeperError as problem:
            raise _failed("ERR_STATE_DELETE", store, problem) from None

    async def delete_bulk(self, store: str, items: Sequence[DeleteItem]) -> None:
        """Delete ``items``, each on its own (the first failure is raised)."""
        self.component(store)
        _check_count(len(items), "a bulk delete")
        limit = asyncio.Semaphore(MAX_CONCURRENT_WRITES)

        async def bounded(item: DeleteItem) -> None:
            async with limit:
                await self.delete(store, item)

        outcomes = await asyncio.gather(*(bounded(item) for item in items), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def transaction(self, store: str, operations: Sequence[SaveItem | DeleteItem]) -> None:
        """Apply ``operations`` in order, all or nothing (and publish each upsert's
        value when the store has an outbox)."""
        component = self.component(store)
        state = self.store(component)
        outbox = _outbox(component)
        limit = MAX_TRANSACTION_OPS // 2 if outbox is not None else MAX_TRANSACTION_OPS
        outbox_to = None
        if outbox is not None:
            outbox_to = self._app.in_namespace(component.namespace).queue(
                outbox_queue(self.app_id), retry=OUTBOX_RETRY
            )
        if len(operations) > limit:
            raise DaprError(
                "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS",
                f"the transaction contains {len(operations)} operations, which is more than "
                f"what the state store supports: {limit}",
            )
        async with state.transaction() as tx:
            for op in operations:
                check_state_key(op.key, "ERR_MALFORMED_REQUEST")
                etag = check_etag(op.etag, "ERR_STATE_TRANSACTION")
                key = self.stored_key(component, op.key)
                try:
                    if isinstance(op, SaveItem):
                        tx.put(
                            key, op.value, if_match=etag,
                            only_if_absent=etag is None and op.concurrency == "first-write",
                            ttl=ttl_seconds(op.metadata, "ERR_MALFORMED_REQUEST"),
                        )  # fmt: skip
                        if outbox is not None and outbox_to is not None:
                            tx.send(outbox_to, {**outbox, "key": op.key, "value": op.value})
                    else:
                        tx.delete(key, if_match=etag)
                except ValidationError as problem:
                    raise malformed(f"key {op.key!r}: {problem.message}") from None
            try:
                await tx.commit()
            except TransactionConflict as problem:
                index = problem.details.get("index")
                raise DaprError(
                    "ERR_STATE_TRANSACTION",
                    f"error while executing state transaction: operation {index} "
                    f"({operations[index].key if isinstance(index, int) else '?'}): "
                    "possible etag mismatch",
                    http_status=500, grpc=Grpc.ABORTED,
                ) from None  # fmt: skip
            except StatekeeperError as problem:
                raise _failed("ERR_STATE_TRANSACTION", store, problem) from None

    def _shown(self, component: Component, stored_key: str) -> str:
        prefix = component.key_prefix(self.app_id)
        return stored_key[len(prefix) :] if stored_key.startswith(prefix) else stored_key


def _check_count(count: int, what: str) -> None:
    if count > MAX_BULK_KEYS:
        raise malformed(f"{what} holds at most {MAX_BULK_KEYS} items, got {count}")


def _entry(key: str, item: Any) -> Entry:
    if item is None:
        return Entry(key)
    metadata = {}
    expires = expire_time(item.expires_at)
    if expires is not None:
        metadata[TTL_EXPIRE_METADATA] = expires
    return Entry(key, item.value, item.etag, metadata)


def _outbox(component: Component) -> Mapping[str, str] | None:
    pubsub = component.metadata.get(OUTBOX_PUBSUB)
    topic = component.metadata.get(OUTBOX_TOPIC)
    if not pubsub or not topic:
        return None
    return {"pubsub": pubsub, "topic": topic, "store": component.name}


def _failed(code: str, store: str, problem: StatekeeperError) -> DaprError:
    status = 400 if problem.http_status < 500 else 500
    return DaprError(
        code, f"state store {store}: {problem.message}", http_status=status,
        grpc=Grpc.INVALID_ARGUMENT if status == 400 else Grpc.INTERNAL,
    )  # fmt: skip
