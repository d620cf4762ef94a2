"""What the recorders ask of storage, written once for both adapters: an originator's
events, the application sequence, tracking positions (``queries/eventsourcing.sql``),
and new events committed with a tracking position, both or neither.

Events are appended by the event store's own unit of work (``rows.StreamAppend`` with
the versions the library chose), so they are statekeeper's events: a taken version is
the unique index's conflict, global positions are gap-free and commit in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from statekeeper.storage import Storage, UnitOfWork
from statekeeper.storage.runner import Database, Operations, Scripted
from statekeeper.storage.sqlite import SQLiteBackend
from statekeeper.storage.unit import append_statement, commit_job

EVER = 2**62  # beyond every version, position and limit


class Row(NamedTuple):
    """An event of the log as the application recorder reads it."""

    position: int
    stream: str
    version: int
    type: str
    data: bytes


class TrackedAlready(Exception):
    """The tracking position is not after the one recorded: nothing was written."""


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

    async def record(self, unit: UnitOfWork, tracking: tuple[str, int] | None) -> int | None:
        """Commit the unit's appends, with the tracking position (name, notification id)
        when given; the global position of the first event (None: no event).
        TrackedAlready: the position is not after the recorded one (nothing written)."""
        if tracking is None:
            return (await self._backend.commit(unit)).first_position
        name, position = tracking
        track = self._bind(
            "es_track", namespace=unit.namespace, name=name, position=position, now=unit.now
        )
        what = f"cannot record events with the tracking position of {name!r}"
        # Until a lease-less Checkpoint exists, the two go in one transaction of their
        # own: the SQLite writer's job, or a PostgreSQL script.
        if isinstance(self._backend, SQLiteBackend):
            queries = self._queries

            def job(conn: sqlite3.Connection) -> int | None:
                if conn.execute(*track).fetchone() is None:
                    raise TrackedAlready  # the job's savepoint undoes nothing yet written
                return commit_job(conn, queries, unit).first_position

            return await self._backend.writer.run(job, what)
        script: list[Scripted] = [(track, "row", True)]
        if unit.appends:
            script.append((append_statement(self._queries, unit), "first", False))
        done = await self._db.run_atomic(script, what)
        if done is None:
            raise TrackedAlready
        return cast("int | None", done[1]) if unit.appends else None
