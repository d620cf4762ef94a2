"""Signals: one-way entity calls, committed now and run later by a worker.

A signal is a message on the internal queue ``statekeeper.entity-calls`` naming the
entity, the handler and its argument. It is sent by ``app.entities.signal`` (and the
HTTP route's 202), by a handler in the same transaction as its own call
(``ctx.signal``, ``ctx.remind``), with a delay when it is a reminder. The consumer that
``statekeeper worker`` and ``serve`` run calls the handler with the message's id as the
call id: a redelivery after a crash gets the recorded answer instead of running the
handler again. What the handler returned is the message's result (its request status);
a handler that raises, or a signal to a type or handler no longer registered, is
dead-lettered at once (running it again would give the same answer).
"""

from __future__ import annotations

from typing import Any

from statekeeper.constants import INTERNAL_QUEUE_PREFIX
from statekeeper.errors import (
    EntityCallFailed,
    InvalidValue,
    UnknownEntity,
    UnknownEntityHandler,
    ValidationError,
)
from statekeeper.identifiers import check_entity_key

ENTITY_CALLS = f"{INTERNAL_QUEUE_PREFIX}entity-calls"
# The errors a signal ends with for good (dead-lettered at the first attempt).
FINAL = (EntityCallFailed, UnknownEntity, UnknownEntityHandler, ValidationError)
_FIELDS = {"entity", "key", "handler", "arg"}


def signal_body(type: str, key: str, handler: str, arg: Any) -> dict[str, Any]:
    """The message body of a signal (names already checked)."""
    return {"entity": type, "key": check_entity_key(key), "handler": handler, "arg": arg}


def parse_signal(body: Any) -> tuple[str, str, str, Any]:
    """``(type, key, handler, arg)`` of a signal's body (InvalidValue if it is none)."""
    if not isinstance(body, dict) or not {"entity", "key", "handler"} <= set(body):
        raise InvalidValue("an entity signal is an object with 'entity', 'key' and 'handler'")
    if set(body) - _FIELDS:
        raise InvalidValue(
            f"an entity signal has an unknown field {sorted(set(body) - _FIELDS)[0]!r}"
        )
    type, key, handler = body["entity"], body["key"], body["handler"]
    if not all(isinstance(part, str) for part in (type, key, handler)):
        raise InvalidValue("an entity signal's 'entity', 'key' and 'handler' are strings")
    return type, key, handler, body.get("arg")


def signal_call_id(message_id: str) -> str:
    """The call id of the signal sent as message ``message_id``."""
    return f"signal:{message_id}"
