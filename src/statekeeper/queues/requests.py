"""Request status: where a message accepted by the ingress stands now.

accepted (waiting for its first attempt), processing (leased), failed (its last
attempt failed; it will be retried), dead-lettered, succeeded (with its result).
"""

from __future__ import annotations

from typing import Any

from statekeeper.codec import decode_value
from statekeeper.errors import ErrorRecord, StatekeeperError
from statekeeper.sealing import MESSAGE, Sealer
from statekeeper.storage.contracts import Storage
from statekeeper.storage.rows import FoundMessage


def describe(id: str, found: FoundMessage, sealer: Sealer, namespace: str) -> dict[str, Any]:
    """The status document of a found message; a stored error or result that cannot be
    read is shown as ``error_unreadable`` or ``result_error``, not as a failed request."""
    status = {
        "ready": "failed" if found.attempts > 0 else "accepted",
        "waiting": "accepted",  # behind an earlier message of its group
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
    if status in ("failed", "dead-lettered"):
        document["error"] = None
        if found.last_error is not None:
            try:
                text = sealer.open_text(found.last_error, MESSAGE, namespace, id, "last_error")
                document["error"] = ErrorRecord.from_json(text).to_dict(traceback=False)
            except StatekeeperError as error:
                document["error_unreadable"] = error.message
    if status == "failed":
        document["next_attempt_at"] = found.available_at
    if status == "dead-lettered":
        document["dead_at"] = found.dead_at
    if status == "succeeded":
        document["completed_at"] = found.completed_at
        document["result"] = None
        if found.result is not None:
            try:
                result = sealer.open(found.result, MESSAGE, namespace, id, "result")
                document["result"] = decode_value(id, result)
            except StatekeeperError as error:  # shown, not a failed status request
                document["result_error"] = error.message
    return document


async def request_status(
    backend: Storage, namespace: str, id: str, sealer: Sealer
) -> dict[str, Any] | None:
    found = await backend.queues.find(namespace, id)
    return None if found is None else describe(id, found, sealer, namespace)
