"""Keyed entities on SQLite and PostgreSQL: one exclusive handler at a time per key
(across app instances too), read-only handlers on the last committed state, a failed
call that changes and sends nothing, answers kept for call ids, messages committed with
the state, and commits fenced by the lease."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any

import pytest

from statekeeper import App, Keyring
from statekeeper.entities import EntityContext, readonly
from statekeeper.errors import (
    ClosedError,
    EntityCallFailed,
    InvalidIdentifier,
    InvalidValue,
    UnknownEntity,
    UnknownEntityHandler,
)
from statekeeper.storage.rows import EntityAnswer, EntityCommit, UnitOfWork
from tests.conftest import FakeClock


def declare(app: App, runs: list[str] | None = None) -> None:
    counter = app.entity("counter", initial=0)

    @counter.handler
    async def increment(ctx: EntityContext, by: int = 1) -> int:
        if runs is not None:
            runs.append(ctx.call_id or "")
        ctx.state += by
        return int(ctx.state)

    @counter.handler(readonly=True)
    def value(ctx: EntityContext) -> int:
        return int(ctx.state)

    @counter.handler
    def explode(ctx: EntityContext, note: str) -> None:
        ctx.state += 1000  # never committed: the handler raises
        ctx.send("audit", {"never": note})
        raise ValueError(f"refused {note}")

    @counter.handler
    def unstorable(ctx: EntityContext) -> None:
        ctx.state = {"not json": object()}

    @counter.handler
    def add_and_tell(ctx: EntityContext, by: int) -> int:
        ctx.state += by
        ctx.send("audit", {"added": by, "key": ctx.key})
        return int(ctx.state)


async def test_concurrent_calls_to_one_key_apply_once_each(app: App) -> None:
    declare(app)
    results = await asyncio.gather(
        *[app.entities.call("counter", "c", "increment", 1) for _ in range(300)]
    )
    assert sorted(results) == list(range(1, 301))  # each saw the one before it
    assert await app.entities.call("counter", "c", "value") == 300
    got = await app.entities.get("counter", "c")
    assert got is not None and (got.state, got.version, got.leased_by) == (300, 300, None)


async def test_two_app_instances_share_one_writer_per_key(
    database_url: str, namespace: str
) -> None:
    async with (
        App(database_url, namespace=namespace, purge_interval=None) as one,
        App(database_url, namespace=namespace, purge_interval=None) as two,
    ):
        declare(one)
        declare(two)
        calls = [app.entities.call("counter", "shared", "increment", 1)
                 for _ in range(100) for app in (one, two)]  # fmt: skip
        results = await asyncio.gather(*calls)
        assert sorted(results) == list(range(1, 201))
        assert await two.entities.call("counter", "shared", "value") == 200


async def test_keys_are_independent(app: App) -> None:
    declare(app)
    await asyncio.gather(
        *[app.entities.call("counter", f"k{n % 10}", "increment", n % 10) for n in range(100)]
    )
    listed = await app.entities.list("counter")
    assert [(e.key, e.state) for e in listed] == [(f"k{n}", 10 * n) for n in range(10)]
    page = await app.entities.list("counter", after="k4", limit=3)
    assert [e.key for e in page] == ["k5", "k6", "k7"]


async def test_a_failed_call_changes_and_sends_nothing(app: App) -> None:
    declare(app)
    outcomes: tuple[Any, ...] = await asyncio.gather(  # one batch: the failure in the middle
        app.entities.call("counter", "c", "add_and_tell", 5),
        app.entities.call("counter", "c", "explode", "x"),
        app.entities.call("counter", "c", "add_and_tell", 2),
        return_exceptions=True,
    )
    first, failing, after = outcomes
    assert (first, after) == (5, 7)
    assert isinstance(failing, EntityCallFailed)
    assert failing.error is not None
    assert (failing.error.type, failing.error.message) == ("ValueError", "refused x")
    assert failing.code == "entity_call_failed" and failing.http_status == 409
    with pytest.raises(EntityCallFailed) as unstorable:
        await app.entities.call("counter", "c", "unstorable")
    assert unstorable.value.error is not None and unstorable.value.error.type == "InvalidValue"
    assert await app.entities.call("counter", "c", "value") == 7
    sent = await app.queue("audit").peek(10)
    assert [m.body for m in sent] == [{"added": 5, "key": "c"}, {"added": 2, "key": "c"}]


async def test_a_read_only_handler_sees_only_committed_state(app: App) -> None:
    cart = app.entity("cart", initial=lambda: {"items": [], "total": 0})
    halfway = asyncio.Event()
    go_on = asyncio.Event()

    @cart.handler
    async def add(ctx: EntityContext, item: dict[str, Any]) -> None:
        ctx.state["items"].append(item["name"])  # half applied: total not yet
        halfway.set()
        await go_on.wait()
        ctx.state["total"] += item["price"]

    @cart.handler(readonly=True)
    async def show(ctx: EntityContext) -> dict[str, Any]:
        ctx.state["items"].append("scribble")  # a read-only handler's changes are dropped
        return dict(ctx.state)

    adding = asyncio.create_task(app.entities.call("cart", "u", "add", {"name": "a", "price": 3}))
    await halfway.wait()
    seen = await app.entities.call("cart", "u", "show")
    assert seen == {"items": ["scribble"], "total": 0}  # the initial state, whole
    go_on.set()
    await adding
    assert await app.entities.call("cart", "u", "show") == {
        "items": ["a", "scribble"], "total": 3,
    }  # fmt: skip
    got = await app.entities.get("cart", "u")
    assert got is not None and got.state == {"items": ["a"], "total": 3}


async def test_a_class_gives_its_methods_as_handlers(app: App) -> None:
    @app.entity("account", initial=dict)
    class Account:
        async def deposit(self, ctx: EntityContext, amount: int) -> int:
            ctx.state["balance"] = ctx.state.get("balance", 0) + amount
            return int(ctx.state["balance"])

        def close(self, ctx: EntityContext) -> None:
            ctx.state["closed"] = True

        @readonly
        def balance(self, ctx: EntityContext) -> int:
            return int(ctx.state.get("balance", 0))

        def _helper(self) -> None:  # not a handler
            raise AssertionError

    assert sorted(app.entity_types.types["account"].handlers) == ["balance", "close", "deposit"]
    assert await app.entities.call("account", "a1", "deposit", 5) == 5
    await app.entities.call("account", "a1", "close")
    assert await app.entities.call("account", "a1", "balance") == 5
    with pytest.raises(UnknownEntityHandler):
        await app.entities.call("account", "a1", "_helper")


async def test_a_call_id_is_answered_once(database_url: str, namespace: str) -> None:
    runs: list[str] = []
    async with (
        App(database_url, namespace=namespace, purge_interval=None) as one,
        App(database_url, namespace=namespace, purge_interval=None) as two,
    ):
        declare(one, runs)
        declare(two, runs)
        first = await one.entities.call("counter", "c", "increment", 5, call_id="pay-1")
        again = await asyncio.gather(  # repeats, from both instances, some in one batch
            *[app.entities.call("counter", "c", "increment", 5, call_id="pay-1")
              for app in (one, two, one, two)]
        )  # fmt: skip
        assert first == 5 and again == [5, 5, 5, 5]
        assert runs == ["pay-1"]
        with pytest.raises(EntityCallFailed):
            await one.entities.call("counter", "c", "explode", "n", call_id="boom-1")
        with pytest.raises(EntityCallFailed) as repeated:  # the recorded error, not a new run
            await two.entities.call("counter", "c", "explode", "other", call_id="boom-1")
        assert repeated.value.error is not None and repeated.value.error.message == "refused n"
        assert await two.entities.call("counter", "c", "increment", 1) == 6


async def test_answers_are_forgotten_after_their_time(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with App(
        database_url, namespace=namespace, clock=clock, purge_interval=None, entity_answer_ttl=60
    ) as app:
        runs: list[str] = []
        declare(app, runs)
        await app.entities.call("counter", "c", "increment", 1, call_id="once")
        clock.advance(61)
        assert await app.forget_old_records() >= 1
        await app.entities.call("counter", "c", "increment", 1, call_id="once")  # runs again
        assert runs == ["once", "once"]


async def test_a_commit_under_a_lost_lease_applies_nothing(app: App) -> None:
    declare(app)
    await app.entities.call("counter", "c", "increment", 1)
    entities = app.backend.entities
    now = app.clock()
    stale = await entities.lease(app.namespace, "counter", "c", "stalled", now + 1, now)
    assert stale is not None
    assert await entities.lease(app.namespace, "counter", "c", "other", now + 1, now) is None
    later = now + 2  # the stalled holder's lease ran out: another takes it
    taken = await entities.lease(app.namespace, "counter", "c", "other", later + 5, later)
    assert taken is not None and taken.token > stale.token
    message = app.queue("audit").new_message({"late": True})
    unit = UnitOfWork(
        app.namespace, later, messages=[message],
        entity=EntityCommit("counter", "c", stale.token, stale.version, True, b"999", 1,
                            [EntityAnswer("late", "increment", b"999", None)], later + 60),
    )  # fmt: skip
    done = await app.backend.commit(unit)
    assert done.applied is False
    assert await app.queue("audit").peek(10) == []  # nothing of the unit applied
    assert await entities.answers(app.namespace, "counter", "c", ["late"]) == {}
    assert await entities.release(app.namespace, "counter", "c", taken.token) is True
    assert await app.entities.call("counter", "c", "value") == 1


async def test_a_stalled_holder_overtaken_without_a_lease_applies_nothing(
    app: App, database_url: str, namespace: str, clock: FakeClock
) -> None:
    """A holder whose lease ran out, overtaken by a batch committed without the lease (by
    a process that read the entity after the lease ran out): that commit raised the
    token and the version, so the stalled holder's late commit applies nothing."""
    declare(app)
    await app.entities.call("counter", "c", "increment", 1)
    entities = app.backend.entities
    now = app.clock()
    stalled = await entities.lease(app.namespace, "counter", "c", "stalled", now - 1, now - 2)
    assert stalled is not None  # a lease that has already run out
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None) as other:
        declare(other)
        assert await other.entities.call("counter", "c", "increment", 1) == 2
    row = await entities.get(app.namespace, "counter", "c")
    assert row is not None and (row.token, row.version) == (stalled.token + 1, 2)
    unit = UnitOfWork(app.namespace, now, entity=EntityCommit(
        "counter", "c", stalled.token, stalled.version, True, b"100", 1, (), now + 60,
    ))  # fmt: skip
    assert (await app.backend.commit(unit)).applied is False
    assert await app.entities.call("counter", "c", "value") == 2


