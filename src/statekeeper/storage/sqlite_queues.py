"""Queue operations of the SQLite adapter.

Writes are jobs of the writer thread, so each is one transaction of the next
group commit; reads run on the caller's thread like every SQLite read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from statekeeper.storage import queue_statements as stmt
from statekeeper.storage.base import (
    ArchivedMessage,
    Duplicate,
    FoundMessage,
    NewMessage,
    QueueCounts,
    QueuedMessage,
)
from statekeeper.storage.queries import load
from statekeeper.storage.sqlite_writer import WriterThread

Q = load("sqlite")
_ARCHIVED_FIELDS = ("id", "body", "attributes", "correlation_id", "group_id", "attempts",
                    "enqueued_at", "reply_to")  # fmt: skip


def send_messages(
    conn: sqlite3.Connection, namespace: str, messages: Sequence[NewMessage], now: float
) -> list[Duplicate | None]:
    """Insert messages; a message whose dedup id is claimed is dropped, reported by its twin."""
    outcomes: list[Duplicate | None] = []
    for m in messages:
        if (
            m.dedup_id is not None
            and not conn.execute(*stmt.dedup_claim(Q, namespace, m, now)).fetchall()
        ):
            holder = conn.execute(*stmt.dedup_holder(Q, namespace, m.queue, m.dedup_id)).fetchone()
            outcomes.append(Duplicate(holder[0], holder[1]))
            continue
        conn.execute(*stmt.send(Q, namespace, m, now))
        outcomes.append(None)
    return outcomes


class _Abandon(Exception):
    """Rolls back an atomic script's job (its savepoint) when a required row is missing."""


def _first(row: Any) -> Any:
    return None if row is None else row[0]


def _result(row: Any, mode: str) -> Any:
    if mode == "found":
        return row is not None
    if mode == "first":
        return _first(row)
    return None if row is None else tuple(row)


