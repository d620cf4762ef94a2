"""Aggregates over the event store, on SQLite and PostgreSQL: load by replay, decide,
save with the expected version; snapshots every N events; upcasting of old events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from statekeeper import App, Keyring
from statekeeper.errors import (
    ConfigurationError,
    DecryptionError,
    InvalidEvent,
    InvalidStreamName,
    InvalidValue,
    StreamNotFound,
    TooManyRetries,
    ValidationError,
    ValueTooLarge,
    WrongExpectedVersion,
)
from statekeeper.events import aggregates
from statekeeper.events.aggregates import Aggregate, AggregateRepository, when
from statekeeper.events.model import EventData, RecordedEvent
from statekeeper.events.upcasting import SCHEMA_VERSION, Upcasters, schema_version_of
from statekeeper.sealing import key_id_of
from tests.conftest import FakeClock


class Cart(Aggregate):
    def __init__(self) -> None:
        self.items: dict[str, int] = {}
        self.checked_out = False

    def add(self, sku: str, qty: int = 1) -> None:
        if self.checked_out:
            raise ValueError("checked out")
        self.record("ItemAdded", {"sku": sku, "qty": qty})

    def when_ItemAdded(self, data: dict[str, Any]) -> None:
        self.items[data["sku"]] = self.items.get(data["sku"], 0) + data["qty"]

    @when("cart.checked-out")
    def _checked_out(self, data: Any) -> None:
        self.checked_out = True


class Counter(Aggregate):
    def __init__(self) -> None:
        self.count = 0

    def when_Incremented(self, data: dict[str, int]) -> None:
        self.count += data["by"]


class ReadSpy:
    """Counts what the repository reads: each read_stream call's start and its events."""

    def __init__(self, app: App, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int | None, int]] = []
        original = app.events.read_stream

        async def read_stream(stream: str, **options: Any) -> list[RecordedEvent]:
            events = await original(stream, **options)
            self.calls.append((options.get("start"), len(events)))
            return events

        monkeypatch.setattr(app.events, "read_stream", read_stream)

    @property
    def events_read(self) -> int:
        return sum(count for _, count in self.calls)


async def stored(app: App, stream: str) -> list[RecordedEvent]:
    try:
        return await app.events.read_stream(stream)
    except StreamNotFound:
        return []


def records(event_type: str, *data: Any) -> Callable[[Aggregate], None]:
    """A decision for ``update``: record one ``event_type`` event per item of ``data``."""

    def decide(aggregate: Aggregate) -> None:
        for item in data:
            aggregate.record(event_type, item)

    return decide


def increments(count: int, by: int = 1) -> Callable[[Aggregate], None]:
    return records("Incremented", *[{"by": by}] * count)


def items(*skus: str) -> list[dict[str, Any]]:
    return [{"sku": sku, "qty": 1} for sku in skus]


# --- load, decide, save -------------------------------------------------------------


async def test_load_decide_save_and_load_again(app: App) -> None:
    carts = app.events.aggregates(Cart, category="cart")
    cart = await carts.load("42")
    assert (cart.id, cart.stream, cart.version, cart.items) == ("42", "cart-42", 0, {})
    cart.add("apple", 3)
    cart.add("pear")
    assert cart.items == {"apple": 3, "pear": 1}  # applied at once
    assert [e.type for e in cart.pending] == ["ItemAdded", "ItemAdded"]
    result = await carts.save(cart)
    assert result is not None and result.version == 2 and len(result.ids) == 2
    assert (cart.version, cart.pending) == (2, ())
    assert await carts.save(cart) is None  # nothing pending

    again = await carts.load("42", must_exist=True)
    assert (again.version, again.items, again.checked_out) == (2, {"apple": 3, "pear": 1}, False)
    again.record("cart.checked-out")
    await carts.save(again)
    events = await app.events.read_stream("cart-42")
    assert [(e.type, e.data, e.version) for e in events] == [
        ("ItemAdded", {"sku": "apple", "qty": 3}, 1),
        ("ItemAdded", {"sku": "pear", "qty": 1}, 2),
        ("cart.checked-out", None, 3),
    ]
    assert all(e.metadata == {} for e in events)  # nothing added at schema version 1
    assert (await carts.load("42")).checked_out is True
    with pytest.raises(StreamNotFound, match="'43'"):
        await carts.load("43", must_exist=True)