async def test_a_dead_holders_lease_runs_out_and_calls_go_on(live_app: App) -> None:
    app = live_app
    declare(app)
    now = time.time()
    held = await app.backend.entities.lease(app.namespace, "counter", "c", "dead", now + 0.6, now)
    assert held is not None
    started = time.monotonic()
    assert await app.entities.call("counter", "c", "increment", 1) == 1
    assert time.monotonic() - started >= 0.5  # it waited for the lease to run out


async def test_bad_calls_are_refused_with_what_is_wrong(app: App) -> None:
    declare(app)
    with pytest.raises(UnknownEntity):
        await app.entities.call("nothing", "k", "increment")
    with pytest.raises(UnknownEntityHandler):
        await app.entities.call("counter", "k", "nothing")
    for key in ("", "a\nb", "k" * 257, 5):
        with pytest.raises(InvalidIdentifier):
            await app.entities.call("counter", key, "increment")  # type: ignore[arg-type]
    with pytest.raises(InvalidIdentifier):
        await app.entities.call("counter", "k", "increment", call_id="")
    with pytest.raises(InvalidIdentifier):
        await app.entities.call("counter a", "k", "increment")
    with pytest.raises(InvalidValue):
        await app.entities.list("counter", limit=0)
    assert await app.entities.get("counter", "never") is None
    assert await app.entities.list("counter") == []  # nothing was called


