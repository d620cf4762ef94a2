"""What docs/workflow-code-changes.md says about replay, checked on SQLite: which code
changes an in-flight workflow survives and which fail it with NonDeterminismError."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import pytest

from statekeeper import App
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from statekeeper.workflows.versions import code_version

ran: list[str] = []

Workflow = Callable[[WorkflowContext, str], Coroutine[Any, Any, Any]]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def drive(app: App) -> None:
    runner = WorkflowRunner(app.workflows)
    for _ in range(20):
        leased = await runner._lease(list(app.workflows.registry), 16)
        if not leased:
            return
        await asyncio.gather(*(runner.execute(w) for w in leased))


# Version 1, deployed first: every run of it is left sleeping, its journal holding
# step 'charge', step 'reserve' and the sleep.


async def charge(order_id: str) -> str:
    ran.append("charge")
    return f"paid {order_id}"


async def reserve(order_id: str) -> str:
    ran.append("reserve")
    return f"reserved {order_id}"


async def ship(order_id: str) -> str:
    ran.append("ship")
    return f"shipped {order_id}"


async def audit(order_id: str) -> str:
    ran.append("audit")
    return f"audited {order_id}"


async def order_v1(ctx: WorkflowContext, order_id: str) -> list[str]:
    paid = await ctx.step(charge, order_id)
    reserved = await ctx.step(reserve, order_id)
    await ctx.sleep(60)
    return [paid, reserved]


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/state.db"


@pytest.fixture
async def in_flight(database: str) -> AsyncIterator[str]:
    """A run of version 1, sleeping after its two steps; then the process stops."""
    ran.clear()
    async with App(database, clock=Clock(), purge_interval=None, encryption=None) as app:
        app.workflow(order_v1, name="order")
        run = await app.workflows.start("order", "o-1", id="o-1")
        await drive(app)
        assert (await app.workflows.status(run)).status == "sleeping"
    assert ran == ["charge", "reserve"]
    ran.clear()
    yield run


async def deploy(database: str, new_code: Workflow | Callable[[App], Workflow], run: str) -> Any:
    """Start a process with the new code as workflow 'order', move the run to its version
    (runs are pinned to the version that started them) and let the run go on.
    ``new_code``: the workflow, or ``make_safe``, which makes it with the app."""
    clock = Clock()
    clock.now += 61  # the sleep is over
    async with App(database, clock=clock, purge_interval=None, encryption=None) as app:
        made = make_safe(app) if new_code is make_safe else cast(Workflow, new_code)
        app.workflow(made, name="order")
        assert (
            await app.workflows.move_version(None, app.workflows.versions.of("order") or "", id=run)
            == 1
        )
        await drive(app)
        return await app.workflows.status(run)


# --- safe ---------------------------------------------------------------------------


def make_safe(app: App) -> Workflow:
    @app.function(name="reserve")  # renamed, and its body changed: the name stays
    async def reserve_stock(order_id: str) -> str:
        ran.append("reserve_stock")
        return f"reserved {order_id} from stock"

    async def order_v2(ctx: WorkflowContext, order_id: str) -> list[str]:
        paid = await ctx.step(charge, order_id.upper())  # other arguments: not compared
        reserved = await ctx.step(reserve_stock, order_id)
        await ctx.sleep(60)
        shipped = await ctx.step(ship, order_id)  # a new step after the recorded ones
        return [paid, reserved, shipped]

    return order_v2


async def test_safe_changes(in_flight: str, database: str) -> None:
    status = await deploy(database, make_safe, in_flight)
    assert status.status == "succeeded"
    # The recorded steps return what they recorded; only the new step runs.
    assert status.output == ["paid o-1", "reserved o-1", "shipped o-1"]
    assert ran == ["ship"]


async def test_removing_the_last_recorded_steps_is_not_detected(
    in_flight: str, database: str
) -> None:
    async def order_short(ctx: WorkflowContext, order_id: str) -> str:
        return await ctx.step(charge, order_id)  # 'reserve' and the sleep are gone

    status = await deploy(database, order_short, in_flight)
    assert (status.status, status.output, ran) == ("succeeded", "paid o-1", [])


# --- unsafe -------------------------------------------------------------------------


async def inserted(ctx: WorkflowContext, order_id: str) -> list[str]:
    audited = await ctx.step(audit, order_id)  # a new step before the recorded ones
    paid = await ctx.step(charge, order_id)
    reserved = await ctx.step(reserve, order_id)
    await ctx.sleep(60)
    return [audited, paid, reserved]


async def reordered(ctx: WorkflowContext, order_id: str) -> list[str]:
    reserved = await ctx.step(reserve, order_id)
    paid = await ctx.step(charge, order_id)
    await ctx.sleep(60)
    return [paid, reserved]


async def charge_card(order_id: str) -> str:  # 'charge', renamed without a stable name
    ran.append("charge_card")
    return f"paid {order_id}"


async def renamed(ctx: WorkflowContext, order_id: str) -> list[str]:
    paid = await ctx.step(charge_card, order_id)
    reserved = await ctx.step(reserve, order_id)
    await ctx.sleep(60)
    return [paid, reserved]


ADVICE = (
    "; guard a change to code that runs in flight with ctx.patched(...), run the new code "
    "under a new workflow name, or retry once the matching code is deployed "
    "(docs/workflow-code-changes.md)"
)


@pytest.mark.parametrize(
    ("new_code", "message"),
    [
        (
            inserted,
            "workflow 'o-1' reached position 1 with step 'audit', but its journal records "
            "step 'charge' there: the workflow's code changed or is not deterministic",
        ),
        (
            reordered,
            "workflow 'o-1' reached position 1 with step 'reserve', but its journal records "
            "step 'charge' there: the workflow's code changed or is not deterministic",
        ),
        (
            renamed,
            "workflow 'o-1' reached position 1 with step 'charge_card', but its journal "
            "records step 'charge' there: the workflow's code changed or is not deterministic",
        ),
    ],
)
async def test_unsafe_changes_fail_the_run(
    in_flight: str, database: str, new_code: Workflow, message: str
) -> None:
    status = await deploy(database, new_code, in_flight)
    assert status.status == "failed"
    assert status.error is not None
    assert (status.error.type, status.error.message) == ("NonDeterminismError", message + ADVICE)
    assert ran == []  # nothing ran: the run stopped at the first mismatch


async def test_a_failed_run_is_retried_once_the_code_is_fixed(
    in_flight: str, database: str
) -> None:
    assert (await deploy(database, inserted, in_flight)).status == "failed"
    clock = Clock()
    clock.now += 61
    async with App(database, clock=clock, purge_interval=None, encryption=None) as app:
        app.workflow(order_v1, name="order")  # the code that matches its journal
        await app.workflows.retry(in_flight)  # pending again: then it takes this version
        version = app.workflows.versions.of("order") or ""
        assert await app.workflows.move_version(None, version, id=in_flight) == 1
        await drive(app)
        assert await app.workflows.result(in_flight) == ["paid o-1", "reserved o-1"]
    assert ran == []


async def test_new_code_under_a_new_name(in_flight: str, database: str) -> None:
    clock = Clock()
    clock.now += 61
    async with App(database, clock=clock, purge_interval=None, encryption=None) as app:
        order_v2 = inserted
        app.workflow(order_v1, name="order")  # runs in flight finish on this
        app.workflow(order_v2, name="order-v2")  # new runs start on this
        new_run = await app.workflows.start("order-v2", "o-2")
        await drive(app)
        assert await app.workflows.result(in_flight) == ["paid o-1", "reserved o-1"]
        assert (await app.workflows.status(new_run)).status == "sleeping"
    assert ran == ["audit", "charge", "reserve"]


# --- patching ----------------------------------------------------------------------


async def order_patched(ctx: WorkflowContext, order_id: str) -> list[str]:
    if await ctx.patched("audit-before-charge"):
        await ctx.step(audit, order_id)  # the change
    paid = await ctx.step(charge, order_id)  # old and new runs
    reserved = await ctx.step(reserve, order_id)
    await ctx.sleep(60)
    return [paid, reserved]


async def test_a_patched_change_leaves_runs_in_flight_on_their_path(
    in_flight: str, database: str
) -> None:
    status = await deploy(database, order_patched, in_flight)
    assert (status.status, status.output) == ("succeeded", ["paid o-1", "reserved o-1"])
    assert ran == []  # the old path, replayed: 'audit' did not run


# --- versions ------------------------------------------------------------------------


async def test_runs_stay_on_their_version_until_moved(in_flight: str, database: str) -> None:
    clock = Clock()
    clock.now += 61  # the sleep is over
    async with App(database, clock=clock, purge_interval=None, encryption=None) as new:
        new.workflow(order_patched, name="order")
        await drive(new)
        assert (await new.workflows.status(in_flight)).status == "sleeping"  # pinned
        old_version = code_version("order", order_v1)
        new_version = new.workflows.versions.of("order")
        assert new_version is not None
        await new.workflows.move_version(old_version, new_version, name="order")
        await drive(new)
        assert await new.workflows.result(in_flight) == ["paid o-1", "reserved o-1"]
    assert ran == []


# --- a saga compensates on a code change ------------------------------------------------


async def refund(payment: str) -> None:
    ran.append("refund")


async def saga_v1(ctx: WorkflowContext, order_id: str) -> str:
    async with ctx.saga() as saga:
        await saga.step(charge, order_id, compensate=refund)
        await ctx.sleep(60)
    return "done"


async def saga_v2(ctx: WorkflowContext, order_id: str) -> str:
    async with ctx.saga() as saga:
        await saga.step(charge, order_id, compensate=refund)
        await saga.step(audit, order_id)  # inserted before the recorded sleep
        await ctx.sleep(60)
    return "done"


async def test_a_mismatch_inside_a_saga_compensates_nothing(database: str) -> None:
    ran.clear()
    async with App(database, clock=Clock(), purge_interval=None, encryption=None) as app:
        app.workflow(saga_v1, name="order")
        run = await app.workflows.start("order", "o-3")
        await drive(app)
    status = await deploy(database, saga_v2, run)
    assert status.status == "failed"
    assert status.error is not None and status.error.type == "NonDeterminismError"
    assert ran == ["charge"]  # a code change refunds nothing


def test_the_doc_shows_what_these_tests_check() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "workflow-code-changes.md").read_text()
    here = Path(__file__).read_text()
    shown = re.findall(r"^workflow 'o-1' reached position .*$", doc, re.MULTILINE)
    assert shown, "the doc quotes no NonDeterminismError message"
    flat = " ".join(here.split()).replace('" "', "")
    for message in shown:
        assert message.endswith(ADVICE)
        assert message.removesuffix(ADVICE) in flat
    for block in re.findall(r"```python\n(.*?)```", doc, re.DOTALL):
        for line in block.strip().splitlines():
            assert line.strip() in here, f"the doc shows code these tests do not run: {line}"
