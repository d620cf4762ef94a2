"""What queues hand back: received messages, send results, statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from statekeeper.errors import ErrorRecord

if TYPE_CHECKING:
    from statekeeper.queues.queue import Queue


@dataclass(frozen=True, slots=True)
class SendResult:
    """The id of an enqueued message; ``duplicate`` when its dedup id was seen before
    in the window, and ``id`` is then the first message's."""

    id: str
    duplicate: bool = False
    same_content: bool = True  # for a duplicate: whether its content fingerprint matched


@dataclass(slots=True)
class Message:
    """A message as delivered: a lease on it until ``lease_expires_at``."""

    id: str
    queue: str
    body: Any
    attributes: dict[str, Any]
    correlation_id: str | None
    group: str | None
    attempt: int  # 1 on first delivery
    enqueued_at: float
    lease_token: str
    lease_expires_at: float
    last_error: ErrorRecord | None = None
    reply_to: dict[str, Any] | None = None
    _queue: Queue | None = field(default=None, repr=False)

    async def ack(self, result: Any = None) -> None:
        await self._owner().ack(self, result)

    async def fail(
        self, error: str | BaseException | ErrorRecord, *, retryable: bool = True
    ) -> str:
        return await self._owner().fail(self, error, retryable=retryable)

    async def extend(self, seconds: float | None = None) -> None:
        await self._owner().extend(self, seconds)

    async def release(self) -> None:
        await self._owner().release(self)

    def _owner(self) -> Queue:
        if self._queue is None:
            raise RuntimeError("this message was not received from a queue")
        return self._queue


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message seen without leasing it (peek), live or dead-lettered."""

    id: str
    body: Any
    attributes: dict[str, Any]
    correlation_id: str | None
    group: str | None
    state: str  # ready, leased or dead
    attempts: int
    available_at: float
    enqueued_at: float
    last_error: ErrorRecord | None
    dead_at: float | None
    body_error: str | None = None  # why the stored body cannot be read (body is then None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "body": self.body,
            "attributes": self.attributes,
            "correlation_id": self.correlation_id,
            "group": self.group,
            "state": self.state,
            "attempts": self.attempts,
            "available_at": self.available_at,
            "enqueued_at": self.enqueued_at,
            "last_error": None if self.last_error is None else self.last_error.to_dict(),
            "dead_at": self.dead_at,
            **({"body_error": self.body_error} if self.body_error else {}),
        }


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    ready: int
    in_flight: int
    delayed: int
    dead: int
    oldest_age: float | None  # seconds since the oldest live message was enqueued
    waiting: int = 0  # behind the message in hand of their group (FIFO groups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "ready": self.ready,
            "in_flight": self.in_flight,
            "delayed": self.delayed,
            "waiting": self.waiting,
            "dead": self.dead,
            "oldest_age": self.oldest_age,
        }
