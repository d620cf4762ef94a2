"""Queue operations, written once for both adapters (queries in ``queries/queues*.sql``).

What truly differs stays in the adapters: sending (deduplication in one statement on
PostgreSQL, one writer job on SQLite). Settling a leased message (ack, retry, dead
letter) with the messages that announce it is a unit of work (``unit.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from statekeeper.storage.rows import (
    ArchivedMessage,
    Duplicate,
    FoundMessage,
    NewMessage,
    QueueCounts,
    QueuedMessage,
)
from statekeeper.storage.runner import Database, Operations, Scripted


class Sender(Protocol):
    """How an adapter enqueues (with deduplication), in one transaction."""

    async def send_messages(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]: ...


class QueueOps(Operations):
    """``contracts.QueueStorage``: the block's operations over an adapter's statements."""

    def __init__(self, db: Database, sender: Sender) -> None:
        super().__init__(db)
        self._sender = sender

    async def send(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]:
        """Enqueue, atomically; per message None, or the message it duplicates."""
        return await self._sender.send_messages(namespace, messages, now)

    async def receive(
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
        """Lease up to ``limit`` deliverable messages. One whose lease ran out on its last
        attempt comes back with ``dead_at`` set, its attempt not counted: the caller
        dead-letters it, announcing its outcome."""
        statement = self._bind(
            "queue_receive", lease_token=lease_token, lease_end=lease_end, namespace=namespace,
            queue=queue, now=now, max_attempts=max_attempts, limit=limit,
        )  # fmt: skip
        rows = await self._db.run_many(
            statement, f"cannot receive from queue {queue!r}", write=True
        )
        # In enqueue order; a row with dead_at set is a lease that ran out on its last
        # attempt, for the caller to dead-letter.
        return sorted((QueuedMessage(*row) for row in rows), key=lambda m: m.seq)

    async def extend(self, id: str, lease_token: str, lease_end: float) -> bool:
        """Move a lease's end; False if the lease was lost."""
        statement = self._bind("queue_extend", id=id, lease_token=lease_token, lease_end=lease_end)
        what = f"cannot extend the lease of {id!r}"
        return bool(await self._db.run_write(statement, what, "found"))

    async def release(self, id: str, lease_token: str, now: float) -> bool:
        """Give a leased message back, deliverable now, its attempt not counted."""
        statement = self._bind("queue_release", id=id, lease_token=lease_token, now=now)
        return bool(await self._db.run_write(statement, f"cannot release message {id!r}", "found"))

    async def redrive(
        self, namespace: str, queue: str, ids: Sequence[str] | None, now: float
    ) -> int:
        """Dead messages (all, or those of ``ids``) back to ready with fresh attempts."""
        if ids is None:
            statement = self._bind("queue_redrive_all", now=now, namespace=namespace, queue=queue)
        else:
            statement = self._bind(
                "queue_redrive_ids", now=now, namespace=namespace, queue=queue,
                **self._list_arg("ids", ids),
            )  # fmt: skip
        what = f"cannot redrive queue {queue!r}"
        return int(await self._db.run_write(statement, what, "rowcount"))

    async def purge(self, namespace: str, queue: str, *, dead: bool) -> int:
        """Delete every ready or waiting (or, with ``dead``, every dead) message."""
        deletes = ["queue_purge_dead"] if dead else ["queue_purge_waiting", "queue_purge_ready"]
        script: list[Scripted] = [
            (self._bind(name, namespace=namespace, queue=queue), "rowcount", False)
            for name in deletes
        ]
        if self._db.dialect == "postgres":  # SQLite has one writer: no lock order to keep
            lock = self._bind("queue_purge_lock_groups", namespace=namespace, queue=queue)
            script.insert(0, (lock, "first", False))
        counts = await self._db.run_atomic(script, f"cannot purge queue {queue!r}")
        return sum(counts[-len(deletes) :]) if counts else 0

    async def held(self, namespace: str) -> list[str]:
        """The queues of ``namespace`` holding messages (live or dead), in name order."""
        statement = self._bind("queue_names_held", namespace=namespace)
        rows = await self._db.run_many(statement, "cannot list queues")
        return sorted(str(queue) for (queue,) in rows)

    async def stats(self, namespace: str, queue: str, now: float) -> QueueCounts:
        """Counts by state, and the oldest live message's enqueue time."""
        statement = self._bind("queue_stats", now=now, namespace=namespace, queue=queue)
        row = await self._db.run_read(statement, f"cannot count queue {queue!r}", "row")
        return QueueCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), row[5])

    async def peek(
        self, namespace: str, queue: str, *, dead: bool, limit: int
    ) -> list[QueuedMessage]:
        """Live (or dead) messages in order, without leasing them."""
        name = "queue_peek_dead" if dead else "queue_peek"
        statement = self._bind(name, namespace=namespace, queue=queue, limit=limit)
        rows = await self._db.run_many(statement, f"cannot read queue {queue!r}")
        return [QueuedMessage(*row) for row in rows]

    async def next_due(self, namespace: str, queue: str) -> float | None:
        """When the next live message becomes deliverable (or its lease ends)."""
        statement = self._bind("queue_next_due", namespace=namespace, queue=queue)
        due = await self._db.run_read(statement, f"cannot read queue {queue!r}", "first")
        return None if due is None else float(due)

    async def archived(
        self,
        namespace: str,
        queue: str,
        *,
        since: float,
        until: float,
        after: tuple[float, str],
        limit: int,
    ) -> list[ArchivedMessage]:
        """Archived messages completed in [since, until), after the (time, id) cursor."""
        statement = self._bind(
            "queue_archived", namespace=namespace, queue=queue, since=since, until=until,
            after_time=after[0], after_id=after[1], limit=limit,
        )  # fmt: skip
        rows = await self._db.run_many(statement, f"cannot read the archive of queue {queue!r}")
        return [ArchivedMessage(*row) for row in rows]

    async def find(self, namespace: str, id: str) -> FoundMessage | None:
        """Live first (ready, leased, dead), else in the archive (done)."""
        what = f"cannot find message {id!r}"
        live = await self._db.run_read(self._bind("queue_find_live", id=id), what, "row")
        if live is not None and live[0] == namespace:
            _, queue, state, attempts, available_at, enqueued_at, last_error, dead_at = live
            return FoundMessage(
                queue, state, attempts, enqueued_at, available_at, last_error, dead_at, None, None
            )
        done = await self._db.run_read(self._bind("queue_find_archived", id=id), what, "row")
        if done is None or done[0] != namespace:
            return None
        _, queue, attempts, enqueued_at, completed_at, result = done
        return FoundMessage(
            queue, "done", attempts, enqueued_at, None, None, None, completed_at, result
        )

    async def forget(self, now: float, archive_before: float, limit: int = 1000) -> int:
        """Up to ``limit`` expired deduplication claims and as many archive rows; how many."""
        counts = await self._db.run_atomic(
            [
                (self._bind("queue_forget_dedup", now=now, limit=limit), "rowcount", False),
                (
                    self._bind("queue_forget_archive", before=archive_before, limit=limit),
                    "rowcount",
                    False,
                ),
            ],
            "cannot forget old queue records",
        )
        return sum(counts or [])
