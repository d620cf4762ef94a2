"""Durable queues: leases, retries with backoff, dead letters, deduplication, FIFO groups."""

from __future__ import annotations

from statekeeper.queues.message import Message, QueueStats, SendResult, StoredMessage
from statekeeper.queues.policy import Retry
from statekeeper.queues.queue import Queue, QueueConfig
from statekeeper.queues.wakeups import Wakeups

__all__ = [
    "Message",
    "Queue",
    "QueueConfig",
    "QueueStats",
    "Retry",
    "SendResult",
    "StoredMessage",
    "Wakeups",
]
