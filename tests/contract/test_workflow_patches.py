"""``ctx.patched`` and ``ctx.deprecate_patch``: changing a workflow's code while runs
are in flight, on SQLite and PostgreSQL. A run recorded by the old code replays the old
path; a new run records the change and takes the new one; retiring the patch keeps
both kinds of run going. Runs are pinned to the version of the code that started them
(workflows/versions.py): each deploy here moves the runs in flight to the new code's
version, as docs/workflow-code-changes.md says to once the new code replays them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from statekeeper import App
from statekeeper.errors import ValidationError
from statekeeper.workflows import WorkflowContext
from statekeeper.workflows.versions import code_version
from tests.conftest import FakeClock
from tests.support import drive

ran: list[str] = []
Workflow = Callable[[WorkflowContext, str], Coroutine[Any, Any, Any]]


async def audit(order: str) -> str:
    ran.append("audit")
    return f"audited {order}"


async def charge(order: str) -> str:
    ran.append("charge")
    return f"paid {order}"


async def ship(order: str) -> str:
    ran.append("ship")
    return f"shipped {order}"


async def old_code(ctx: WorkflowContext, order: str) -> list[str]:
    paid = await ctx.step(charge, order)
    await ctx.sleep(60)
    return [paid, await ctx.step(ship, order)]


async def patched_code(ctx: WorkflowContext, order: str) -> list[str]:
    done = []
    if await ctx.patched("audit-first"):
        done.append(await ctx.step(audit, order))
    done.append(await ctx.step(charge, order))
    await ctx.sleep(60)
    return [*done, await ctx.step(ship, order)]


async def retired_code(ctx: WorkflowContext, order: str) -> list[str]:
    ctx.deprecate_patch("audit-first")
    audited = await ctx.step(audit, order)
    paid = await ctx.step(charge, order)
    await ctx.sleep(60)
    return [audited, paid, await ctx.step(ship, order)]


async def unguarded_code(ctx: WorkflowContext, order: str) -> list[str]:
    audited = await ctx.step(audit, order)  # the patch call removed entirely
    paid = await ctx.step(charge, order)
    await ctx.sleep(60)
    return [audited, paid, await ctx.step(ship, order)]


def version(code: Workflow) -> str:
    """The version runs of ``code`` as workflow 'order' are stamped with."""
    return code_version("order", code)


async def deploy(
    url: str,
    namespace: str,
    clock: FakeClock,
    code: Workflow,
    start: str | None = None,
    *,
    moving: Workflow | None = None,
) -> App:
    """An app running ``code`` as workflow 'order' (a new process after a deploy),
    optionally starting run ``start``, and moving the runs in flight on code ``moving``
    to its version; it drives the runs due, then closes."""
    app = App(url, namespace=namespace, clock=clock, purge_interval=None, encryption=None)
    await app.open()
    app.workflow(code, name="order")
    if moving is not None:
        await app.workflows.move_version(version(moving), version(code), name="order")
    if start is not None:
        await app.workflows.start("order", start, id=start)
    await drive(app)
    return app


async def test_old_runs_replay_the_old_path_and_new_runs_take_the_new(
    own_database_url: str, namespace: str
) -> None:
    ran.clear()
    clock = FakeClock()
    app = await deploy(own_database_url, namespace, clock, old_code, start="before")
    await app.close()
    assert ran == ["charge"]
    ran.clear()
    # The patched code is deployed while 'before' sleeps; 'after' starts on it.
    app = await deploy(
        own_database_url, namespace, clock, patched_code, start="after", moving=old_code
    )
    await app.close()
    assert ran == ["audit", "charge"]  # only the new run: the old one sleeps
    ran.clear()
    clock.advance(61)
    app = await deploy(own_database_url, namespace, clock, patched_code)
    try:
        assert await app.workflows.result("before") == ["paid before", "shipped before"]
        assert await app.workflows.result("after") == [
            "audited after", "paid after", "shipped after"
        ]  # fmt: skip
        assert sorted(ran) == ["ship", "ship"]  # no step ran twice, none was added
    finally:
        await app.close()


async def test_retiring_a_patch_keeps_runs_that_recorded_it(
    own_database_url: str, namespace: str
) -> None:
    ran.clear()
    clock = FakeClock()
    app = await deploy(own_database_url, namespace, clock, patched_code, start="o-1")
    await app.close()
    ran.clear()
    clock.advance(61)
    app = await deploy(
        own_database_url, namespace, clock, retired_code, start="o-2", moving=patched_code
    )
    try:
        assert await app.workflows.result("o-1") == ["audited o-1", "paid o-1", "shipped o-1"]
        status = await app.workflows.status("o-2")
        assert status.status == "sleeping"  # a new run: no patch record, new path only
        assert sorted(ran) == ["audit", "charge", "ship"]  # o-1 ships, o-2 starts: in any order
    finally:
        await app.close()


async def test_dropping_the_patch_call_too_early_names_the_change(
    own_database_url: str, namespace: str
) -> None:
    clock = FakeClock()
    app = await deploy(own_database_url, namespace, clock, patched_code, start="o-1")
    await app.close()
    clock.advance(61)
    app = await deploy(own_database_url, namespace, clock, unguarded_code, moving=patched_code)
    try:
        status = await app.workflows.status("o-1")
        assert status.status == "failed" and status.error is not None
        assert status.error.type == "NonDeterminismError"
        assert "records patch 'audit-first'" in status.error.message
        assert "ctx.deprecate_patch('audit-first')" in status.error.message
    finally:
        await app.close()


async def test_change_ids_are_checked(own_database_url: str, namespace: str) -> None:
    async def bad(ctx: WorkflowContext, order: str) -> None:
        await ctx.patched("")

    app = App(own_database_url, namespace=namespace, purge_interval=None, encryption=None)
    async with app:
        app.workflow(bad, name="bad")
        run = await app.workflows.start("bad", "x")
        await drive(app)
        status = await app.workflows.status(run)
        assert status.status == "failed" and status.error is not None
        assert status.error.type in ("InvalidEventName", ValidationError.__name__)
