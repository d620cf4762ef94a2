"""The Backend protocol: one method per domain operation.

The layers above speak only this interface; they never import an adapter or a
driver. Values arrive here already encoded (JSON bytes, or sealed ciphertext with
its ``key_id``); times are Unix seconds from the app's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from statekeeper.storage.idempotency_ops import IdempotencyRecord
from statekeeper.storage.queries import Dialect
from statekeeper.storage.reseal_ops import ResealChange, ResealRow
from statekeeper.storage.workflow_ops import (
    HistoryEntry,
    JournalEntry,
    LeasedWorkflow,
    WorkflowRow,
)


class StoredItem(NamedTuple):
    """One state row as stored (a named tuple: built for every row read, so cheap)."""

    key: str
    value: bytes
    etag: str
    expires_at: float | None
    key_id: str | None


@dataclass(frozen=True, slots=True)
class PutOp:
    """Write ``value`` under ``key`` with the new ``etag``, if its condition holds.

    ``if_match``: the current ETag must equal it. ``only_if_absent``: the key must
    not exist (an expired item counts as absent). Neither: last write wins.
    """

    key: str
    value: bytes
    etag: str
    expires_at: float | None = None
    key_id: str | None = None
    if_match: str | None = None
    only_if_absent: bool = False
    kind: Literal["put"] = "put"


@dataclass(frozen=True, slots=True)
class DeleteOp:
    """Delete ``key``; with ``if_match``, only while its ETag equals it."""

    key: str
    if_match: str | None = None
    kind: Literal["delete"] = "delete"


WriteOp = PutOp | DeleteOp


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to enqueue; ``body`` is JSON bytes, ``attributes`` a JSON object text.

    With ``dedup_id``, a second message with the same id before ``dedup_expires_at``
    is dropped and reported as a duplicate of the first.
    """

    id: str
    queue: str
    body: bytes
    available_at: float
    attributes: str | None = None
    correlation_id: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    dedup_expires_at: float = 0.0
    fingerprint: str | None = None  # of the content, to tell a repeat from a reused dedup id
    reply_to: str | None = None  # JSON: where the outcome goes (callback URL, queue)


class Duplicate(NamedTuple):
    """A message dropped by deduplication: the message that holds the dedup id."""

    id: str
    fingerprint: str | None


class QueuedMessage(NamedTuple):
    """A live message as stored (ready, leased or dead)."""

    seq: int
    id: str
    body: bytes
    attributes: str | None
    correlation_id: str | None
    group_id: str | None
    attempts: int
    available_at: float
    enqueued_at: float
    last_error: str | None
    state: str
    dead_at: float | None
    reply_to: str | None


class FoundMessage(NamedTuple):
    """Where a message is now: live (ready, leased, dead) or done (in the archive)."""

    queue: str
    state: str  # ready, leased, dead or done
    attempts: int
    enqueued_at: float
    available_at: float | None
    last_error: str | None
    dead_at: float | None
    completed_at: float | None
    result: bytes | None


class ArchivedMessage(NamedTuple):
    id: str
    body: bytes
    attributes: str | None
    correlation_id: str | None
    group_id: str | None
    attempts: int
    enqueued_at: float
    completed_at: float


@dataclass(frozen=True, slots=True)
class Maintenance:
    """What a round of table maintenance did: tables vacuumed, tables analyzed."""

    vacuumed: list[str]
    analyzed: list[str]


class QueueCounts(NamedTuple):
    ready: int  # deliverable now (including messages whose lease ran out)
    in_flight: int  # leased, lease running
    delayed: int  # ready later (delay or backoff)
    dead: int
    waiting: int  # behind the message in hand of their group
    oldest_enqueued_at: float | None


