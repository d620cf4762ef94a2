"""Identifiers: one check per kind, shared by every door (HTTP, Python API, CLI).

Each check matches the whole value (a trailing newline never passes), refuses
control characters (C0 and DEL) and text that is not Unicode (lone surrogates),
and fails with an error naming the kind, the value and the rule. The rules:

| kind | rule |
|---|---|
| queue name | 1-80 of ``A-Z a-z 0-9 _ . -`` |
| workflow name, workflow id | 1-200 of ``A-Z a-z 0-9 _ . : @ -`` |
| event name | 1-200 characters, no control characters, not ``child:...`` or ``callback:...`` |
| namespace | 1-128 UTF-8 bytes, no control characters |
| Idempotency-Key (HTTP) | 1-255 visible ASCII characters (``!`` to ``~``) |
| dedup id (Python API) | 1-255 characters, no control characters |
| group, correlation id | 1-128 characters, no control characters |
| entity type, entity handler | the rule of workflow names |
| entity key | 1-256 characters, no control characters |
| entity call id | 1-255 characters, no control characters |
| message id | 1-64 of ``A-Z a-z 0-9 _ . : @ -`` (ids are 32 hex digits) |
| PostgreSQL schema | ``a-z _`` then up to 62 of ``a-z 0-9 _`` |
"""

from __future__ import annotations

import hashlib
import re

from statekeeper.constants import MAX_NAMESPACE_BYTES, RESERVED_EVENT_PREFIXES
from statekeeper.errors import (
    InvalidDatabaseURL,
    InvalidEventName,
    InvalidIdempotencyKey,
    InvalidIdentifier,
    InvalidNamespace,
    InvalidQueueName,
    InvalidWorkflowId,
    InvalidWorkflowName,
    StatekeeperError,
)

MAX_QUEUE_NAME = 80
MAX_WORKFLOW_ID = 200
MAX_EVENT_NAME = 200
MAX_STREAM_NAME = 200
MAX_EVENT_TYPE = 200
MAX_DEDUP_ID = 255  # an Idempotency-Key becomes a dedup id: one limit for both
MAX_GROUP = 128
MAX_ENTITY_KEY = 256
MAX_CALL_ID = 255

