"""Subscriptions: what an app receives, read from its ``/dapr/subscribe`` answer and
from declarative ``Subscription`` documents, and registered durably.

A subscription is (pub/sub, topic, app id): every app id subscribed to a topic gets
each message published to it, on a queue of its own (replicas of one app id compete on
that queue). The registration is a state item in the pub/sub's namespace,
``subscription||<topic>||<app id>||<pub/sub>``, written when a sidecar discovers it,
so messages published while the app is down wait on its queue.

Routing rules with CEL ``match`` expressions are not evaluated: every message goes to
the default route (``routes.default``; else the first rule without a match, else the
first rule's path), with a warning when the subscription is read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("statekeeper.sidecar")

KEY_PREFIX = "subscription||"
PROGRAMMATIC = "PROGRAMMATIC"
DECLARATIVE = "DECLARATIVE"
MAX_TOPIC = 255
_QUEUE_TEXT = re.compile(r"[^A-Za-z0-9_.-]")


class InvalidTopic(ValueError):
    pass


def check_topic(topic: object) -> str:
    """A topic name: 1-255 bytes of UTF-8 text, no control characters, no ``||``."""
    if not isinstance(topic, str) or not topic:
        raise InvalidTopic("the topic is empty")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in topic):
        raise InvalidTopic("the topic is not valid Unicode text")
    if len(topic.encode()) > MAX_TOPIC:
        raise InvalidTopic(f"the topic is longer than {MAX_TOPIC} bytes")
    if any(ord(c) < 32 or ord(c) == 127 for c in topic) or "||" in topic:
        raise InvalidTopic(f"topic {topic[:60]!r} holds a control character or '||'")
    return topic


def queue_name(pubsub: str, topic: str, app_id: str) -> str:
    """The queue of (pub/sub, topic, app id): readable, within statekeeper's rule for
    queue names (1-80 of ``[A-Za-z0-9_.-]``), made unique by a hash of all three."""
    digest = hashlib.sha256(json.dumps([pubsub, topic, app_id]).encode()).hexdigest()[:12]
    readable = _QUEUE_TEXT.sub("_", f"{topic[:32]}.{app_id[:24]}")
    return f"dapr-sub.{readable}.{digest}"


@dataclass(frozen=True)
class Rule:
    match: str
    path: str


@dataclass(frozen=True)
class Subscription:
    """One app's subscription to a topic of a pub/sub."""

    pubsub: str
    topic: str
    app_id: str
    route: str
    rules: tuple[Rule, ...] = ()
    dead_letter_topic: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    kind: str = PROGRAMMATIC

    @property
    def key(self) -> str:
        return registration_key(self.pubsub, self.topic, self.app_id)

    @property
    def queue(self) -> str:
        return queue_name(self.pubsub, self.topic, self.app_id)

    @property
    def raw_payload(self) -> bool:
        return str(self.metadata.get("rawPayload", "")).strip().lower() in ("true", "1")

    def record(self) -> dict[str, Any]:
        """The durable registration (what publishers read)."""
        return {
            "pubsub": self.pubsub,
            "topic": self.topic,
            "appId": self.app_id,
            "queue": self.queue,
            "route": self.route,
            "deadLetterTopic": self.dead_letter_topic,
            "metadata": dict(self.metadata),
            "type": self.kind,
        }

    def described(self) -> dict[str, Any]:
        """As Dapr's metadata document lists it."""
        # The rules in order, then the default (an empty match is left out, as Dapr does).
        rules = [{"match": r.match, "path": r.path} if r.match else {"path": r.path}
                 for r in self.rules]  # fmt: skip
        if not any(r == {"path": self.route} for r in rules):
            rules.append({"path": self.route})
        return {
            "pubsubname": self.pubsub,
            "topic": self.topic,
            "metadata": dict(self.metadata),
            "rules": rules,
            "deadLetterTopic": self.dead_letter_topic,
            "type": self.kind,
        }


def registration_key(pubsub: str, topic: str, app_id: str) -> str:
    """The state key of a registration (the pub/sub last: components sharing a
    namespace keep theirs apart)."""
    return f"{KEY_PREFIX}{topic}||{app_id}||{pubsub}"


def topic_prefix(topic: str) -> str:
    return f"{KEY_PREFIX}{topic}||"


