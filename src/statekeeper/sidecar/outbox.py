"""The outbox relay (the sidecar's ``pubsub-outbox`` service): publishes what state
transactions put in a store's outbox.

A transaction on a store whose component has ``outboxPublishPubsub`` and
``outboxPublishTopic`` also enqueues, atomically, one message per upsert on the queue
``dapr-outbox`` of the store's namespace (``state.py``). The relay consumes that queue
in order and publishes each upserted value to the configured topic as a CloudEvent
(``id`` ``outbox-<message id>``, ``data`` the value: JSON as ``application/json``, bytes
as ``data_base64``), then acks. The publish carries the outbox message's id as its
deduplication id on every subscriber's queue, so a relay that dies between publishing
and acking does not publish twice (within the queues' dedup window, 5 minutes).
A value whose pub/sub is not one of this sidecar's components is dead-lettered in the
outbox queue with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from statekeeper.errors import ErrorRecord, StatekeeperError
from statekeeper.queues import Message, Queue
from statekeeper.sidecar.cloudevents import EVENT_TYPE, SPEC_VERSION, StoredEvent, rfc3339
from statekeeper.sidecar.components import Component, Resources
from statekeeper.sidecar.errors import DaprError
from statekeeper.sidecar.state import OUTBOX_PUBSUB, OUTBOX_QUEUE, OUTBOX_TOPIC
from statekeeper.sidecar.values import is_json, user_json, value_bytes

if TYPE_CHECKING:
    from statekeeper.sidecar.pubsub import DaprPubSub

log = logging.getLogger("statekeeper.sidecar.pubsub")

_BATCH = 20
_POLL = 1.0
_ERROR_PAUSE = 1.0


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
    """Relays the outbox queue of every outbox store's namespace (a supervised service)."""

    name = "pubsub-outbox"

    def __init__(self, pubsub: DaprPubSub, stores: list[Component]) -> None:
        self.pubsub = pubsub
        self.namespaces = sorted({c.namespace for c in stores})
        self.relayed = 0

    async def run(self, stopping: asyncio.Event) -> None:
        app = self.pubsub.sidecar.app
        loops = [
            asyncio.create_task(self._relay(app.in_namespace(ns).queue(OUTBOX_QUEUE), stopping))
            for ns in self.namespaces
        ]
        try:
            await asyncio.gather(*loops)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _relay(self, queue: Queue, stopping: asyncio.Event) -> None:
        stop = asyncio.create_task(stopping.wait())
        try:
            while not stopping.is_set():
                receive = asyncio.create_task(queue.receive(_BATCH, wait=_POLL))
                await asyncio.wait([receive, stop], return_when=asyncio.FIRST_COMPLETED)
                if not receive.done():
                    receive.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await receive
                    return
                try:
                    messages = receive.result()
                except StatekeeperError as problem:
                    log.warning(
                        "leasing outbox messages failed; retrying", extra={"error": problem.message}
                    )
                    await asyncio.sleep(_ERROR_PAUSE)
                    continue
                for index, message in enumerate(messages):
                    if stopping.is_set():  # give back what was not started
                        for rest in messages[index:]:
                            with contextlib.suppress(StatekeeperError):
                                await rest.release()
                        return
                    await self._publish(message)
        finally:
            stop.cancel()

    async def _publish(self, message: Message) -> None:
        fields = {"queue": message.queue, "message_id": message.id, "attempt": message.attempt}
        sidecar = self.pubsub.sidecar
        try:
            event = outbox_event(message.body, message.id, sidecar.app_id, sidecar.app.clock())
        except ValueError as problem:
            await self._fail(message, str(problem), fields, retryable=False)
            return
        pubsub, topic = event["pubsubname"], event["topic"]
        if pubsub not in self.pubsub.pubsubs:
            reason = f"pubsub {pubsub} of the outbox is not a component of this sidecar"
            await self._fail(message, reason, fields, retryable=False)
            return
        try:
            await self.pubsub.forward(
                pubsub, topic, StoredEvent(event), dedup_id=f"outbox:{message.id}"
            )
            await message.ack()
        except DaprError as problem:
            await self._fail(message, problem.message, fields, retryable=True)
            return
        except StatekeeperError as problem:
            await self._fail(message, problem.message, fields, retryable=True)
            return
        self.relayed += 1
        log.debug("outbox value published", extra={**fields, "topic": topic})

    async def _fail(
        self, message: Message, reason: str, fields: dict[str, object], *, retryable: bool
    ) -> None:
        try:
            state = await message.fail(
                ErrorRecord.made("OutboxNotPublished", reason), retryable=retryable
            )
        except StatekeeperError as problem:
            log.error(
                "outbox failure not recorded; it will be relayed again",
                extra={**fields, "error": problem.message},
            )
            return
        log.log(
            logging.ERROR if state == "dead" else logging.WARNING,
            "outbox value not published" + ("; dead-lettered" if state == "dead" else "; retrying"),
            extra={**fields, "reason": reason},
        )
