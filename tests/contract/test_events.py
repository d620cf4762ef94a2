"""The event store on every backend: appends with expected versions, reads, the global
log and categories, subscriptions (exactly-once effects, retries and parking, one
holder at a time) and projections (read models, rebuild into a new generation)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.errors import (
    ConfigurationError,
    DatabaseBusy,
    InvalidEvent,
    InvalidStreamName,
    ProjectionBusy,
    StreamNotFound,
    ValidationError,
    WrongExpectedVersion,
)
from statekeeper.events.model import ANY, EXISTS, NO_STREAM, EventData, RecordedEvent
from statekeeper.events.projections import RETIRE_AFTER
from statekeeper.events.subscriptions import Options, Subscription
from tests.conftest import FakeClock

NO_WAIT = Retry(max_attempts=3, initial_interval=0.0, jitter=False)


def placed(total: int) -> EventData:
    return EventData("Placed", {"total": total})


async def test_append_and_read_a_stream(app: App) -> None:
    first = await app.events.append(
        "order-1", [placed(3), {"type": "Paid", "data": {"amount": 3}}],
        expected_version=NO_STREAM, correlation_id="c-1",
    )  # fmt: skip
    assert (first.version, first.first_position, first.last_position) == (2, 1, 2)
    second = await app.events.append("order-1", [EventData("Shipped")], expected_version=2)
    assert (second.version, second.first_position) == (3, 3)
    events = await app.events.read_stream("order-1")
    assert [(e.type, e.version, e.position) for e in events] == [
        ("Placed", 1, 1), ("Paid", 2, 2), ("Shipped", 3, 3)
    ]  # fmt: skip
    assert events[0].data == {"total": 3} and events[2].data is None
    assert events[0].correlation_id == "c-1" and events[0].id == first.ids[0]
    assert events[0].category == "order"
    back = await app.events.read_stream("order-1", backwards=True, limit=2)
    assert [e.version for e in back] == [3, 2]
    assert [e.version for e in await app.events.read_stream("order-1", start=2)] == [2, 3]
    assert [
        e.version for e in await app.events.read_stream("order-1", start=2, backwards=True)
    ] == [2, 1]
    assert await app.events.stream_version("order-1") == 3
    assert await app.events.stream_version("order-2") == 0


async def test_expected_versions_are_exact(app: App) -> None:
    await app.events.append("cart-1", [placed(1)], expected_version=NO_STREAM)
    for wrong in (NO_STREAM, 2, 5):
        with pytest.raises(WrongExpectedVersion) as caught:
            await app.events.append("cart-1", [placed(2)], expected_version=wrong)
        assert caught.value.actual == 1 and caught.value.stream == "cart-1"
    with pytest.raises(WrongExpectedVersion):
        await app.events.append("cart-2", [placed(2)], expected_version=EXISTS)
    with pytest.raises(WrongExpectedVersion):
        await app.events.append("cart-2", [placed(2)], expected_version=1)
    assert (await app.events.append("cart-1", [placed(2)], expected_version=EXISTS)).version == 2
    assert (await app.events.append("cart-1", [placed(3)], expected_version=ANY)).version == 3
    assert (await app.events.append("cart-2", [placed(3)], expected_version=ANY)).version == 1
    assert await app.events.head() == 4  # nothing of the refused appends was stored
    assert [e.version for e in await app.events.read_stream("cart-1")] == [1, 2, 3]


async def test_concurrent_appends_with_one_expected_version_one_wins(app: App) -> None:
    await app.events.append("acct-1", [placed(0)])
    results = await asyncio.gather(
        *[app.events.append("acct-1", [placed(n)], expected_version=1) for n in range(10)],
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, WrongExpectedVersion)]
    assert len(won) == 1 and len(lost) == 9
    assert await app.events.stream_version("acct-1") == 2


async def test_the_global_log_and_categories(app: App) -> None:
    await app.events.append("order-1", [placed(1)])
    await app.events.append("user-7", [EventData("Joined")])
    await app.events.append("order-2", [placed(2), placed(3)])
    log = await app.events.read_all()
    assert [(e.stream, e.position) for e in log] == [
        ("order-1", 1), ("user-7", 2), ("order-2", 3), ("order-2", 4)
    ]  # fmt: skip
    assert [e.position for e in await app.events.read_all(after=2, limit=1)] == [3]
    assert [e.position for e in await app.events.read_all(backwards=True, limit=2)] == [4, 3]
    orders = await app.events.read_category("order")
    assert [e.position for e in orders] == [1, 3, 4]
    assert [e.position for e in await app.events.read_category("order", after=1)] == [3, 4]
    streams = await app.events.streams("order")
    assert [(s.stream, s.version) for s in streams] == [("order-1", 1), ("order-2", 2)]


async def test_bad_input_is_refused_and_nothing_is_stored(app: App) -> None:
    with pytest.raises(StreamNotFound):
        await app.events.read_stream("order-404")
    for name in ("", "x" * 201, "bad\nname", 7):
        with pytest.raises(InvalidStreamName):
            await app.events.append(name, [placed(1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent):
        await app.events.append("order-1", [EventData("")])
    with pytest.raises(InvalidEvent):
        await app.events.append("order-1", [{"type": "X", "colour": "red"}])
    with pytest.raises(InvalidEvent):
        await app.events.append("order-1", ["not an event"])
    with pytest.raises(ValidationError, match="JSON"):
        await app.events.append("order-1", [EventData("X", {"when": object()})])
    with pytest.raises(ValidationError):
        await app.events.append("order-1", [EventData("X", metadata=["no"])])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="no event"):
        await app.events.append("order-1", [])
    with pytest.raises(ValidationError, match="expected version"):
        await app.events.append("order-1", [placed(1)], expected_version=-7)
    with pytest.raises(ValidationError, match="limit"):
        await app.events.read_all(limit=0)
    assert await app.events.head() == 0


def subscription(app: App, name: str, handler: Any, **options: Any) -> Subscription:
    return Subscription(
        name, handler, backend=lambda: app.backend, events=app.events,
        writer=lambda: app.state, wake=app.events_wake, outbox=app.queue,
        options=Options(**options), prefix=f"{name}/", clock=app.clock,
    )  # fmt: skip


async def test_a_subscription_commits_its_effects_with_its_checkpoint(app: App) -> None:
    for n in range(5):
        await app.events.append(f"order-{n}", [placed(n)])
    seen: list[int] = []

    async def count(event: RecordedEvent, view: Any) -> None:
        seen.append(event.position)
        view.put("total", await view.get("total", 0) + event.data["total"])
        view.send("mail", {"order": event.stream})
        view.append(f"audit-{event.stream}", [EventData("Counted")])

    sub = subscription(app, "counter", count, batch=2, category="order")
    assert await sub.run_until_caught_up() >= 5
    assert seen == [1, 2, 3, 4, 5]
    assert (await app.state.get("counter/total")).value == 10  # type: ignore[union-attr]
    assert len(await app.queue("mail").receive(10)) == 5
    audit = await app.events.read_stream("audit-order-3")
    assert audit[0].causation_id is not None and audit[0].metadata["causation_id"]
    # Run again (a restart): nothing is handled twice; new events only.
    again = subscription(app, "counter", count, category="order")
    assert await again.run_until_caught_up() == 10  # past its own audit events too
    assert seen == [1, 2, 3, 4, 5]
    assert (await app.state.get("counter/total")).value == 10  # type: ignore[union-attr]


async def test_a_failing_handler_is_retried_then_its_event_parked(app: App) -> None:
    await app.events.append("order-1", [placed(1), EventData("Poison"), placed(2)])
    calls: list[str] = []

    async def handle(event: RecordedEvent, view: Any) -> None:
        calls.append(event.type)
        view.put(f"seen-{event.version}", True)
        if event.type == "Poison":
            raise RuntimeError("cannot digest this")

    sub = subscription(app, "picky", handle, retry=NO_WAIT)
    for _ in range(5):
        await sub.run_until_caught_up()
    assert calls.count("Poison") == 3
    assert await app.state.get("picky/seen-2") is None  # the failed attempts left nothing
    assert (await app.state.get("picky/seen-3")) is not None
    parked = await app.backend.subscriptions.parked(app.namespace, "picky")
    assert [(p.position, p.attempts) for p in parked] == [(2, 3)]
    assert "cannot digest this" in parked[0].error
    row = await app.backend.subscriptions.get(app.namespace, "picky")
    assert row is not None and row.position == 3 and row.parked == 1 and row.failures == 0


async def test_only_one_process_holds_a_subscription(app: App, clock: FakeClock) -> None:
    await app.events.append("order-1", [placed(1), placed(2)])
    handled: list[tuple[str, int]] = []
    inside, go_on = asyncio.Event(), asyncio.Event()

    def make(tag: str) -> Subscription:
        async def handle(event: RecordedEvent, view: Any) -> None:
            handled.append((tag, event.position))
            view.put(f"h-{event.position}", tag)
            if tag == "a" and event.position == 4:  # paused mid-handler (a long GC, a VM)
                inside.set()
                await go_on.wait()

        return subscription(app, "shared", handle, lease=30.0)

    first, second = make("a"), make("b")
    await app.backend.subscriptions.create(app.namespace, "shared", 0, clock())
    await first.step()
    await app.events.append("order-1", [placed(3)])
    assert await second.step() is False  # the lease is the first's
    await first.step()
    await app.events.append("order-1", [placed(4)])
    paused = asyncio.create_task(first.step())
    await inside.wait()
    clock.advance(31)  # the first one's lease runs out while it is paused
    await second.run_until_caught_up()
    go_on.set()
    assert await paused is False  # its late commit is refused: nothing applied
    assert handled == [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 4)]
    item = await app.state.get("shared/h-4")
    assert item is not None and item.value == "b"
    row = await app.backend.subscriptions.get(app.namespace, "shared")
    assert row is not None and row.position == 4


async def test_a_subscription_follows_live_appends(live_app: App) -> None:
    app = live_app
    seen: list[int] = []
    arrived = asyncio.Event()

    async def handle(event: RecordedEvent) -> None:
        seen.append(event.position)
        if len(seen) == 3:
            arrived.set()

    sub = subscription(app, "live", handle, poll=30.0)  # only a wake-up can be this quick
    stopping = asyncio.Event()
    task = asyncio.create_task(sub.run(stopping))
    await app.events.append("order-1", [placed(1)])
    await asyncio.sleep(0.05)
    await app.events.append("order-2", [placed(2), placed(3)])
    await asyncio.wait_for(arrived.wait(), 5)
    stopping.set()
    await task
    assert seen == [1, 2, 3]


async def test_a_projection_rebuilds_into_a_new_generation(app: App) -> None:
    version = {"n": 1}

    @app.projection("totals", category="order")
    async def totals(event: RecordedEvent, view: Any) -> None:
        view.put(event.stream, {"total": event.data["total"] * version["n"]})

    await app.events.append("order-1", [placed(5)])
    await app.events.append("user-1", [EventData("Joined")])
    await app.projections.catch_up("totals")
    model = app.projections.read_model("totals")
    assert await model.get("order-1") == {"total": 5}
    assert await model.list() == [("order-1", {"total": 5})]
    version["n"] = 10  # new code: rebuild
    assert await app.projections.rebuild("totals") == 2
    with pytest.raises(ProjectionBusy, match="already rebuilding"):
        await app.projections.rebuild("totals")
    status = await app.projections.status("totals")
    assert status["generation"] == 1 and status["building"] == 2
    assert status["rebuild"]["lag"] == 2 and status["current"]["lag"] == 0
    assert await model.get("order-1") == {"total": 5}  # readers stay on generation 1
    await app.projections.catch_up("totals")
    status = await app.projections.status("totals")
    assert status["generation"] == 2 and status["building"] is None
    fresh = app.projections.read_model("totals")
    assert await fresh.get("order-1") == {"total": 50}
    projection = app.projections.get("totals")
    await app.projections.retire(projection, 1)
    assert await app.state.get("projections/totals/1/order-1") is None


async def test_the_projector_runs_subscriptions_and_projections(live_app: App) -> None:
    app = live_app
    mailed: list[str] = []

    @app.subscription("mailer", types={"Placed"})
    async def mail(event: RecordedEvent, ctx: Any) -> None:
        mailed.append(event.stream)
        ctx.put(f"mailed/{event.stream}", True)

    @app.projection("counts", category="order")
    async def counts(event: RecordedEvent, view: Any) -> None:
        view.put("n", await view.get("n", 0) + 1)

    assert sorted(app.start_projections()) == ["counts", "mailer"]
    await app.events.append("order-1", [placed(1), EventData("Paid")])
    await app.events.append("user-1", [EventData("Placed")])
    model = app.projections.read_model("counts")
    for _ in range(200):  # a handler runs before its effects commit with the checkpoint
        committed = await app.state.get("mailed/user-1") is not None
        if len(mailed) == 2 and await model.get("n") == 2 and committed:
            break
        await asyncio.sleep(0.02)
    assert sorted(mailed) == ["order-1", "user-1"]
    assert await model.get("n") == 2
    assert (await app.state.get("mailed/user-1")) is not None


async def test_a_batch_whose_commit_fails_is_handled_one_event_at_a_time(app: App) -> None:
    await app.events.append("order-1", [placed(1), placed(2), placed(3)])

    async def claim(event: RecordedEvent, ctx: Any) -> None:
        # Every event claims the same new stream: in one batch the second claim
        # conflicts with the first, so the batch's commit fails as a whole.
        ctx.append("claim-1", [EventData("Claimed")], expected_version=NO_STREAM)
        ctx.put(f"claimed-{event.version}", True)

    sub = subscription(app, "claims", claim, retry=NO_WAIT, category="order")
    for _ in range(12):
        await sub.run_until_caught_up()
    assert [e.type for e in await app.events.read_stream("claim-1")] == ["Claimed"]
    assert await app.state.get("claims/claimed-1") is not None
    assert await app.state.get("claims/claimed-2") is None
    parked = await app.backend.subscriptions.parked(app.namespace, "claims")
    assert [p.position for p in parked] == [2, 3]
    assert "wrong_expected_version" in parked[0].error or "version" in parked[0].error


async def test_another_process_appends_wake_a_subscription(
    pg_shared_url: str, namespace: str
) -> None:
    """On PostgreSQL an append in one process wakes the subscriptions of another
    (LISTEN/NOTIFY): delivered long before the 30-second poll. (SQLite wakes the
    subscriptions of its own process.)"""
    url = pg_shared_url
    async with (
        App(url, namespace=namespace, purge_interval=None) as reader,
        App(url, namespace=namespace, purge_interval=None) as writer,
    ):
        arrived = asyncio.Event()

        async def handle(event: RecordedEvent) -> None:
            arrived.set()

        sub = subscription(reader, "woken", handle, poll=30.0)
        stopping = asyncio.Event()
        task = asyncio.create_task(sub.run(stopping))
        await asyncio.wait_for(reader.backend.wait_listening(), 5)  # type: ignore[attr-defined]
        await asyncio.sleep(0.2)  # the subscription has read the empty log and waits
        await writer.events.append("order-1", [placed(1)])
        await asyncio.wait_for(arrived.wait(), 5)
        stopping.set()
        await task


async def test_a_handler_that_changes_what_it_read_in_place_and_fails_leaves_nothing(
    app: App,
) -> None:
    await app.events.append("order-1", [placed(1), EventData("Poison"), placed(2)])

    async def handle(event: RecordedEvent, view: Any) -> None:
        totals = await view.get("totals", {"n": 0, "seen": []})
        totals["n"] += 1
        totals["seen"].append(event.version)  # in place: the batch's copy stays as put
        if event.type == "Poison":
            raise RuntimeError("no")
        view.put("totals", totals)

    sub = subscription(app, "inplace", handle, retry=NO_WAIT)
    for _ in range(5):
        await sub.run_until_caught_up()
    item = await app.state.get("inplace/totals")
    assert item is not None and item.value == {"n": 2, "seen": [1, 3]}


async def test_a_catch_up_beside_a_running_projector_applies_each_event_once(
    live_app: App,
) -> None:
    app = live_app

    @app.projection("tally", category="order", lease=2.0)
    async def tally(event: RecordedEvent, view: Any) -> None:
        view.append(f"tallied-{event.stream}", [EventData("Tallied")])

    app.start_projections()
    for n in range(20):
        await app.events.append(f"order-{n}", [placed(n)])
    await asyncio.gather(app.projections.catch_up("tally"), app.projections.catch_up("tally"))
    for _ in range(200):
        if (await app.projections.status("tally"))["current"]["lag"] == 0:
            break
        await asyncio.sleep(0.05)
    tallied = [e for e in await app.events.read_all() if e.type == "Tallied"]
    assert sorted(e.stream for e in tallied) == sorted(f"tallied-order-{n}" for n in range(20))


class BusyWriter:
    """The state store, whose first commits fail as a database under load does."""

    def __init__(self, app: App, failures: int) -> None:
        self._state = app.state
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)

    async def apply(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise DatabaseBusy("the database stayed locked")
        return await self._state.apply(*args, **kwargs)


async def test_a_database_error_is_not_the_handlers_failure(app: App) -> None:
    await app.events.append("order-1", [placed(1)])
    writer = BusyWriter(app, failures=5)

    async def handle(event: RecordedEvent, view: Any) -> None:
        view.put("seen", event.position)

    sub = Subscription(
        "steady", handle, backend=lambda: app.backend, events=app.events,
        writer=lambda: writer, wake=app.events_wake,
        options=Options(retry=NO_WAIT), clock=app.clock,
    )  # fmt: skip
    for _ in range(10):
        try:
            await sub.run_until_caught_up()
        except DatabaseBusy:
            continue
    assert await app.state.get("seen") is not None
    assert await app.backend.subscriptions.parked(app.namespace, "steady") == []


async def test_a_batch_longer_than_the_lease_keeps_it(live_app: App) -> None:
    app = live_app
    await app.events.append("order-1", [placed(n) for n in range(40)])
    calls: list[int] = []

    async def slow(event: RecordedEvent, view: Any) -> None:
        calls.append(event.position)
        await asyncio.sleep(0.04)  # a batch of 40: 1.6 s, more than the lease
        view.put(f"n-{event.position}", True)

    one, two = (subscription(app, "slow", slow, lease=0.6, batch=40) for _ in range(2))
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stopping)) for s in (one, two)]
    for _ in range(200):
        row = await app.backend.subscriptions.get(app.namespace, "slow")
        if row is not None and row.position == 40:
            break
        await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.gather(*tasks)
    assert row is not None and row.position == 40
    assert len(calls) == 40  # one holder handled them all, once


async def test_old_generations_are_retired_by_any_projector(app: App, clock: FakeClock) -> None:
    @app.projection("totals", category="order")
    async def totals(event: RecordedEvent, view: Any) -> None:
        view.put(event.stream, event.data)

    await app.events.append("order-1", [placed(5)])
    await app.projections.catch_up("totals")
    await app.projections.rebuild("totals")
    await app.projections.catch_up("totals")  # generation 2 built; readers switched
    assert await app.state.get("projections/totals/1/order-1") is not None
    clock.advance(RETIRE_AFTER + 1)
    stopping = asyncio.Event()
    projector = app.projections.service(check=0.01)  # a Projector that never ran gen. 1
    task = asyncio.create_task(projector.run(stopping))
    for _ in range(100):
        if await app.state.get("projections/totals/1/order-1") is None:
            break
        await asyncio.sleep(0.02)
    stopping.set()
    await task
    assert await app.state.get("projections/totals/1/order-1") is None
    assert await app.state.get("projections/totals/2/order-1") is not None
    old = app.projections.get("totals").subscription(1)
    assert await app.backend.subscriptions.get(app.namespace, old) is None


async def test_subscription_settings_that_match_nothing_are_refused(app: App) -> None:
    with pytest.raises(ConfigurationError, match="'-'"):
        app.projection("p", category="order-1")
    with pytest.raises(ConfigurationError, match="collection"):
        app.subscription("s", types="Placed")
    with pytest.raises(ConfigurationError, match="event type"):
        app.subscription("s", types=["Placed", ""])


async def test_what_handlers_append_wakes_the_log_s_readers(live_app: App) -> None:
    app = live_app
    arrived = asyncio.Event()

    async def upstream(event: RecordedEvent, ctx: Any) -> None:
        ctx.append(f"audit-{event.stream}", [EventData("Audited")])

    async def downstream(event: RecordedEvent) -> None:
        arrived.set()

    stopping = asyncio.Event()
    subs = [
        subscription(app, "up", upstream, category="order", poll=30.0),
        subscription(app, "down", downstream, category="audit", poll=30.0),
    ]
    tasks = [asyncio.create_task(s.run(stopping)) for s in subs]
    await asyncio.sleep(0.2)  # both have read the empty log and wait
    await app.events.append("order-1", [placed(1)])
    await asyncio.wait_for(arrived.wait(), 5)  # not the 30-second poll
    stopping.set()
    await asyncio.gather(*tasks)


async def test_a_plain_function_handler_runs_off_the_event_loop(app: App) -> None:
    await app.events.append("order-1", [placed(1)])
    threads: list[int] = []

    def handle(event: RecordedEvent, ctx: Any) -> None:
        threads.append(threading.get_ident())
        ctx.put("plain", event.position)

    await subscription(app, "plain", handle).run_until_caught_up()
    assert threads and threads[0] != threading.get_ident()
    assert await app.state.get("plain/plain") is not None