class SQLiteQueueOps:
    """Mixed into SQLiteBackend: the queue half of the Backend protocol."""

    _writer: WriterThread

    def _read_sql(self, statement: stmt.Statement, what: str) -> list[Any]:
        raise NotImplementedError  # provided by SQLiteBackend

    async def run_write(self, statement: stmt.Statement, what: str, mode: str) -> Any:
        """One statement as a writer job; ``mode``: rowcount, found, first or row."""

        def job(conn: sqlite3.Connection) -> Any:
            cursor = conn.execute(*statement)
            if mode == "rowcount":
                return cursor.rowcount
            row = cursor.fetchone()
            return _result(row, mode)

        return await self._writer.run(job, what)

    async def run_atomic(
        self, script: Sequence[tuple[stmt.Statement, str, bool]], what: str
    ) -> list[Any] | None:
        """Statements in one transaction (one writer job); a required statement that
        finds no row rolls the job back, and the answer is None."""

        def job(conn: sqlite3.Connection) -> list[Any] | None:
            results: list[Any] = []
            for statement, mode, required in script:
                cursor = conn.execute(*statement)
                if mode == "rowcount":
                    results.append(cursor.rowcount)
                    continue
                row = cursor.fetchone()
                if required and row is None:
                    raise _Abandon
                results.append(_result(row, mode))
            return results

        try:
            return await self._writer.run(job, what)
        except _Abandon:
            return None

    async def run_many(self, statement: stmt.Statement, what: str) -> list[tuple[Any, ...]]:
        """Every row of one statement; a writing one runs as a writer job."""
        if statement[0].lstrip().upper().startswith("SELECT"):
            return [tuple(row) for row in self._read_sql(statement, what)]
        return await self._writer.run(
            lambda c: [tuple(row) for row in c.execute(*statement).fetchall()], what
        )

    async def run_read(self, statement: stmt.Statement, what: str, mode: str) -> Any:
        """One statement on this thread's reader; ``mode``: found, first or row."""
        rows = self._read_sql(statement, what)
        return _result(rows[0] if rows else None, mode)

    async def queue_send(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]:
        return await self._writer.run(
            lambda c: send_messages(c, namespace, messages, now), "cannot enqueue"
        )

    async def queue_receive(
        self,
        namespace: str,
        queue: str,
        *,
        limit: int,
        lease_token: str,
        lease_end: float,
        max_attempts: int,
        now: float,
    ) -> list[QueuedMessage]:
        expire = stmt.dead_letter_expired(Q, namespace, queue, max_attempts, now)
        receive = stmt.receive(
            Q, namespace, queue, limit=limit, lease_token=lease_token, lease_end=lease_end,
            max_attempts=max_attempts, now=now,
        )  # fmt: skip

        def job(conn: sqlite3.Connection) -> list[QueuedMessage]:
            conn.execute(*expire)
            rows = conn.execute(*receive).fetchall()
            return sorted((QueuedMessage(*row) for row in rows), key=lambda m: m.seq)

        return await self._writer.run(job, f"cannot receive from queue {queue!r}")

    async def queue_ack(
        self,
        namespace: str,
        queue: str,
        id: str,
        lease_token: str,
        *,
        archive: bool,
        result: bytes | None,
        messages: Sequence[NewMessage],
        now: float,
    ) -> bool:
        delete = stmt.settle(Q, "queue_ack_delete", namespace, queue, id, lease_token)

        def job(conn: sqlite3.Connection) -> bool:
            row = conn.execute(*delete).fetchone()
            if row is None:
                return False
            if archive:
                fields = dict(zip(_ARCHIVED_FIELDS, row, strict=True))
                query = Q["queue_archive_insert"]
                conn.execute(
                    query.sql,
                    query.args(namespace=namespace, queue=queue, now=now, result=result, **fields),
                )
            if messages:
                send_messages(conn, namespace, messages, now)
            return True

        return await self._writer.run(job, f"cannot acknowledge message {id!r}")

    async def queue_fail(
        self,
        namespace: str,
        queue: str,
        id: str,
        lease_token: str,
        *,
        error: str,
        retry_at: float,
        max_attempts: int,
        messages: Sequence[NewMessage],
        now: float,
    ) -> str | None:
        statement = stmt.settle(
            Q, "queue_fail", namespace, queue, id, lease_token,
            max_attempts=max_attempts, now=now, retry_at=retry_at, error=error,
        )  # fmt: skip

        def job(conn: sqlite3.Connection) -> str | None:
            state: str | None = _first(conn.execute(*statement).fetchone())
            if state == "dead" and messages:
                send_messages(conn, namespace, messages, now)
            return state

        return await self._writer.run(job, f"cannot record the failure of message {id!r}")

    async def queue_extend(
        self, namespace: str, queue: str, id: str, lease_token: str, lease_end: float
    ) -> bool:
        statement = stmt.settle(
            Q, "queue_extend", namespace, queue, id, lease_token, lease_end=lease_end
        )
        return bool(await self.run_write(statement, f"cannot extend the lease of {id!r}", "found"))

    async def queue_release(
        self, namespace: str, queue: str, id: str, lease_token: str, now: float
    ) -> bool:
        statement = stmt.settle(Q, "queue_release", namespace, queue, id, lease_token, now=now)
        return bool(await self.run_write(statement, f"cannot release message {id!r}", "found"))

    async def queue_redrive(
        self, namespace: str, queue: str, ids: Sequence[str] | None, now: float
    ) -> int:
        statement = stmt.redrive(Q, namespace, queue, ids, now, ids_as="ids_json")
        return int(await self.run_write(statement, f"cannot redrive queue {queue!r}", "rowcount"))

    async def queue_purge(self, namespace: str, queue: str, *, dead: bool) -> int:
        name = "queue_purge_dead" if dead else "queue_purge_ready"
        statement = stmt.by_queue(Q, name, namespace, queue)
        return int(await self.run_write(statement, f"cannot purge queue {queue!r}", "rowcount"))

    async def queue_stats(self, namespace: str, queue: str, now: float) -> QueueCounts:
        statement = stmt.by_queue(Q, "queue_stats", namespace, queue, now=now)
        return QueueCounts(*self._read_sql(statement, f"cannot count queue {queue!r}")[0])

    async def queue_peek(
        self, namespace: str, queue: str, *, dead: bool, limit: int
    ) -> list[QueuedMessage]:
        name = "queue_peek_dead" if dead else "queue_peek"
        statement = stmt.by_queue(Q, name, namespace, queue, limit=limit)
        return [QueuedMessage(*row) for row in self._read_sql(statement, f"cannot read {queue!r}")]

    async def queue_next_due(self, namespace: str, queue: str) -> float | None:
        statement = stmt.by_queue(Q, "queue_next_due", namespace, queue)
        due = self._read_sql(statement, f"cannot read queue {queue!r}")[0][0]
        return None if due is None else float(due)

    async def queue_archived(
        self,
        namespace: str,
        queue: str,
        *,
        since: float,
        until: float,
        after: tuple[float, str],
        limit: int,
    ) -> list[ArchivedMessage]:
        statement = stmt.archived(
            Q, namespace, queue, since=since, until=until, after=after, limit=limit
        )
        rows = self._read_sql(statement, f"cannot read the archive of queue {queue!r}")
        return [ArchivedMessage(*row) for row in rows]

    async def queue_find(self, namespace: str, id: str) -> FoundMessage | None:
        live, archived = stmt.find(Q, namespace, id)
        rows = self._read_sql(live, f"cannot find message {id!r}")
        if rows:
            return stmt.found(rows[0], None)  # type: ignore[no-any-return]
        rows = self._read_sql(archived, f"cannot find message {id!r}")
        return stmt.found(None, rows[0] if rows else None)  # type: ignore[no-any-return]

    async def queue_forget(self, now: float, archive_before: float) -> int:
        dedup, archive = Q["queue_forget_dedup"], Q["queue_forget_archive"]

        def job(conn: sqlite3.Connection) -> int:
            dropped = conn.execute(dedup.sql, dedup.args(now=now)).rowcount
            return dropped + conn.execute(archive.sql, archive.args(before=archive_before)).rowcount

        return await self._writer.run(job, "cannot forget old queue records")
