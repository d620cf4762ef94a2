"""A durable queue: send, receive with a lease, ack, fail with retries, dead letters.

Delivery is at least once: a message whose consumer dies comes back when its
lease ends. Every failure waits per the queue's Retry policy; the last one
dead-letters the message with its error and attempt count, from where
``redrive`` brings it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from statekeeper.codec import decode_value, encode_value
from statekeeper.constants import (
    INTERNAL_QUEUE_PREFIX,
    MAX_DELAY_SECONDS,
    REF_MAGIC,
    is_internal_queue,
)
from statekeeper.errors import (
    DecryptionError,
    ErrorRecord,
    InvalidQueueName,
    LeaseLost,
    StatekeeperError,
    StorageError,
    ValidationError,
    ValueTooLarge,
)
from statekeeper.identifiers import (
    check_correlation_id,
    check_dedup_id,
    check_group,
    check_message_id,
    check_queue_name,
)
from statekeeper.logs import correlation_id
from statekeeper.observability import tracing
from statekeeper.observability.tracing import TRACEPARENT
from statekeeper.outbound import CallbackPolicy
from statekeeper.queues.message import Message, QueueStats, SendResult, StoredMessage
from statekeeper.queues.policy import Retry
from statekeeper.queues.wakeups import POLL_INTERVAL, Wakeups, request_subject
from statekeeper.sealing import MESSAGE, PLAIN, Sealer, is_ref
from statekeeper.storage.contracts import Storage
from statekeeper.storage.rows import (
    NewMessage,
    PreparedBlob,
    QueuedMessage,
    Settlement,
    UnitOfWork,
)

# Builds the messages that announce a message's outcome to its reply_to: given the
# message, "succeeded" or "dead-lettered", the result and the error.
Completions = Callable[["Message", str, Any, "ErrorRecord | None"], list[NewMessage]]

log = logging.getLogger("statekeeper.queues")

# A large body out of line (the app's payloads): (namespace, body) -> its blob, or None
# below the threshold; and a stored body's bytes, read from its blob when it has one.
Spill = Callable[[str, bytes], PreparedBlob | None]
Fill = Callable[[str, bytes], Awaitable[bytes]]

MAX_RECEIVE = 100


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """How a queue delivers. ``visibility_timeout``: seconds a receive leases a
    message for. ``dedup_window``: seconds a deduplication id is remembered.
    ``archive``: keep acknowledged messages, with their results, for replay and request
    status (for the app's ``archive_retention``). ``group_by``: the group of a message
    sent without one, taken from its body (a field of an object body, or a function of
    the body; None leaves it without a group)."""

    retry: Retry = field(default_factory=Retry)
    visibility_timeout: float = 30.0
    dedup_window: float = 300.0
    archive: bool = True
    max_message_bytes: int = 256 * 1024
    group_by: str | Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        for name in ("visibility_timeout", "dedup_window"):
            _check_seconds(name, getattr(self, name), allow_zero=False)
        if isinstance(self.max_message_bytes, bool) or not isinstance(self.max_message_bytes, int):
            raise ValidationError("max_message_bytes must be an integer")
        if self.max_message_bytes <= 0:
            raise ValidationError("max_message_bytes must be positive")
        if self.group_by is not None and not (
            callable(self.group_by) or (isinstance(self.group_by, str) and self.group_by)
        ):
            raise ValidationError("group_by must be a field name or a function of the body")

    def group_of(self, queue: str, body: Any) -> str | None:
        """The group ``group_by`` gives ``body`` (None: none)."""
        if self.group_by is None:
            return None
        if isinstance(self.group_by, str):
            found = body.get(self.group_by) if isinstance(body, dict) else None
        else:
            try:
                found = self.group_by(body)
            except Exception as exc:
                raise ValidationError(
                    f"queue {queue!r}: its group_by function failed on this message body: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
        return None if found is None else str(found)


class Queue:
    """One named queue of an app's namespace."""

    def __init__(
        self,
        backend: Storage | Callable[[], Storage],
        namespace: str,
        name: str,
        config: QueueConfig,
        *,
        clock: Callable[[], float],
        wakeups: Wakeups,
        rng: random.Random | None = None,
        completions: Completions | None = None,
        callback_policy: Callable[[], CallbackPolicy] | None = None,
        sealer: Sealer = PLAIN,
        spill: Spill | None = None,
        fill: Fill | None = None,
    ) -> None:
        self.name = check_queue_name(name)
        # Bodies above the blob threshold go out of line, with the message (``spill``:
        # its blob, prepared; ``fill``: a stored body's bytes, from its blob if it has one).
        self._spill = spill
        self._fill = fill
        self._completions = completions
        # Which callback URLs messages may carry (the app's allow-list, else the environment).
        self._callback_policy = callback_policy or CallbackPolicy.from_env
        self.sealer = sealer
        self.config = config
        self.namespace = namespace
        # A queue may be declared before its app opens: then the backend comes later.
        self._backend_of = backend if callable(backend) else (lambda: backend)
        self._clock = clock
        self._wakeups = wakeups
        self._rng = rng or random.Random()

    @property
    def _backend(self) -> Storage:
        return self._backend_of()

    # --- sending ------------------------------------------------------------------------

    def new_message(
        self,
        body: Any,
        *,
        delay: float | None = None,
        dedup_id: str | None = None,
        group: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        correlation: str | None = None,
        reply_to: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
        dedup_window: float | None = None,
    ) -> NewMessage:
        """A checked, encoded message, ready to send (or to add to a transaction).

        ``reply_to``: where its outcome is announced (``{"queue": name}`` or a
        callback ``{"url": ...}``). ``fingerprint``: of the request content, so a
        reused dedup id with other content can be told from a true repeat.
        """
        data = encode_value(
            "", body, self.config.max_message_bytes, f"message body for queue {self.name!r}"
        )
        if group is None:
            group = self.config.group_of(self.name, body)
        return self.new_encoded_message(
            data,
            delay=delay,
            dedup_id=dedup_id,
            group=group,
            attributes=attributes,
            correlation=correlation,
            reply_to=reply_to,
            fingerprint=fingerprint,
            dedup_window=dedup_window,
            derive_group=False,
        )

    def new_encoded_message(
        self,
        data: bytes,
        *,
        delay: float | None = None,
        dedup_id: str | None = None,
        group: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        correlation: str | None = None,
        reply_to: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
        dedup_window: float | None = None,
        derive_group: bool = True,
    ) -> NewMessage:
        """Like ``new_message``, for a body already encoded as JSON (the ingress keeps
        the bytes it received, once it has checked they are JSON); ``derive_group``:
        a message without a group takes the one ``group_by`` gives its body."""
        if len(data) > self.config.max_message_bytes:
            raise ValueTooLarge(
                f"message body for queue {self.name!r} is {len(data)} bytes; "
                f"the limit is {self.config.max_message_bytes}",
                size=len(data),
                limit=self.config.max_message_bytes,
            )
        if group is None and derive_group and self.config.group_by is not None and not is_ref(data):
            group = self.config.group_of(self.name, json.loads(data))
        now = self._clock()
        window = self.config.dedup_window
        if dedup_window is not None:
            window = _check_seconds("dedup_window", dedup_window, allow_zero=False)
        seconds = 0.0 if delay is None else _check_seconds("delay", delay, allow_zero=True)
        id = uuid.uuid4().hex
        encoded_attributes = _encode_attributes(attributes)
        traced = tracing.traceparent()  # the trace goes on with the message (tracing.py)
        if traced is not None and TRACEPARENT not in (attributes or {}):
            with contextlib.suppress(ValidationError):  # no room left: sent without it
                encoded_attributes = _encode_attributes({**(attributes or {}), TRACEPARENT: traced})
        encoded_reply_to = _encode_reply_to(reply_to, self._callback_policy)
        blob = None if self._spill is None or is_ref(data) else self._spill(self.namespace, data)
        if blob is not None:  # out of line: its blob goes in with the message, atomically
            data = REF_MAGIC + blob.id
        if self.sealer.enabled:
            data, encoded_attributes, encoded_reply_to = self._seal(
                id, data, encoded_attributes, encoded_reply_to
            )
        return NewMessage(
            id=id,
            queue=self.name,
            body=data,
            available_at=now + seconds,
            attributes=encoded_attributes,
            correlation_id=_optional(check_correlation_id, correlation or correlation_id.get()),
            group_id=_optional(check_group, group),
            dedup_id=_optional(check_dedup_id, dedup_id),
            dedup_expires_at=now + window,
            fingerprint=fingerprint,
            reply_to=encoded_reply_to,
            blob=blob,
        )

    def _seal(
        self, id: str, body: bytes, attributes: str | None, reply_to: str | None
    ) -> tuple[bytes, str | None, str | None]:
        """A message's payloads sealed, bound to its namespace and id."""
        seal, seal_text, ns = self.sealer.seal, self.sealer.seal_text, self.namespace
        return (
            seal(body, MESSAGE, ns, id, "body"),
            None if attributes is None else seal_text(attributes, MESSAGE, ns, id, "attributes"),
            None if reply_to is None else seal_text(reply_to, MESSAGE, ns, id, "reply_to"),
        )

    async def send(
        self,
        body: Any,
        *,
        delay: float | None = None,
        dedup_id: str | None = None,
        group: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        correlation: str | None = None,
    ) -> SendResult:
        """Enqueue ``body`` (JSON). With ``group``, messages of one group are delivered
        in order, one at a time; with ``dedup_id``, a repeat within the window is dropped."""
        message = self.new_message(
            body,
            delay=delay,
            dedup_id=dedup_id,
            group=group,
            attributes=attributes,
            correlation=correlation,
        )
        return (await self._send([message]))[0]

    async def send_batch(self, bodies: Iterable[Any | Mapping[str, Any]]) -> list[SendResult]:
        """Enqueue several messages atomically. Each item is a body, or a dict with
        ``body`` and any of ``delay``, ``dedup_id``, ``group``, ``attributes``."""
        messages = []
        for item in bodies:
            if isinstance(item, Mapping) and "body" in item:
                options = {k: v for k, v in item.items() if k != "body"}
                unknown = set(options) - {"delay", "dedup_id", "group", "attributes", "correlation"}
                if unknown:
                    raise ValidationError(f"unknown message option {sorted(unknown)[0]!r}")
                messages.append(self.new_message(item["body"], **options))
            else:
                messages.append(self.new_message(item))
        if not messages:
            return []
        return await self._send(messages)

    async def _send(self, messages: list[NewMessage]) -> list[SendResult]:
        with tracing.span(f"send {self.name}", kind="producer", only_within=True,
                          attributes={"statekeeper.messages": len(messages)}):  # fmt: skip
            twins = await self._backend.queues.send(self.namespace, messages, self._clock())
        self._wakeups.notify(self.namespace, self.name)
        return [
            SendResult(m.id)
            if twin is None
            else SendResult(twin.id, duplicate=True, same_content=twin.fingerprint == m.fingerprint)
            for m, twin in zip(messages, twins, strict=True)
        ]

    async def send_message(self, message: NewMessage) -> SendResult:
        """Enqueue a message built by ``new_message``."""
        return (await self._send([message]))[0]

    # --- receiving ----------------------------------------------------------------------

    async def receive(
        self,
        max_messages: int = 1,
        *,
        visibility_timeout: float | None = None,
        wait: float = 0.0,
    ) -> list[Message]:
        """Lease up to ``max_messages``; with ``wait``, wait that long for one to arrive."""
        if isinstance(max_messages, bool) or not isinstance(max_messages, int):
            raise ValidationError(f"max_messages must be an integer, got {max_messages!r}")
        if not 1 <= max_messages <= MAX_RECEIVE:
            raise ValidationError(f"max_messages must be 1 to {MAX_RECEIVE}, got {max_messages}")
        lease = self.config.visibility_timeout
        if visibility_timeout is not None:
            lease = _check_seconds("visibility_timeout", visibility_timeout, allow_zero=False)
        wait = _check_seconds("wait", wait, allow_zero=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            woken = self._wakeups.event(
                self.namespace, self.name
            )  # before looking: no lost wake-up
            messages = await self._lease(max_messages, lease)
            remaining = deadline - loop.time()
            if messages or remaining <= 0:
                return messages
            due = await self._backend.queues.next_due(self.namespace, self.name)
            if due is not None:
                remaining = min(remaining, max(0.0, due - self._clock()) + 0.001)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(remaining, POLL_INTERVAL))

    async def _lease(self, limit: int, lease: float) -> list[Message]:
        now = self._clock()
        token = secrets.token_hex(12)
        rows = await self._backend.queues.receive(
            self.namespace,
            self.name,
            limit=limit,
            lease_token=token,
            lease_end=now + lease,
            max_attempts=self.config.retry.max_attempts,
            now=now,
        )
        messages = []
        for row in rows:
            try:
                message = self._message(await self._filled(row), token)
            except StatekeeperError as error:  # one unreadable message fails alone
                await self._fail_unreadable(row, token, error)
                continue
            if row.dead_at is not None:  # its last attempt's lease ran out
                await self._dead_letter_expired(message)
            else:
                messages.append(message)
                self._wakeups.changed(self.namespace, request_subject(message.id))
        return messages

    async def _dead_letter_expired(self, message: Message) -> None:
        """Dead-letter a message whose lease ran out on its last attempt (its receiver
        died, or took too long), announcing the outcome as any dead letter is."""
        expired = ErrorRecord.made("LeaseExpired", f"lease expired on attempt {message.attempt}")
        try:
            await self.fail(message, expired, retryable=False)
        except StatekeeperError as error:  # it comes back when this lease ends
            log.warning(
                "a message whose last lease ran out was not dead-lettered yet",
                extra={"queue": self.name, "message_id": message.id, "error": error.message},
            )
            return
        log.error(
            "message dead-lettered",
            extra={"queue": self.name, "message_id": message.id, "error": str(expired)},
        )

    async def _fail_unreadable(
        self, row: QueuedMessage, token: str, error: StatekeeperError
    ) -> None:
        """A leased message that cannot be read (its body is not JSON, or cannot be
        decrypted) is failed alone, its handler never called: a malformed body is
        dead-lettered at once; a decryption failure (a key missing from this process's
        keyring, say) counts as a failed attempt, so a fixed configuration can still read
        it. Its outcome is not announced: its reply_to may be unreadable too."""
        retryable = isinstance(error, DecryptionError)
        unreadable = ErrorRecord.made("UnreadableMessage", f"unreadable message: {error.message}")
        text = str(unreadable)
        dead = not retryable or row.attempts >= self.config.retry.max_attempts
        try:
            settled = await self._settle(row.id, token, row.attempts, unreadable, dead=dead)
        except StatekeeperError as settle_error:
            log.error(
                "unreadable message could not be failed; it comes back when its lease ends",
                extra={"queue": self.name, "message_id": row.id, "error": settle_error.message},
            )
            return
        if not settled:
            return  # its lease went on meanwhile: whoever holds it now fails it
        state = "dead" if dead else "ready"
        log.error(
            "unreadable message " + ("dead-lettered" if state == "dead" else "failed"),
            extra={"queue": self.name, "message_id": row.id, "error": text},
        )

    async def _filled(self, row: QueuedMessage) -> QueuedMessage:
        """``row`` with its body read from its blob if it is stored out of line."""
        if self._fill is None or not is_ref(row.body):
            return row
        return row._replace(body=await self._fill(self.namespace, row.body))

    def _message(self, row: QueuedMessage, token: str) -> Message:
        open, open_text, ns, id = self.sealer.open, self.sealer.open_text, self.namespace, row.id
        reply_to, last_error = row.reply_to, row.last_error
        return Message(
            id=id,
            queue=self.name,
            body=decode_value(id, open(row.body, MESSAGE, ns, id, "body")),
            attributes=self._attributes(id, row.attributes),
            correlation_id=row.correlation_id,
            group=row.group_id,
            attempt=row.attempts,
            enqueued_at=row.enqueued_at,
            lease_token=token,
            lease_expires_at=row.available_at,
            last_error=None
            if last_error is None
            else ErrorRecord.from_json(open_text(last_error, MESSAGE, ns, id, "last_error")),
            reply_to=_stored_object(
                id, "reply_to", reply_to and open_text(reply_to, MESSAGE, ns, id, "reply_to")
            ),
            _queue=self,
        )

    # --- settling -----------------------------------------------------------------------

    async def ack(self, message: Message, result: Any = None) -> None:
        """Done: remove the message (into the archive, with ``result``) and announce the
        outcome to its reply_to, atomically. LeaseLost if it went to another receiver."""
        data = None
        if result is not None:
            data = encode_value(
                "", result, self.config.max_message_bytes, f"result of message {message.id!r}"
            )
            data = self.sealer.seal(data, MESSAGE, self.namespace, message.id, "result")
        completions = self._completion_messages(message, "succeeded", result, None)
        settle = Settlement(
            "ack", self.name, message.id, message.lease_token, self.config.archive, data
        )
        unit = UnitOfWork(self.namespace, self._clock(), messages=completions, settle=settle)
        if not (await self._backend.commit(unit)).applied:
            raise _lease_lost(message)
        self._wakeups.changed(self.namespace, request_subject(message.id))
        self._announce(completions)
        if message.group is not None:  # the group's next message was promoted: wake receivers
            self._wakeups.notify(self.namespace, self.name)

    async def fail(
        self,
        message: Message,
        error: str | BaseException | ErrorRecord,
        *,
        retryable: bool = True,
    ) -> str:
        """Record a failed attempt: retried after the policy's backoff, or dead-lettered
        when attempts are used up (at once when not ``retryable``); the outcome of a dead
        letter is announced to its reply_to in the same transaction. The new state.

        ``error``: what was raised (recorded with its type and traceback), a record, or
        a text (the message of an ``Error``)."""
        if isinstance(error, str):
            error = ErrorRecord.made("Error", error)
        elif isinstance(error, BaseException):
            error = ErrorRecord.of(error)
        dead = not retryable or message.attempt >= self.config.retry.max_attempts
        completions = (
            self._completion_messages(message, "dead-lettered", None, error) if dead else []
        )
        settled = await self._settle(
            message.id, message.lease_token, message.attempt, error, dead=dead,
            messages=completions,
        )  # fmt: skip
        if not settled:
            raise _lease_lost(message)
        self._wakeups.changed(self.namespace, request_subject(message.id))
        if not dead or message.group is not None:  # deliverable again, or its group's
            self._wakeups.notify(self.namespace, self.name)  # next one promoted
        self._announce(completions)
        return "dead" if dead else "ready"

    async def _settle(
        self,
        id: str,
        token: str,
        attempt: int,
        error: ErrorRecord,
        *,
        dead: bool,
        messages: Sequence[NewMessage] = (),
    ) -> bool:
        """A failed attempt recorded under the lease: back to ready after the retry
        policy's backoff, or dead; False when the lease was lost (nothing recorded)."""
        now = self._clock()
        settle = Settlement(
            "dead" if dead else "retry", self.name, id, token,
            error=self.sealer.seal_text(
                error.to_json(), MESSAGE, self.namespace, id, "last_error"
            ),
            retry_at=now + self.config.retry.delay(attempt, self._rng),
        )  # fmt: skip
        unit = UnitOfWork(self.namespace, now, messages=messages, settle=settle)
        return (await self._backend.commit(unit)).applied

    def _completion_messages(
        self, message: Message, status: str, result: Any, error: ErrorRecord | None
    ) -> list[NewMessage]:
        if message.reply_to is None or self._completions is None:
            return []
        return self._completions(message, status, result, error)

    def _announce(self, messages: list[NewMessage]) -> None:
        for queue in {m.queue for m in messages}:
            self._wakeups.notify(self.namespace, queue)

    async def extend(self, message: Message, seconds: float | None = None) -> None:
        """Heartbeat: the lease now ends ``seconds`` (default the visibility timeout) from now."""
        lease = self.config.visibility_timeout if seconds is None else seconds
        lease_end = self._clock() + _check_seconds("seconds", lease, allow_zero=False)
        ok = await self._backend.queues.extend(message.id, message.lease_token, lease_end)
        if not ok:
            raise _lease_lost(message)
        message.lease_expires_at = lease_end

    async def release(self, message: Message) -> None:
        """Give the message back unprocessed: deliverable now, its attempt not counted."""
        ok = await self._backend.queues.release(message.id, message.lease_token, self._clock())
        if not ok:
            raise _lease_lost(message)
        self._wakeups.notify(self.namespace, self.name)

    # --- dead letters, retention, replay, inspection ------------------------------------

    async def redrive(self, ids: Iterable[str] | None = None) -> int:
        """Dead-lettered messages (all, or those of ``ids``) back to the queue, with
        fresh attempts; how many."""
        chosen = None if ids is None else [check_message_id(i) for i in ids]
        moved = await self._backend.queues.redrive(self.namespace, self.name, chosen, self._clock())
        if moved:
            self._wakeups.notify(self.namespace, self.name)
        return moved

    async def purge(self, *, dead: bool = False) -> int:
        """Delete every message that is ready or waiting (delayed, or behind its group's
        head), not those in hand; or, with ``dead``, every dead-lettered one. How many."""
        return await self._backend.queues.purge(self.namespace, self.name, dead=dead)

    async def replay(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        attributes: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> int:
        """Send again, as new messages, archived messages completed in [since, until)
        whose attributes include ``attributes``; how many."""
        low = -math.inf if since is None else float(since)
        high = math.inf if until is None else float(until)
        if low >= high:
            raise ValidationError(f"since ({since}) must be before until ({until})")
        after: tuple[float, str] = (-math.inf, "")
        replayed = 0
        while limit is None or replayed < limit:
            rows = await self._backend.queues.archived(
                self.namespace, self.name, since=low, until=high, after=after, limit=500
            )
            if not rows:
                break
            after = (rows[-1].completed_at, rows[-1].id)
            batch: list[NewMessage] = []
            for row in rows:
                try:
                    body = self.sealer.open(row.body, MESSAGE, self.namespace, row.id, "body")
                    found = self._attributes(row.id, row.attributes)
                except StatekeeperError as error:
                    log.warning(
                        "archived message not replayed: unreadable",
                        extra={"queue": self.name, "message_id": row.id, "error": error.message},
                    )
                    continue
                if attributes and any(found.get(k) != v for k, v in attributes.items()):
                    continue
                if limit is not None and replayed + len(batch) >= limit:
                    break
                id = uuid.uuid4().hex  # a new message: its payloads sealed for its new id
                new_body, new_attributes, _ = self._seal(
                    id, body, json.dumps({**found, "replay_of": row.id}), None
                )
                batch.append(
                    NewMessage(
                        id=id,
                        queue=self.name,
                        body=new_body,
                        available_at=self._clock(),
                        attributes=new_attributes,
                        correlation_id=row.correlation_id,
                        group_id=row.group_id,
                    )
                )
            if batch:
                await self._send(batch)
                replayed += len(batch)
        return replayed

    async def stats(self) -> QueueStats:
        now = self._clock()
        counts = await self._backend.queues.stats(self.namespace, self.name, now)
        oldest = counts.oldest_enqueued_at
        return QueueStats(
            self.name,
            counts.ready,
            counts.in_flight,
            counts.delayed,
            counts.dead,
            None if oldest is None else max(0.0, now - oldest),
            counts.waiting,
        )

    async def peek(self, limit: int = 10, *, dead: bool = False) -> list[StoredMessage]:
        """Messages in order without leasing them (or the dead-lettered ones)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValidationError(f"limit must be an integer from 1 to 1000, got {limit!r}")
        rows = await self._backend.queues.peek(self.namespace, self.name, dead=dead, limit=limit)
        return [self._stored(await self._filled(row)) for row in rows]

    def _stored(self, row: QueuedMessage) -> StoredMessage:
        """A message as peeked; one that cannot be read is shown with ``body_error``."""
        body: Any = None
        body_error = None
        attributes: dict[str, Any] = {}
        last_error = None
        try:
            body = decode_value(
                row.id, self.sealer.open(row.body, MESSAGE, self.namespace, row.id, "body")
            )
            attributes = self._attributes(row.id, row.attributes)
        except StatekeeperError as error:
            body_error = error.message
        if row.last_error is not None:
            try:
                last_error = ErrorRecord.from_json(
                    self.sealer.open_text(
                        row.last_error, MESSAGE, self.namespace, row.id, "last_error"
                    )
                )
            except StatekeeperError as error:
                body_error = body_error or error.message
        return StoredMessage(
            id=row.id,
            body=body,
            attributes=attributes,
            correlation_id=row.correlation_id,
            group=row.group_id,
            state=row.state,
            attempts=row.attempts,
            available_at=row.available_at,
            enqueued_at=row.enqueued_at,
            last_error=last_error,
            dead_at=row.dead_at,
            body_error=body_error,
        )

    def _attributes(self, id: str, stored: str | None) -> dict[str, Any]:
        if stored is None:
            return {}
        text = self.sealer.open_text(stored, MESSAGE, self.namespace, id, "attributes")
        return _stored_object(id, "attributes", text) or {}


def _stored_object(id: str, field: str, text: str | None) -> dict[str, Any] | None:
    """A stored JSON object column (attributes, reply_to) of message ``id``."""
    if not text:
        return None
    value = decode_value(id, text.encode())
    if not isinstance(value, dict):
        raise StorageError(f"the stored {field} of message {id!r} is not a JSON object", id=id)
    return value


def _lease_lost(message: Message) -> LeaseLost:
    return LeaseLost(
        f"message {message.id!r} of queue {message.queue!r} is no longer leased to this "
        "receiver (its lease expired and it was redelivered, or it was settled already)",
        id=message.id,
        queue=message.queue,
    )


def _check_seconds(name: str, value: object, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValidationError(f"{name} must be a positive number of seconds, got {value!r}")
    if value > MAX_DELAY_SECONDS:
        raise ValidationError(f"{name} must be at most {MAX_DELAY_SECONDS} seconds (a year)")
    return float(value)


def _optional(check: Callable[[object], str], value: object) -> str | None:
    return None if value is None else check(value)


def _encode_attributes(attributes: Mapping[str, Any] | None) -> str | None:
    if attributes is None:
        return None
    if not isinstance(attributes, Mapping):
        raise ValidationError(f"attributes must be an object, got {type(attributes).__name__}")
    data = encode_value("", dict(attributes), 16 * 1024, "message attributes")
    return data.decode()


def _encode_reply_to(
    reply_to: Mapping[str, Any] | None, policy: Callable[[], CallbackPolicy]
) -> str | None:
    if reply_to is None:
        return None
    if not isinstance(reply_to, Mapping) or not reply_to:
        raise ValidationError("reply_to must be an object with 'queue' and/or 'url'")
    unknown = set(reply_to) - {"queue", "url"}
    if unknown:
        raise ValidationError(f"reply_to has an unknown field {sorted(unknown)[0]!r}")
    if "queue" in reply_to:
        name = check_queue_name(reply_to["queue"])
        if is_internal_queue(name):
            raise InvalidQueueName(
                f"reply_to queue {name!r} is internal: names starting with "
                f"{INTERNAL_QUEUE_PREFIX!r} are statekeeper's own"
            )
    if "url" in reply_to:
        policy().check_url(reply_to["url"])
    return json.dumps(dict(reply_to))
