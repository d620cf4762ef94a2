"""Pausing and resuming workflows: a paused workflow starts no new step, does not finish,
and wakes from no sleep or wait until it is resumed; the database keeps every runner
away from it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from statekeeper import App
from statekeeper.errors import WorkflowFinished, WorkflowNotFound
from statekeeper.state.transaction import Transaction
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock


async def drain(runner: WorkflowRunner, rounds: int = 20) -> int:
    """Run what is due until nothing is; how many runs there were."""
    total = 0
    for _ in range(rounds):
        ran = await runner.run_due()
        if not ran:
            return total
        total += ran
    return total


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(*apps: App) -> AsyncIterator[list[WorkflowRunner]]:
    """A runner loop per app, stopped on leaving."""
    stopping = asyncio.Event()
    runners = [WorkflowRunner(a.workflows, poll=0.05, grace=5.0) for a in apps]
    tasks = [asyncio.create_task(r.run(stopping)) for r in runners]
    try:
        yield runners
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)


def gated_steps(app: App) -> tuple[dict[int, asyncio.Event], Counter[int], Any]:
    """Step ``n`` counts its start, then waits until its gate is set."""
    gates = {n: asyncio.Event() for n in (1, 2, 3)}
    started: Counter[int] = Counter()

    @app.function
    async def part(n: int) -> int:
        started[n] += 1
        await gates[n].wait()
        return n * 10

    return gates, started, part


async def test_a_paused_run_finishes_its_step_and_starts_no_other(app: App) -> None:
    gates, started, part = gated_steps(app)

    @app.workflow
    async def three(ctx: WorkflowContext, _: None) -> list[int]:
        return [await ctx.step(part, n) for n in (1, 2, 3)]

    run = await app.workflows.start(three, None, id="three-1")
    async with running(app):
        await until(lambda: _true(started[1] == 1))
        await app.workflows.pause(run)
        assert (await app.workflows.status(run)).paused
        gates[1].set()  # the step in flight finishes and is journaled

        async def given_back() -> bool:
            return (await app.workflows.status(run)).status == "pending"

        await until(given_back)
        history = await app.workflows.history(run)
        assert [(h["name"].rsplit(".", 1)[-1], h["output"]) for h in history] == [("part", 10)]
        for gate in gates.values():
            gate.set()
        await asyncio.sleep(0.4)  # runners poll meanwhile: none starts the next step
        assert started == Counter({1: 1})
        status = await app.workflows.status(run)
        assert (status.status, status.paused) == ("pending", True)
        assert status.to_dict()["paused"] is True

        await app.workflows.resume(run)
        assert await app.workflows.result(run, timeout=10) == [10, 20, 30]
    assert started == Counter({1: 1, 2: 1, 3: 1})  # every step ran exactly once
    assert not (await app.workflows.status(run)).paused


async def _true(value: bool) -> bool:
    return value


async def test_a_run_paused_in_its_last_step_finishes_only_when_resumed(app: App) -> None:
    gates, started, part = gated_steps(app)

    @app.workflow
    async def one(ctx: WorkflowContext, _: None) -> int:
        return await ctx.step(part, 1)

    run = await app.workflows.start(one, None, id="one-1")
    runner = WorkflowRunner(app.workflows)
    going = asyncio.create_task(runner.run_due())
    await until(lambda: _true(started[1] == 1))
    await app.workflows.pause(run)
    gates[1].set()
    assert await going == 1
    status = await app.workflows.status(run)
    assert (status.status, status.paused, status.output) == ("pending", True, None)
    assert await drain(runner) == 0  # not leased while paused
    await app.workflows.resume(run)
    assert await drain(runner) == 1  # replayed: the step is not run again
    assert await app.workflows.result(run) == 10
    assert started == Counter({1: 1})


async def test_a_paused_sleep_stays_paused_past_its_timer(app: App, clock: FakeClock) -> None:
    done: list[str] = []

    @app.function
    async def mark(tag: str) -> str:
        done.append(tag)
        return tag

    @app.workflow
    async def napper(ctx: WorkflowContext, _: None) -> str:
        await ctx.step(mark, "before")
        await ctx.sleep(60)
        return await ctx.step(mark, "after")

    run = await app.workflows.start(napper, None, id="nap-1")
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    assert (await app.workflows.status(run)).status == "sleeping"
    await app.workflows.pause(run)
    await app.workflows.pause(run)  # pausing a paused workflow changes nothing
    clock.advance(120)  # its timer has passed
    assert await drain(runner) == 0
    assert await app.backend.workflows.next_due(app.namespace) is None
    status = await app.workflows.status(run)
    assert (status.status, status.paused) == ("sleeping", True)
    assert done == ["before"]
    await app.workflows.resume(run)
    await drain(runner)
    assert await app.workflows.result(run) == "after"
    assert done == ["before", "after"]


async def test_an_event_sent_while_paused_is_received_after_resume(app: App) -> None:
    @app.workflow
    async def listener(ctx: WorkflowContext, _: None) -> Any:
        return await ctx.wait_for_event("go")

    run = await app.workflows.start(listener, None, id="listen-1")
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    assert (await app.workflows.status(run)).status == "waiting"
    await app.workflows.pause(run)
    await app.workflows.send_event(run, "go", {"n": 7})  # kept for it
    assert await drain(runner) == 0
    status = await app.workflows.status(run)
    assert (status.status, status.paused, status.done) == ("waiting", True, False)
    await app.workflows.resume(run)
    assert await drain(runner) == 1
    assert await app.workflows.result(run) == {"n": 7}


async def test_a_transaction_step_tells_its_run_of_a_pause(app: App) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()
    after: list[str] = []

    async def reserve(tx: Transaction) -> str:
        entered.set()
        await gate.wait()
        tx.put("stock:pause", {"left": 1})
        return "reserved"

    @app.function
    async def ship() -> str:
        after.append("ship")
        return "shipped"

    @app.workflow
    async def order(ctx: WorkflowContext, _: None) -> list[str]:
        return [await ctx.transaction(reserve), await ctx.step(ship)]

    run = await app.workflows.start(order, None, id="order-p")
    runner = WorkflowRunner(app.workflows)
    going = asyncio.create_task(runner.run_due())
    await entered.wait()
    await app.workflows.pause(run)
    gate.set()
    await going
    assert after == []  # the transaction committed; the next step did not start
    item = await app.state.get("stock:pause")
    assert item is not None and item.value == {"left": 1}
    await app.workflows.resume(run)
    await drain(runner)
    assert await app.workflows.result(run) == ["reserved", "shipped"]


async def test_pausing_a_finished_or_unknown_workflow_is_refused(app: App) -> None:
    @app.workflow
    async def quick(ctx: WorkflowContext, _: None) -> int:
        return 1

    run = await app.workflows.start(quick, None, id="quick-1")
    await drain(WorkflowRunner(app.workflows))
    with pytest.raises(WorkflowFinished) as refused:
        await app.workflows.pause(run)
    assert refused.value.http_status == 409
    assert "succeeded" in refused.value.message
    await app.workflows.resume(run)  # not paused: nothing changes
    status = await app.workflows.status(run)
    assert (status.status, status.paused) == ("succeeded", False)
    with pytest.raises(WorkflowNotFound):
        await app.workflows.pause("ghost")
    with pytest.raises(WorkflowNotFound):
        await app.workflows.resume("ghost")


async def test_resuming_a_running_workflow_that_is_not_paused_changes_nothing(
    app: App, clock: FakeClock
) -> None:
    @app.workflow
    async def napper(ctx: WorkflowContext, _: None) -> str:
        await ctx.sleep(60)
        return "up"

    run = await app.workflows.start(napper, None, id="nap-2")
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    await app.workflows.resume(run)
    assert await drain(runner) == 0  # still asleep: resume did not wake it
    clock.advance(61)
    await drain(runner)
    assert await app.workflows.result(run) == "up"


async def test_cancelling_a_paused_workflow_ends_it_compensating(
    app: App, clock: FakeClock
) -> None:
    calls: list[str] = []

    @app.function
    async def book() -> str:
        calls.append("book")
        return "seat"

    @app.function
    async def unbook(seat: str) -> None:
        calls.append(f"unbook {seat}")

    @app.workflow
    async def trip(ctx: WorkflowContext, _: None) -> str:
        async with ctx.saga() as saga:
            await saga.step(book, compensate=unbook)
            await ctx.sleep(3600)
        return "done"

    run = await app.workflows.start(trip, None, id="trip-p")
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    await app.workflows.pause(run)
    await app.workflows.cancel(run)  # the cancel replaces the pause
    assert not (await app.workflows.status(run)).paused
    with pytest.raises(WorkflowFinished):  # being cancelled: it cannot be paused now
        await app.workflows.pause(run)
    await drain(runner)
    status = await app.workflows.status(run)
    assert status.done and status.status in ("cancelled", "compensated")
    assert calls == ["book", "unbook seat"]


async def test_two_workers_never_run_a_paused_workflow(
    app: App, database_url: str, namespace: str, clock: FakeClock
) -> None:
    ran: Counter[str] = Counter()

    async def work(tag: str) -> str:
        ran[tag] += 1
        await asyncio.sleep(0.01)
        return tag

    async def job(ctx: WorkflowContext, tag: str) -> list[str]:
        return [await ctx.step(work, tag), await ctx.step(work, f"{tag}-again")]

    async with App(
        database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None
    ) as other:
        for each in (app, other):
            each.function(work)
            each.workflow(job)
        runs = [await app.workflows.start(job, f"j{n}", id=f"j{n}") for n in range(6)]
        held = runs[::2]
        for run in held:
            await app.workflows.pause(run)
        async with running(app, other):
            for run in runs[1::2]:
                assert await app.workflows.result(run, timeout=10) == [run, f"{run}-again"]
            await asyncio.sleep(0.3)  # both workers poll again and again meanwhile
            assert all(ran[run] == 0 for run in held)
            for run in held:
                assert (await app.workflows.status(run)).paused
                await other.workflows.resume(run)
            for run in held:
                assert await app.workflows.result(run, timeout=10) == [run, f"{run}-again"]
    assert set(ran.values()) == {1}  # every step of every workflow ran exactly once
    assert len(ran) == 12


WAIT_THEN_TASK: dict[str, Any] = {
    "StartAt": "Hold",
    "States": {
        "Hold": {"Type": "Wait", "Seconds": 60, "Next": "Count"},
        "Count": {"Type": "Task", "Resource": "count", "End": True},
    },
}


async def test_a_state_machine_execution_pauses_and_resumes(app: App, clock: FakeClock) -> None:
    counted: list[Any] = []

    @app.task_function
    def count(event: Any) -> int:
        counted.append(event)
        return len(counted)

    await app.workflows.define("holder", "asl", WAIT_THEN_TASK)
    run = await app.workflows.start("holder", {"n": 1}, id="exec-1")
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    assert (await app.workflows.status(run)).status == "sleeping"
    await app.workflows.pause(run)
    clock.advance(120)
    assert await drain(runner) == 0
    assert counted == []
    await app.workflows.resume(run)
    await drain(runner)
    status = await app.workflows.status(run)
    assert (status.status, status.output, status.paused) == ("succeeded", 1, False)
    assert counted == [{"n": 1}]


async def test_a_paused_workflow_whose_runner_died_waits_for_resume(
    app: App, clock: FakeClock
) -> None:
    @app.workflow
    async def simple(ctx: WorkflowContext, _: None) -> str:
        return "ran"

    run = await app.workflows.start(simple, None, id="orphan-1")
    runner = WorkflowRunner(app.workflows)
    [leased] = await runner.lease()  # leased, then its process "dies": never run
    await app.workflows.pause(run)
    clock.advance(app.workflows.lease + 1)  # its lease has run out
    assert await runner.lease() == []  # paused: no runner takes it over
    assert (await app.workflows.status(run)).status == "running"
    await app.workflows.resume(run)
    assert await drain(runner) == 1
    assert await app.workflows.result(run) == "ran"
    await runner.execute(leased)  # the dead runner's late run is refused by its fence
    assert (await app.workflows.status(run)).output == "ran"


async def test_a_timeout_counts_while_paused(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def long_nap(ctx: WorkflowContext, _: None) -> str:
        await ctx.sleep(3600)
        return "woke"

    run = await app.workflows.start(long_nap, None, id="late-1", timeout=10)
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    await app.workflows.pause(run)
    clock.advance(20)  # past its deadline while paused
    assert await drain(runner) == 0
    assert (await app.workflows.status(run)).status == "sleeping"
    await app.workflows.resume(run)
    await drain(runner)
    assert (await app.workflows.status(run)).status == "timed_out"
