"""Reads of the event store (streams, the global log, categories) and snapshots,
written once for both adapters (``queries/events.sql``). Appends are a unit of work
(``rows.StreamAppend``; ``unit.py``), so that events commit with state writes,
messages and checkpoints."""

from __future__ import annotations

from typing import Any, NamedTuple

from statekeeper.storage.rows import EventRow
from statekeeper.storage.runner import Operations

_END = "\U0010ffff"  # after every name that starts with a prefix


class StreamRow(NamedTuple):
    stream: str
    version: int
    updated_at: float


class SnapshotRow(NamedTuple):
    version: int
    type: str
    data: bytes
    recorded_at: float


def _event(row: Any) -> EventRow:
    return EventRow(
        int(row[0]), row[1], int(row[2]), row[3], row[4], bytes(row[5]), row[6], float(row[7])
    )


class EventOps(Operations):
    """``contracts.EventStorage``: the block's operations over an adapter's statements."""

    async def head(self, namespace: str) -> int:
        """The last global position given out (0: no event yet)."""
        statement = self._bind("ev_head", namespace=namespace)
        found = await self._db.run_read(statement, "cannot read the event log", "first")
        return 0 if found is None else int(found)

    async def stream_version(self, namespace: str, stream: str) -> int | None:
        """The stream's version (its last event's stream version); None: no stream."""
        statement = self._bind("ev_stream_version", namespace=namespace, stream=stream)
        found = await self._db.run_read(statement, f"cannot read stream {stream!r}", "first")
        return None if found is None else int(found)

    async def read_stream(
        self, namespace: str, stream: str, start: int, limit: int, *, backwards: bool = False
    ) -> list[EventRow]:
        """Up to ``limit`` events of a stream from version ``start`` on (``backwards``:
        from ``start`` down)."""
        if backwards:
            statement = self._bind(
                "ev_read_stream_back", namespace=namespace, stream=stream, high=start, limit=limit
            )
        else:
            statement = self._bind(
                "ev_read_stream", namespace=namespace, stream=stream, low=start, limit=limit
            )
        rows = await self._db.run_many(statement, f"cannot read stream {stream!r}")
        return [_event(row) for row in rows]

    async def read_log(
        self, namespace: str, position: int, limit: int, *, backwards: bool = False
    ) -> list[EventRow]:
        """Up to ``limit`` events of the global log after ``position`` (``backwards``:
        before it, newest first)."""
        if backwards:
            statement = self._bind(
                "ev_read_log_back", namespace=namespace, before=position, limit=limit
            )
        else:
            statement = self._bind("ev_read_log", namespace=namespace, after=position, limit=limit)
        rows = await self._db.run_many(statement, "cannot read the event log")
        return [_event(row) for row in rows]

    async def read_category(
        self, namespace: str, category: str, after: int, limit: int
    ) -> list[EventRow]:
        """Up to ``limit`` events of a category's streams after global position ``after``."""
        statement = self._bind(
            "ev_read_category", namespace=namespace, category=category, after=after, limit=limit
        )
        rows = await self._db.run_many(statement, f"cannot read category {category!r}")
        return [_event(row) for row in rows]

    async def streams(
        self, namespace: str, prefix: str = "", *, after: str = "", limit: int = 100
    ) -> list[StreamRow]:
        """Up to ``limit`` streams whose names start with ``prefix``, in name order."""
        statement = self._bind(
            "ev_streams", namespace=namespace, low=prefix, high=prefix + _END, after=after,
            limit=limit,
        )  # fmt: skip
        rows = await self._db.run_many(statement, "cannot list the streams")
        return [StreamRow(row[0], int(row[1]), float(row[2])) for row in rows]

    async def put_snapshot(
        self, namespace: str, stream: str, version: int, type_: str, data: bytes, now: float
    ) -> None:
        """Keep this snapshot unless a newer one is stored."""
        statement = self._bind(
            "ev_snapshot_put", namespace=namespace, stream=stream, version=version, type=type_,
            data=data, now=now,
        )  # fmt: skip
        await self._db.run_write(statement, f"cannot store a snapshot of {stream!r}", "rowcount")

    async def snapshot(self, namespace: str, stream: str) -> SnapshotRow | None:
        statement = self._bind("ev_snapshot_get", namespace=namespace, stream=stream)
        row = await self._db.run_read(statement, f"cannot read a snapshot of {stream!r}", "row")
        if row is None:
            return None
        return SnapshotRow(int(row[0]), row[1], bytes(row[2]), float(row[3]))
