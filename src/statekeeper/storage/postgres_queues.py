"""Queue operations of the PostgreSQL adapter: one round trip per operation.

Receivers in any number of processes lease with ``FOR UPDATE SKIP LOCKED``;
acknowledging deletes and archives in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from statekeeper.storage import queue_statements as stmt
from statekeeper.storage.base import Duplicate, NewMessage, QueuedMessage
from statekeeper.storage.postgres_common import translated
from statekeeper.storage.queries import load
from statekeeper.storage.queue_ops import QueueOps

Q = load("postgres")


async def _send_one(db: Any, namespace: str, m: NewMessage, now: float) -> Duplicate | None:
    """One message, on a pool or a connection; the message it duplicates, if it does."""
    if m.dedup_id is None:
        sql, args = stmt.send(Q, namespace, m, now)
        await db.execute(sql, *args)
        return None
    sql, args = stmt.send(Q, namespace, m, now, dedup=True)
    row = await db.fetchrow(sql, *args)
    if row[0] is not None:
        return None
    if row[1] is None:  # the winning claim committed after this statement's snapshot
        sql, args = stmt.dedup_holder(Q, namespace, m.queue, m.dedup_id)
        row = [None, *(await db.fetchrow(sql, *args))]
    return Duplicate(str(row[1]), row[2])


class PostgresQueueOps(QueueOps):
    """Mixed into PostgresBackend: the queue operations that are one statement of their
    own on PostgreSQL."""

    @property
    def pool(self) -> asyncpg.Pool:
        raise NotImplementedError  # provided by PostgresBackend

    async def queue_send(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]:
        with translated("cannot enqueue"):
            if len(messages) == 1:
                return [await _send_one(self.pool, namespace, messages[0], now)]
            if all(m.dedup_id is None for m in messages):  # one statement for them all
                query = Q["queue_send_many"]
                values = {"namespace": namespace, "now": now, **stmt.outbox_arrays(messages)}
                await self.pool.execute(query.sql, *query.args(**values))
                return [None] * len(messages)
            async with self.pool.acquire() as conn, conn.transaction():
                return [await _send_one(conn, namespace, m, now) for m in messages]

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
        statement = stmt.settle(
            Q, "queue_ack", namespace, queue, id, lease_token, now=now, archive=archive,
            result=result, **stmt.outbox_arrays(messages),
        )  # fmt: skip
        return bool(await self.run_write(statement, f"cannot acknowledge {id!r}", "first"))

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
            **stmt.outbox_arrays(messages),
        )  # fmt: skip
        state: str | None = await self.run_write(
            statement, f"cannot record the failure of message {id!r}", "first"
        )
        return state
