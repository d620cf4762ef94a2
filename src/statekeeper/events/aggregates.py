"""Aggregates: load by replaying a stream, decide, append with the expected version.

    class Cart(Aggregate):
        def __init__(self) -> None:          # the state of a new cart
            self.items: dict[str, int] = {}

        def add(self, sku: str, qty: int) -> None:       # a decision...
            if qty < 1:
                raise ValueError("qty must be positive")
            self.record("ItemAdded", {"sku": sku, "qty": qty})   # ...and its event

        def when_ItemAdded(self, data: dict[str, Any]) -> None:  # how it changes state
            self.items[data["sku"]] = self.items.get(data["sku"], 0) + data["qty"]

    carts = app.events.aggregates(Cart, category="cart", snapshot_every=100)
    cart = await carts.load("42")            # stream "cart-42"; version 0 when new
    cart.add("apple", 3)
    await carts.save(cart)                   # WrongExpectedVersion if it moved meanwhile
    await carts.update("42", lambda cart: cart.add("pear", 1), retries=3)

Handlers are the methods named ``when_<EventType>``, or any method decorated with
``@when("event.type")`` (for types that are no identifiers); every event type an
aggregate records or replays needs one. ``record`` applies the event at once (with its
data as replay will see it: through JSON) and keeps it pending until ``save``.

Snapshots: with ``snapshot_every=N``, a save that takes the aggregate to a multiple of N
(or past one since its last snapshot) stores its state after it. The state is what
``snapshot()`` returns (by default the instance's ``__dict__``), JSON, sealed at rest
like events; ``restore(state)`` puts it back (by default into ``__dict__``). A snapshot
belongs to the class name and its ``snapshot_version``: bump it when the state's shape
changes, and older snapshots are ignored (the aggregate replays from its first event).
Events are upcast on replay by the repository's ``upcasters`` (events/upcasting.py).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

from statekeeper.codec import encode_value
from statekeeper.errors import (
    ConfigurationError,
    InvalidEvent,
    InvalidStreamName,
    StreamNotFound,
    TooManyRetries,
    ValidationError,
    ValueTooLarge,
    WrongExpectedVersion,
)
from statekeeper.events.model import AppendResult, EventData, RecordedEvent, check_stream
from statekeeper.events.upcasting import Upcasters
from statekeeper.identifiers import MAX_EVENT_TYPE, MAX_STREAM_NAME, _text, shown

if TYPE_CHECKING:
    from statekeeper.events.store import EventStore

log = logging.getLogger("statekeeper.events")

PAGE = 1000  # events read per round trip while replaying
MAX_SNAPSHOT_BYTES = 16 << 20  # a bigger state is not snapshotted (a warning says so)
_HANDLES = "__statekeeper_handles__"  # set by @when on the method

F = TypeVar("F", bound=Callable[..., Any])
A = TypeVar("A", bound="Aggregate")


def when(event_type: str) -> Callable[[F], F]:
    """Mark a method as the handler of ``event_type`` events: ``def m(self, data)``."""
    kind = _text("event type", event_type, MAX_EVENT_TYPE, ConfigurationError)

    def decorate(method: F) -> F:
        setattr(method, _HANDLES, kind)
        return method

    return decorate


def _handlers_of(cls: type) -> dict[str, str]:
    """Event type -> handler method name, a subclass's handlers over its bases'."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        own: dict[str, str] = {}
        for name, attribute in vars(klass).items():
            kind = getattr(attribute, _HANDLES, None)
            if kind is None and name.startswith("when_") and len(name) > 5:
                kind = name[5:]
            if kind is None or not inspect.isfunction(attribute):
                continue
            if inspect.iscoroutinefunction(attribute):
                raise ConfigurationError(
                    f"{klass.__name__}.{name} handles {kind!r} events but is a coroutine; "
                    "handlers only change the aggregate's state: plain methods"
                )
            if kind in own:
                raise ConfigurationError(
                    f"{klass.__name__} has two handlers of {kind!r} events: {own[kind]} and {name}"
                )
            own[kind] = name
        found.update(own)
    return found


