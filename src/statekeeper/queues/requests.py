"""Request status: where a message accepted by the ingress stands now.

accepted (waiting for its first attempt), processing (leased), failed (its last
attempt failed; it will be retried), dead-lettered, succeeded (with its result).
"""

from __future__ import annotations

from typing import Any

from statekeeper.codec import decode_value
from statekeeper.storage.base import Backend, FoundMessage


def describe(id: str, found: FoundMessage) -> dict[str, Any]:
    """The status document of a found message."""
    status = {
        "ready": "failed" if found.attempts > 0 else "accepted",
        "leased": "processing",
        "dead": "dead-lettered",
        "done": "succeeded",
    }[found.state]
    document: dict[str, Any] = {
        "id": id,
        "queue": found.queue,
        "status": status,
        "attempts": found.attempts,
        "enqueued_at": found.enqueued_at,
    }
    if status == "failed":
        document["error"] = found.last_error
        document["next_attempt_at"] = found.available_at
    if status == "dead-lettered":
        document["error"] = found.last_error
        document["dead_at"] = found.dead_at
    if status == "succeeded":
        document["completed_at"] = found.completed_at
        document["result"] = None if found.result is None else decode_value(id, found.result)
    return document


async def request_status(backend: Backend, namespace: str, id: str) -> dict[str, Any] | None:
    found = await backend.queue_find(namespace, id)
    return None if found is None else describe(id, found)
