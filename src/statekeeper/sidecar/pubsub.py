"""Dapr's pub/sub on statekeeper's durable queues (the ``pubsub`` part of the sidecar).

Publishing wraps the data in a CloudEvent (``cloudevents.py``) and enqueues it, in one
transaction, on the queue of every subscription registered for the topic: each
subscribing app id gets every message, replicas of one app id compete on its queue. A
topic nobody subscribes to drops what is published to it, as a broker without
consumer groups does. Subscriptions are registered durably when a sidecar discovers
them (``subscriptions.py``), so a subscriber that is down finds its messages waiting.

The delivery service (``delivery.py``) posts each message to the app's route and
settles it by the answer; the outbox relay (``outbox.py``) publishes what state
transactions put in a store's outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from statekeeper.errors import StatekeeperError
from statekeeper.queues import Queue, Retry
from statekeeper.sidecar.cloudevents import Publication, StoredEvent, stored_event
from statekeeper.sidecar.components import Component
from statekeeper.sidecar.errors import DaprError, Grpc, malformed, pubsub_not_found
from statekeeper.sidecar.subscriptions import (
    KEY_PREFIX,
    DeliveryPolicy,
    InvalidTopic,
    Subscription,
    check_topic,
    from_record,
    topic_prefix,
)
from statekeeper.storage.rows import NewMessage

if TYPE_CHECKING:
    from statekeeper.runtime.supervisor import Service
    from statekeeper.sidecar.context import Sidecar

log = logging.getLogger("statekeeper.sidecar.pubsub")

MAX_MESSAGE_FLOOR = 256 * 1024


@dataclass(frozen=True)
class BulkEntry:
    """One event of a bulk publish: its id (unique in the request), bytes, content
    type and metadata."""

    entry_id: str
    event: bytes
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class DaprPubSub:
    """Publishing, subscriptions and deliveries of one sidecar's app."""

    name = "pubsub"

    def __init__(self, sidecar: Sidecar, policy: DeliveryPolicy | None = None) -> None:
        self.sidecar = sidecar
        self.policy = policy or DeliveryPolicy()
        self.pubsubs = sidecar.config.resources.pubsubs
        # This app's subscriptions, once discovered (the metadata document lists them).
        self.subscriptions: list[Subscription] = []
        self._retry = Retry(
            max_attempts=self.policy.max_attempts,
            initial_interval=self.policy.retry_interval,
            max_delay=max(self.policy.max_retry_delay, self.policy.retry_interval),
        )
        self._max_message = max(MAX_MESSAGE_FLOOR, 2 * sidecar.config.max_body_bytes)

    # --- components and queues ----------------------------------------------------------

    def component(self, name: str) -> Component:
        component = self.pubsubs.get(name)
        if component is None:
            if not self.pubsubs:
                raise DaprError(
                    "ERR_PUBSUB_NOT_CONFIGURED", "no pubsub is configured",
                    http_status=400, grpc=Grpc.FAILED_PRECONDITION,
                )  # fmt: skip
            if not name:
                raise DaprError("ERR_PUBSUB_EMPTY", "pubsub name is empty", http_status=404)
            raise pubsub_not_found(name)
        return component

    def queue(self, component: Component, name: str) -> Queue:
        """The queue ``name`` in ``component``'s namespace, with the delivery policy."""
        return self.sidecar.app.in_namespace(component.namespace).queue(
            name,
            retry=self._retry,
            visibility_timeout=self.policy.lease,
            max_message_bytes=self._max_message,
        )

    @property
    def max_attempts(self) -> int:
        return self._retry.max_attempts

    # --- publishing ---------------------------------------------------------------------

    async def publish(
        self,
        pubsub: str,
        topic: str,
        data: bytes,
        content_type: str | None,
        metadata: dict[str, str],
        *,
        traceparent: str = "",
        tracestate: str = "",
    ) -> None:
        """Publish ``data`` to ``topic`` (every subscriber's queue, one transaction)."""
        component = self.component(pubsub)
        where = self._where(pubsub, topic, traceparent, tracestate)
        event = stored_event(data, content_type, metadata, where)
        subscribers = await self.subscribers(component, topic)
        if not subscribers:
            log.debug(
                "published to a topic without subscribers: dropped",
                extra={"pubsub": pubsub, "topic": topic},
            )
            return
        messages = self._messages(component, subscribers, event)
        await self._commit(component, topic, messages)

    async def bulk_publish(
        self,
        pubsub: str,
        topic: str,
        entries: Sequence[BulkEntry],
        metadata: Mapping[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        """Publish every entry that is valid, all together; the (entry id, error) of
        those refused for their own content (metadata, a bad CloudEvent). ``metadata``
        applies to every entry (an entry's own wins). A failed commit raises
        ERR_PUBSUB_PUBLISH_MESSAGE: then no entry was published."""
        component = self.component(pubsub)
        where = self._where(pubsub, topic, "", "")
        shared = dict(metadata or {})
        subscribers = await self.subscribers(component, topic)
        failed: list[tuple[str, str]] = []
        messages: list[NewMessage] = []
        seen: set[str] = set()
        for entry in entries:
            if not entry.entry_id or entry.entry_id in seen:
                raise DaprError(
                    "ERR_PUBSUB_EVENTS_SER",
                    f"entryId is duplicated or not present for entry: {entry.entry_id[:80]!r}",
                )
            seen.add(entry.entry_id)
            try:
                event = stored_event(
                    entry.event, entry.content_type, {**shared, **entry.metadata}, where
                )
                messages.extend(self._messages(component, subscribers, event))
            except DaprError as problem:
                failed.append((entry.entry_id, problem.message))
        if messages:
            await self._commit(component, topic, messages)  # raises: nothing published
        return failed

    async def forward(self, pubsub: str, topic: str, event: StoredEvent, *, dedup_id: str) -> int:
        """Publish an event built already (a dead letter, an outbox value) to ``topic``,
        at most once per ``dedup_id`` on each subscriber's queue within its dedup
        window: a relay that crashes and forwards again does not publish twice. How
        many queues it went to."""
        component = self.component(pubsub)
        try:
            check_topic(topic)
        except InvalidTopic as problem:
            raise malformed(f"cannot publish to topic {topic[:80]!r}: {problem}") from None
        subscribers = await self.subscribers(component, topic)
        for subscriber in subscribers:
            await self.queue(component, subscriber.queue).send(event.to_json(), dedup_id=dedup_id)
        return len(subscribers)

    def _where(self, pubsub: str, topic: str, traceparent: str, tracestate: str) -> Publication:
        try:
            check_topic(topic)
        except InvalidTopic as problem:
            if not topic:
                raise DaprError(
                    "ERR_TOPIC_NAME_EMPTY", "topic is empty in pubsub " + pubsub, http_status=404
                ) from None
            raise malformed(str(problem)) from None
        now = self.sidecar.app.clock()
        return Publication(pubsub, topic, self.sidecar.app_id, now, traceparent, tracestate)

    def _messages(
        self, component: Component, subscribers: list[Subscription], event: StoredEvent
    ) -> list[NewMessage]:
        body = event.to_json()
        try:
            return [self.queue(component, s.queue).new_message(body) for s in subscribers]
        except StatekeeperError as problem:
            raise DaprError(
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                f"error when publishing: {problem.message}",
                http_status=413 if problem.http_status == 413 else 400,
            ) from None

    async def _commit(self, component: Component, topic: str, messages: list[NewMessage]) -> None:
        store = self.sidecar.app.in_namespace(component.namespace).state
        try:
            await store.apply([], messages)
        except StatekeeperError as problem:
            status = 400 if problem.http_status < 500 else 500
            raise DaprError(
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                f"error when publish to topic {topic} in pubsub {component.name}: "
                f"{problem.message}",
                http_status=status,
                grpc=Grpc.INVALID_ARGUMENT if status == 400 else Grpc.INTERNAL,
            ) from None

    # --- subscriptions ------------------------------------------------------------------

    async def subscribers(self, component: Component, topic: str) -> list[Subscription]:
        """The subscriptions registered for ``topic`` of ``component``."""
        store = self.sidecar.app.in_namespace(component.namespace).state
        found: list[Subscription] = []
        cursor = None
        try:
            while True:
                page = await store.list(topic_prefix(topic), limit=500, cursor=cursor)
                for item in page.items:
                    subscription = from_record(item.value)
                    if (
                        subscription is not None
                        and subscription.topic == topic
                        and subscription.pubsub == component.name
                    ):
                        found.append(subscription)
                cursor = page.cursor
                if cursor is None:
                    return found
        except StatekeeperError as problem:
            raise DaprError(
                "ERR_PUBSUB_PUBLISH_MESSAGE",
                f"cannot read the subscriptions of topic {topic}: {problem.message}",
                http_status=500,
                grpc=Grpc.INTERNAL,
            ) from None

    async def register(self, subscriptions: list[Subscription]) -> list[Subscription]:
        """Register this app's ``subscriptions`` durably (one per pub/sub and topic;
        unknown pub/subs skipped with a warning) and forget those it no longer has.
        The subscriptions kept."""
        chosen: dict[tuple[str, str], Subscription] = {}
        for subscription in subscriptions:
            if subscription.pubsub not in self.pubsubs:
                log.warning(
                    "subscription to an unknown pubsub skipped",
                    extra={"pubsub": subscription.pubsub, "topic": subscription.topic},
                )
                continue
            if (subscription.pubsub, subscription.topic) in chosen:
                log.warning(
                    "two subscriptions to one topic: the later one is kept",
                    extra={"pubsub": subscription.pubsub, "topic": subscription.topic},
                )
            chosen[(subscription.pubsub, subscription.topic)] = subscription
        kept = list(chosen.values())
        for component in self.pubsubs.values():
            mine = [s for s in kept if s.pubsub == component.name]
            await self._register_in(component, mine)
        self.subscriptions = kept
        return kept

    async def _register_in(self, component: Component, mine: list[Subscription]) -> None:
        store = self.sidecar.app.in_namespace(component.namespace).state
        wanted = {s.key for s in mine}
        stale: list[str] = []
        cursor = None
        while True:
            page = await store.list(KEY_PREFIX, limit=500, cursor=cursor)
            for item in page.items:
                old = from_record(item.value)
                if (
                    old is not None
                    and old.app_id == self.sidecar.app_id
                    and old.pubsub == component.name
                    and item.key not in wanted
                ):
                    stale.append(item.key)
            cursor = page.cursor
            if cursor is None:
                break
        ops: list[Any] = []
        for subscription in mine:
            try:
                ops.append(store.put_op(subscription.key, subscription.record()))
            except StatekeeperError as problem:  # a key or record out of the store's limits
                log.warning(
                    "subscription not registered",
                    extra={"topic": subscription.topic, "error": problem.message},
                )
        ops.extend(store.delete_op(key) for key in stale)
        if ops:
            await store.apply(ops)
        for key in stale:
            log.info(
                "subscription no longer listed by the app: unregistered (its queue "
                "keeps what it holds)",
                extra={"pubsub": component.name, "key": key},
            )

    # --- the Part protocol --------------------------------------------------------------

    def routes(self) -> list[Route]:
        from statekeeper.sidecar.http_pubsub import pubsub_routes

        return pubsub_routes(self)

    def services(self) -> list[Service]:
        from statekeeper.sidecar.delivery import Deliveries
        from statekeeper.sidecar.outbox import OutboxRelay, outbox_stores

        services: list[Service] = []
        if self.sidecar.config.app_url is not None:
            services.append(Deliveries(self))
        stores = outbox_stores(self.sidecar.config.resources)
        if stores:
            services.append(OutboxRelay(self, stores))
        return services

    def describe(self, document: dict[str, Any]) -> None:
        document["subscriptions"] = [s.described() for s in self.subscriptions]
