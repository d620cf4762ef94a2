"""A stopping runner gives a workflow back before its next new step: nothing is
compensated, nothing runs twice, and another runner goes on from there."""

from __future__ import annotations

import asyncio

from statekeeper import App
from statekeeper.workflows import WorkflowContext, WorkflowRunner


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
