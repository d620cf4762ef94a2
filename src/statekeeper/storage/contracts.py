"""What storage promises each building block: one narrow protocol per block, and the
storage that combines them with a unit of work.

The blocks above speak only these protocols; they never import an adapter or a
driver. ``Storage.commit`` is the one way several writes become one transaction: state
writes with their conditions, messages, a message settled under its lease, a workflow
step under its fence (see ``rows.UnitOfWork``).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from statekeeper.storage.queries import Dialect
from statekeeper.storage.rows import (
    ArchivedMessage,
    DefinitionRow,
    Duplicate,
    FoundMessage,
    HistoryEntry,
    IdempotencyRecord,
    JournalEntry,
    LeasedWorkflow,
    Maintenance,
    NewMessage,
    PutOp,
    QueueCounts,
    QueuedMessage,
    ResealChange,
    ResealRow,
    StoredItem,
    UnitOfWork,
    UnitResult,
    WorkflowRow,
)


class StateStorage(Protocol):
    """Keyed values with ETags and expiry (``sk_state``)."""

    async def get(self, namespace: str, key: str, now: float) -> StoredItem | None:
        """The visible item under ``key``, or None."""

    async def get_many(
        self, namespace: str, keys: Sequence[str], now: float
    ) -> dict[str, StoredItem]:
        """The visible items among ``keys``; missing keys are simply absent."""

    async def list(
        self, namespace: str, *, after: str, low: str, high: str | None, limit: int, now: float
    ) -> list[StoredItem]:
        """Visible items with ``low <= key < high`` and ``key > after``, in key order."""

    async def put(self, namespace: str, op: PutOp, now: float) -> None:
        """Apply one put; ConflictError or AlreadyExists when its condition fails."""

    async def delete(self, namespace: str, key: str, if_match: str | None, now: float) -> bool:
        """Delete one key; True when a visible item was deleted (ConflictError when
        ``if_match`` is given and does not hold)."""

    async def reseal(
        self, namespace: str, key: str, etag: str, value: bytes, key_id: str | None
    ) -> bool:
        """Replace the stored bytes of an unchanged item (same ETag); False if it changed."""

    async def purge_expired(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` expired rows of any namespace; how many."""


class QueueStorage(Protocol):
    """Durable queues: live messages, deduplication claims, the archive. Settling a
    leased message (ack, retry, dead letter) is a unit of work (``Storage.commit``)."""

    async def send(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]:
        """Enqueue, atomically; per message None, or the message it duplicates."""

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

    async def extend(self, id: str, lease_token: str, lease_end: float) -> bool:
        """Move a lease's end; False if the lease was lost."""

    async def release(self, id: str, lease_token: str, now: float) -> bool:
        """Give a leased message back, deliverable now, its attempt not counted."""

    async def redrive(
        self, namespace: str, queue: str, ids: Sequence[str] | None, now: float
    ) -> int:
        """Dead messages (all, or those of ``ids``) back to ready with fresh attempts."""

    async def purge(self, namespace: str, queue: str, *, dead: bool) -> int:
        """Delete every ready or waiting (or, with ``dead``, every dead) message."""

    async def stats(self, namespace: str, queue: str, now: float) -> QueueCounts:
        """Counts by state, and the oldest live message's enqueue time."""

    async def peek(
        self, namespace: str, queue: str, *, dead: bool, limit: int
    ) -> list[QueuedMessage]:
        """Live (or dead) messages in order, without leasing them."""

    async def next_due(self, namespace: str, queue: str) -> float | None:
        """When the next live message becomes deliverable (or its lease ends)."""

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

    async def find(self, namespace: str, id: str) -> FoundMessage | None:
        """A message of any queue of the namespace, live or archived, by id."""

    async def forget(self, now: float, archive_before: float, limit: int = 1000) -> int:
        """Drop up to ``limit`` expired deduplication claims and as many archive rows
        completed before a time; how many."""


