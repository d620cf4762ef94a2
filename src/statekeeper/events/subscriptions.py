"""Subscriptions: a named reader of the event log (or of one category) that hands every
event to a handler, catching up from its checkpoint and then following live.

Delivery is at least once; effects are exactly once: the handler's state writes,
messages and appended events commit in one unit of work with the checkpoint, under
the subscription's lease, so an event whose effects committed is never handled again,
and a process that lost the lease (paused, partitioned) can commit nothing. Several
processes may run the same subscription: one holds the lease and the others wait to
take over. A handler that fails is retried with backoff; after ``retry.max_attempts``
failures in a row (counted in the database, across restarts) the event is parked with
its error and the subscription moves on. Live delivery is woken by the appends of this
process and, on PostgreSQL, by LISTEN/NOTIFY from others, with a slow poll behind both.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import os
import random
import socket
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from statekeeper.errors import ConfigurationError, ConflictError, StatekeeperError, ValidationError
from statekeeper.events.model import ANY, RecordedEvent, check_stream
from statekeeper.events.store import EventStore
from statekeeper.queues.policy import Retry
from statekeeper.storage import Storage
from statekeeper.storage.rows import Checkpoint, NewMessage, StreamAppend, UnitResult, WriteOp
from statekeeper.storage.subscription_ops import Lease

log = logging.getLogger("statekeeper.events")

DEFAULT_RETRY = Retry(max_attempts=5, initial_interval=0.5, backoff_rate=2.0, max_delay=30.0)
_MAX_ERROR = 4000
_DELETED = object()
_ABSENT = object()
# A batch's effects commit once they hold this many writes, messages and events.
FLUSH_OPS = 500


class StateWriter(Protocol):
    """What a handler's state writes go through (the namespace's StateStore)."""

    def put_op(self, key: str, value: Any, **options: Any) -> WriteOp: ...

    def delete_op(self, key: str, *, if_match: str | None = None) -> WriteOp: ...

    async def get(self, key: str) -> Any: ...

    async def apply(
        self,
        ops: Sequence[WriteOp],
        messages: Sequence[NewMessage] = (),
        *,
        checkpoint: Checkpoint | None = None,
        appends: Sequence[StreamAppend] = (),
    ) -> UnitResult: ...


@dataclass(frozen=True, slots=True)
class Options:
    """How a subscription reads and retries."""

    category: str | None = None
    types: frozenset[str] | None = None  # only these event types reach the handler
    batch: int = 200
    retry: Retry = DEFAULT_RETRY
    lease: float = 30.0
    poll: float = 1.0


class HandlerContext:
    """What a handler may do besides reading its event: write state (under the
    subscription's key prefix, if it has one), send messages, append events; all of it
    commits with the checkpoint, or none of it does. ``event`` is the event in hand."""

    event: RecordedEvent

    def __init__(
        self,
        writer: StateWriter,
        events: EventStore,
        prefix: str,
        outbox: Callable[[str], Any] | None,
    ) -> None:
        self._writer = writer
        self._events = events
        self.prefix = prefix
        self._outbox = outbox
        self.ops: list[WriteOp] = []
        self.messages: list[NewMessage] = []
        self.appends: list[StreamAppend] = []
        self._pending: dict[str, Any] = {}
        self._undo: list[tuple[str, Any]] = []  # (key, what it was before), in order
        self.handled = 0  # events whose effects this context holds
        self._events_held = 0  # events in self.appends

    def mark(self) -> tuple[int, int, int, int]:
        """Where the context stands before a handler runs (``undo`` returns to it)."""
        self.handled += 1
        return len(self.ops), len(self.messages), len(self.appends), len(self._undo)

    def undo(self, mark: tuple[int, int, int, int]) -> None:
        """Forget what a failed handler did since ``mark``."""
        ops, messages, appends, undo = mark
        self._events_held -= sum(len(a.events) for a in self.appends[appends:])
        del self.ops[ops:], self.messages[messages:], self.appends[appends:]
        while len(self._undo) > undo:
            key, before = self._undo.pop()
            if before is _ABSENT:
                self._pending.pop(key, None)
            else:
                self._pending[key] = before
        self.handled -= 1

    @property
    def size(self) -> int:
        return len(self.ops) + len(self.messages) + self._events_held

    def _remember(self, key: str, value: Any) -> None:
        self._undo.append((key, self._pending.get(key, _ABSENT)))
        self._pending[key] = value

    @property
    def empty(self) -> bool:
        return not (self.ops or self.messages or self.appends)

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, as this handler left it so far (``default`` if none)."""
        if key in self._pending:  # a copy: changing it changes nothing until put
            found = self._pending[key]
            return default if found is _DELETED else copy.deepcopy(found)
        item = await self._writer.get(self.prefix + key)
        return default if item is None else item.value

    def put(self, key: str, value: Any, *, ttl: float | None = None) -> None:
        self.ops.append(self._writer.put_op(self.prefix + key, value, ttl=ttl))
        self._remember(key, copy.deepcopy(value))

    def delete(self, key: str) -> None:
        self.ops.append(self._writer.delete_op(self.prefix + key))
        self._remember(key, _DELETED)

    def send(self, queue: str, body: Any, **options: Any) -> None:
        """Enqueue ``body`` on ``queue`` when (and only if) the event's effects commit."""
        if self._outbox is None:
            raise ValidationError("this subscription has no queues to send to")
        self.messages.append(self._outbox(queue).new_message(body, **options))

    def append(self, stream: str, events: Iterable[object], *, expected_version: int = ANY) -> None:
        """Append events caused by this one (its id becomes their causation id, its
        correlation id theirs)."""
        added = self._events.intent(
            stream, events, expected_version=expected_version,
            correlation_id=self.event.correlation_id or self.event.id,
            causation_id=self.event.id,
        )  # fmt: skip
        self.appends.append(added)
        self._events_held += len(added.events)


Handler = Callable[..., Awaitable[None] | None]


def is_async(handler: Handler) -> bool:
    """Whether calling ``handler`` gives a coroutine (an ``async def``, or an object
    whose ``__call__`` is one)."""
    if inspect.iscoroutinefunction(handler):
        return True
    if inspect.isfunction(handler) or inspect.ismethod(handler):
        return False
    return inspect.iscoroutinefunction(type(handler).__call__)


def takes_context(handler: Handler) -> bool:
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def describe(error: BaseException) -> str:
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    return text[:_MAX_ERROR]


class Subscription:
    """One named subscription run as a service (``run(stopping)``), or by hand with
    ``run_until_caught_up`` (tests, tools)."""

    def __init__(
        self,
        name: str,
        handler: Handler,
        *,
        backend: Callable[[], Storage],
        events: EventStore,
        writer: Callable[[], Any],
        wake: Callable[[], asyncio.Event],
        outbox: Callable[[str], Any] | None = None,
        options: Options = Options(),
        prefix: str = "",
        start: int = 0,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self._handler = handler
        self._with_context = takes_context(handler)
        self._sync = not is_async(handler)
        self._backend = backend
        self._events = events
        self._writer = writer
        self._wake = wake
        self._outbox = outbox
        self.options = options
        self.prefix = prefix
        self._start = start
        self._clock = clock
        self._token = uuid.uuid4().hex
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{self._token[:8]}"
        self._rng = random.Random()
        self.position = 0  # the checkpoint, as this process last knew it
        self._single_until = 0  # up to this position, one event a commit

    @property
    def namespace(self) -> str:
        return self._events.namespace

    async def run(self, stopping: asyncio.Event) -> None:
        """Hold the lease (or wait for it) and deliver events until ``stopping``."""
        storage = self._backend().subscriptions
        await storage.create(self.namespace, self.name, self._start, self._clock())
        log.info("subscription started", extra={"subscription": self.name, "holder": self.holder})
        try:
            while not stopping.is_set():
                wake = self._wake()  # before reading: an append after the read sets it
                try:
                    busy = await self.step()
                except StatekeeperError as error:  # the database is away: try again later
                    log.warning(
                        "subscription paused", exc_info=error, extra={"subscription": self.name}
                    )
                    busy = False
                if busy:
                    continue
                await wait_any(stopping, wake, self.options.poll)
        finally:
            await asyncio.shield(self.release())

    async def release(self) -> None:
        """Give the lease back: another process may take the subscription at once."""
        with contextlib.suppress(StatekeeperError):  # if not, the lease runs out on its own
            await self._backend().subscriptions.release(self.namespace, self.name, self._token)

    async def run_until_caught_up(self) -> int:
        """Deliver what is in the log now, then give the lease back (tests, tools): the
        checkpoint reached (unchanged while another process holds the lease)."""
        storage = self._backend().subscriptions
        await storage.create(self.namespace, self.name, self._start, self._clock())
        try:
            while await self.step():
                pass
        finally:
            await self.release()
        return self.position

    async def step(self) -> bool:
        """Take or renew the lease and handle one batch; True if there may be more.

        The effects of a batch's events gather in one context (a handler reads what the
        ones before it wrote) and commit together with the checkpoint: one commit a
        batch, or every ``FLUSH_OPS`` writes. A handler that fails leaves nothing in
        the context: what came before it commits, then its failure is dealt with. A
        batch whose commit fails is handled again one event a commit."""
        now = self._clock()
        lease = await self._lease(now)
        if lease is None:
            return False  # another process holds it
        self.position = lease.position
        # A category's reader reads the log's head first: every position up to it has
        # committed (appends commit in position order), so when the category has no
        # more events the checkpoint may move up to it, and the lag reads true.
        head = await self._events.head() if self.options.category is not None else 0
        rows = await self._read(lease.position)
        if not rows and head <= lease.position:
            return False
        single = bool(rows) and self._single_until >= rows[0].position
        context = self._context()
        handled, last = lease.position, None
        renew_at = now + self.options.lease / 3
        for event in rows:
            if self.options.types is not None and event.type not in self.options.types:
                handled = event.position
                continue
            if self._clock() >= renew_at:  # a long batch: keep the lease
                if not await self._renew():
                    return False
                renew_at = self._clock() + self.options.lease / 3
            mark = context.mark()
            try:
                await self._call(event, context)
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:
                context.undo(mark)
                if not await self._flush(context, handled, rows, last):
                    return False
                return await self._failed(event, error)
            handled, last = event.position, event
            if single or context.size >= FLUSH_OPS:
                if not await self._flush(context, handled, rows, last):
                    return False
                context = self._context()
        full = len(rows) == self.options.batch
        if not full and head > handled:
            handled = head  # nothing of the category lies between: see above
        return await self._flush(context, handled, rows, last) and full

    async def _lease(self, now: float) -> Lease | None:
        """Take or renew the lease until ``now`` plus its length; None while another
        process holds it."""
        return await self._backend().subscriptions.lease(
            self.namespace, self.name, self._token, self.holder, now + self.options.lease, now
        )

    async def _renew(self) -> bool:
        """Renew the lease in the middle of a batch; False if another process has it."""
        lease = await self._lease(self._clock())
        if lease is None or lease.position != self.position:
            log.warning("subscription lease lost", extra={"subscription": self.name})
            return False
        return True

    def _context(self) -> HandlerContext:
        return HandlerContext(self._writer(), self._events, self.prefix, self._outbox)

    async def _call(self, event: RecordedEvent, context: HandlerContext) -> None:
        context.event = event
        args = (event, context) if self._with_context else (event,)
        if self._sync:  # a plain function runs in a thread, off the event loop
            result = await asyncio.to_thread(self._handler, *args)
        else:
            result = self._handler(*args)
        if inspect.isawaitable(result):
            await result

    async def _read(self, after: int) -> list[RecordedEvent]:
        if self.options.category is not None:
            return await self._events.read_category(
                self.options.category, after=after, limit=self.options.batch
            )
        return await self._events.read_all(after=after, limit=self.options.batch)

    async def _flush(
        self,
        context: HandlerContext,
        position: int,
        rows: Sequence[RecordedEvent],
        last: RecordedEvent | None,
    ) -> bool:
        """Commit the context's effects with the checkpoint at ``position``; False when
        the lease is lost or the commit failed. A failed commit of several events'
        effects has the batch handled again one event a commit; of one event's, it is
        that event's failure (``last``: retried, then parked)."""
        if position == self.position and context.empty:
            return True
        point = Checkpoint(self.name, self._token, position)
        try:
            done = await self._writer().apply(
                context.ops, context.messages, checkpoint=point, appends=context.appends
            )
        except (ValidationError, ConflictError) as error:  # what the handler asked for
            if context.handled > 1:
                log.warning("batch commit failed; handling it one event at a time",
                            exc_info=error, extra={"subscription": self.name})  # fmt: skip
                self._single_until = rows[-1].position
                return False
            if last is None or context.handled == 0:
                raise  # the checkpoint alone: the database is away
            await self._failed(last, error)
            return False
        if not done.applied:
            log.warning("subscription lease lost", extra={"subscription": self.name})
            return False
        self.position = position
        if context.appends:  # what the handlers appended wakes the log's readers
            self._events.notify_appended()
        return True

    async def _failed(self, event: RecordedEvent, error: BaseException) -> bool:
        """Count the failure; retry later (False) or, past the attempts, park the event
        and move on (True)."""
        text = describe(error)
        storage = self._backend().subscriptions
        failures = await storage.fail(
            self.namespace, self.name, self._token, event.position, text, self._clock()
        )
        if failures is None:
            return False  # the lease is lost
        retry = self.options.retry
        log.error(
            "subscription handler failed", exc_info=error,
            extra={"subscription": self.name, "position": event.position,
                   "event_type": event.type, "attempt": failures},
        )  # fmt: skip
        if failures < retry.max_attempts:
            await asyncio.sleep(retry.delay(failures, self._rng))
            return False
        point = Checkpoint(self.name, self._token, event.position, park=text, attempts=failures)
        done = await self._writer().apply([], checkpoint=point)
        if not done.applied:
            return False
        log.error(
            "event parked", extra={"subscription": self.name, "position": event.position,
                                   "attempts": failures},
        )  # fmt: skip
        self.position = event.position
        return True


async def wait_any(stopping: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


def subscription_options(
    category: str | None,
    types: Iterable[str] | None,
    batch: int,
    retry: Retry | None,
    lease: float,
) -> Options:
    """A subscription's or projection's options, checked (ConfigurationError naming the
    one that is wrong)."""
    if category is not None:
        check_stream(category)
        if "-" in category:
            raise ConfigurationError(
                f"category {category!r} holds '-': a category is a stream name's part "
                "before its first '-'"
            )
    if isinstance(types, str | bytes):
        raise ConfigurationError(f"types must be a collection of event types, not {types!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 1000:
        raise ConfigurationError(f"batch must be an integer from 1 to 1000, got {batch!r}")
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not 0.5 <= lease <= 3600:
        raise ConfigurationError(f"lease must be 0.5 to 3600 seconds, got {lease!r}")
    chosen = None if types is None else frozenset(types)
    for kind in chosen or ():
        if not isinstance(kind, str) or not kind:
            raise ConfigurationError(f"an event type is a non-empty string, got {kind!r}")
    return Options(category, chosen, batch, retry or DEFAULT_RETRY, float(lease))
