"""Queue operations of the SQLite adapter.

Writes are jobs of the writer thread, so each is one transaction of the next
group commit; reads run on the caller's thread like every SQLite read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from statekeeper.storage import queue_statements as stmt
from statekeeper.storage.base import Duplicate, NewMessage, QueuedMessage
from statekeeper.storage.queries import load
from statekeeper.storage.queue_ops import QueueOps
from statekeeper.storage.runner import Statement, shape
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


class SQLiteQueueOps(QueueOps):
    """Mixed into SQLiteBackend: the queue operations that run as one writer job of
    several statements."""

    _writer: WriterThread

    def _read_sql(self, statement: Statement, what: str) -> list[Any]:
        raise NotImplementedError  # provided by SQLiteBackend

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
        statement = stmt.receive(
            Q, namespace, queue, limit=limit, lease_token=lease_token, lease_end=lease_end,
            max_attempts=max_attempts, now=now,
        )  # fmt: skip
        rows = await self.run_many(statement, f"cannot receive from queue {queue!r}", write=True)
        return stmt.leased(rows)

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
            state: str | None = shape(conn.execute(*statement).fetchone(), "first")
            if state == "dead" and messages:
                send_messages(conn, namespace, messages, now)
            return state

        return await self._writer.run(job, f"cannot record the failure of message {id!r}")