async def test_the_category_defaults_to_the_class_name(app: App) -> None:
    counters = app.events.aggregates(Counter)
    counter = await counters.load("a")
    counter.record("Incremented", {"by": 2})
    await counters.save(counter, correlation_id="corr-1")
    [event] = await app.events.read_stream("counter-a")
    assert event.correlation_id == "corr-1" and event.category == "counter"


async def test_record_applies_the_data_as_replay_will_and_keeps_its_own_copy(app: App) -> None:
    class Log(Aggregate):
        def __init__(self) -> None:
            self.entries: list[Any] = []

        def when_Logged(self, data: Any) -> None:
            self.entries.append(data)

    logs = AggregateRepository(app.events, Log, category="log")
    log = await logs.load("1")
    log.record("Logged", {"tags": ("a", "b")})  # a tuple: JSON has arrays
    assert log.entries == [{"tags": ["a", "b"]}]
    log.entries[0]["tags"].append("changed later")  # the state changes, not the event
    assert log.pending[0].data == {"tags": ["a", "b"]}
    await logs.save(log)
    assert (await logs.load("1")).entries == [{"tags": ["a", "b"]}]


async def test_a_long_stream_replays_page_by_page(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregates, "PAGE", 3)
    counters = app.events.aggregates(Counter)
    counter = await counters.load("c")
    for _ in range(7):
        counter.record("Incremented", {"by": 1})
    await counters.save(counter)
    spy = ReadSpy(app, monkeypatch)
    loaded = await counters.load("c")
    assert (loaded.count, loaded.version) == (7, 7)
    assert spy.calls == [(1, 3), (4, 3), (7, 1)]


# --- concurrency ------------------------------------------------------------------


async def test_of_two_concurrent_saves_one_wins_and_the_other_stores_nothing(app: App) -> None:
    carts = app.events.aggregates(Cart, category="cart")
    seed = await carts.load("1")
    seed.add("seed")
    await carts.save(seed)
    first, second = await carts.load("1"), await carts.load("1")
    first.add("apple")
    second.add("pear", 2)
    second.add("plum")
    await carts.save(first)
    with pytest.raises(WrongExpectedVersion) as raised:
        await carts.save(second)
    assert (raised.value.stream, raised.value.actual) == ("cart-1", 2)
    assert [e.data["sku"] for e in await stored(app, "cart-1")] == ["seed", "apple"]
    assert len(second.pending) == 2 and second.version == 1  # left as it was


async def test_gathered_saves_of_one_version_have_exactly_one_winner(app: App) -> None:
    carts = app.events.aggregates(Cart, category="cart")
    loaded = [await carts.load("race") for _ in range(6)]  # all new: NO_STREAM
    for i, cart in enumerate(loaded):
        cart.add(f"sku-{i}")
        cart.add(f"sku-{i}-again")
    outcomes = await asyncio.gather(*(carts.save(c) for c in loaded), return_exceptions=True)
    won = [i for i, o in enumerate(outcomes) if not isinstance(o, BaseException)]
    assert len(won) == 1, outcomes
    assert all(isinstance(o, WrongExpectedVersion) for o in outcomes if o is not outcomes[won[0]])
    events = await stored(app, "cart-race")
    winner = won[0]
    assert [e.data["sku"] for e in events] == [f"sku-{winner}", f"sku-{winner}-again"]


async def test_update_retries_after_a_concurrent_change(app: App) -> None:
    counters = app.events.aggregates(Counter)
    calls = 0

    async def increment(counter: Counter) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # someone else moves the stream between our load and our save
            await counters.update("u", lambda other: other.record("Incremented", {"by": 10}))
        counter.record("Incremented", {"by": 1})

    updated = await counters.update("u", increment)
    assert calls == 2
    assert (updated.count, updated.version, updated.pending) == (11, 2, ())
    assert [e.data["by"] for e in await stored(app, "counter-u")] == [10, 1]


async def test_concurrent_updates_all_land(app: App) -> None:
    counters = app.events.aggregates(Counter)

    def increment(counter: Counter) -> None:
        counter.record("Incremented", {"by": 1})

    await asyncio.gather(*(counters.update("n", increment, retries=100) for _ in range(8)))
    loaded = await counters.load("n")
    assert (loaded.count, loaded.version) == (8, 8)


