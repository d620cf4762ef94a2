"""Queue operations of the PostgreSQL adapter: one round trip per operation.

Receivers in any number of processes lease with ``FOR UPDATE SKIP LOCKED``;
acknowledging deletes and archives in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from statekeeper.storage import queue_statements as stmt
from statekeeper.storage.base import (
    ArchivedMessage,
    Duplicate,
    FoundMessage,
    NewMessage,
    QueueCounts,
    QueuedMessage,
)
from statekeeper.storage.postgres_common import translated
from statekeeper.storage.queries import load

Q = load("postgres")


def _shape(row: Any, mode: str) -> Any:
    """A fetched row as the mode asks: found (bool), first (its first value) or row."""
    if mode == "found":
        return row is not None
    if mode == "first":
        return None if row is None else row[0]
    return None if row is None else tuple(row)


def _count(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    return int(status.split()[-1])


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


class PostgresQueueOps:
    """Mixed into PostgresBackend: the queue half of the Backend protocol."""

    @property
    def pool(self) -> asyncpg.Pool:
        raise NotImplementedError  # provided by PostgresBackend

    async def run_write(self, statement: stmt.Statement, what: str, mode: str) -> Any:
        """One statement through the pool; ``mode``: rowcount, found, first or row."""
        if mode == "rowcount":
            return _count(await self._run("execute", statement, what))
        return _shape(await self._run("fetchrow", statement, what), mode)

    async def run_atomic(
        self, script: Sequence[tuple[stmt.Statement, str, bool]], what: str
    ) -> list[Any] | None:
        """Statements in one transaction on one connection; a required statement that
        finds no row rolls it back, and the answer is None."""
        if len(script) == 1:  # a single statement is its own transaction
            ((statement, mode, required),) = script
            result = await self.run_write(statement, what, mode)
            return None if required and result in (None, False) else [result]
        with translated(what):
            async with self.pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                results: list[Any] = []
                try:
                    for (sql, args), mode, required in script:
                        if mode == "rowcount":
                            results.append(_count(await conn.execute(sql, *args)))
                            continue
                        row = await conn.fetchrow(sql, *args)
                        if required and row is None:
                            await transaction.rollback()
                            return None
                        results.append(_shape(row, mode))
                except BaseException:
                    await transaction.rollback()
                    raise
                await transaction.commit()
                return results

    async def run_many(self, statement: stmt.Statement, what: str) -> list[tuple[Any, ...]]:
        rows = await self._run("fetch", statement, what)
        return [tuple(row) for row in rows]

    async def run_read(self, statement: stmt.Statement, what: str, mode: str) -> Any:
        return await self.run_write(statement, what, mode)

    async def _run(self, method: str, statement: stmt.Statement, what: str) -> Any:
        """One statement through the pool: ``method`` is fetch, fetchrow, fetchval or execute."""
        sql, args = statement
        with translated(what):
            return await getattr(self.pool, method)(sql, *args)

    async def queue_send(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]:
        with translated("cannot enqueue"):
            if len(messages) == 1:
                return [await _send_one(self.pool, namespace, messages[0], now)]
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
        rows = await self._run("fetch", statement, f"cannot receive from queue {queue!r}")
        return sorted((QueuedMessage(*row) for row in rows), key=lambda m: m.seq)

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
        return bool(await self._run("fetchval", statement, f"cannot acknowledge {id!r}"))

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
        state: str | None = await self._run(
            "fetchval", statement, f"cannot record the failure of message {id!r}"
        )
        return state

    async def queue_extend(
        self, namespace: str, queue: str, id: str, lease_token: str, lease_end: float
    ) -> bool:
        statement = stmt.settle(
            Q, "queue_extend", namespace, queue, id, lease_token, lease_end=lease_end
        )
        found = await self._run("fetchval", statement, f"cannot extend the lease of {id!r}")
        return found is not None

    async def queue_release(
        self, namespace: str, queue: str, id: str, lease_token: str, now: float
    ) -> bool:
        statement = stmt.settle(Q, "queue_release", namespace, queue, id, lease_token, now=now)
        found = await self._run("fetchval", statement, f"cannot release message {id!r}")
        return found is not None

    async def queue_redrive(
        self, namespace: str, queue: str, ids: Sequence[str] | None, now: float
    ) -> int:
        statement = stmt.redrive(Q, namespace, queue, ids, now, ids_as="ids")
        return _count(await self._run("execute", statement, f"cannot redrive queue {queue!r}"))

    async def queue_purge(self, namespace: str, queue: str, *, dead: bool) -> int:
        name = "queue_purge_dead" if dead else "queue_purge_ready"
        statement = stmt.by_queue(Q, name, namespace, queue)
        return _count(await self._run("execute", statement, f"cannot purge queue {queue!r}"))

    async def queue_stats(self, namespace: str, queue: str, now: float) -> QueueCounts:
        statement = stmt.by_queue(Q, "queue_stats", namespace, queue, now=now)
        row = await self._run("fetchrow", statement, f"cannot count queue {queue!r}")
        return QueueCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4])

    async def queue_peek(
        self, namespace: str, queue: str, *, dead: bool, limit: int
    ) -> list[QueuedMessage]:
        name = "queue_peek_dead" if dead else "queue_peek"
        statement = stmt.by_queue(Q, name, namespace, queue, limit=limit)
        rows = await self._run("fetch", statement, f"cannot read queue {queue!r}")
        return [QueuedMessage(*row) for row in rows]

    async def queue_next_due(self, namespace: str, queue: str) -> float | None:
        statement = stmt.by_queue(Q, "queue_next_due", namespace, queue)
        due = await self._run("fetchval", statement, f"cannot read queue {queue!r}")
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
        rows = await self._run("fetch", statement, f"cannot read the archive of {queue!r}")
        return [ArchivedMessage(*row) for row in rows]

    async def queue_find(self, namespace: str, id: str) -> FoundMessage | None:
        live, archived = stmt.find(Q, namespace, id)
        row = await self._run("fetchrow", live, f"cannot find message {id!r}")
        if row is None:
            row = await self._run("fetchrow", archived, f"cannot find message {id!r}")
            return stmt.found(None, row)  # type: ignore[no-any-return]
        return stmt.found(row, None)  # type: ignore[no-any-return]

    async def queue_forget(self, now: float, archive_before: float) -> int:
        dedup, archive = Q["queue_forget_dedup"], Q["queue_forget_archive"]
        with translated("cannot forget old queue records"):
            dropped = _count(await self.pool.execute(dedup.sql, *dedup.args(now=now)))
            return dropped + _count(
                await self.pool.execute(archive.sql, *archive.args(before=archive_before))
            )
