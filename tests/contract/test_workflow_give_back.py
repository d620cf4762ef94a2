"""A stopping runner gives a workflow back before its next new step: nothing is
compensated, nothing runs twice, and another runner goes on from there."""

from __future__ import annotations

import asyncio
import contextlib

from statekeeper import App
from statekeeper.errors import WorkflowFailed
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock


async def test_a_stopping_runner_gives_back_a_saga_without_compensating(app: App) -> None:
    calls: list[tuple[str, int]] = []
    stopping = asyncio.Event()

    @app.function
    async def book(n: int) -> int:
        calls.append(("book", n))
        if n == 1:
            stopping.set()  # SIGTERM arrives while the first step runs
            await asyncio.sleep(0.05)
        return n

    @app.function
    async def unbook(n: int) -> None:
        calls.append(("unbook", n))

    @app.workflow
    async def trip(ctx: WorkflowContext, legs: int) -> list[int]:
        booked = []
        async with ctx.saga() as saga:
            for n in range(1, legs + 1):
                booked.append(await saga.step(book, n, compensate=unbook))
        return booked

    run = await app.workflows.start(trip, 3, id="trip-1")
    first = WorkflowRunner(app.workflows, poll=0.05, grace=5.0)
    await asyncio.wait_for(first.run(stopping), 10)
    assert calls == [("book", 1)]  # the step in flight finished; no new one started
    assert first.given_back == 1
    status = await app.workflows.status(run)
    assert status.status == "pending"  # due at once, its lease released
    history = await app.workflows.history(run)
    assert [(h["name"], h["output"]) for h in history] == [("book", 1)]

    second = WorkflowRunner(app.workflows, poll=0.05)
    going = asyncio.Event()
    task = asyncio.create_task(second.run(going))
    try:
        assert await app.workflows.result(run, timeout=10) == [1, 2, 3]
    finally:
        going.set()
        await task
    assert calls == [("book", 1), ("book", 2), ("book", 3)]  # none twice, none undone


async def test_steps_side_by_side_settle_before_the_workflow_is_given_back(app: App) -> None:
    calls: list[str] = []
    stopping = asyncio.Event()

    @app.function
    async def slow(tag: str) -> str:
        calls.append(tag)
        stopping.set()  # SIGTERM while this step runs; its sibling has not started
        await asyncio.sleep(0.1)
        return tag

    @app.function
    async def quick(tag: str) -> str:
        calls.append(tag)
        return tag

    @app.workflow
    async def pair(ctx: WorkflowContext, _: None) -> list[str]:
        return list(await asyncio.gather(ctx.step(slow, "a"), ctx.step(quick, "b")))

    run = await app.workflows.start(pair, None, id="pair-1")
    first = WorkflowRunner(app.workflows, poll=0.05, grace=5.0)
    await asyncio.wait_for(first.run(stopping), 10)
    history = await app.workflows.history(run)
    assert [(h["name"], h["output"]) for h in history] == [("slow", "a")]  # kept, not lost
    assert (await app.workflows.status(run)).status == "pending"

    second = WorkflowRunner(app.workflows, poll=0.05)
    going = asyncio.Event()
    task = asyncio.create_task(second.run(going))
    try:
        assert await app.workflows.result(run, timeout=10) == ["a", "b"]
    finally:
        going.set()
        await task
    assert calls == ["a", "b"]  # each once


async def test_a_cancelled_saga_stopped_mid_compensation_compensates_later(
    app: App, clock: FakeClock
) -> None:
    undone: list[int] = []
    stopping = asyncio.Event()

    @app.function
    async def book() -> int:
        return 1

    @app.function
    async def undo(booked: int) -> None:
        undone.append(booked)
        if len(undone) == 1:
            stopping.set()  # SIGTERM while the first compensation attempt fails
            raise RuntimeError("flaky")

    @app.function
    async def cancelled_meanwhile() -> int:
        await app.workflows.cancel("trip-c")
        return 2

    @app.workflow
    async def trip_c(ctx: WorkflowContext, _: None) -> None:
        async with ctx.saga() as saga:
            await saga.step(book, compensate=undo)
            await saga.step(cancelled_meanwhile)
            await saga.step(book)

    await app.workflows.start(trip_c, None, id="trip-c")
    await asyncio.wait_for(WorkflowRunner(app.workflows, poll=0.05).run(stopping), 10)
    assert (await app.workflows.status("trip-c")).status == "sleeping"  # until the retry
    clock.advance(120)  # past the compensation's backoff
    going = asyncio.Event()
    task = asyncio.create_task(WorkflowRunner(app.workflows, poll=0.05).run(going))
    try:
        with contextlib.suppress(WorkflowFailed):
            await app.workflows.result("trip-c", timeout=10)
    finally:
        going.set()
        await task
    assert (await app.workflows.status("trip-c")).status == "cancelled"
    assert undone == [1, 1]  # the compensation ran to its end
