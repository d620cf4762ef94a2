"""The outbox relay (the sidecar's ``pubsub-outbox`` service): publishes what this
app's state transactions put in a store's outbox.

A transaction on a store whose component has ``outboxPublishPubsub`` and
``outboxPublishTopic`` also enqueues, atomically, one message per upsert on the app's
outbox queue in the store's namespace: ``dapr-outbox.<app id>`` (``state.py``'s
``outbox_queue``). Each app id has its own, so apps sharing a store (and its
namespace) never relay, or lose, each other's values; each sidecar consumes only its
own app's queue (replicas of one app id share it). The relay consumes the queue in
order and publishes each upserted value to the configured topic as a CloudEvent (``id``
``outbox-<message id>``, ``source`` the app id, ``data`` the value: JSON as
``application/json``, bytes as ``data_base64``), then acks. The publish carries the
outbox message's id as its deduplication id on every subscriber's queue, so a relay
that dies between publishing and acking does not publish twice (within the queues'
dedup window, 5 minutes).

A failed publish (the database or a pub/sub unreachable) is retried with a capped
backoff for about a week (``OUTBOX_RETRY``): a committed transaction's publish
survives an outage. A value whose pub/sub is not one of this sidecar's components is
dead-lettered in the outbox queue with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import TYPE_CHECKING, Any

from statekeeper.errors import StatekeeperError
from statekeeper.queues import Message
from statekeeper.runtime.consumer import Consumer
from statekeeper.runtime.worker import Worker
from statekeeper.sidecar.cloudevents import EVENT_TYPE, SPEC_VERSION, StoredEvent, rfc3339
from statekeeper.sidecar.components import Component, Resources
from statekeeper.sidecar.errors import DaprError
from statekeeper.sidecar.state import OUTBOX_PUBSUB, OUTBOX_RETRY, OUTBOX_TOPIC, outbox_queue
from statekeeper.sidecar.values import is_json, user_json, value_bytes

if TYPE_CHECKING:
    from statekeeper.sidecar.pubsub import DaprPubSub

log = logging.getLogger("statekeeper.sidecar.pubsub")

_POLL = 1.0


def outbox_stores(resources: Resources) -> list[Component]:
    """The state stores whose transactions publish (both outbox settings given)."""
    return [
        c
        for c in resources.state_stores.values()
        if c.metadata.get(OUTBOX_PUBSUB) and c.metadata.get(OUTBOX_TOPIC)
    ]


def outbox_event(body: Any, message_id: str, source: str, now: float) -> dict[str, Any]:
    """The CloudEvent that publishes one outbox message's value; ValueError when the
    message is not one a transaction wrote."""
    if not isinstance(body, dict) or "value" not in body:
        raise ValueError("not an outbox message")
    pubsub, topic = body.get("pubsub"), body.get("topic")
    if not isinstance(pubsub, str) or not isinstance(topic, str) or not pubsub or not topic:
        raise ValueError("the outbox message names no pubsub and topic")
    stored = body["value"]
    event: dict[str, Any] = {
        "id": f"outbox-{message_id}",
        "source": source or "Dapr",
        "type": EVENT_TYPE,
        "specversion": SPEC_VERSION,
        "topic": topic,
        "pubsubname": pubsub,
        "time": rfc3339(now),
        "traceid": "",
        "traceparent": "",
        "tracestate": "",
    }
    if is_json(stored):
        event["datacontenttype"] = "application/json"
        event["data"] = user_json(stored)
    else:
        event["datacontenttype"] = "application/octet-stream"
        event["data_base64"] = base64.b64encode(value_bytes(stored)).decode()
    return event


class OutboxRelay:
    """Relays this app's outbox queue in the namespace of every outbox store (a
    supervised service)."""

    name = "pubsub-outbox"

    def __init__(self, pubsub: DaprPubSub, stores: list[Component]) -> None:
        self.pubsub = pubsub
        self.namespaces = sorted({c.namespace for c in stores})
        self.queue_name = outbox_queue(pubsub.sidecar.app_id)

    async def run(self, stopping: asyncio.Event) -> None:
        """One worker per namespace, each consuming this app's outbox queue one message
        at a time (in order), until ``stopping``."""
        app = self.pubsub.sidecar.app
        runtime = app.runtime
        grace = runtime.grace if runtime is not None else 30.0
        workers = []
        for namespace in self.namespaces:
            queue = app.in_namespace(namespace).queue(self.queue_name, retry=OUTBOX_RETRY)
            relay = Consumer(
                self.queue_name, self._publish, concurrency=1,
                non_retryable=(NotAnOutboxMessage,),
                expected=(NotAnOutboxMessage, OutboxNotPublished),
            )  # fmt: skip
            queues = {self.queue_name: queue}
            workers.append(Worker([relay], queues.__getitem__, grace=grace, poll=_POLL))
        await asyncio.gather(*(worker.run(stopping) for worker in workers))

    async def _publish(self, message: Message) -> None:
        """Publish one outbox message's value (the worker acks it on return);
        NotAnOutboxMessage dead-letters it at once, OutboxNotPublished retries it."""
        sidecar = self.pubsub.sidecar
        try:
            event = outbox_event(message.body, message.id, sidecar.app_id, sidecar.app.clock())
        except ValueError as problem:
            raise NotAnOutboxMessage(str(problem)) from None
        pubsub, topic = event["pubsubname"], event["topic"]
        if pubsub not in self.pubsub.pubsubs:
            raise NotAnOutboxMessage(
                f"pubsub {pubsub} of the outbox is not a component of this sidecar"
            )
        try:
            await self.pubsub.forward(
                pubsub, topic, StoredEvent(event), dedup_id=f"outbox:{message.id}"
            )
        except (DaprError, StatekeeperError) as problem:
            raise OutboxNotPublished(str(problem)) from None
        log.debug("outbox value published", extra={"message_id": message.id, "topic": topic})


class NotAnOutboxMessage(Exception):
    """A message on an outbox queue that no transaction wrote, or for a pub/sub this
    sidecar does not have: dead-lettered with the reason."""


class OutboxNotPublished(Exception):
    """Publishing an outbox value failed (retried per ``OUTBOX_RETRY``)."""