_QUEUE_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_QUEUE_NAME}}}")
_WORKFLOW_ID = re.compile(rf"[A-Za-z0-9_.:@-]{{1,{MAX_WORKFLOW_ID}}}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
_VISIBLE_ASCII = re.compile(rf"[!-~]{{1,{MAX_DEDUP_ID}}}")
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

QUEUE_NAME_RULE = f"1-{MAX_QUEUE_NAME} letters, digits, '_', '.' or '-'"
WORKFLOW_ID_RULE = f"1-{MAX_WORKFLOW_ID} letters, digits, '_', '.', ':', '@' or '-'"
MESSAGE_ID_RULE = "1-64 letters, digits, '_', '.', ':', '@' or '-'"
DEDUP_ID_RULE = f"1-{MAX_DEDUP_ID} visible ASCII characters ('!' to '~')"


def shown(value: object, limit: int = 80) -> str:
    """``value`` for an error message: its repr, cut to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}...{text[-12:]}"


def utf8_length(text: str) -> int | None:
    """How many bytes ``text`` takes as UTF-8; None if it is not Unicode text (it holds
    a lone surrogate)."""
    if text.isascii():  # O(1) in CPython: one byte a character, no surrogates
        return len(text)
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (C0 or DEL)."""
    return _CONTROL.search(text) is not None


def _pattern(
    kind: str, value: object, pattern: re.Pattern[str], rule: str, error: type[StatekeeperError]
) -> str:
    if type(value) is not str or pattern.fullmatch(value) is None:
        raise error(f"invalid {kind} {shown(value)}: a {kind} is {rule}")
    return value


def _text(
    kind: str, value: object, max_length: int, error: type[StatekeeperError], *, unit: str = ""
) -> str:
    """A free text identifier: 1-``max_length`` characters (or UTF-8 bytes, with
    ``unit="bytes"``), no control characters, valid Unicode."""
    rule = f"1-{max_length} {unit or 'characters'} without control characters"
    if type(value) is not str or not value:
        article = "an" if kind[:1] in "aeiou" else "a"
        raise error(f"invalid {kind} {shown(value)}: {article} {kind} is {rule}")
    encoded = utf8_length(value)
    if encoded is None:
        raise error(f"invalid {kind} {shown(value)}: it is not Unicode text (lone surrogate)")
    size = encoded if unit == "bytes" else len(value)
    if size > max_length:
        raise error(f"invalid {kind} {shown(value)}: it is {size} {unit or 'characters'}; {rule}")
    if has_control(value):
        raise error(f"invalid {kind} {shown(value)}: it holds a control character; {rule}")
    return value


def check_queue_name(name: object) -> str:
    return _pattern("queue name", name, _QUEUE_NAME, QUEUE_NAME_RULE, InvalidQueueName)


def check_subscription_name(name: object) -> str:
    """A subscription's or projection's name: the rule of queue names."""
    return _pattern("subscription name", name, _QUEUE_NAME, QUEUE_NAME_RULE, InvalidIdentifier)


def check_workflow_id(id: object) -> str:
    """A workflow id; a ``str`` subclass (the typed ``WorkflowRun`` that starting a
    workflow returns) is taken as its plain text."""
    if isinstance(id, str) and type(id) is not str:
        id = str.__str__(id)
    return _pattern("workflow id", id, _WORKFLOW_ID, WORKFLOW_ID_RULE, InvalidWorkflowId)


def check_workflow_name(name: object) -> str:
    return _pattern("workflow name", name, _WORKFLOW_ID, WORKFLOW_ID_RULE, InvalidWorkflowName)


def check_event_name(name: object) -> str:
    """An event name a client may send or a workflow wait for: the engine's own events
    (``child:<id>``, ``callback:<position>``) are refused, so no client can forge a
    child's outcome or answer a callback without its token."""
    checked = _text("event name", name, MAX_EVENT_NAME, InvalidEventName)
    if checked.startswith(RESERVED_EVENT_PREFIXES):
        raise InvalidEventName(
            f"invalid event name {shown(checked)}: names starting with "
            f"{' or '.join(repr(p) for p in RESERVED_EVENT_PREFIXES)} are the workflow engine's own"
        )
    return checked


def check_namespace(namespace: object) -> str:
    return _text("namespace", namespace, MAX_NAMESPACE_BYTES, InvalidNamespace, unit="bytes")


def check_dedup_id(dedup_id: object) -> str:
    return _text("dedup id", dedup_id, MAX_DEDUP_ID, InvalidIdentifier)


def check_idempotency_key(key: object) -> str:
    return _pattern("Idempotency-Key", key, _VISIBLE_ASCII, DEDUP_ID_RULE, InvalidIdempotencyKey)


def workflow_id_for_key(key: str) -> str:
    """The workflow an Idempotency-Key starts: the key itself when it is a valid workflow
    id, else ``idem:`` and the SHA-256 of the key in hex (the same key, the same id)."""
    if _WORKFLOW_ID.fullmatch(key):
        return key
    return f"idem:{hashlib.sha256(key.encode()).hexdigest()}"


def check_message_id(id: object) -> str:
    return _pattern("message id", id, _MESSAGE_ID, MESSAGE_ID_RULE, InvalidIdentifier)


def check_group(group: object) -> str:
    return _text("group", group, MAX_GROUP, InvalidIdentifier)


def check_flow_key(key: object) -> str:
    """A run's key in a workflow queue: the rule of groups (``check_group``), named key."""
    return _text("key", key, MAX_GROUP, InvalidIdentifier)


def check_entity_type(name: object) -> str:
    return _pattern("entity type", name, _WORKFLOW_ID, WORKFLOW_ID_RULE, InvalidIdentifier)


def check_entity_handler(name: object) -> str:
    return _pattern("entity handler", name, _WORKFLOW_ID, WORKFLOW_ID_RULE, InvalidIdentifier)


def check_entity_key(key: object) -> str:
    return _text("entity key", key, MAX_ENTITY_KEY, InvalidIdentifier)


def check_call_id(call_id: object) -> str:
    return _text("call id", call_id, MAX_CALL_ID, InvalidIdentifier)


def check_correlation_id(correlation: object) -> str:
    return _text("correlation id", correlation, MAX_GROUP, InvalidIdentifier)


def check_schema_name(schema: object) -> str:
    return _pattern(
        "schema",
        schema,
        _SCHEMA,
        "a lowercase SQL identifier: a letter or '_', then up to 62 letters, digits or '_'",
        InvalidDatabaseURL,
    )
