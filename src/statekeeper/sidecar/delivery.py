"""Delivering published messages to the app (the sidecar's ``pubsub-delivery`` service).

Once the app listens (and, with the health check on, is healthy), the sidecar asks it
for its subscriptions (until it answers usably: 404 means none; another status, a body
that is not a JSON array, or no answer is asked again, and registrations stay as they
are meanwhile), adds the declarative ones, registers them durably, and consumes
each subscription's queue: up to ``concurrency`` messages in flight, each POSTed to the
subscription's route as ``application/cloudevents+json`` while a heartbeat renews its
lease. The app's answer settles it:

- 2xx with an empty or non-JSON body, or ``{"status": "SUCCESS"}``: delivered (acked);
- ``{"status": "DROP"}`` (a warning) or 404 (an error): dropped: acked, and published
  to the dead-letter topic when the subscription has one; so is an expired message;
- ``{"status": "RETRY"}``, an unknown status, any other status, a timeout or an
  unreachable app: a failed attempt, retried after the Retry policy's backoff. After
  the last attempt the message goes to the dead-letter topic (then acked), or, without
  one, is dead-lettered in its queue (``statekeeper queue peek --dead``).

On SIGTERM the service leases nothing more, lets deliveries in flight finish within
the grace, and gives the rest back to their queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from statekeeper.errors import StatekeeperError
from statekeeper.queues import Message
from statekeeper.runtime.consumer import Consumer, Handler
from statekeeper.runtime.worker import Worker
from statekeeper.sidecar.app_channel import Answer, AppChannel
from statekeeper.sidecar.cloudevents import CLOUDEVENT_CONTENT_TYPE, StoredEvent, raw_envelope
from statekeeper.sidecar.errors import DaprError
from statekeeper.sidecar.subscriptions import Subscription, declarative, programmatic

if TYPE_CHECKING:
    from statekeeper.sidecar.pubsub import DaprPubSub

log = logging.getLogger("statekeeper.sidecar.pubsub")

_POLL = 1.0
_ERROR_PAUSE = 1.0


class DeliveryFailed(Exception):
    """A failed attempt to deliver a message (retried, or dead-lettered after the last)."""


@dataclass(frozen=True)
class Outcome:
    """How a delivery ended: ``success``, ``drop`` (acked, dead-letter topic if any)
    or ``retry`` (a failed attempt); ``reason`` says why, logged at ``level``."""

    kind: str
    reason: str = ""
    level: int = logging.WARNING


SUCCESS = Outcome("success")


def outcome_of(answer: Answer) -> Outcome:
    """What the app's answer to a delivery means (Dapr's rules)."""
    if answer.status == 0:
        return Outcome("retry", answer.error)
    if answer.status == 404:
        return Outcome("drop", "the app answered 404: no such route", logging.ERROR)
    if not 200 <= answer.status < 300:
        return Outcome("retry", f"the app answered {answer.status}")
    if not answer.body.strip():
        return SUCCESS
    try:
        parsed = json.loads(answer.body)
    except (ValueError, RecursionError):
        return SUCCESS
    status = None
    if isinstance(parsed, dict):
        status = next((v for k, v in parsed.items() if k.lower() == "status"), None)
    if status in (None, "", "SUCCESS"):
        return SUCCESS
    if status == "DROP":
        return Outcome("drop", "the app answered DROP")
    if status == "RETRY":
        return Outcome("retry", "the app answered RETRY")
    return Outcome("retry", f"the app answered an unknown status {str(status)[:40]!r}")


class Deliveries:
    """Discovers the app's subscriptions and delivers their messages (a supervised
    service)."""

    name = "pubsub-delivery"

    def __init__(self, pubsub: DaprPubSub) -> None:
        self.pubsub = pubsub
        self.config = pubsub.sidecar.config
        self.policy = pubsub.policy

    async def run(self, stopping: asyncio.Event) -> None:
        channel = AppChannel(
            self.config,
            timeout=self.policy.timeout,
            connections=max(8, self.policy.concurrency * 4),
        )
        try:
            subscriptions = await self._discover(channel, stopping)
            if subscriptions:
                await self._worker(channel, subscriptions).run(stopping)
            await stopping.wait()
        finally:
            await channel.close()

    def _worker(self, channel: AppChannel, subscriptions: list[Subscription]) -> Worker:
        """The worker that consumes every subscription's queue: it leases, renews the
        leases while the app works, settles by what ``_deliver_one`` does, and on stop
        lets deliveries in flight finish within the grace and gives back the rest."""
        queues = {
            s.queue: self.pubsub.queue(self.pubsub.component(s.pubsub), s.queue)
            for s in subscriptions
        }
        consumers = [
            Consumer(
                s.queue,
                self._handler(channel, s),
                self.policy.concurrency,
                expected=(DeliveryFailed,),
            )
            for s in subscriptions
        ]
        runtime = self.pubsub.sidecar.app.runtime
        grace = runtime.grace if runtime is not None else 30.0
        return Worker(consumers, queues.__getitem__, grace=grace, poll=_POLL)

    def _handler(self, channel: AppChannel, subscription: Subscription) -> Handler:
        async def deliver(message: Message) -> None:
            await self._deliver_one(channel, subscription, message)

        deliver.__qualname__ = f"deliver to {subscription.route}"
        return deliver

    async def _discover(self, channel: AppChannel, stopping: asyncio.Event) -> list[Subscription]:
        if not await channel.wait_ready(stopping):
            return []
        log.info("application discovered", extra={"app": channel.base})
        answer = await channel.subscriptions(stopping)
        if answer is None:
            return []
        app_id = self.pubsub.sidecar.app_id
        found = programmatic(answer, app_id) + declarative(
            self.config.resources.named("Subscription"), app_id
        )
        while not stopping.is_set():
            try:
                kept = await self.pubsub.register(found)
            except StatekeeperError as problem:
                log.warning(
                    "registering subscriptions failed; trying again",
                    extra={"error": problem.message},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), _ERROR_PAUSE)
                continue
            log.info("subscribed", extra={"topics": [f"{s.pubsub}/{s.topic}" for s in kept]})
            return kept
        return []

    # --- delivering one message --------------------------------------------------------

    async def _deliver(
        self, channel: AppChannel, subscription: Subscription, message: Message
    ) -> Outcome:
        try:
            event = StoredEvent.from_json(message.body)
        except ValueError as problem:
            return Outcome("retry", f"not a published event: {problem}")
        if event.expired(self.pubsub.sidecar.app.clock()):
            return Outcome("drop", "the message expired (ttlInSeconds) before delivery")
        body = self._body(subscription, event)
        if body is None:
            return Outcome(
                "retry",
                "the message is not a CloudEvent and the subscription "
                "does not read raw payloads (rawPayload)",
            )
        headers = {"content-type": CLOUDEVENT_CONTENT_TYPE, "pubsubname": subscription.pubsub}
        envelope = event.envelope or {}
        for name in ("traceparent", "tracestate"):
            value = envelope.get(name)
            if isinstance(value, str) and value and value.isascii() and value.isprintable():
                headers[name] = value
        return outcome_of(await channel.post(subscription.route, body, headers))

    def _body(self, subscription: Subscription, event: StoredEvent) -> bytes | None:
        now = self.pubsub.sidecar.app.clock()
        if event.envelope is not None:
            data = json.dumps(event.envelope, separators=(",", ":"), ensure_ascii=False).encode()
        else:
            assert event.raw is not None
            data = event.raw
        if subscription.raw_payload:
            wrapped = raw_envelope(data, subscription.pubsub, subscription.topic, now)
            return json.dumps(wrapped, separators=(",", ":")).encode()
        if event.envelope is not None:
            return data
        try:
            return data if isinstance(json.loads(data), dict) else None
        except (UnicodeDecodeError, ValueError, RecursionError):
            return None

    async def _deliver_one(
        self, channel: AppChannel, subscription: Subscription, message: Message
    ) -> None:
        """Deliver ``message`` and return when it is settled by an ack (delivered,
        dropped, or sent to the dead-letter topic); DeliveryFailed for a failed attempt."""
        outcome = await self._deliver(channel, subscription, message)
        fields = {**_fields(message), "topic": subscription.topic, "route": subscription.route}
        if outcome.kind == "success":
            return
        last = message.attempt >= self.pubsub.max_attempts
        letter = subscription.dead_letter_topic
        if letter and (outcome.kind == "drop" or last):
            if not await self._dead_letter(subscription, message, fields):
                raise DeliveryFailed(f"{outcome.reason}; the dead-letter topic was not reached")
            log.log(
                outcome.level,
                "message sent to the dead-letter topic",
                extra={**fields, "reason": outcome.reason, "deadLetterTopic": letter},
            )
            return
        if outcome.kind == "drop":
            log.log(outcome.level, "message dropped", extra={**fields, "reason": outcome.reason})
            return
        raise DeliveryFailed(outcome.reason)

    async def _dead_letter(
        self, subscription: Subscription, message: Message, fields: dict[str, object]
    ) -> bool:
        """Publish the message as it is to the subscription's dead-letter topic (once per
        message within the dedup window); False when that failed."""
        try:
            event = StoredEvent.from_json(message.body)
            await self.pubsub.forward(
                subscription.pubsub,
                subscription.dead_letter_topic,
                event,
                dedup_id=f"dead-letter:{message.id}",
            )
        except (ValueError, DaprError, StatekeeperError) as problem:
            log.error(
                "publishing to the dead-letter topic failed",
                extra={**fields, "error": str(problem)},
            )
            return False
        return True


def _fields(message: Message) -> dict[str, object]:
    return {"queue": message.queue, "message_id": message.id, "attempt": message.attempt}