class IdempotencyStorage(Protocol):
    """Idempotency records: a key claimed by one owner, then its result kept."""

    async def claim(
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

    async def get(self, namespace: str, key: str, now: float) -> IdempotencyRecord | None: ...

    async def complete(
        self, namespace: str, key: str, owner: str, result: bytes, expires_at: float
    ) -> bool: ...

    async def extend(
        self, namespace: str, key: str, owner: str, lease_expires_at: float
    ) -> bool: ...

    async def abandon(self, namespace: str, key: str, owner: str) -> bool: ...

    async def forget(self, now: float, limit: int = 1000) -> int: ...


class WorkflowStorage(Protocol):
    """Workflows, their journals and events. Recording a step is a unit of work."""

    async def create(
        self,
        namespace: str,
        id: str,
        name: str,
        input: bytes,
        parent_id: str | None,
        now: float,
        *,
        deadline: float | None = None,
    ) -> bool:
        """Create a pending workflow (timing out at ``deadline``, if given); False when
        the id exists already."""

    async def get(self, namespace: str, id: str) -> WorkflowRow | None: ...

    async def lease(
        self,
        namespace: str,
        names: Sequence[str],
        *,
        owner: str,
        lease_end: float,
        limit: int,
        now: float,
    ) -> list[LeasedWorkflow]: ...

    async def journal(self, namespace: str, id: str) -> list[JournalEntry]: ...

    async def renew(
        self, namespace: str, id: str, fence: int, lease_end: float, now: float
    ) -> bool | None:
        """Renew the lease (the heartbeat); None if lost, else whether cancellation was
        requested."""

    async def suspend(
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

    async def finish(
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
    ) -> bool:
        """Finish the workflow while the fence holds; False if the lease was lost. A
        child's end is delivered to its parent (``parent_event``) atomically."""

    async def event(
        self, namespace: str, id: str, event: str, data: bytes | None, now: float
    ) -> None:
        """Deliver an event: DuplicateEvent if delivered before, WorkflowNotFound if there
        is no such workflow, WorkflowFinished if it has finished (decided in the
        transaction that stores the event)."""

    async def event_data(
        self, namespace: str, id: str, event: str
    ) -> tuple[bool, bytes | None]: ...

    async def cancel(self, namespace: str, id: str, now: float) -> str | None: ...

    async def retry(self, namespace: str, id: str, now: float) -> bool:
        """Make a failed or timed-out workflow pending again (without its deadline);
        False if it is neither."""

    async def history(self, namespace: str, id: str) -> builtins.list[HistoryEntry]: ...

    async def list(
        self,
        namespace: str,
        *,
        status: str | None,
        name: str | None,
        before: tuple[float, str],
        limit: int,
    ) -> builtins.list[tuple[Any, ...]]:
        """Workflows created before ``before`` (created_at, id), newest first."""

    async def next_due(self, namespace: str) -> float | None: ...


class DefinitionStorage(Protocol):
    """Workflows known by name in a namespace: announced by workers' code, or defined
    at runtime for an interpreter."""

    async def define(
        self, namespace: str, name: str, kind: str, definition: str | None, now: float
    ) -> int:
        """Define ``name`` (again); its revision, raised only when something changed."""

    async def announce_code(self, namespace: str, names: Iterable[str], now: float) -> None:
        """Make the workflows of a worker's code known (kind 'code'); a definition of
        another kind under one of these names is left as it is."""

    async def get(self, namespace: str, name: str) -> DefinitionRow | None: ...

    async def list(self, namespace: str) -> builtins.list[DefinitionRow]: ...

    async def delete(self, namespace: str, name: str) -> bool: ...


class ResealStorage(Protocol):
    """Finding and rewriting payloads not sealed by the primary key (reencrypt)."""

    async def scan(
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

    async def write(self, kind: str, changes: Sequence[ResealChange]) -> list[bool]:
        """Apply ``changes`` in one transaction; per change, whether it landed."""


class Committer(Protocol):
    """The unit of work: what a block needs to commit several intents as one."""

    async def commit(self, unit: UnitOfWork) -> UnitResult:
        """Apply every intent of ``unit`` in one transaction, or none of them."""


class Storage(Committer, Protocol):
    """One opened database: the blocks' protocols, the unit of work, wake-ups, upkeep."""

    dialect: Dialect

    @property
    def state(self) -> StateStorage: ...

    @property
    def queues(self) -> QueueStorage: ...

    @property
    def idempotency(self) -> IdempotencyStorage: ...

    @property
    def workflows(self) -> WorkflowStorage: ...

    @property
    def definitions(self) -> DefinitionStorage: ...

    @property
    def reseal(self) -> ResealStorage: ...

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