async def test_a_batch_longer_than_the_lease_keeps_it_and_commits(
    database_url: str, namespace: str
) -> None:
    """Handlers that together run longer than the lease, called from two instances: the
    lease is extended while a batch runs, so no instance takes it over and every call
    commits."""

    def slow(app: App) -> None:
        sleepy = app.entity("sleepy", initial=0)

        @sleepy.handler
        async def bump(ctx: EntityContext) -> int:
            await asyncio.sleep(0.1)
            ctx.state += 1
            return int(ctx.state)

    options: dict[str, Any] = {"namespace": namespace, "purge_interval": None, "entity_lease": 0.5}
    async with App(database_url, **options) as one, App(database_url, **options) as two:
        slow(one)
        slow(two)
        calls = [app.entities.call("sleepy", "s", "bump") for _ in range(8) for app in (one, two)]
        results = await asyncio.wait_for(asyncio.gather(*calls), 30)
        assert sorted(results) == list(range(1, 17))


async def test_closing_mid_batch_gives_the_lease_back(database_url: str, namespace: str) -> None:
    started = asyncio.Event()

    def slow(app: App) -> None:
        sleepy = app.entity("sleepy", initial=0)

        @sleepy.handler
        async def bump(ctx: EntityContext) -> int:
            started.set()
            await asyncio.sleep(30)
            return 0

        @sleepy.handler
        def quick(ctx: EntityContext) -> int:
            ctx.state += 1
            return int(ctx.state)

    options: dict[str, Any] = {"namespace": namespace, "purge_interval": None, "entity_lease": 20}
    async with App(database_url, **options) as other:
        slow(other)
        closing = App(database_url, **options)
        slow(closing)
        await closing.open()
        waiting = asyncio.create_task(closing.entities.call("sleepy", "s", "bump"))
        await started.wait()  # a new entity's first call runs under the lease
        await closing.close()
        with pytest.raises(ClosedError):
            await waiting
        began = time.monotonic()
        assert await other.entities.call("sleepy", "s", "quick") == 1
        assert time.monotonic() - began < 5  # not the lease's 20 s