async def test_update_gives_up_after_its_retries(app: App) -> None:
    counters = app.events.aggregates(Counter)
    calls = 0

    async def always_beaten(counter: Counter) -> None:
        nonlocal calls
        calls += 1
        await counters.update("g", lambda other: other.record("Incremented", {"by": 100}))
        counter.record("Incremented", {"by": 1})

    with pytest.raises(TooManyRetries, match="3 times") as raised:
        await counters.update("g", always_beaten, retries=2)
    assert isinstance(raised.value.__cause__, WrongExpectedVersion)
    assert calls == 3
    assert [e.data["by"] for e in await stored(app, "counter-g")] == [100, 100, 100]


async def test_update_stores_nothing_when_the_decision_fails_or_records_nothing(
    app: App,
) -> None:
    carts = app.events.aggregates(Cart, category="cart")
    await carts.update("d", lambda cart: cart.record("cart.checked-out"))
    with pytest.raises(ValueError, match="checked out"):
        await carts.update("d", lambda cart: cart.add("late"))
    unchanged = await carts.update("d", lambda cart: None)
    assert unchanged.version == 1
    assert len(await stored(app, "cart-d")) == 1
    with pytest.raises(StreamNotFound):
        await carts.update("missing", lambda cart: cart.add("x"), must_exist=True)
    assert await stored(app, "cart-missing") == []
    with pytest.raises(ValidationError, match="retries"):
        await carts.update("d", lambda cart: None, retries=-1)


# --- snapshots --------------------------------------------------------------------


