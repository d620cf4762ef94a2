"""What the recorders read, written once for both adapters: an originator's events,
the application sequence, tracking positions (``queries/eventsourcing.sql``). New
events and a tracking position commit in the unit of work (``rows.Checkpoint`` without
a lease token), both or neither.

Events are appended by the event store's own unit of work (``rows.StreamAppend`` with
the versions the library chose), so they are statekeeper's events: a taken version is
the unique index's conflict, global positions are gap-free and commit in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from statekeeper.storage import Storage
from statekeeper.storage.runner import Database, Operations

EVER = 2**62  # beyond every version, position and limit


class Row(NamedTuple):
    """An event of the log as the application recorder reads it."""

    position: int
    stream: str
    version: int
    type: str
    data: bytes


class Store(Operations):
    """The recorders' operations on one opened backend."""

    def __init__(self, backend: Storage) -> None:
        super().__init__(cast(Database, backend))  # every adapter provides the primitives
        self._backend = backend

    async def stream(
        self, namespace: str, stream: str, gt: int, lte: int, limit: int, *, desc: bool
    ) -> list[tuple[int, str, bytes]]:
        """(version, type, data) of a stream's events with versions in (gt, lte]."""
        statement = self._bind(
            "es_stream_back" if desc else "es_stream", namespace=namespace, stream=stream,
            gt=gt, lte=lte, limit=limit,
        )  # fmt: skip
        rows = await self._db.run_many(statement, f"cannot read the events of {stream!r}")
        return [(int(r[0]), r[1], bytes(r[2])) for r in rows]

    async def notifications(
        self, namespace: str, after: int, stop: int, limit: int, types: Sequence[str]
    ) -> list[Row]:
        """Up to ``limit`` events of the log at positions in (after, stop], of ``types``
        only when some are given."""
        values: dict[str, Any] = dict(namespace=namespace, after=after, stop=stop, limit=limit)
        if types:
            values.update(self._list_arg("types", types))
        statement = self._bind("es_notifications_of" if types else "es_notifications", **values)
        rows = await self._db.run_many(statement, "cannot read the event log")
        return [Row(int(r[0]), r[1], int(r[2]), r[3], bytes(r[4])) for r in rows]

    async def head(self, namespace: str) -> int:
        """The last global position given out (0: none)."""
        return await self._backend.events.head(namespace)

    async def tracked(self, namespace: str, name: str) -> int | None:
        """The tracking position recorded under ``name`` (None: none)."""
        row = await self._backend.subscriptions.get(namespace, name)
        return None if row is None else row.position
