"""Announcing outcomes: what a message's ``reply_to`` receives when it is done.

``{"queue": name}``: a message on that queue. ``{"url": url}``: a message on the
internal callback queue, whose consumer POSTs it (signed) to the URL with
retries. Either is sent in the same transaction that settles the message, so an
outcome is announced if and only if it happened. With a keyring, the outcome
(it carries the result or the error) is sealed like any message body.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from statekeeper.constants import INTERNAL_QUEUE_PREFIX, is_internal_queue
from statekeeper.errors import ErrorRecord
from statekeeper.queues.message import Message
from statekeeper.sealing import MESSAGE, Sealer
from statekeeper.storage.rows import NewMessage

CALLBACK_QUEUE = f"{INTERNAL_QUEUE_PREFIX}callbacks"


def outcome(
    message: Message, status: str, result: Any, error: ErrorRecord | None
) -> dict[str, Any]:
    """The body that announces a message's outcome (an error as its type and message:
    a traceback stays inside)."""
    return {
        "request_id": message.id,
        "queue": message.queue,
        "status": status,
        "attempts": message.attempt,
        "result": result,
        "error": None if error is None else error.to_dict(traceback=False),
    }


def completion_builder(
    now: Callable[[], float], namespace: str, sealer: Sealer
) -> Callable[..., list[NewMessage]]:
    """The Completions function for an app's queues (of ``namespace``, sealed by
    ``sealer``)."""

    def build(
        message: Message, status: str, result: Any, error: ErrorRecord | None
    ) -> list[NewMessage]:
        reply_to = message.reply_to or {}
        body = outcome(message, status, result, error)
        built: list[NewMessage] = []
        # Internal queues are refused at the door; a message stored before that check
        # still never announces to one.
        if "queue" in reply_to and not is_internal_queue(str(reply_to["queue"])):
            built.append(_message(str(reply_to["queue"]), body, message, now()))
        if "url" in reply_to:
            callback = {"url": reply_to["url"], "payload": body}
            built.append(_message(CALLBACK_QUEUE, callback, message, now()))
        return built

    def _message(queue: str, body: dict[str, Any], source: Message, at: float) -> NewMessage:
        id = uuid.uuid4().hex
        data = json.dumps(body, separators=(",", ":"), default=str).encode()
        return NewMessage(
            id=id,
            queue=queue,
            body=sealer.seal(data, MESSAGE, namespace, id, "body"),
            available_at=at,
            correlation_id=source.correlation_id,
        )

    return build
