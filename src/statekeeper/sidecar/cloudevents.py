"""CloudEvents 1.0 envelopes, as the sidecar wraps published data in them.

A publish wraps its data in an envelope unless the data already is one (content type
``application/cloudevents+json``: its fields are kept, the missing ones filled) or the
request says ``rawPayload=true`` (the bytes travel as they are). The envelope's
``data`` is the JSON value when the content type is JSON, base64 in ``data_base64``
when it is binary (``application/octet-stream``, protobuf), and a string otherwise.

What a queue holds for one published message (``StoredEvent``) is JSON: the envelope,
or the raw bytes in base64 with their content type, and the expiry when the publish
gave ``ttlInSeconds``.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from statekeeper.codec import decode_json
from statekeeper.errors import StatekeeperError
from statekeeper.sidecar.errors import DaprError

CLOUDEVENT_CONTENT_TYPE = "application/cloudevents+json"
EVENT_TYPE = "com.dapr.event.sent"
SPEC_VERSION = "1.0"
DEFAULT_CONTENT_TYPE = "text/plain"
RAW_PAYLOAD = "rawPayload"
TTL_METADATA = "ttlInSeconds"
# Metadata that overrides an envelope's fields (``cloudevent.id``...), as Dapr reads it.
OVERRIDE_PREFIX = "cloudevent."
OVERRIDABLE = ("id", "source", "type", "traceid", "traceparent", "tracestate", "subject")
MAX_TTL = 365 * 86400


def bare_type(content_type: str | None) -> str:
    """A content type without its parameters, in lower case."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_type(content_type: str | None) -> bool:
    """Data of this type goes into the envelope as JSON (only ``application/json``,
    as Dapr does: ``+json`` types travel as text)."""
    return bare_type(content_type) == "application/json"


def is_binary_type(content_type: str | None) -> bool:
    return bare_type(content_type) == "application/octet-stream"


def is_cloudevent_type(content_type: str | None) -> bool:
    return bare_type(content_type) == CLOUDEVENT_CONTENT_TYPE


def metadata_error(message: str) -> DaprError:
    return DaprError(
        "ERR_PUBSUB_REQUEST_METADATA", f"failed deserializing metadata. Error: {message}"
    )


def flag(metadata: Mapping[str, str], name: str) -> bool:
    """A boolean metadata entry (absent: false); anything but true/false is a 400."""
    raw = metadata.get(name)
    if raw is None or raw == "":
        return False
    text = str(raw).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise metadata_error(f"{name} value must be a valid boolean: actual is '{str(raw)[:40]}'")


def ttl_seconds(metadata: Mapping[str, str]) -> int | None:
    """``ttlInSeconds``: None when absent; a positive whole number of seconds."""
    raw = metadata.get(TTL_METADATA)
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise metadata_error(f"{TTL_METADATA} must be a positive integer, got {text[:40]!r}")
    seconds = int(text)
    if seconds > MAX_TTL:
        raise metadata_error(f"{TTL_METADATA} must be at most {MAX_TTL} (a year)")
    return seconds