async def test_a_batch_overtaken_by_a_commit_that_changed_nothing_applies_nothing(
    database_url: str, namespace: str
) -> None:
    """A batch run without the lease, overtaken by another instance's commit that only
    recorded a failed call's answer (the version did not move): its commit fails, and the
    call id gets the answer recorded first."""
    gate = asyncio.Event()
    running = asyncio.Event()

    def gated(app: App) -> None:
        counter = app.entity("counter", initial=0)

        @counter.handler
        async def increment(ctx: EntityContext, by: int) -> int:
            if ctx.call_id == "x":
                running.set()
                await gate.wait()
            ctx.state += by
            return int(ctx.state)

        @counter.handler
        def explode(ctx: EntityContext) -> None:
            raise ValueError("refused")

    opts: dict[str, Any] = {"namespace": namespace, "purge_interval": None}
    async with App(database_url, **opts) as one, App(database_url, **opts) as two:
        gated(one)
        gated(two)
        assert await one.entities.call("counter", "c", "increment", 1) == 1
        assert await two.entities.call("counter", "c", "increment", 1) == 2
        slow = asyncio.create_task(two.entities.call("counter", "c", "increment", 5, call_id="x"))
        await running.wait()  # two runs x on version 2, without the lease
        async with App(database_url, **opts) as three:  # reads the entity: no lease either
            gated(three)
            with pytest.raises(EntityCallFailed):
                await three.entities.call("counter", "c", "explode", call_id="x")  # 0 changes
        gate.set()
        with pytest.raises(EntityCallFailed) as recorded:
            await slow
        assert recorded.value.error is not None and recorded.value.error.message == "refused"
        got = await one.entities.get("counter", "c")
        assert got is not None and got.state == 2


async def test_an_app_opened_again_takes_calls_again(database_url: str, namespace: str) -> None:
    app = App(database_url, namespace=namespace, purge_interval=None)
    declare(app)
    async with app:
        assert await app.entities.call("counter", "c", "increment", 1) == 1
    async with app:
        assert await app.entities.call("counter", "c", "increment", 1) == 2


async def test_a_handler_calling_its_own_entity_fails_at_once(app: App) -> None:
    loop = app.entity("loop", initial=0)

    @loop.handler
    async def again(ctx: EntityContext) -> Any:
        return await app.entities.call("loop", ctx.key, "again")

    with pytest.raises(EntityCallFailed) as failed:
        await asyncio.wait_for(app.entities.call("loop", "l", "again"), 10)
    assert failed.value.error is not None and failed.value.error.type == "ValidationError"
    assert "would wait for the handler making it" in failed.value.error.message


async def test_answers_are_json_the_first_time_as_on_a_repeat(app: App) -> None:
    pairs = app.entity("pairs", initial=None)

    @pairs.handler
    def make(ctx: EntityContext) -> dict[str, Any]:
        return {"v": (1, "t")}

    @pairs.handler(readonly=True)
    def peek(ctx: EntityContext) -> Any:
        return (ctx.state, "x")

    first = await app.entities.call("pairs", "p", "make", call_id="m")
    again = await app.entities.call("pairs", "p", "make", call_id="m")
    assert first == again == {"v": [1, "t"]}
    assert await app.entities.call("pairs", "p", "peek") == [None, "x"]


async def test_sealed_state_reads_back_in_read_only_handlers(
    database_url: str, namespace: str
) -> None:
    keyring = Keyring.parse(f"k1:{base64.b64encode(os.urandom(32)).decode()}")
    async with App(database_url, namespace=namespace, encryption=keyring,
                   purge_interval=None) as app:  # fmt: skip
        declare(app)
        await app.entities.call("counter", "c", "increment", 41)
        assert await app.entities.call("counter", "c", "value") == 41
        row = await app.backend.entities.get(app.namespace, "counter", "c")
        assert row is not None and row.state is not None and b"41" not in row.state