class Backend(Protocol):
    """What every storage adapter provides."""

    dialect: Dialect

    async def open(self) -> None:
        """Connect, and bring the schema up to date under a lock."""

    async def close(self) -> None:
        """Release every connection and thread."""

    async def maintain(self) -> Maintenance:
        """Keep the tables healthy: vacuum and analyze what needs it (PostgreSQL, whatever
        autovacuum does), refresh the planner's statistics (SQLite)."""

    def listen(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(namespace, queue)`` when another process announces a queue
        (``("*", "*")``: anything may have changed); a no-op where nothing is heard."""

    def announce(self, namespace: str, queue: str) -> None:
        """Tell other processes that ``queue`` got messages (after the commit)."""

    async def state_get(self, namespace: str, key: str, now: float) -> StoredItem | None:
        """The visible item under ``key``, or None."""

    async def state_get_many(
        self, namespace: str, keys: Sequence[str], now: float
    ) -> dict[str, StoredItem]:
        """The visible items among ``keys``; missing keys are simply absent."""

    async def state_list(
        self,
        namespace: str,
        *,
        after: str,
        low: str,
        high: str | None,
        limit: int,
        now: float,
    ) -> list[StoredItem]:
        """Visible items with ``low <= key < high`` and ``key > after``, in key order."""

    async def state_put(self, namespace: str, op: PutOp, now: float) -> None:
        """Apply one put; raise ConflictError or AlreadyExists when its condition fails."""

    async def state_delete(
        self, namespace: str, key: str, if_match: str | None, now: float
    ) -> bool:
        """Delete one key; True when a visible item was deleted.

        Raises ConflictError when ``if_match`` is given and does not hold.
        """

    async def state_apply(
        self,
        namespace: str,
        ops: Sequence[WriteOp],
        now: float,
        messages: Sequence[NewMessage] = (),
    ) -> list[bool]:
        """Apply every op, and enqueue ``messages`` (the outbox), in one transaction.

        All or nothing: returns, per op, True (put applied, or delete removed a
        visible item) or False (unconditional delete of an absent key). Raises
        TransactionConflict naming the first op whose condition failed; then no
        message is enqueued either.
        """

    async def state_reseal(
        self, namespace: str, key: str, etag: str, value: bytes, key_id: str | None
    ) -> bool:
        """Replace the stored bytes of an unchanged item (same ETag); False if it changed."""

    async def state_purge_expired(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` expired rows of any namespace; how many were deleted."""

    # --- queues -------------------------------------------------------------------------

    async def queue_send(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]:
        """Enqueue, atomically; per message None, or the message it duplicates."""

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
        """Lease up to ``limit`` deliverable messages. A message whose lease ran out on its
        last attempt comes back leased with ``dead_at`` set and its attempt not counted:
        the caller dead-letters it (``queue_fail``), announcing its outcome."""

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
        """Remove a leased message (archiving it with ``result``) and send ``messages``,
        atomically; False, and nothing done, if the lease was lost."""

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
        """Back to ready at ``retry_at``, or dead (then ``messages`` are sent, atomically);
        the new state, None if the lease was lost."""

    async def queue_extend(
        self, namespace: str, queue: str, id: str, lease_token: str, lease_end: float
    ) -> bool:
        """Move a lease's end; False if the lease was lost."""

    async def queue_release(
        self, namespace: str, queue: str, id: str, lease_token: str, now: float
    ) -> bool:
        """Give a leased message back, deliverable now, its attempt not counted."""

    async def queue_redrive(
        self, namespace: str, queue: str, ids: Sequence[str] | None, now: float
    ) -> int:
        """Dead messages (all, or those of ``ids``) back to ready with fresh attempts."""

    async def queue_purge(self, namespace: str, queue: str, *, dead: bool) -> int:
        """Delete every ready (or, with ``dead``, every dead) message; leased ones stay."""

    async def queue_stats(self, namespace: str, queue: str, now: float) -> QueueCounts:
        """Counts by state, and the oldest live message's enqueue time."""

    async def queue_peek(
        self, namespace: str, queue: str, *, dead: bool, limit: int
    ) -> list[QueuedMessage]:
        """Live (or dead) messages in order, without leasing them."""

    async def queue_next_due(self, namespace: str, queue: str) -> float | None:
        """When the next live message becomes deliverable (or its lease ends)."""

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
        """Archived messages completed in [since, until), after the (time, id) cursor."""

    async def queue_find(self, namespace: str, id: str) -> FoundMessage | None:
        """A message of any queue of the namespace, live or archived, by id."""

    async def queue_forget(self, now: float, archive_before: float, limit: int = 1000) -> int:
        """Drop up to ``limit`` expired deduplication claims and as many archive rows
        completed before a time; how many (call again while it returns a full count)."""

    # --- idempotency (see storage/idempotency_ops.py) -----------------------------------

    async def idempotency_claim(
        self,
        namespace: str,
        key: str,
        *,
        fingerprint: str,
        owner: str,
        lease_expires_at: float,
        expires_at: float,
        now: float,
    ) -> bool:
        """Take the key (new, expired, or running with a lapsed lease); True if taken."""

    async def idempotency_get(
        self, namespace: str, key: str, now: float
    ) -> IdempotencyRecord | None: ...

    async def idempotency_complete(
        self, namespace: str, key: str, owner: str, result: bytes, expires_at: float
    ) -> bool: ...

    async def idempotency_extend(
        self, namespace: str, key: str, owner: str, lease_expires_at: float
    ) -> bool: ...

    async def idempotency_abandon(self, namespace: str, key: str, owner: str) -> bool: ...

    async def idempotency_forget(self, now: float, limit: int = 1000) -> int: ...

    # --- workflows (see storage/workflow_ops.py) ----------------------------------------

    async def workflow_create(
        self, namespace: str, id: str, name: str, input: bytes, parent_id: str | None, now: float
    ) -> bool: ...

    async def workflow_get(self, namespace: str, id: str) -> WorkflowRow | None: ...

    async def workflow_lease(
        self,
        namespace: str,
        names: Sequence[str],
        *,
        owner: str,
        lease_end: float,
        limit: int,
        now: float,
    ) -> list[LeasedWorkflow]: ...

    async def workflow_journal(self, namespace: str, id: str) -> list[JournalEntry]: ...

    async def workflow_checkpoint(
        self,
        namespace: str,
        id: str,
        fence: int,
        *,
        position: int,
        kind: str,
        step_name: str,
        input: bytes | None,
        output: bytes | None,
        error: str | None,
        attempts: int,
        started_at: float | None,
        lease_end: float,
        now: float,
    ) -> bool | None: ...

    async def workflow_renew(
        self, namespace: str, id: str, fence: int, lease_end: float, now: float
    ) -> bool | None: ...

    async def workflow_suspend(
        self,
        namespace: str,
        id: str,
        fence: int,
        *,
        status: str,
        wake_at: float | None,
        waiting_for: str | None,
        now: float,
    ) -> bool: ...

    async def workflow_finish(
        self,
        namespace: str,
        id: str,
        fence: int,
        *,
        status: str,
        output: bytes | None,
        error: str | None,
        parent_id: str | None,
        parent_event: bytes | None,
        now: float,
    ) -> bool: ...

    async def workflow_event(
        self, namespace: str, id: str, event: str, data: bytes | None, now: float
    ) -> None: ...

    async def workflow_event_data(
        self, namespace: str, id: str, event: str
    ) -> tuple[bool, bytes | None]: ...

    async def workflow_cancel(self, namespace: str, id: str, now: float) -> str | None: ...

    async def workflow_retry(self, namespace: str, id: str, now: float) -> bool: ...

    async def workflow_history(self, namespace: str, id: str) -> list[HistoryEntry]: ...

    async def workflow_list(
        self,
        namespace: str,
        *,
        status: str | None,
        name: str | None,
        after: tuple[float, str],
        limit: int,
    ) -> list[tuple[Any, ...]]: ...

    async def workflow_next_due(self, namespace: str) -> float | None: ...

    # --- re-sealing (see storage/reseal_ops.py) -----------------------------------------

    async def reseal_scan(
        self,
        kind: str,
        after: tuple[Any, ...] | None,
        *,
        namespace: str | None,
        limit: int,
        primary: str,
        bytes_prefix: bytes,
        text_prefix: str,
    ) -> list[ResealRow]:
        """Rows of ``kind`` of ``namespace`` (None: all) after ``after`` holding a value
        not sealed by ``primary``."""

    async def reseal_write(self, kind: str, changes: Sequence[ResealChange]) -> list[bool]:
        """Compare-and-swap each change in one transaction; per change, whether it landed."""