def rfc3339(moment: float) -> str:
    return (
        datetime.fromtimestamp(moment, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class StoredEvent:
    """One published message as queued: the envelope, or raw bytes; and its expiry."""

    envelope: dict[str, Any] | None
    raw: bytes | None = None
    content_type: str = ""
    expires_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.envelope is not None:
            body["event"] = self.envelope
        else:
            assert self.raw is not None
            body["raw"] = base64.b64encode(self.raw).decode()
            body["contentType"] = self.content_type
        if self.expires_at is not None:
            body["expiresAt"] = self.expires_at
        return body

    @classmethod
    def from_json(cls, body: Any) -> StoredEvent:
        """A queued message's body; ValueError when it is not one the sidecar wrote."""
        if not isinstance(body, dict):
            raise ValueError("the message is not a published event")
        expires = body.get("expiresAt")
        if expires is not None and not isinstance(expires, int | float):
            raise ValueError("expiresAt is not a number")
        if isinstance(body.get("event"), dict):
            return cls(body["event"], expires_at=expires)
        raw = body.get("raw")
        if not isinstance(raw, str):
            raise ValueError("the message holds neither an event nor a raw payload")
        try:
            data = base64.b64decode(raw, validate=True)
        except binascii.Error:
            raise ValueError("the raw payload is not base64") from None
        return cls(None, data, str(body.get("contentType") or ""), expires)

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class Publication:
    """Where a message goes and who sends it: the envelope's context."""

    pubsub: str
    topic: str
    source: str
    now: float
    traceparent: str = ""
    tracestate: str = ""


def stored_event(
    data: bytes, content_type: str | None, metadata: Mapping[str, str], where: Publication
) -> StoredEvent:
    """What a publish of ``data`` queues (DaprError on bad metadata or a bad event)."""
    ttl = ttl_seconds(metadata)
    expires = None if ttl is None else where.now + ttl
    if flag(metadata, RAW_PAYLOAD):
        return StoredEvent(None, data, content_type or "", expires)
    if is_cloudevent_type(content_type):
        envelope = given_envelope(data, where)
    else:
        envelope = new_envelope(data, content_type, where)
    _override(envelope, metadata)
    if expires is not None:
        envelope["expiration"] = rfc3339(expires)
    return StoredEvent(envelope, expires_at=expires)


def new_envelope(data: bytes, content_type: str | None, where: Publication) -> dict[str, Any]:
    """``data`` wrapped in a new envelope."""
    chosen = content_type or DEFAULT_CONTENT_TYPE
    envelope: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "source": where.source or "Dapr",
        "type": EVENT_TYPE,
        "specversion": SPEC_VERSION,
        "datacontenttype": chosen,
        "topic": where.topic,
        "pubsubname": where.pubsub,
        "time": rfc3339(where.now),
        "traceid": where.traceparent,
        "traceparent": where.traceparent,
        "tracestate": where.tracestate,
    }
    if is_json_type(chosen):
        try:  # strictly (no NaN, nesting within limits), else the text as a string
            envelope["data"] = decode_json(data, "the data") if data.strip() else None
        except StatekeeperError:
            envelope["data"] = data.decode("utf-8", errors="replace")
    elif is_binary_type(chosen):
        envelope["data_base64"] = base64.b64encode(data).decode()
    else:
        envelope["data"] = data.decode("utf-8", errors="replace")
    return envelope


def given_envelope(data: bytes, where: Publication) -> dict[str, Any]:
    """A published CloudEvent: its fields kept, the missing ones filled; its topic and
    pub/sub are the publish's (and its trace, when the publish carries one)."""
    try:
        envelope = decode_json(data, "the cloud event")
    except StatekeeperError as problem:
        raise _not_a_cloudevent(where, problem.message) from None
    if not isinstance(envelope, dict):
        raise _not_a_cloudevent(where, "the body is not a JSON object")
    filled: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "source": "Dapr",
        "type": EVENT_TYPE,
        "specversion": SPEC_VERSION,
        "time": rfc3339(where.now),
        "traceid": where.traceparent,
        "traceparent": where.traceparent,
        "tracestate": where.tracestate,
    }
    if "data" in envelope or "data_base64" in envelope:
        filled["datacontenttype"] = (
            "application/json" if "data" in envelope else ("application/octet-stream")
        )
    for name, value in filled.items():
        if envelope.get(name) in (None, ""):
            envelope[name] = value
    if where.traceparent:
        envelope.update(
            traceid=where.traceparent, traceparent=where.traceparent, tracestate=where.tracestate
        )
    envelope["topic"] = where.topic
    envelope["pubsubname"] = where.pubsub
    return envelope


def _not_a_cloudevent(where: Publication, why: str) -> DaprError:
    return DaprError(
        "ERR_PUBSUB_CLOUD_EVENTS_SER",
        f"error when unmarshalling the cloud event for topic {where.topic}: {why}",
    )


def raw_envelope(data: bytes, pubsub: str, topic: str, now: float) -> dict[str, Any]:
    """Raw bytes wrapped for a subscription that reads raw payloads (``rawPayload``)."""
    return {
        "id": str(uuid.uuid4()),
        "source": pubsub,
        "type": EVENT_TYPE,
        "specversion": SPEC_VERSION,
        "datacontenttype": "application/octet-stream",
        "topic": topic,
        "pubsubname": pubsub,
        "time": rfc3339(now),
        "data_base64": base64.b64encode(data).decode(),
    }


def _override(envelope: dict[str, Any], metadata: Mapping[str, str]) -> None:
    for name in OVERRIDABLE:
        value = metadata.get(OVERRIDE_PREFIX + name)
        if value:
            envelope[name] = value
