"""``app.entities``: calling entities and reading their state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from statekeeper.codec import decode_value
from statekeeper.entities.definitions import EntityTypes
from statekeeper.entities.signals import parse_signal, signal_body, signal_call_id
from statekeeper.entities.writers import EntityWriters
from statekeeper.errors import InvalidValue
from statekeeper.identifiers import check_call_id, check_entity_key, check_entity_type
from statekeeper.queues import Message, Queue
from statekeeper.queues.message import SendResult
from statekeeper.storage.contracts import Storage
from statekeeper.storage.rows import EntityRow

MAX_LIST = 1000


@dataclass(frozen=True, slots=True)
class EntitySnapshot:
    """An entity as last committed: its key, state, version (how many calls changed it)
    and when it last changed; ``leased_by`` the process holding its lease, if any."""

    key: str
    state: Any
    version: int
    updated_at: float
    leased_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "state": self.state, "version": self.version,
                "updated_at": self.updated_at, "leased_by": self.leased_by}  # fmt: skip


class Entities:
    """The entities of one namespace: ``call`` runs a handler (an exclusive one once per
    key at a time across every process, committed before it answers), ``signal`` has a
    worker run it later, ``get`` and ``list`` read the committed state."""

    def __init__(
        self,
        types: EntityTypes,
        writers: EntityWriters,
        backend: Callable[[], Storage],
        namespace: str,
        calls: Callable[[], Queue],
    ) -> None:
        self.types = types
        self.writers = writers
        self._backend = backend
        self._namespace = namespace
        self._calls = calls  # the queue of signals (signals.py)

    async def call(
        self, type: str, key: str, handler: str, arg: Any = None, *, call_id: str | None = None
    ) -> Any:
        """Run ``handler`` of entity ``type``/``key`` with ``arg``: its result, or
        EntityCallFailed with the error it raised (then it changed nothing). With
        ``call_id``, a repeat of the call gets the first answer instead of running again
        (answers are kept ``entity_answer_ttl`` seconds)."""
        entity, found = self.types.target(type, handler)
        checked_key = check_entity_key(key)
        if call_id is not None:
            call_id = check_call_id(call_id)
        if found.readonly:
            return await self.writers.read(entity, checked_key, found, arg)
        return await self.writers.call(entity, checked_key, found, arg, call_id)

    async def call_with_id(self, type: str, key: str, handler: str, arg: Any, call_id: str) -> Any:
        """``call`` with ``call_id`` (a workflow's ``ctx.call``)."""
        return await self.call(type, key, handler, arg, call_id=call_id)

    async def signal(
        self,
        type: str,
        key: str,
        handler: str,
        arg: Any = None,
        *,
        delay: float | None = None,
        dedup_id: str | None = None,
    ) -> str:
        """Have ``handler`` of entity ``type``/``key`` called with ``arg`` by a worker
        (after ``delay`` seconds), without waiting for it: stored before this returns
        the request id (its status and result: ``/v1/requests/{id}``). ``dedup_id``: a
        repeat within the queue's window is not stored again (the first id returns)."""
        return (await self.send_signal(type, key, handler, arg, delay=delay, dedup_id=dedup_id)).id

    async def send_signal(
        self,
        type: str,
        key: str,
        handler: str,
        arg: Any,
        *,
        delay: float | None = None,
        dedup_id: str | None = None,
        fingerprint: str | None = None,
        dedup_window: float | None = None,
        correlation: str | None = None,
    ) -> SendResult:
        """``signal`` with the queue's full answer (a repeat: ``duplicate``, and
        whether its ``fingerprint`` matched)."""
        entity, found = self.types.target(type, handler)
        queue = self._calls()
        message = queue.new_message(
            signal_body(entity.name, key, found.name, arg), delay=delay, dedup_id=dedup_id,
            fingerprint=fingerprint, dedup_window=dedup_window, correlation=correlation,
        )  # fmt: skip
        return await queue.send_message(message)

    async def deliver(self, message: Message) -> Any:
        """Run the signal ``message`` (the consumer of ENTITY_CALLS): the handler's
        result; a redelivery gets the recorded answer."""
        type, key, handler, arg = parse_signal(message.body)
        return await self.call(type, key, handler, arg, call_id=signal_call_id(message.id))

    async def get(self, type: str, key: str) -> EntitySnapshot | None:
        """The entity's last committed state (None: never called)."""
        checked, checked_key = check_entity_type(type), check_entity_key(key)
        row = await self._backend().entities.get(self._namespace, checked, checked_key)
        return None if row is None else await self._snapshot(checked, row)

    async def list(self, type: str, *, after: str = "", limit: int = 100) -> list[EntitySnapshot]:
        """Entities of ``type`` in key order, after the key ``after`` (a page's last)."""
        checked = check_entity_type(type)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
            raise InvalidValue(f"limit must be 1-{MAX_LIST}, got {limit!r}")
        if not isinstance(after, str):
            raise InvalidValue(f"after must be a key, got {after!r}")
        rows = await self._backend().entities.list(self._namespace, checked, after, limit)
        found = [await self._snapshot(checked, row) for row in rows]
        return [snapshot for snapshot in found if snapshot is not None]

    async def _snapshot(self, type: str, read: EntityRow) -> EntitySnapshot | None:
        row, opened = await self.writers.open_row(type, read)
        if row is None:
            return None  # it went while its state was read
        state = None
        if opened is not None:
            state = decode_value(row.key, opened)
        elif (entity := self.types.get(type)) is not None:
            state = entity.initial()
        return EntitySnapshot(row.key, state, row.version, row.updated_at, row.holder)
