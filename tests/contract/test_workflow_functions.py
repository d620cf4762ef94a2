"""Workflows given as their functions, on SQLite and PostgreSQL: ``start(fn, input)``
and ``ctx.child(fn, input)`` run the registered workflow; an unregistered function is
refused, naming it, before anything is stored; the decorators return the function
itself; step functions may take a parameter called ``fn``."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.errors import ConfigurationError, UnknownWorkflow
from statekeeper.workflows import WorkflowContext, WorkflowRun
from tests.support import drive


async def double(n: int) -> int:
    return n * 2


def label(n: int, *, fn: str = "label") -> str:
    """A step function with a keyword parameter named like ``ctx.step``'s own first."""
    return f"{fn}:{n}"


async def test_start_with_the_function_runs_it_under_its_registered_name(app: App) -> None:
    async def order(ctx: WorkflowContext, n: int) -> dict[str, Any]:
        doubled = await ctx.step(double, n)
        named = await ctx.step(label, doubled, fn="step")
        retried = await ctx.step(double, doubled, retry=Retry(max_attempts=1))
        return {"doubled": doubled, "named": named, "retried": retried}

    assert app.workflow(name="orders.v2")(order) is order  # the function itself
    run = await app.workflows.start(order, 21, id="order-21")
    assert isinstance(run, WorkflowRun) and isinstance(run, str)
    assert run == "order-21" and f"{run}" == "order-21"
    assert await app.workflows.start(order, 21, id="order-21") == run  # idempotent
    await drive(app)
    status = await app.workflows.status(run)
    assert (status.name, status.status) == ("orders.v2", "succeeded")
    assert await app.workflows.result(run) == {
        "doubled": 42,
        "named": "step:42",
        "retried": 84,
    }
    by_name = await app.workflows.start("orders.v2", 1)
    await drive(app)
    assert (await app.workflows.result(by_name))["doubled"] == 2
    listed = sorted(w["id"] for w in await app.workflows.list(name="orders.v2"))
    assert listed == sorted([run, by_name])


async def test_start_without_input_gives_the_workflow_none(app: App) -> None:
    @app.workflow
    async def idle(ctx: WorkflowContext, nothing: None) -> str:
        return f"got {nothing!r}"

    run = await app.workflows.start(idle)
    await drive(app)
    assert await app.workflows.result(run) == "got None"


async def test_an_unregistered_function_is_refused_by_name_and_nothing_is_stored(
    app: App,
) -> None:
    async def stray(ctx: WorkflowContext, n: int) -> int:
        return n

    with pytest.raises(UnknownWorkflow) as refused:
        await app.workflows.start(stray, 1, id="stray-1")
    message = refused.value.message
    assert "test_workflow_functions" in message and "stray" in message
    assert "decorate it with @app.workflow" in message
    assert refused.value.http_status == 404
    assert await app.workflows.list() == []
    with pytest.raises(UnknownWorkflow, match="stray"):  # a wrapper is another function
        await app.workflows.start(functools.partial(app.workflow(stray)), 1)


async def test_a_function_registered_under_two_names_must_be_started_by_name(
    app: App,
) -> None:
    async def twice(ctx: WorkflowContext, n: int) -> int:
        return n

    app.workflow(name="first")(twice)
    app.workflow(name="second")(twice)
    with pytest.raises(ConfigurationError, match=r"\(first, second\): start it by one"):
        await app.workflows.start(twice, 1)
    assert await app.workflows.list() == []
    assert await app.workflows.start("second", 1, id="by-name") == "by-name"


async def test_child_with_the_function_runs_the_registered_child(app: App) -> None:
    @app.workflow(name="squares")
    async def square(ctx: WorkflowContext, n: int) -> int:
        return int(await ctx.step(double, n)) * n // 2

    async def unregistered(ctx: WorkflowContext, n: int) -> int:
        return n

    @app.workflow
    async def parent(ctx: WorkflowContext, numbers: list[int]) -> dict[str, Any]:
        squares = await ctx.gather(*(ctx.child(square, n) for n in numbers))
        try:
            await ctx.child(unregistered, 1)
        except UnknownWorkflow as refused:
            return {"squares": squares, "refused": refused.message}
        return {"squares": squares}

    run = await app.workflows.start(parent, [2, 3])
    await drive(app, rounds=50)
    output = await app.workflows.result(run)
    assert output["squares"] == [4, 9]
    assert "unregistered" in output["refused"] and "@app.workflow" in output["refused"]
    children = await app.workflows.list(name="squares")
    assert sorted(c["id"] for c in children) == [f"{run}:1", f"{run}:4"]


async def test_step_decorators_return_the_function_itself(app: App) -> None:
    def plain(n: int) -> int:
        return n

    assert app.function(plain) is plain and plain.__statekeeper_name__ == "plain"  # type: ignore[attr-defined]
    assert app.function(name="renamed")(plain) is plain
    assert plain.__statekeeper_name__ == "renamed"  # type: ignore[attr-defined]

    calls: list[int] = []

    @app.idempotent(key=lambda n: f"sync-{n}")
    def counted(n: int) -> int:  # a def: run in a thread, its result awaited
        calls.append(n)
        return n + 1

    assert await counted(1) == 2 and await counted(1) == 2
    assert calls == [1] and counted.__name__ == "counted"
