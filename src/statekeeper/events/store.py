"""The event store of one namespace: ``app.events``.

    await app.events.append("order-42", [EventData("Placed", {"total": 30})],
                            expected_version=NO_STREAM)
    for event in await app.events.read_stream("order-42"):
        ...

Appends are units of work (``storage.rows.StreamAppend``), so the same append can
commit with state writes, messages and a subscription's checkpoint
(``EventStore.intent`` builds it for those). Data is sealed at rest when encryption
keys are configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from statekeeper.blobs import Payloads
from statekeeper.constants import REF_MAGIC
from statekeeper.errors import LeaseLost, StreamNotFound, ValidationError
from statekeeper.events.aggregates import A, AggregateRepository
from statekeeper.events.model import (
    ANY,
    MAX_EVENTS_PER_APPEND,
    AppendResult,
    Prepared,
    RecordedEvent,
    category_of,
    check_expected,
    check_stream,
    prepare,
    read_data,
    read_metadata,
)
from statekeeper.events.upcasting import Upcasters
from statekeeper.identifiers import shown
from statekeeper.sealing import SNAPSHOT, STREAM_EVENT
from statekeeper.storage import Storage
from statekeeper.storage.event_ops import SnapshotRow, StreamRow
from statekeeper.storage.rows import EventRow, NewEvent, StreamAppend, UnitOfWork

MAX_READ = 10_000


def _limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_READ:
        raise ValidationError(f"invalid limit {shown(limit)}: an integer from 1 to {MAX_READ}")
    return limit


def _position(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"invalid {what} {shown(value)}: an integer >= 0")
    return value


class EventStore:
    """Append to streams and read them, the global log and categories."""

    def __init__(
        self,
        backend: Callable[[], Storage],
        namespace: str,
        *,
        clock: Callable[[], float],
        payloads: Payloads,
        max_event_bytes: int,
        appended: Callable[[str], None] | None = None,
    ) -> None:
        self._backend = backend
        self.namespace = namespace
        self._clock = clock
        # Seals data; data above the threshold goes out of line (a blob inserted with
        # the event), snapshots too.
        self._payloads = payloads
        self._sealer = payloads.sealer
        self.max_event_bytes = max_event_bytes
        self._appended = appended  # told the namespace after each append commits

    # --- appending ------------------------------------------------------------------

    def intent(
        self,
        stream: str,
        events: Iterable[object],
        *,
        expected_version: int = ANY,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> StreamAppend:
        """The append as an intent of a unit of work (checked and sealed, not stored)."""
        name = check_stream(stream)
        expected = check_expected(expected_version)
        listed = list(events) if not isinstance(events, str | bytes) else [events]
        if not listed:
            raise ValidationError(f"the append to {name!r} has no event")
        if len(listed) > MAX_EVENTS_PER_APPEND:
            raise ValidationError(
                f"the append to {name!r} has {len(listed)} events; the limit is "
                f"{MAX_EVENTS_PER_APPEND} an append"
            )
        types: set[str] = set()
        prepared = [
            prepare(name, i, e, self.max_event_bytes, correlation_id, causation_id, types)
            for i, e in enumerate(listed)
        ]
        return StreamAppend(
            name, category_of(name), expected, [self._seal(name, p) for p in prepared]
        )

    def _seal(self, stream: str, event: Prepared) -> NewEvent:
        data = event.data
        blob = self._payloads.prepare(self.namespace, data)
        if blob is not None:  # out of line: the event refers to its blob (sealed by chunk)
            return NewEvent(event.id, event.type, REF_MAGIC + blob.id, event.metadata, blob)
        if self._sealer.enabled:
            data = self._sealer.seal(data, STREAM_EVENT, self.namespace, stream, event.id, "data")
        return NewEvent(event.id, event.type, data, event.metadata)

    async def append(
        self,
        stream: str,
        events: Iterable[object],
        *,
        expected_version: int = ANY,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> AppendResult:
        """Append ``events`` (EventData, or mappings with ``type``, ``data``,
        ``metadata``, ``id``) to ``stream`` if its version is ``expected_version``
        (ANY, NO_STREAM, EXISTS or an exact version); WrongExpectedVersion otherwise,
        and nothing is stored."""
        append = self.intent(
            stream, events, expected_version=expected_version,
            correlation_id=correlation_id, causation_id=causation_id,
        )  # fmt: skip
        return (await self.commit([append]))[0]

    async def commit(self, appends: Sequence[StreamAppend], **unit: Any) -> list[AppendResult]:
        """Commit appends (built by ``intent``) in one unit of work, with any other
        intents of ``unit`` (writes, messages, checkpoint); the results, in order."""
        done = await self._backend().commit(
            UnitOfWork(self.namespace, self._clock(), appends=appends, **unit)
        )
        if not done.applied:  # a checkpoint's lease was lost: nothing was appended
            raise LeaseLost("the subscription's lease was lost; nothing was appended")
        self.notify_appended()
        return results(appends, done.first_position, done.versions)

    def notify_appended(self) -> None:
        """Events of this namespace committed: wake its subscriptions, here and in
        other processes (for appends committed by other means than ``commit``)."""
        if self._appended is not None:
            self._appended(self.namespace)

    def aggregates(
        self,
        cls: type[A],
        *,
        category: str | None = None,
        snapshot_every: int | None = None,
        upcasters: Upcasters | None = None,
    ) -> AggregateRepository[A]:
        """A repository of ``cls`` aggregates, in streams ``<category>-<id>``."""
        return AggregateRepository(
            self, cls, category=category, snapshot_every=snapshot_every, upcasters=upcasters
        )

    # --- reading --------------------------------------------------------------------

    async def stream_version(self, stream: str) -> int:
        """The stream's version: how many events it has (0: none)."""
        found = await self._backend().events.stream_version(self.namespace, check_stream(stream))
        return found or 0

    async def read_stream(
        self,
        stream: str,
        *,
        start: int | None = None,
        backwards: bool = False,
        limit: int = 1000,
    ) -> list[RecordedEvent]:
        """Events of ``stream`` from version ``start`` on (default 1), or with
        ``backwards`` from ``start`` down (default: the last); StreamNotFound if the
        stream has no event."""
        name = check_stream(stream)
        count = _limit(limit)
        if start is not None:
            _position(start, "start")
        storage = self._backend().events
        if backwards:
            first = start if start is not None else 2**62
        else:
            first = start if start is not None else 1
        rows = await storage.read_stream(self.namespace, name, first, count, backwards=backwards)
        if not rows and await storage.stream_version(self.namespace, name) is None:
            raise StreamNotFound(f"stream {name!r} has no event", stream=name)
        return [await self.recorded(row) for row in rows]

    async def read_all(
        self, *, after: int = 0, limit: int = 1000, backwards: bool = False
    ) -> list[RecordedEvent]:
        """The global log after position ``after``, in order (``backwards``: before
        ``after``, newest first; ``after=0`` then starts at the end)."""
        position = _position(after, "position")
        count = _limit(limit)
        if backwards and position == 0:
            position = 2**62
        rows = await self._backend().events.read_log(
            self.namespace, position, count, backwards=backwards
        )
        return [await self.recorded(row) for row in rows]

    async def read_category(
        self, category: str, *, after: int = 0, limit: int = 1000
    ) -> list[RecordedEvent]:
        """Events of every stream named ``<category>-...`` after global position ``after``."""
        name = check_stream(category)
        rows = await self._backend().events.read_category(
            self.namespace, name, _position(after, "position"), _limit(limit)
        )
        return [await self.recorded(row) for row in rows]

    async def head(self) -> int:
        """The global position of the last event (0: none)."""
        return await self._backend().events.head(self.namespace)

    async def streams(
        self, prefix: str = "", *, after: str = "", limit: int = 100
    ) -> list[StreamRow]:
        """Streams whose names start with ``prefix``, in name order, after ``after``."""
        return await self._backend().events.streams(
            self.namespace, prefix, after=after, limit=_limit(limit)
        )

    # --- snapshots (aggregates) -------------------------------------------------------

    async def read_snapshot(self, stream: str) -> SnapshotRow | None:
        """The stream's latest snapshot, its state opened (None: none)."""
        row = await self._backend().events.snapshot(self.namespace, stream)
        if row is None:
            return None
        where = (SNAPSHOT, self.namespace, stream, str(row.version), "state")
        return row._replace(data=await self._payloads.open(row.data, *where))

    async def write_snapshot(self, stream: str, version: int, type_: str, state: bytes) -> None:
        """Keep ``state`` as the stream's snapshot at ``version`` (sealed at rest when
        keys are configured), unless a newer one is stored."""
        where = (SNAPSHOT, self.namespace, stream, str(version), "state")
        sealed = await self._payloads.seal(state, *where)
        try:
            await self._backend().events.put_snapshot(
                self.namespace, stream, version, type_, sealed, self._clock()
            )
        finally:  # a newer snapshot kept instead, or none stored: its blob goes
            await asyncio.shield(self._payloads.discard([sealed]))

    async def recorded(self, row: EventRow) -> RecordedEvent:
        where = (STREAM_EVENT, self.namespace, row.stream, row.id, "data")
        data = await self._payloads.open(row.data, *where)
        return RecordedEvent(
            row.id, row.type, read_data(data), read_metadata(row.metadata), row.stream,
            row.version, row.position, row.recorded_at,
        )  # fmt: skip


def results(
    appends: Sequence[StreamAppend], first: int | None, versions: Sequence[int]
) -> list[AppendResult]:
    """Each append's outcome: its events follow the unit's first position in order."""
    position = first or 0
    out: list[AppendResult] = []
    for append, version in zip(appends, versions, strict=True):
        count = len(append.events)
        ids = [e.id for e in append.events]
        out.append(AppendResult(append.stream, version, position, position + count - 1, ids))
        position += count
    return out