async def test_snapshots_are_taken_when_a_save_reaches_a_multiple_of_n(
    app: App, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = app.events.aggregates(Counter, snapshot_every=3)
    snapshots = []
    for size in (2, 2, 2, 1):  # versions 2, 4 (past 3), 6 (at 6), 7
        counter = await counters.load("s")
        for _ in range(size):
            counter.record("Incremented", {"by": 1})
        await counters.save(counter)
        row = await app.backend.events.snapshot(namespace, "counter-s")
        snapshots.append(None if row is None else row.version)
    assert snapshots == [None, 4, 6, 6]
    row = await app.backend.events.snapshot(namespace, "counter-s")
    assert row is not None and row.type == "Counter.v1"

    spy = ReadSpy(app, monkeypatch)
    loaded = await counters.load("s")
    assert (loaded.count, loaded.version) == (7, 7)
    assert spy.calls == [(7, 1)]  # the snapshot at 6, then the one event after it
    # Without snapshot_every, a repository replays everything.
    spy.calls.clear()
    assert (await app.events.aggregates(Counter).load("s")).count == 7
    assert spy.calls == [(1, 7)]


async def test_a_snapshot_at_the_head_reads_no_event(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = app.events.aggregates(Counter, snapshot_every=2)
    await counters.update("h", increments(2, by=5))
    spy = ReadSpy(app, monkeypatch)
    loaded = await counters.load("h", must_exist=True)
    assert (loaded.count, loaded.version, spy.events_read) == (10, 2, 0)


async def test_a_snapshot_of_another_snapshot_version_is_ignored(
    app: App, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = app.events.aggregates(Counter, snapshot_every=3)
    await counters.update("v", increments(4))
    row = await app.backend.events.snapshot(namespace, "counter-v")
    assert row is not None and (row.version, row.type) == (4, "Counter.v1")

    monkeypatch.setattr(Counter, "snapshot_version", 2)  # the state changed shape
    bumped = app.events.aggregates(Counter, snapshot_every=3)
    spy = ReadSpy(app, monkeypatch)
    loaded = await bumped.load("v")
    assert (loaded.count, loaded.version) == (4, 4)
    assert spy.calls == [(1, 4)]  # replayed from the first event
    loaded.record("Incremented", {"by": 1})  # version 5: no multiple of 3 reached, but the
    await bumped.save(loaded)  # usable snapshot is gone: one is taken at once
    row = await app.backend.events.snapshot(namespace, "counter-v")
    assert row is not None and (row.version, row.type) == (5, "Counter.v2")

    class Renamed(Counter):  # another class: another snapshot type
        pass

    spy.calls.clear()
    assert (
        await app.events.aggregates(Renamed, category="counter", snapshot_every=3).load("v")
    ).count == 5
    assert spy.calls == [(1, 5)]


async def test_custom_snapshot_and_restore(app: App, namespace: str) -> None:
    class Tags(Aggregate):
        __slots__ = ("tags",)  # no __dict__: the default snapshot cannot work

        def __init__(self) -> None:
            self.tags: set[str] = set()

        def when_Tagged(self, data: str) -> None:
            self.tags.add(data)

        def snapshot(self) -> Any:
            return sorted(self.tags)

        def restore(self, state: Any) -> None:
            self.tags = set(state)

    repo = app.events.aggregates(Tags, category="tags", snapshot_every=2)
    await repo.update("t", records("Tagged", "b", "a", "b"))
    row = await app.backend.events.snapshot(namespace, "tags-t")
    assert row is not None and row.version == 3 and row.data == b'["a","b"]'
    assert (await repo.load("t")).tags == {"a", "b"}

    class Bare(Aggregate):
        __slots__ = ("n",)

        def __init__(self) -> None:
            self.n = 0

        def when_N(self, data: None) -> None:
            self.n += 1

    bare = app.events.aggregates(Bare, snapshot_every=1)
    with pytest.raises(ConfigurationError, match="__slots__"):
        await bare.update("b", lambda b: b.record("N"))
    assert await stored(app, "bare-b") == []


async def test_a_state_that_is_not_json_stores_nothing(app: App) -> None:
    class Holder(Aggregate):
        def __init__(self) -> None:
            self.handle: object = None

        def when_Opened(self, data: None) -> None:
            self.handle = object()

    holders = app.events.aggregates(Holder, snapshot_every=1)
    holder = await holders.load("h")
    holder.record("Opened")
    with pytest.raises(InvalidValue, match="snapshot of Holder 'holder-h'"):
        await holders.save(holder)
    assert await stored(app, "holder-h") == []


async def test_a_snapshot_too_big_is_skipped_and_the_save_done(
    app: App, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aggregates, "MAX_SNAPSHOT_BYTES", 20)
    counters = app.events.aggregates(Counter, snapshot_every=1)
    counter = await counters.update("big", lambda c: c.record("Incremented", {"by": 10**30}))
    assert counter.version == 1
    assert await app.backend.events.snapshot(namespace, "counter-big") is None
    assert (await counters.load("big")).count == 10**30


async def test_snapshots_are_sealed_at_rest(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    keyring = Keyring.parse(f"k1:{Keyring.generate_key()}")
    async with App(
        database_url, namespace=namespace, clock=clock, encryption=keyring, purge_interval=None
    ) as app:
        carts = app.events.aggregates(Cart, category="cart", snapshot_every=2)
        await carts.update("s", records("ItemAdded", *items("MARKER-sku-7f3a", "other")))
        row = await app.backend.events.snapshot(namespace, "cart-s")
        assert row is not None and row.version == 2
        assert key_id_of(row.data) == "k1" and b"MARKER" not in row.data
        assert (await carts.load("s")).items == {"MARKER-sku-7f3a": 1, "other": 1}
        # Bound to its stream and version: copied elsewhere, it does not open.
        await carts.update("t", records("ItemAdded", *items("x", "y")))
        await app.backend.events.put_snapshot(namespace, "cart-t", 3, row.type, row.data, clock())
        with pytest.raises(DecryptionError, match="snapshot"):
            await carts.load("t")


# --- upcasting --------------------------------------------------------------------


def cart_upcasters() -> tuple[Upcasters, list[str]]:
    upcasters = Upcasters()
    calls: list[str] = []

    @upcasters.register("ItemAdded", 2)
    def rename_qty(data: dict[str, Any]) -> dict[str, Any]:
        calls.append("2->3")
        data["qty"] = data.pop("quantity")
        return data

    @upcasters.register("ItemAdded", 1)
    def default_qty(data: dict[str, Any]) -> dict[str, Any]:
        calls.append("1->2")
        return {"sku": data["sku"], "quantity": 1}

    return upcasters, calls


async def test_old_events_are_upcast_through_the_chain(app: App) -> None:
    upcasters, calls = cart_upcasters()
    assert upcasters.current("ItemAdded") == 3 and upcasters.current("Other") == 1
    await app.events.append(
        "cart-u",
        [
            EventData("ItemAdded", {"sku": "v1"}),  # written before versions: 1
            EventData("ItemAdded", {"sku": "v2", "quantity": 4}, {SCHEMA_VERSION: 2}),
            EventData("ItemAdded", {"sku": "v3", "qty": 5}, {SCHEMA_VERSION: 3}),
        ],
    )
    carts = app.events.aggregates(Cart, category="cart", upcasters=upcasters)
    cart = await carts.load("u")
    assert cart.items == {"v1": 1, "v2": 4, "v3": 5}
    assert calls == ["1->2", "2->3", "2->3"]

    cart.add("new", 2)  # written at the current version
    await carts.save(cart)
    events = await app.events.read_stream("cart-u")
    assert [schema_version_of(e) for e in events] == [1, 2, 3, 3]
    assert events[-1].metadata == {SCHEMA_VERSION: 3}

    # The same function serves other readers (projections); the event read stays as it was.
    upcast = upcasters.upcast(events[0])
    assert upcast.data == {"sku": "v1", "qty": 1} and upcast.metadata == {SCHEMA_VERSION: 3}
    assert events[0].data == {"sku": "v1"} and events[0].metadata == {}
    assert upcasters.upcast(events[3]) is events[3]


async def test_upcasters_registered_on_the_repository(app: App) -> None:
    counters = app.events.aggregates(Counter)

    @counters.upcaster("Incremented", 1)
    def doubled(data: dict[str, int]) -> dict[str, int]:
        return {"by": data["by"] * 2}

    await app.events.append("counter-r", [EventData("Incremented", {"by": 21})])
    assert (await counters.load("r")).count == 42


async def test_an_event_newer_than_the_code_is_an_error_naming_it(app: App) -> None:
    upcasters, _ = cart_upcasters()
    carts = app.events.aggregates(Cart, category="cart", upcasters=upcasters)
    await carts.update("n", lambda c: c.add("ok"))
    await app.events.append(
        "cart-n", [EventData("ItemAdded", {"sku": "x", "size": "XL"}, {SCHEMA_VERSION: 4})]
    )
    message = r"event 2 of stream 'cart-n' \(type 'ItemAdded', id '.+'\) has schema version 4"
    with pytest.raises(InvalidEvent, match=message) as raised:
        await carts.load("n")
    assert raised.value.details["schema_version"] == 4 and raised.value.details["known"] == 3
    with pytest.raises(InvalidEvent, match="schema version 4"):
        await carts.update("n", lambda c: c.add("more"))
    assert len(await stored(app, "cart-n")) == 2  # nothing stored

    await app.events.append("cart-w", [EventData("ItemAdded", {"sku": "x"}, {SCHEMA_VERSION: "2"})])
    with pytest.raises(InvalidEvent, match="schema_version '2', not an integer"):
        await carts.load("w")


def test_upcaster_registrations_are_checked() -> None:
    upcasters = Upcasters()
    upcasters.add("E", 1, lambda data: data)
    with pytest.raises(ConfigurationError, match="already has an upcaster from version 1"):
        upcasters.add("E", 1, lambda data: data)

    async def coroutine(data: Any) -> Any:
        return data

    with pytest.raises(ConfigurationError, match="not a coroutine"):
        upcasters.add("E", 2, coroutine)
    for bad in (0, -1, True, "1"):
        with pytest.raises(ConfigurationError, match="from_version"):
            upcasters.add("E", bad, lambda data: data)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="event type"):
        upcasters.add("", 1, lambda data: data)
    upcasters.add("E", 3, lambda data: data)  # 2 -> 3 is missing
    with pytest.raises(ConfigurationError, match="the one from version 2 is missing"):
        upcasters.current("E")


# --- bad input --------------------------------------------------------------------


async def test_an_id_that_makes_no_stream_name_is_refused(app: App) -> None:
    carts = app.events.aggregates(Cart, category="cart")
    for bad in ("", "a\nb", "x" * 196, 42, None, "\ud800"):
        with pytest.raises(InvalidStreamName, match="Cart id"):
            await carts.load(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidStreamName):
            await carts.update(bad, lambda c: c.add("x"))  # type: ignore[arg-type]
    assert len(carts.stream_of("x" * 195)) == 200
    assert await app.events.streams() == []


async def test_recording_bad_events_changes_nothing(app: App) -> None:
    carts = app.events.aggregates(Cart, category="cart")
    cart = await carts.load("b")
    with pytest.raises(InvalidValue, match="the data of the 'ItemAdded' event recorded by Cart"):
        cart.record("ItemAdded", {"sku": "x", "qty": object()})
    with pytest.raises(InvalidValue, match="object key 1"):
        cart.record("ItemAdded", {1: "x"})
    with pytest.raises(InvalidEvent, match=r"no handler of 'ItemRemoved'.*when_ItemRemoved"):
        cart.record("ItemRemoved", {"sku": "x"})
    with pytest.raises(InvalidEvent, match="event type"):
        cart.record("", {})
    with pytest.raises(InvalidEvent, match=r"metadata .* not an object"):
        cart.record("ItemAdded", {"sku": "x", "qty": 1}, metadata=[1])  # type: ignore[arg-type]
    assert (cart.items, cart.pending) == ({}, ())
    assert await carts.save(cart) is None
    assert await stored(app, "cart-b") == []


async def test_an_event_too_big_stores_nothing(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, purge_interval=None,
                   max_value_bytes=10_000) as app:  # fmt: skip
        carts = app.events.aggregates(Cart, category="cart")
        cart = await carts.load("big")
        cart.add("x" * (app.events.max_event_bytes + 1))
        with pytest.raises(ValueTooLarge):
            await carts.save(cart)
        assert len(cart.pending) == 1 and cart.version == 0
        assert await stored(app, "cart-big") == []


async def test_replaying_an_event_without_a_handler_names_it(app: App) -> None:
    await app.events.append("cart-x", [EventData("ItemAdded", {"sku": "a", "qty": 1})])
    await app.events.append("cart-x", [EventData("Mystery", {})])
    carts = app.events.aggregates(Cart, category="cart")
    with pytest.raises(InvalidEvent, match="event 2 of stream 'cart-x' has type 'Mystery'"):
        await carts.load("x")


async def test_saving_what_the_repository_did_not_load_is_refused(app: App) -> None:
    carts = app.events.aggregates(Cart, category="cart")
    loose = Cart()
    loose.add("x")  # deciding works without a repository (unit tests of decisions)
    assert loose.items == {"x": 1}
    with pytest.raises(ValidationError, match="loaded by this repository"):
        await carts.save(loose)
    with pytest.raises(ValidationError, match="loaded by this repository"):
        await carts.save(Counter())  # type: ignore[arg-type]
    assert await app.events.streams() == []


def test_repository_and_class_definitions_are_checked(app: App) -> None:
    with pytest.raises(ConfigurationError, match="first '-'"):
        app.events.aggregates(Cart, category="shopping-cart")
    with pytest.raises(ConfigurationError, match="aggregate category"):
        app.events.aggregates(Cart, category="")
    for bad in (0, -3, 1.5, True):
        with pytest.raises(ConfigurationError, match="snapshot_every"):
            app.events.aggregates(Cart, snapshot_every=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not a subclass of Aggregate"):
        app.events.aggregates(dict)  # type: ignore[type-var]

    class Broken(Aggregate):
        snapshot_version = 0

    with pytest.raises(ConfigurationError, match="snapshot_version"):
        app.events.aggregates(Broken)
    with pytest.raises(ConfigurationError, match="two handlers of 'A'"):

        class Twice(Aggregate):
            def when_A(self, data: Any) -> None: ...

            @when("A")
            def also_a(self, data: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="coroutine"):

        class Async(Aggregate):
            async def when_A(self, data: Any) -> None: ...


def test_handlers_are_inherited_and_overridden() -> None:
    class Audited(Cart):
        def __init__(self) -> None:
            super().__init__()
            self.audit: list[str] = []

        def when_ItemAdded(self, data: dict[str, Any]) -> None:
            super().when_ItemAdded(data)
            self.audit.append(data["sku"])

    audited = Audited()
    audited.add("a")
    audited.record("cart.checked-out")
    assert (audited.items, audited.audit, audited.checked_out) == ({"a": 1}, ["a"], True)
    assert audited.snapshot() == {"items": {"a": 1}, "checked_out": True, "audit": ["a"]}
    assert repr(audited) == "<Audited (unsaved) v0>"
