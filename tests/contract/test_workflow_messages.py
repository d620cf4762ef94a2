"""Messages to running workflows, on every backend: the mailbox (ctx.receive /
app.workflows.send_message), updates (ctx.on_update / app.workflows.update) and
published values (ctx.publish / app.workflows.get). Runs are driven by run_due on an
injected clock; an update's caller runs in a task of its own, as another process would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from statekeeper import App
from statekeeper.errors import (
    InvalidIdentifier,
    UnknownUpdate,
    UpdateNotApplied,
    UpdateNotFinished,
    UpdateRejected,
    ValueNotPublished,
    WorkflowFinished,
    WorkflowNotFound,
)
from statekeeper.workflows import ReceiveTimeout, WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock
from tests.support import drive


async def settle(app: App, task: asyncio.Task[Any], limit: float = 10.0) -> Any:
    """Run due workflows until ``task`` (a caller waiting for an update) is done."""
    runner = WorkflowRunner(app.workflows)
    deadline = asyncio.get_running_loop().time() + limit
    while not task.done():
        assert asyncio.get_running_loop().time() < deadline, "the update was never applied"
        if not await runner.run_due():
            await asyncio.sleep(0.01)
    return await task


@contextlib.asynccontextmanager
async def running(app: App) -> AsyncIterator[WorkflowRunner]:
    """A runner loop of its own (as another worker would run), stopped on leaving."""
    stopping = asyncio.Event()
    runner = WorkflowRunner(app.workflows, poll=0.05, grace=5.0)
    task = asyncio.create_task(runner.run(stopping))
    try:
        yield runner
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


async def messages_left(app: App, id: str) -> list[int]:
    """The numbers of the messages still stored for workflow ``id`` (topic t)."""
    ops = app.backend.workflow_messages
    found, after = [], 0
    while (message := await ops.next_message(app.namespace, id, "t", after)) is not None:
        found.append(message[0])
        after = message[0]
    return found


# --- the mailbox ----------------------------------------------------------------------------


async def test_messages_are_received_in_order_each_once(app: App) -> None:
    @app.workflow
    async def inbox(ctx: WorkflowContext, count: int) -> list[Any]:
        return [await ctx.receive("t") for _ in range(count)]

    run = await app.workflows.start(inbox, 4, id="inbox-1")
    assert await app.workflows.send_message(run, "t", "a") == 1
    assert await app.workflows.send_message(run, "other", "x") == 1
    assert await app.workflows.send_message(run, "t", {"b": 2}) == 2
    await drive(app)  # takes both, then waits without a lease
    status = await app.workflows.status(run)
    assert status.status == "waiting"
    await app.workflows.send_message(run, "t", None)
    await app.workflows.send_message(run, "t", [3])
    await drive(app)
    assert await app.workflows.result(run) == ["a", {"b": 2}, None, [3]]
    kinds = [(e["kind"], e["name"]) for e in await app.workflows.history(run)]
    assert kinds.count(("receive", "t")) == 4


async def test_a_replay_returns_the_message_it_consumed(app: App, clock: FakeClock) -> None:
    seen: list[Any] = []

    @app.workflow
    async def twice(ctx: WorkflowContext, _: None) -> list[Any]:
        first = await ctx.receive("t")
        seen.append(first)
        await ctx.sleep(60)
        return [first, await ctx.receive("t")]

    run = await app.workflows.start(twice, None, id="twice-1")
    for n in (1, 2, 3):
        await app.workflows.send_message(run, "t", n)
    await drive(app)
    clock.advance(61)
    await drive(app)
    assert await app.workflows.result(run) == [1, 2]
    assert seen == [1, 1]  # the replay saw the same first message
    assert await messages_left(app, run) == [1, 2, 3]  # kept until the run ends


async def test_a_receive_times_out(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def patient(ctx: WorkflowContext, _: None) -> str:
        try:
            return str(await ctx.receive("t", timeout=30))
        except ReceiveTimeout:
            return "timed out"

    run = await app.workflows.start(patient, None, id="patient-1")
    await drive(app)
    clock.advance(10)
    await drive(app)
    assert (await app.workflows.status(run)).status == "waiting"
    clock.advance(25)
    await drive(app)
    assert await app.workflows.result(run) == "timed out"
    # A message sent after the timeout is not taken by the replay.
    with pytest.raises(WorkflowFinished):
        await app.workflows.send_message(run, "t", 1)


async def test_a_message_before_the_timeout_wins(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def patient2(ctx: WorkflowContext, _: None) -> Any:
        return await ctx.receive("t", timeout=30)

    run = await app.workflows.start(patient2, None, id="patient-2")
    await drive(app)
    clock.advance(10)
    await app.workflows.send_message(run, "t", "in time")
    clock.advance(25)  # past the deadline by the time it runs: the message is there
    await drive(app)
    assert await app.workflows.result(run) == "in time"


async def test_consumed_messages_are_not_handed_out_after_continue_as_new(app: App) -> None:
    @app.workflow
    async def rounds(ctx: WorkflowContext, got: list[Any]) -> list[Any]:
        got = [*got, await ctx.receive("t")]
        if len(got) < 3:
            await ctx.continue_as_new(got)
        return got

    run = await app.workflows.start(rounds, [], id="rounds-1")
    for n in range(1, 6):
        await app.workflows.send_message(run, "t", n)
    await drive(app)
    assert await app.workflows.result(run) == [1, 2, 3]
    assert await messages_left(app, run) == [3, 4, 5]  # the last run's and the unread


async def test_sends_to_missing_or_finished_workflows_are_refused(app: App) -> None:
    @app.workflow
    async def quick(ctx: WorkflowContext, _: None) -> int:
        return 1

    with pytest.raises(WorkflowNotFound):
        await app.workflows.send_message("nobody", "t", 1)
    run = await app.workflows.start(quick, None, id="quick-1")
    await drive(app)
    with pytest.raises(WorkflowFinished, match="finished"):
        await app.workflows.send_message(run, "t", 1)
    for topic in ("", "a b", "x" * 201, 5):
        with pytest.raises(InvalidIdentifier, match="topic"):
            await app.workflows.send_message(run, topic, 1)  # type: ignore[arg-type]


async def test_concurrent_senders_from_two_apps_each_delivered_once_in_order(
    app: App, database_url: str, namespace: str, clock: FakeClock
) -> None:
    count = 60

    @app.workflow
    async def collect(ctx: WorkflowContext, n: int) -> list[Any]:
        return [await ctx.receive("t") for _ in range(n)]

    run = await app.workflows.start(collect, count, id="collect-1")
    await drive(app)  # waiting for the first
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None) as other:
        senders = [app if n % 2 else other for n in range(count)]
        numbers = await asyncio.gather(
            *(s.workflows.send_message(run, "t", n) for n, s in enumerate(senders))
        )
    assert sorted(numbers) == list(range(1, count + 1))
    await drive(app)
    received = await app.workflows.result(run)
    # Each message once, in the order the sends committed (their numbers).
    assert sorted(received) == list(range(count))
    by_number = {seq: data for data, seq in enumerate(numbers)}
    assert received == [by_number[seq] for seq in range(1, count + 1)]


# --- updates ----------------------------------------------------------------------------------


def cart(app: App) -> Any:
    @app.workflow
    async def shopping(ctx: WorkflowContext, _: None) -> list[int]:
        items: list[int] = []
        done = False

        def add(item: int) -> int:
            if item < 0:
                raise ValueError(f"no negative items: {item}")
            items.append(item)
            return len(items)

        async def checkout(_: Any) -> list[int]:
            nonlocal done
            done = True
            return items

        ctx.on_update("add", add)
        ctx.on_update("checkout", checkout)
        await ctx.wait_condition(lambda: done)
        return items

    return shopping


async def test_an_update_round_trip_with_a_runner_in_another_task(app: App) -> None:
    run = await app.workflows.start(cart(app), None, id="cart-1")
    async with running(app):
        assert await app.workflows.update(run, "add", 5, timeout=10) == 1
        assert await app.workflows.update(run, "add", 7, timeout=10) == 2
        with pytest.raises(UpdateRejected, match="no negative items") as rejected:
            await app.workflows.update(run, "add", -1, timeout=10)
        assert rejected.value.details["error"]["type"] == "ValueError"
        with pytest.raises(UnknownUpdate, match="remove"):
            await app.workflows.update(run, "remove", 5, timeout=10)
        assert await app.workflows.update(run, "checkout", timeout=10) == [5, 7]
        assert await app.workflows.result(run, timeout=10) == [5, 7]
    with pytest.raises(WorkflowFinished):
        await app.workflows.update(run, "add", 1, timeout=1)
    with pytest.raises(WorkflowNotFound):
        await app.workflows.update("nobody", "add", 1, timeout=1)
    kinds = [(e["kind"], e["name"]) for e in await app.workflows.history(run)]
    assert kinds.count(("update", "add")) == 3  # the rejected one is journaled too


async def test_an_update_from_another_app_is_answered(
    app: App, database_url: str, namespace: str, clock: FakeClock
) -> None:
    run = await app.workflows.start(cart(app), None, id="cart-2")
    await drive(app)
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None) as other:
        asked = asyncio.create_task(other.workflows.update(run, "add", 3, timeout=10))
        assert await settle(app, asked) == 1


async def test_updates_replay_in_order_and_rebuild_state(app: App, clock: FakeClock) -> None:
    calls: list[int] = []

    @app.workflow
    async def tally(ctx: WorkflowContext, _: None) -> list[int]:
        total: list[int] = []

        async def add(n: int) -> int:
            calls.append(n)
            total.append(n)
            return sum(total)

        ctx.on_update("add", add)
        await ctx.sleep(100)  # updates are applied while it sleeps
        await ctx.sleep(100)
        return total

    run = await app.workflows.start(tally, None, id="tally-1")
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "add", 1))) == 1
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "add", 2))) == 3
    assert (await app.workflows.status(run)).status == "sleeping"
    clock.advance(101)
    await drive(app)
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "add", 4))) == 7
    clock.advance(101)
    await drive(app)
    assert await app.workflows.result(run) == [1, 2, 4]
    # Each run replayed the updates before: first [1], then [1, 1, 2], ...
    assert calls[-3:] == [1, 2, 4] and calls.count(4) == 2


async def test_an_update_the_workflow_never_applies(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def deaf(ctx: WorkflowContext, _: None) -> str:
        # two waits side by side: neither applies updates (updates.py)
        await ctx.gather(ctx.wait_for_event("go"), ctx.wait_for_event("go-too"))
        return "done"

    run = await app.workflows.start(deaf, None, id="deaf-1")
    await drive(app)
    with pytest.raises(UpdateNotFinished):
        await app.workflows.update(run, "add", 1, timeout=0.2)
    asked = asyncio.create_task(app.workflows.update(run, "add", 1, timeout=10))
    await asyncio.sleep(0.05)
    await app.workflows.send_event(run, "go")
    await app.workflows.send_event(run, "go-too")
    with pytest.raises(UpdateNotApplied):
        await settle(app, asked)


async def test_an_update_not_applied_stays_not_applied_after_retry(
    app: App, clock: FakeClock
) -> None:
    runs: list[int] = []

    @app.workflow
    async def flaky(ctx: WorkflowContext, _: None) -> list[int]:
        total: list[int] = []

        async def add(n: int) -> int:
            total.append(n)
            return n

        ctx.on_update("add", add)
        runs.append(1)
        # waits side by side apply no updates
        await ctx.gather(ctx.wait_for_event("go"), ctx.wait_for_event("go-too"))
        if len(runs) <= 2:
            raise RuntimeError("first attempt fails")
        await ctx.sleep(100)  # applies the updates pending here
        return total

    run = await app.workflows.start(flaky, None, id="flaky-1")
    await drive(app)
    asked = asyncio.create_task(app.workflows.update(run, "add", 5, timeout=10))
    await asyncio.sleep(0.05)
    await app.workflows.send_event(run, "go")
    await app.workflows.send_event(run, "go-too")
    with pytest.raises(UpdateNotApplied):
        await settle(app, asked)
    assert (await app.workflows.status(run)).status == "failed"
    await app.workflows.retry(run)
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"
    clock.advance(101)
    await drive(app)
    assert await app.workflows.result(run) == []  # the update reported not applied stays so
    kinds = [(e["kind"], e["name"]) for e in await app.workflows.history(run)]
    assert ("update", "add") not in kinds
    outcome = await app.backend.workflow_messages.update_outcome(app.namespace, run, 1)
    assert outcome is not None and outcome[0] == "not_applied"


async def test_continue_as_new_forgets_settled_updates(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def rounds(ctx: WorkflowContext, n: int) -> int:
        async def add(k: int) -> int:
            return n + k

        ctx.on_update("add", add)
        await ctx.sleep(100)  # updates are applied while it sleeps
        if n < 3:
            await ctx.continue_as_new(n + 1)
        return n

    run = await app.workflows.start(rounds, 0, id="rounds-u")
    await drive(app)
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "add", 1))) == 1
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "add", 2))) == 2
    ops, ns = app.backend.workflow_messages, app.namespace
    clock.advance(4000)
    await drive(app)  # round 1: update 1 (settled long ago) is forgotten, 2 (the last) kept
    assert await ops.update_outcome(ns, run, 1) is None
    assert await ops.update_outcome(ns, run, 2) is not None
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "add", 5))) == 6
    assert await ops.update_outcome(ns, run, 3) is not None  # numbers go on, never reused
    clock.advance(101)
    await drive(app)  # round 2: 2 goes; 3, settled lately, stays for its caller
    assert await ops.update_outcome(ns, run, 2) is None
    assert (await ops.update_outcome(ns, run, 3) or ("",))[0] == "accepted"


# --- published values ------------------------------------------------------------------------


async def test_published_values_are_read_while_the_run_goes_on(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def progress(ctx: WorkflowContext, _: None) -> str:
        await ctx.publish("stage", "charging")
        await ctx.publish("percent", 10)
        await ctx.sleep(60)
        await ctx.publish("percent", 100)
        await ctx.publish("stage", {"done": True})
        return "ok"

    run = await app.workflows.start(progress, None, id="progress-1")
    with pytest.raises(ValueNotPublished):
        await app.workflows.get(run, "stage")
    await drive(app)
    assert await app.workflows.get(run, "stage") == "charging"
    assert await app.workflows.values(run) == {"percent": 10, "stage": "charging"}
    clock.advance(61)
    await drive(app)
    assert await app.workflows.get(run, "percent") == 100
    assert await app.workflows.values(run, after="percent") == {"stage": {"done": True}}
    with pytest.raises(ValueNotPublished):
        await app.workflows.get(run, "nothing")
    with pytest.raises(WorkflowNotFound):
        await app.workflows.get("nobody", "stage")
    with pytest.raises(InvalidIdentifier, match="value key"):
        await app.workflows.get(run, "bad key")
    kinds = [e["kind"] for e in await app.workflows.history(run)]
    assert kinds.count("publish") == 4  # once each: the replay did not publish again
    await app.workflows.purge(run)
    with pytest.raises(WorkflowNotFound):
        await app.workflows.get(run, "stage")


async def test_a_fork_keeps_the_values_its_copied_journal_published(
    app: App, clock: FakeClock
) -> None:
    @app.workflow
    async def stages(ctx: WorkflowContext, _: None) -> str:
        await ctx.publish("stage", "one")  # position 1
        await ctx.publish("kept", {"n": 1})  # 2
        await ctx.publish("stage", "two")  # 3
        await ctx.wait_for_event("go")  # 4
        await ctx.publish("stage", "three")  # 5
        await ctx.publish("late", True)  # 6
        return "ok"

    run = await app.workflows.start(stages, None, id="stages-1")
    await drive(app)
    await app.workflows.send_event(run, "go")
    await drive(app)
    assert await app.workflows.get(run, "stage") == "three"
    forked = await app.workflows.fork(run, 4, new_id="stages-fork")
    # Before its first run: the values its copied journal published, as of the cut.
    assert await app.workflows.values(forked) == {"kept": {"n": 1}, "stage": "two"}
    await drive(app)  # it replays to the cut, then waits for its own event
    assert await app.workflows.get(forked, "stage") == "two"
    with pytest.raises(ValueNotPublished):
        await app.workflows.get(forked, "late")
    early = await app.workflows.fork(run, 3, new_id="stages-early")
    assert await app.workflows.values(early) == {"kept": {"n": 1}, "stage": "one"}
    await app.workflows.send_event(forked, "go")
    await drive(app)
    assert await app.workflows.result(forked) == "ok"
    assert await app.workflows.values(forked) == {"kept": {"n": 1}, "late": True, "stage": "three"}
    assert await app.workflows.values(run) == {"kept": {"n": 1}, "late": True, "stage": "three"}


async def test_updates_applied_while_a_receive_waited_replay_before_its_message(
    app: App,
) -> None:
    """An update applied while ``ctx.receive`` waited sits after the wait in the journal:
    the run that takes the message replays it first, so what follows keeps its place."""

    @app.workflow
    async def noted(ctx: WorkflowContext, _: None) -> dict[str, Any]:
        items: list[Any] = []

        def add(item: Any) -> int:
            items.append(item)
            return len(items)

        ctx.on_update("add", add)
        got = await ctx.receive("notes")
        await ctx.publish("after", got)
        return {"got": got, "items": items}

    run = await app.workflows.start(noted, None, id="noted-1")
    await drive(app)  # waits in its receive
    asked = asyncio.create_task(app.workflows.update(run, "add", "x", timeout=10))
    assert await settle(app, asked) == 1  # applied while it waits
    await app.workflows.send_message(run, "notes", "hello")
    await drive(app)
    assert await app.workflows.result(run) == {"got": "hello", "items": ["x"]}
    assert await app.workflows.get(run, "after") == "hello"


async def test_updates_are_applied_while_an_event_is_waited_for(app: App, clock: FakeClock) -> None:
    """``ctx.wait_for_event`` applies updates: one asked while it waits wakes it, runs
    its handler and answers the caller; the run that takes the event replays it first,
    and every later run replays both in the same places."""
    calls: list[Any] = []

    @app.workflow
    async def approval(ctx: WorkflowContext, _: None) -> dict[str, Any]:
        notes: list[Any] = []

        def note(text: Any) -> int:
            calls.append(text)
            notes.append(text)
            return len(notes)

        ctx.on_update("note", note)
        decision = await ctx.wait_for_event("decision", timeout=1000)
        seen = list(notes)
        await ctx.sleep(50)  # a run after this one replays the whole journal
        return {"decision": decision, "seen": seen, "notes": notes}

    run = await app.workflows.start(approval, None, id="approval-1")
    await drive(app)
    assert (await app.workflows.status(run)).status == "waiting"
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "note", "a"))) == 1
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "note", "b"))) == 2
    assert (await app.workflows.status(run)).status == "waiting"  # still for its event
    await app.workflows.send_event(run, "decision", "yes")
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"
    assert await settle(app, asyncio.create_task(app.workflows.update(run, "note", "c"))) == 3
    clock.advance(51)
    await drive(app)
    assert await app.workflows.result(run) == {
        "decision": "yes", "seen": ["a", "b"], "notes": ["a", "b", "c"]
    }  # fmt: skip
    kinds = [(e["kind"], e["name"]) for e in await app.workflows.history(run)]
    assert kinds.index(("event", "decision")) < kinds.index(("update", "note"))  # its place
    assert kinds.count(("update", "note")) == 3
    assert calls.count("c") == 2 and calls.count("a") >= 3  # replayed, never re-answered


async def test_an_update_is_applied_while_a_child_is_waited_for(app: App) -> None:
    @app.workflow
    async def slow_child(ctx: WorkflowContext, _: None) -> str:
        return str(await ctx.wait_for_event("finish"))

    @app.workflow
    async def parent(ctx: WorkflowContext, _: None) -> dict[str, Any]:
        asked: list[Any] = []

        def ask(question: Any) -> str:
            asked.append(question)
            return f"noted {question}"

        ctx.on_update("ask", ask)
        child = await ctx.child(slow_child, None, id="the-child")
        return {"child": child, "asked": asked}

    run = await app.workflows.start(parent, None, id="parent-1")
    await drive(app)
    asked = asyncio.create_task(app.workflows.update(run, "ask", "status?"))
    assert await settle(app, asked) == "noted status?"
    await app.workflows.send_event("the-child", "finish", "done")
    await drive(app)
    assert await app.workflows.result(run) == {"child": "done", "asked": ["status?"]}


async def test_an_update_waits_while_other_work_runs_beside_the_wait(app: App) -> None:
    """Waits side by side (``ctx.gather``) apply no updates: the update is applied at the
    next wait the workflow makes alone."""

    @app.workflow
    async def pair(ctx: WorkflowContext, _: None) -> list[Any]:
        got: list[Any] = []

        def add(n: Any) -> int:
            got.append(n)
            return len(got)

        ctx.on_update("add", add)
        await ctx.gather(ctx.wait_for_event("left"), ctx.wait_for_event("right"))
        await ctx.wait_for_event("last")
        return got

    run = await app.workflows.start(pair, None, id="pair-1")
    await drive(app)
    asked = asyncio.create_task(app.workflows.update(run, "add", 1, timeout=10))
    await drive(app)
    await asyncio.sleep(0.05)
    assert not asked.done()
    await app.workflows.send_event(run, "left")
    await app.workflows.send_event(run, "right")
    assert await settle(app, asked) == 1  # applied in the wait for "last"
    await app.workflows.send_event(run, "last")
    await drive(app)
    assert await app.workflows.result(run) == [1]