class Aggregate:
    """A consistency boundary rebuilt from its stream. ``id`` is the aggregate's id,
    ``stream`` its stream (``<category>-<id>``), ``version`` the stream version its state
    reflects in storage (0: nothing stored yet); ``pending`` the events recorded since.

    Subclasses are built with no argument (``__init__`` sets a new aggregate's state)
    and define one handler per event type (``when_<Type>`` or ``@when``).
    """

    __slots__ = ("_pending", "_snapshot_at", "id", "stream", "version")

    snapshot_version: ClassVar[int] = 1  # bump when the snapshot's shape changes
    _handlers: ClassVar[dict[str, str]] = {}

    id: str
    stream: str
    version: int
    _pending: list[EventData]
    _snapshot_at: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = _handlers_of(cls)

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # The bookkeeping is set here, so that a subclass's __init__ need not call ours;
        # it lives in slots, so that a subclass's __dict__ holds its state alone.
        self = super().__new__(cls)
        self.id, self.stream, self.version = "", "", 0
        self._pending, self._snapshot_at = [], 0
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.stream or '(unsaved)'} v{self.version}>"

    @property
    def pending(self) -> tuple[EventData, ...]:
        """The events recorded since the aggregate was loaded or last saved."""
        return tuple(self._pending)

    def record(
        self, event_type: str, data: Any = None, *, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Record a new event: its data must be JSON; it is applied to this aggregate at
        once and saved by the repository's ``save``. An invalid event changes nothing;
        a handler that raises leaves the event unrecorded (decide before recording)."""
        kind = _text("event type", event_type, MAX_EVENT_TYPE, InvalidEvent)
        method = self._handler(kind, f"{type(self).__name__} has no handler of {kind!r} events")
        where = f"the {kind!r} event recorded by {self._name()}"
        encoded = encode_value("", data, sys.maxsize, subject=f"the data of {where}")
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise InvalidEvent(f"the metadata of {where} is {shown(metadata)}, not an object")
            text = encode_value("", metadata, sys.maxsize, subject=f"the metadata of {where}")
            metadata = json.loads(text)
        # The handler gets the data as a replay will (through JSON), and a copy of its
        # own: what it keeps and later changes does not change the pending event.
        method(json.loads(encoded))
        self._pending.append(EventData(kind, json.loads(encoded), metadata))

    def snapshot(self) -> Any:
        """The aggregate's state as JSON, for a snapshot: by default its ``__dict__``."""
        try:
            return dict(vars(self))
        except TypeError:
            raise ConfigurationError(
                f"{type(self).__name__} has no __dict__ (it defines __slots__): define "
                "snapshot() and restore() to take snapshots of it"
            ) from None

    def restore(self, state: Any) -> None:
        """Put back a state that ``snapshot()`` returned: by default into ``__dict__``."""
        if not isinstance(state, dict):
            raise ConfigurationError(
                f"the snapshot of {self._name()} is {shown(state)}, not an object; define "
                "restore() for a snapshot() that returns something else"
            )
        vars(self).update(state)

    # --- used by the repository ----------------------------------------------------

    def _name(self) -> str:
        return f"{type(self).__name__} {self.stream!r}" if self.stream else type(self).__name__

    def _handler(self, kind: str, missing: str) -> Callable[[Any], None]:
        name = self._handlers.get(kind)
        if name is None:
            hint = f"when_{kind}(self, data) or " if kind.isidentifier() else ""
            raise InvalidEvent(f"{missing}: define {hint}a method decorated @when({kind!r})")
        method: Callable[[Any], None] = getattr(self, name)
        return method

    def _replay(self, event: RecordedEvent) -> None:
        missing = (
            f"event {event.version} of stream {event.stream!r} has type {event.type!r}, "
            f"which {type(self).__name__} has no handler of"
        )
        self._handler(event.type, missing)(event.data)
        self.version = event.version


class AggregateRepository(Generic[A]):
    """Loads and saves aggregates of one class in one category of streams of an event
    store (``app.events.aggregates(Cart, ...)``)."""

    def __init__(
        self,
        store: EventStore,
        cls: type[A],
        *,
        category: str | None = None,
        snapshot_every: int | None = None,
        upcasters: Upcasters | None = None,
    ) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Aggregate)):
            raise ConfigurationError(f"{shown(cls)} is not a subclass of Aggregate")
        name = category if category is not None else cls.__name__.lower()
        _text("aggregate category", name, MAX_STREAM_NAME // 2, ConfigurationError)
        if "-" in name:
            raise ConfigurationError(
                f"invalid aggregate category {name!r}: a stream's category ends at its "
                "first '-', so a category holds none"
            )
        every = snapshot_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, int)):
            raise ConfigurationError(f"snapshot_every is {shown(every)}, not an integer")
        if every is not None and every < 1:
            raise ConfigurationError(f"snapshot_every is {every}; it is >= 1 (or None: never)")
        version = cls.snapshot_version
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigurationError(
                f"{cls.__name__}.snapshot_version is {shown(version)}, not an integer >= 1"
            )
        self.cls = cls
        self.category = name
        self.snapshot_every = every
        self.upcasters = upcasters if upcasters is not None else Upcasters()
        self.snapshot_type = f"{cls.__name__}.v{version}"  # what a usable snapshot says
        self._store = store

    def upcaster(self, event_type: str, from_version: int) -> Callable[[F], F]:
        """Decorate an upcaster of this repository's events (``Upcasters.register``)."""
        return self.upcasters.register(event_type, from_version)

    def stream_of(self, id: str) -> str:
        """The stream of the aggregate ``id``: ``<category>-<id>``."""
        room = MAX_STREAM_NAME - len(self.category) - 1
        _text(f"{self.cls.__name__} id", id, room, InvalidStreamName)
        return check_stream(f"{self.category}-{id}")

    # --- loading --------------------------------------------------------------------

    async def load(self, id: str, *, must_exist: bool = False) -> A:
        """The aggregate as its stream has it: its latest usable snapshot, then the
        events after it, upcast. A new aggregate (version 0) when the stream has no
        event, or StreamNotFound with ``must_exist``."""
        stream = self.stream_of(id)
        aggregate = self._new(id, stream)
        if self.snapshot_every is not None:
            await self._restore(aggregate)
        try:
            start = aggregate.version + 1
            while True:
                events = await self._store.read_stream(stream, start=start, limit=PAGE)
                for event in events:
                    aggregate._replay(self.upcasters.upcast(event))
                if len(events) < PAGE:
                    break
                start = events[-1].version + 1
        except StreamNotFound:
            aggregate = self._new(id, stream)  # a snapshot left by a removed stream
        if must_exist and aggregate.version == 0:
            raise StreamNotFound(
                f"{self.cls.__name__} {id!r} has no event (stream {stream!r})", stream=stream
            )
        return aggregate

    def _new(self, id: str, stream: str) -> A:
        aggregate = self.cls()
        aggregate.id, aggregate.stream = id, stream
        return aggregate

    async def _restore(self, aggregate: A) -> None:
        stream = aggregate.stream
        row = await self._store.read_snapshot(stream)
        if row is None:
            return
        if row.type != self.snapshot_type:
            log.debug(
                "snapshot ignored: its type is not the aggregate's",
                extra={"stream": stream, "found": row.type, "expected": self.snapshot_type},
            )
            return
        try:
            state = json.loads(row.data.decode("utf-8"))
        except (ValueError, RecursionError) as error:  # only a cache: replay instead
            log.warning("snapshot ignored: unreadable: %s", error, extra={"stream": stream})
            return
        aggregate.restore(state)
        aggregate.version = aggregate._snapshot_at = row.version

    # --- saving ---------------------------------------------------------------------

    async def save(
        self,
        aggregate: A,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> AppendResult | None:
        """Append the aggregate's pending events if its stream is still at the version
        it was loaded at (WrongExpectedVersion otherwise, and nothing is stored: load it
        again and decide again). None when nothing is pending."""
        if not isinstance(aggregate, self.cls) or not aggregate.stream:
            raise ValidationError(
                f"{shown(aggregate)} is no {self.cls.__name__} loaded by this repository"
            )
        pending = aggregate._pending
        if not pending:
            return None
        stamp = self.upcasters.stamp
        events = [EventData(e.type, e.data, stamp(e.type, e.metadata)) for e in pending]
        append = self._store.intent(
            aggregate.stream, events, expected_version=aggregate.version,
            correlation_id=correlation_id, causation_id=causation_id,
        )  # fmt: skip
        version = aggregate.version + len(pending)
        snapshot = self._snapshot_of(aggregate, version)  # before: a bad state stores nothing
        [result] = await self._store.commit([append])
        aggregate.version = result.version
        aggregate._pending = []
        if snapshot is not None:
            await self._put_snapshot(aggregate, snapshot)
        return result

    def _snapshot_of(self, aggregate: A, version: int) -> bytes | None:
        """The state to snapshot at ``version``, if one is due: the save reaches a
        multiple of ``snapshot_every`` beyond the aggregate's last snapshot."""
        every = self.snapshot_every
        if every is None or version // every <= aggregate._snapshot_at // every:
            return None
        subject = f"the snapshot of {aggregate._name()}"
        try:
            data = encode_value("", aggregate.snapshot(), MAX_SNAPSHOT_BYTES, subject=subject)
        except ValueTooLarge as error:
            log.warning("snapshot skipped: %s", error.message, extra={"stream": aggregate.stream})
            return None
        return data

    async def _put_snapshot(self, aggregate: A, state: bytes) -> None:
        """Store a snapshot after the events committed: a failure leaves the save done
        (a snapshot only spares replays), with a warning."""
        try:
            await self._store.write_snapshot(
                aggregate.stream, aggregate.version, self.snapshot_type, state
            )
        except Exception as error:
            log.warning(
                "snapshot not stored: %s", error, extra={"stream": aggregate.stream}, exc_info=True
            )
            return
        aggregate._snapshot_at = aggregate.version

    # --- load, decide, save -----------------------------------------------------------

    async def update(
        self,
        id: str,
        fn: Callable[[A], Awaitable[object] | object],
        *,
        retries: int = 3,
        must_exist: bool = False,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> A:
        """Load the aggregate, let ``fn`` (sync or async) decide and record, save; on
        WrongExpectedVersion load and call ``fn`` again, up to ``retries`` more times
        (then TooManyRetries). The saved aggregate."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValidationError(f"retries is {shown(retries)}, not an integer >= 0")
        conflict: WrongExpectedVersion | None = None
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(random.uniform(0, min(0.1, 0.002 * 2**attempt)))
            aggregate = await self.load(id, must_exist=must_exist)
            outcome = fn(aggregate)
            if inspect.isawaitable(outcome):
                await outcome
            try:
                await self.save(aggregate, correlation_id=correlation_id, causation_id=causation_id)
            except WrongExpectedVersion as error:
                conflict = error
                continue
            return aggregate
        raise TooManyRetries(
            f"the update of {self.cls.__name__} {id!r} conflicted with concurrent writers "
            f"{retries + 1} times in a row",
            stream=self.stream_of(id),
        ) from conflict
