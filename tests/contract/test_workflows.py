"""The workflow engine's core on SQLite and PostgreSQL: journaled steps, replay,
non-determinism, durable sleep and events, fencing of stale owners."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.errors import (
    DuplicateEvent,
    ErrorRecord,
    InvalidEventName,
    InvalidValue,
    UnknownWorkflow,
    ValidationError,
    WorkflowNotFound,
)
from statekeeper.workflows import EventTimeout, StepFailed, WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock

calls: dict[str, int] = {}


def counted(name: str) -> None:
    calls[name] = calls.get(name, 0) + 1


@pytest.fixture(autouse=True)
def reset_calls() -> None:
    calls.clear()


@pytest.fixture
async def flows(app: App) -> AsyncIterator[App]:
    yield app


async def drive(app: App, rounds: int = 20) -> WorkflowRunner:
    """Run every runnable workflow until none is left (no sleeps: the clock is fake)."""
    runner = WorkflowRunner(app.workflows)
    for _ in range(rounds):
        leased = await runner._lease(list(app.workflows.registry), 16)
        if not leased:
            break
        await asyncio.gather(*(runner.execute(w) for w in leased))
    return runner


async def add(a: int, b: int) -> int:
    counted("add")
    return a + b


def shout(text: str) -> str:
    counted("shout")
    return text.upper()


async def test_steps_run_once_and_replay_from_the_journal(app: App) -> None:
    @app.workflow
    async def arithmetic(ctx: WorkflowContext, n: int) -> dict[str, Any]:
        total = await ctx.step(add, n, 1)
        loud = await ctx.step(shout, f"total {total}")
        return {"total": total, "loud": loud}

    run = await app.workflows.start("arithmetic", 41)
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "succeeded"
    assert status.output == {"total": 42, "loud": "TOTAL 42"}
    assert calls == {"add": 1, "shout": 1}
    history = await app.backend.workflows.history(app.namespace, run)
    assert [(h.kind, h.name) for h in history] == [("step", "add"), ("step", "shout")]


async def test_start_with_an_id_is_idempotent(app: App) -> None:
    @app.workflow
    async def once(ctx: WorkflowContext, n: int) -> int:
        return int(await ctx.step(add, n, n))

    first = await app.workflows.start("once", 1, id="order-1")
    again = await app.workflows.start("once", 1, id="order-1")
    assert first == again == "order-1"
    await drive(app)
    assert (await app.workflows.status("order-1")).output == 2
    assert calls == {"add": 1}


async def test_a_run_that_dies_resumes_without_rerunning_done_steps(
    app: App, clock: FakeClock
) -> None:
    """The first runner dies after step 1 (its lease lapses); another runner replays:
    step 1 comes from the journal, step 2 runs."""
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def blocks() -> str:
        counted("blocks")
        entered.set()
        await gate.wait()
        return "finally"

    @app.workflow
    async def two_steps(ctx: WorkflowContext, _: Any) -> list[Any]:
        first = await ctx.step(add, 1, 2)
        second = await ctx.step(blocks)
        return [first, second]

    run = await app.workflows.start("two_steps")
    dying = WorkflowRunner(app.workflows)
    [leased] = await dying._lease(["two_steps"], 1)
    doomed = asyncio.create_task(dying.execute(leased))
    await entered.wait()
    doomed.cancel()  # the process died mid-step
    await asyncio.gather(doomed, return_exceptions=True)
    clock.advance(app.workflows.lease + 1)  # its lease lapses
    gate.set()
    await drive(app)
    assert (await app.workflows.status(run)).output == [3, "finally"]
    assert calls == {"add": 1, "blocks": 2}


async def test_a_stale_owner_cannot_checkpoint(app: App, clock: FakeClock) -> None:
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "late"

    @app.workflow
    async def fenced(ctx: WorkflowContext, _: Any) -> str:
        return str(await ctx.step(slow))

    run = await app.workflows.start("fenced")
    stale = WorkflowRunner(app.workflows)
    [old] = await stale._lease(["fenced"], 1)
    stale_run = asyncio.create_task(stale.execute(old))
    await asyncio.sleep(0.05)
    clock.advance(app.workflows.lease + 1)
    fresh = WorkflowRunner(app.workflows)
    [new] = await fresh._lease(["fenced"], 1)
    assert new.fence == old.fence + 1
    gate.set()
    await stale_run  # its checkpoint is refused: it stops without finishing
    assert (await app.workflows.status(run)).status == "running"
    assert await app.backend.workflows.history(app.namespace, run) == []
    await fresh.execute(new)
    assert (await app.workflows.status(run)).output == "late"


async def test_a_changed_workflow_is_a_non_determinism_error(app: App) -> None:
    version = {"n": 1}

    @app.workflow
    async def evolving(ctx: WorkflowContext, _: Any) -> Any:
        if version["n"] == 1:
            await ctx.step(add, 1, 1)
        else:
            await ctx.step(shout, "changed")
        await ctx.sleep(10)
        return "done"

    run = await app.workflows.start("evolving")
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"
    version["n"] = 2
    app.clock.advance(11)  # type: ignore[attr-defined]
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "failed"
    assert status.error is not None and status.error.type == "NonDeterminismError"
    assert "journal records step 'add'" in status.error.message


async def test_failed_steps_retry_then_fail_the_workflow(app: App) -> None:
    fast = Retry(max_attempts=3, initial_interval=0.001, jitter=False)

    async def broken() -> None:
        counted("broken")
        raise RuntimeError("payment service down")

    @app.workflow
    async def pays(ctx: WorkflowContext, _: Any) -> str:
        try:
            await ctx.step(broken, retry=fast)
        except StepFailed as failure:
            return f"handled: {failure.error}"
        return "unreachable"

    @app.workflow
    async def unhandled(ctx: WorkflowContext, _: Any) -> None:
        await ctx.step(broken, retry=Retry(max_attempts=1), non_retryable=(RuntimeError,))

    handled = await app.workflows.start("pays")
    failed = await app.workflows.start("unhandled")
    await drive(app)
    assert (await app.workflows.status(handled)).output == (
        "handled: RuntimeError: payment service down"
    )
    assert calls["broken"] == 4  # three attempts, then one for the unhandled workflow
    status = await app.workflows.status(failed)
    assert status.status == "failed" and "payment service down" in str(status.error)
    [entry] = await app.backend.workflows.history(app.namespace, handled)
    assert entry.attempts == 3 and entry.error is not None
    recorded = ErrorRecord.from_json(entry.error)
    assert (recorded.type, recorded.message) == ("RuntimeError", "payment service down")
    assert recorded.traceback is not None and "in broken" in recorded.traceback


async def test_durable_sleep_holds_nothing_and_survives(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def napper(ctx: WorkflowContext, seconds: float) -> float:
        before = await ctx.now()
        await ctx.sleep(seconds)
        return (await ctx.now()) - before

    runs = [await app.workflows.start("napper", 60) for _ in range(50)]
    await drive(app)
    statuses = [await app.workflows.status(r) for r in runs]
    assert {s.status for s in statuses} == {"sleeping"}
    clock.advance(59)
    await drive(app)
    assert (await app.workflows.status(runs[0])).status == "sleeping"
    clock.advance(2)
    await drive(app)
    outputs = [(await app.workflows.status(r)).output for r in runs]
    assert outputs == [61.0] * 50


async def test_events_wait_and_arrive_once(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def approval(ctx: WorkflowContext, _: Any) -> Any:
        decision = await ctx.wait_for_event("approved", timeout=3600)
        return {"decision": decision}

    early = await app.workflows.start("approval", id="early")
    await app.workflows.send_event("early", "approved", {"by": "ada"})  # before it waits
    late = await app.workflows.start("approval", id="late")
    await drive(app)
    assert (await app.workflows.status(early)).output == {"decision": {"by": "ada"}}
    assert (await app.workflows.status(late)).status == "waiting"
    await app.workflows.send_event("late", "approved", "yes")
    with pytest.raises(DuplicateEvent):
        await app.workflows.send_event("late", "approved", "again")
    await drive(app)
    assert (await app.workflows.status(late)).output == {"decision": "yes"}
    with pytest.raises(WorkflowNotFound):
        await app.workflows.send_event("nobody", "approved")


async def test_clients_cannot_send_the_engines_own_events(app: App) -> None:
    """A child's outcome (``child:<id>``, a predictable id) and a callback's answer
    (``callback:<position>``) come only from the engine: send_event refuses both
    names, so neither can be forged; the real outcome and answer still arrive."""
    app.workflows.secret = "reserved-events-secret"

    @app.workflow
    async def slow_child(ctx: WorkflowContext, _: Any) -> Any:
        return await ctx.wait_for_event("go", timeout=3600)

    @app.workflow
    async def guarded(ctx: WorkflowContext, _: Any) -> Any:
        child = await ctx.child("slow_child")
        callback = await ctx.callback(timeout=3600)
        return {"child": child, "callback": await callback.result()}

    run = await app.workflows.start("guarded", id="guarded-1")
    await drive(app)
    [child] = await app.workflows.list(name="slow_child")
    forged = {"status": "succeeded", "output": "forged", "error": None}
    for event in (f"child:{child['id']}", "child:guarded-1:1", "callback:4", "callback:x"):
        with pytest.raises(InvalidEventName, match="workflow engine's own"):
            await app.workflows.send_event(run, event, forged)
    await app.workflows.send_event(child["id"], "go", "real")
    await drive(app)
    assert (await app.workflows.status(run)).status == "waiting"  # on its callback now
    [token] = [e["output"] for e in await app.workflows.history(run) if e["kind"] == "callback"]
    with pytest.raises(InvalidEventName):
        await app.workflows.send_event(run, "callback:4", {"status": "success", "data": "x"})
    assert await app.workflows.answer_callback(token, {"status": "success", "data": "ok"})
    await drive(app)
    status = await app.workflows.status(run)
    assert status.output == {"child": "real", "callback": "ok"}, status
    events = [e for e in await app.workflows.history(run) if e["kind"] == "event"]
    assert [e["output"] for e in events] == [
        {"status": "succeeded", "error": None, "output": "real"},
        {"status": "success", "data": "ok"},
    ]


async def test_an_event_wait_times_out(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def impatient(ctx: WorkflowContext, _: Any) -> str:
        try:
            await ctx.wait_for_event("reply", timeout=30)
        except EventTimeout:
            return "gave up"
        return "got it"

    run = await app.workflows.start("impatient")
    await drive(app)
    clock.advance(31)
    await drive(app)
    assert (await app.workflows.status(run)).output == "gave up"


async def test_recorded_values_replay_the_same(app: App, clock: FakeClock) -> None:
    seen: list[tuple[float, float, str]] = []

    @app.workflow
    async def values(ctx: WorkflowContext, _: Any) -> None:
        seen.append((await ctx.now(), await ctx.random(), await ctx.uuid()))
        await ctx.sleep(5)

    await app.workflows.start("values")
    await drive(app)
    clock.advance(6)
    await drive(app)
    assert len(seen) == 2 and seen[0] == seen[1]


async def test_bad_input(app: App) -> None:
    @app.workflow
    async def echo(ctx: WorkflowContext, value: Any) -> Any:
        return value

    with pytest.raises(UnknownWorkflow):
        await app.workflows.start("no-such-workflow")
    with pytest.raises(InvalidValue):
        await app.workflows.start("echo", object())  # rejected at start, not at a crash later
    with pytest.raises(ValidationError, match="workflow id"):
        await app.workflows.start("echo", 1, id="has spaces")
    with pytest.raises(WorkflowNotFound):
        await app.workflows.status("missing")

    @app.workflow
    async def bad_result(ctx: WorkflowContext, _: Any) -> Any:
        return object()

    run = await app.workflows.start("bad_result")
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "failed" and "not JSON-serializable" in str(status.error)


async def test_cancel_a_sleeping_workflow_and_refuse_a_finished_one(
    app: App, clock: FakeClock
) -> None:
    from statekeeper.errors import WorkflowFinished

    @app.workflow
    async def long_wait(ctx: WorkflowContext, _: Any) -> str:
        await ctx.step(add, 1, 1)
        await ctx.sleep(3600)
        await ctx.step(shout, "never")
        return "finished"

    run = await app.workflows.start("long_wait")
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"
    await app.workflows.cancel(run)
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "cancelled"
    assert calls == {"add": 1}  # replayed up to the sleep; nothing new ran
    with pytest.raises(WorkflowFinished) as caught:
        await app.workflows.cancel(run)
    assert caught.value.http_status == 409
    with pytest.raises(WorkflowNotFound):
        await app.workflows.cancel("missing")


async def test_retry_a_failed_workflow_from_its_failed_step(app: App) -> None:
    from statekeeper.errors import WorkflowFinished

    fixed = {"yet": False}

    async def flaky_service() -> str:
        counted("flaky")
        if not fixed["yet"]:
            raise RuntimeError("still broken")
        return "ok now"

    @app.workflow
    async def mended(ctx: WorkflowContext, _: Any) -> list[Any]:
        first = await ctx.step(add, 2, 3)
        second = await ctx.step(flaky_service, retry=Retry(max_attempts=1))
        return [first, second]

    run = await app.workflows.start("mended")
    await drive(app)
    assert (await app.workflows.status(run)).status == "failed"
    fixed["yet"] = True
    await app.workflows.retry(run)
    await drive(app)
    assert (await app.workflows.status(run)).output == [5, "ok now"]
    assert calls == {"add": 1, "flaky": 2}
    with pytest.raises(WorkflowFinished, match="only a failed or timed-out workflow"):
        await app.workflows.retry(run)


async def test_list_and_history(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def tiny(ctx: WorkflowContext, n: int) -> int:
        return int(await ctx.step(add, n, n))

    @app.workflow
    async def other(ctx: WorkflowContext, _: Any) -> None:
        await ctx.sleep(100)

    ids = []
    for n in range(3):
        ids.append(await app.workflows.start("tiny", n))
        clock.advance(1)
    await app.workflows.start("other")
    await drive(app)
    listed = await app.workflows.list(name="tiny")
    assert [w["id"] for w in listed] == ids[::-1]  # newest first
    assert {w["status"] for w in listed} == {"succeeded"}
    sleeping = await app.workflows.list(status="sleeping")
    assert [w["name"] for w in sleeping] == ["other"]
    page = await app.workflows.list(limit=2)
    assert len(page) == 2
    rest = await app.workflows.list(before=(page[-1]["created_at"], page[-1]["id"]))
    assert len(page) + len(rest) == 4
    assert [w["id"] for w in page + rest][1:] == ids[::-1]
    [entry] = await app.workflows.history(ids[2])
    assert entry["name"] == "add" and entry["input"] == [[2, 2], {}] and entry["output"] == 4
    assert entry["attempts"] == 1 and entry["error"] is None
    with pytest.raises(ValidationError):
        await app.workflows.list(limit=0)


log_of_effects: list[str] = []


async def book(what: str) -> str:
    log_of_effects.append(f"book {what}")
    if what == "payment-declined":
        raise RuntimeError("card declined")
    return f"{what}-ref"


async def cancel(reference: str) -> None:
    log_of_effects.append(f"cancel {reference}")


async def test_saga_compensates_in_reverse(app: App) -> None:
    log_of_effects.clear()

    @app.workflow
    async def trip(ctx: WorkflowContext, fail: bool) -> list[str]:
        async with ctx.saga() as saga:
            refs = [
                await saga.step(book, "flight", compensate=cancel),
                await saga.step(book, "hotel", compensate=cancel),
                await saga.step(book, "car", compensate=cancel),
            ]
            await saga.step(
                book, "payment-declined" if fail else "payment", retry=Retry(max_attempts=1)
            )
        return refs

    good = await app.workflows.start("trip", False)
    bad = await app.workflows.start("trip", True)
    await drive(app)
    assert (await app.workflows.status(good)).output == ["flight-ref", "hotel-ref", "car-ref"]
    status = await app.workflows.status(bad)
    assert status.status == "compensated"
    assert "card declined" in str(status.error)
    undone = [e for e in log_of_effects if e.startswith("cancel")]
    assert undone == ["cancel car-ref", "cancel hotel-ref", "cancel flight-ref"]


async def test_a_failing_compensation_is_surfaced(app: App) -> None:
    async def stubborn(reference: str) -> None:
        raise RuntimeError(f"cannot cancel {reference}")

    @app.workflow
    async def stuck(ctx: WorkflowContext, _: Any) -> None:
        async with ctx.saga() as saga:
            await saga.step(book, "flight", compensate=stubborn)
            await saga.step(book, "payment-declined", retry=Retry(max_attempts=1))

    import statekeeper.workflows.saga as saga_module

    quick = Retry(max_attempts=2, initial_interval=0.001, jitter=False)
    original, saga_module.COMPENSATION_RETRY = saga_module.COMPENSATION_RETRY, quick
    try:
        run = await app.workflows.start("stuck")
        await drive(app)
    finally:
        saga_module.COMPENSATION_RETRY = original
    status = await app.workflows.status(run)
    assert status.status == "failed"
    assert "card declined" in str(status.error)
    assert "compensation failed" in str(status.error)
    assert "cannot cancel flight-ref" in str(status.error)


async def test_fan_out_with_a_limit_keeps_positions(app: App) -> None:
    running = 0
    peak = 0

    async def square(n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return n * n

    @app.workflow
    async def fan(ctx: WorkflowContext, count: int) -> int:
        squares = await ctx.gather(*(ctx.step(square, n) for n in range(count)), limit=3)
        await ctx.sleep(1)
        return sum(squares)

    run = await app.workflows.start("fan", 10)
    await drive(app)
    assert peak == 3
    app.clock.advance(2)  # type: ignore[attr-defined]
    await drive(app)  # the replay finds every square at its position
    assert (await app.workflows.status(run)).output == sum(n * n for n in range(10))
    history = await app.workflows.history(run)
    assert [h["input"][0][0] for h in history if h["kind"] == "step"] == list(range(10))


async def test_children(app: App) -> None:
    @app.workflow
    async def child(ctx: WorkflowContext, n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return int(await ctx.step(add, n, 100))

    @app.workflow
    async def parent(ctx: WorkflowContext, numbers: list[int]) -> Any:
        from statekeeper.workflows import ChildFailed

        results = await ctx.gather(*(ctx.child("child", n) for n in numbers), limit=2)
        try:
            await ctx.child("child", -1)
        except ChildFailed as failure:
            return {"results": results, "failure": failure.error}
        return {"results": results}

    run = await app.workflows.start("parent", [1, 2, 3])
    await drive(app, rounds=50)
    status = await app.workflows.status(run)
    assert status.status == "succeeded", status
    assert status.output["results"] == [101, 102, 103]
    assert status.output["failure"]["type"] == "ValueError"
    assert status.output["failure"]["message"].endswith("failed: negative")
    children = await app.workflows.list(name="child")
    assert len(children) == 4
    assert all(c["id"].startswith(f"{run}:") for c in children)


async def test_children_of_a_parent_with_the_longest_id_get_ids_within_the_limit(
    app: App,
) -> None:
    @app.workflow
    async def leaf(ctx: WorkflowContext, n: int) -> int:
        return n

    @app.workflow
    async def root(ctx: WorkflowContext, _: Any) -> Any:
        return await ctx.child("leaf", 7)

    run = await app.workflows.start("root", id="r" * 200)
    await drive(app, rounds=20)
    assert (await app.workflows.status(run)).output == 7
    [child] = await app.workflows.list(name="leaf")
    assert len(child["id"]) <= 200
    assert (await app.workflows.status(child["id"])).status == "succeeded"


async def test_cancel_runs_the_saga_compensations(app: App) -> None:
    log_of_effects.clear()

    @app.workflow
    async def held(ctx: WorkflowContext, _: Any) -> None:
        async with ctx.saga() as saga:
            await saga.step(book, "flight", compensate=cancel)
            await saga.step(book, "hotel", compensate=cancel)
            await ctx.wait_for_event("go-ahead")
            await saga.step(book, "car", compensate=cancel)

    run = await app.workflows.start("held")
    await drive(app)
    assert (await app.workflows.status(run)).status == "waiting"
    await app.workflows.cancel(run)
    await drive(app)
    assert (await app.workflows.status(run)).status == "cancelled"
    assert log_of_effects == [
        "book flight",
        "book hotel",
        "cancel hotel-ref",
        "cancel flight-ref",
    ]


async def test_a_thousand_sleeping_workflows_are_rows_not_tasks(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def dozing(ctx: WorkflowContext, _: Any) -> str:
        await ctx.sleep(600)
        return "awake"

    tasks_before = len(asyncio.all_tasks())
    runs = await asyncio.gather(*(app.workflows.start("dozing") for _ in range(1000)))
    await drive(app, rounds=200)
    sleeping = await app.workflows.list(status="sleeping", limit=1000)
    assert len(sleeping) == 1000
    assert len(asyncio.all_tasks()) <= tasks_before + 2  # nothing waits in memory
    clock.advance(601)
    await drive(app, rounds=200)
    assert (await app.workflows.status(runs[0])).output == "awake"
    assert len(await app.workflows.list(status="succeeded", limit=1000)) == 1000


async def test_a_cancel_asked_during_a_run_that_then_sleeps_makes_it_due_at_once(
    app: App, clock: FakeClock
) -> None:
    """The run checkpointed its sleep before the cancel came, then suspends: the sleep
    does not hide the cancel (the workflow is due now; its next run stops it)."""
    store, ns = app.backend.workflows, app.namespace
    await store.create(ns, "w-race", "sleepy", b"null", None, clock())
    [leased] = await store.lease(
        ns, ["sleepy"], owner="o", lease_end=clock() + 30, limit=1, now=clock()
    )
    await app.workflows.cancel("w-race")  # after the run's last checkpoint
    suspended = await store.suspend(
        ns, "w-race", leased.fence, status="sleeping", wake_at=clock() + 3600,
        waiting_for=None, now=clock(),
    )  # fmt: skip
    assert suspended
    [again] = await store.lease(
        ns, ["sleepy"], owner="o", lease_end=clock() + 30, limit=1, now=clock()
    )
    assert again.id == "w-race" and again.cancel_requested