def programmatic(answer: Any, app_id: str) -> list[Subscription]:
    """The subscriptions of an app's ``/dapr/subscribe`` answer (a JSON array); entries
    that cannot be read are skipped with a warning."""
    if not isinstance(answer, list):
        log.warning("the app's /dapr/subscribe answer is not a JSON array; no subscriptions")
        return []
    found = []
    for index, entry in enumerate(answer):
        where = f"/dapr/subscribe entry {index}"
        try:
            subscription = _read(entry, app_id, PROGRAMMATIC, where)
        except RecursionError:
            log.warning("%s is nested too deeply; skipped", where)
            continue
        if subscription is not None:
            found.append(subscription)
    return found


def declarative(documents: Sequence[Mapping[str, Any]], app_id: str) -> list[Subscription]:
    """The ``Subscription`` documents (dapr.io/v1alpha1 or v2alpha1) that apply to
    ``app_id`` (no ``scopes``, or scopes naming it)."""
    found = []
    for document in documents:
        meta = document.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        where = f"Subscription {name or '(unnamed)'}"
        scopes = document.get("scopes")
        if scopes and app_id not in scopes:
            continue
        subscription = _read(document.get("spec"), app_id, DECLARATIVE, where)
        if subscription is not None:
            found.append(subscription)
    return found


def _read(entry: Any, app_id: str, kind: str, where: str) -> Subscription | None:
    if not isinstance(entry, dict):
        log.warning("%s is not an object; skipped", where)
        return None
    pubsub = entry.get("pubsubname") or entry.get("pubsubName")
    topic = entry.get("topic")
    if not isinstance(pubsub, str) or not pubsub:
        log.warning("%s has no pubsubname; skipped", where)
        return None
    try:
        check_topic(topic)
    except InvalidTopic as problem:
        log.warning("%s: %s; skipped", where, problem)
        return None
    assert isinstance(topic, str)
    route, rules = _routes(entry, where)
    if not route:
        log.warning("%s (topic %r) has no route; skipped", where, topic)
        return None
    dead_letter = entry.get("deadLetterTopic") or ""
    if not isinstance(dead_letter, str) or (dead_letter and _bad_topic(dead_letter)):
        log.warning("%s: deadLetterTopic %r is not a topic; ignored", where, dead_letter)
        dead_letter = ""
    metadata = entry.get("metadata") or {}
    if isinstance(metadata, list):  # v1alpha1 documents may list {name, value} pairs
        metadata = {m.get("name"): m.get("value") for m in metadata if isinstance(m, dict)}
    if not isinstance(metadata, dict):
        log.warning("%s: metadata is not an object; ignored", where)
        metadata = {}
    clean = {str(k): "" if v is None else str(v) for k, v in metadata.items() if k}
    return Subscription(pubsub, topic, app_id, route, rules, dead_letter, clean, kind)


def _routes(entry: Mapping[str, Any], where: str) -> tuple[str, tuple[Rule, ...]]:
    route = entry.get("route")
    routes = entry.get("routes")
    rules: list[Rule] = []
    default = ""
    if isinstance(routes, dict):
        default = _path(routes.get("default"))
        for rule in routes.get("rules") or []:
            if isinstance(rule, dict) and _path(rule.get("path")):
                rules.append(Rule(str(rule.get("match") or ""), _path(rule.get("path"))))
    chosen = default or _path(route)
    if not chosen:
        catch_all = [r for r in rules if not r.match]
        chosen = catch_all[0].path if catch_all else rules[0].path if rules else ""
    if any(r.match for r in rules):
        log.warning(
            "%s: routing rules with match expressions are not evaluated; every message goes to %s",
            where,
            chosen,
        )
    return chosen, tuple(rules)


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        return ""
    text = value.strip()
    return text if text.startswith("/") else "/" + text


def _bad_topic(topic: str) -> bool:
    try:
        check_topic(topic)
    except InvalidTopic:
        return True
    return False


def from_record(value: Any) -> Subscription | None:
    """A registration read back (None when it is not one)."""
    if not isinstance(value, dict):
        return None
    try:
        return Subscription(
            str(value["pubsub"]),
            str(value["topic"]),
            str(value["appId"]),
            str(value["route"]),
            (),
            str(value.get("deadLetterTopic") or ""),
            dict(value.get("metadata") or {}),
            str(value.get("type") or PROGRAMMATIC),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class DeliveryPolicy:
    """How the sidecar delivers to its app: attempts per message and the backoff
    between them (statekeeper's Retry: exponential, full jitter), the app call's
    timeout, how many messages of one subscription are in flight at once, and the
    lease a delivery holds (renewed while the app works)."""

    max_attempts: int = 5
    retry_interval: float = 1.0
    max_retry_delay: float = 60.0
    timeout: float = 60.0
    concurrency: int = 16
    lease: float = 30.0
