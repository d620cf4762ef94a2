"""Entities called from workflows on SQLite and PostgreSQL (``ctx.call``): journaled, so
a replay returns the recorded result without calling again, a run resumed after a crash
between the entity's commit and the checkpoint gets the entity's recorded answer, and a
failing handler fails the call for good as StepFailed."""

from __future__ import annotations

from typing import Any

from statekeeper import App
from statekeeper.entities import EntityContext
from statekeeper.workflows import StepFailed, WorkflowContext
from tests.conftest import FakeClock
from tests.support import drive


def declare(app: App) -> list[str]:
    """A wallet entity and workflows that call it; the handler runs, in order."""
    runs: list[str] = []
    wallet = app.entity("wallet", initial=0)

    @wallet.handler
    def credit(ctx: EntityContext, amount: int) -> int:
        runs.append(f"credit {amount}")
        ctx.state += amount
        return int(ctx.state)

    @wallet.handler
    def debit(ctx: EntityContext, amount: int) -> int:
        runs.append(f"debit {amount}")
        if ctx.state < amount:
            raise ValueError(f"only {ctx.state} left")
        ctx.state -= amount
        return int(ctx.state)

    @wallet.handler(readonly=True)
    def balance(ctx: EntityContext) -> int:
        return int(ctx.state)

    @app.workflow(name="pay")
    async def pay(ctx: WorkflowContext, order: dict[str, Any]) -> dict[str, Any]:
        after_credit = await ctx.call("wallet", order["wallet"], "credit", order["credit"])
        await ctx.sleep(1)  # the run ends here and replays the call on resumption
        try:
            after_debit = await ctx.call("wallet", order["wallet"], "debit", order["debit"])
        except StepFailed as failed:
            return {"credited": after_credit, "refused": failed.error.message}
        seen = await ctx.call("wallet", order["wallet"], "balance")
        return {"credited": after_credit, "debited": after_debit, "balance": seen}

    @app.workflow(name="stray")
    async def stray(ctx: WorkflowContext, target: list[str]) -> str:
        try:
            await ctx.call(target[0], "k", target[1], 1)
        except StepFailed as failed:
            return failed.error.type
        return "called"

    return runs


async def test_a_workflow_calls_an_entity_once_per_call(app: App, clock: FakeClock) -> None:
    runs = declare(app)
    run = await app.workflows.start("pay", {"wallet": "w1", "credit": 10, "debit": 4}, id="p1")
    await drive(app)
    clock.advance(2)
    await drive(app)
    assert await app.workflows.result(run, timeout=5) == {
        "credited": 10, "debited": 6, "balance": 6,
    }  # fmt: skip
    assert runs == ["credit 10", "debit 4"]  # the replay after the sleep called nothing
    got = await app.entities.get("wallet", "w1")
    assert got is not None and (got.state, got.version) == (6, 2)
    history = [(h["kind"], h["name"]) for h in await app.workflows.history(run)]
    assert ("entity", "wallet.credit") in history and ("entity", "wallet.debit") in history


async def test_a_run_resumed_after_the_entity_committed_gets_its_answer(
    app: App, clock: FakeClock
) -> None:
    runs = declare(app)
    run = await app.workflows.start("pay", {"wallet": "w2", "credit": 5, "debit": 1}, id="p2")
    # As if an earlier run had committed the call and died before its checkpoint: the
    # call id is the workflow's (with its creation time), its run's and the position's.
    created = (await app.workflows.status(run)).created_at
    call_id = f"workflow:p2:{float(created)!r}:0:1"
    assert await app.entities.call_with_id("wallet", "w2", "credit", 5, call_id) == 5
    await drive(app)
    clock.advance(2)
    await drive(app)
    assert (await app.workflows.result(run, timeout=5))["credited"] == 5
    assert runs == ["credit 5", "debit 1"]  # credit ran once, for both
    got = await app.entities.get("wallet", "w2")
    assert got is not None and got.state == 4


async def test_a_failing_handler_fails_the_call_for_good(app: App, clock: FakeClock) -> None:
    runs = declare(app)
    run = await app.workflows.start("pay", {"wallet": "w3", "credit": 1, "debit": 50}, id="p3")
    await drive(app)
    clock.advance(2)
    await drive(app)
    result = await app.workflows.result(run, timeout=5)
    assert result == {"credited": 1, "refused": "only 1 left"}
    assert runs == ["credit 1", "debit 50"]
    got = await app.entities.get("wallet", "w3")
    assert got is not None and got.state == 1


async def test_unknown_entities_and_handlers_fail_the_call(app: App) -> None:
    declare(app)
    first = await app.workflows.start("stray", ["nope", "credit"])
    second = await app.workflows.start("stray", ["wallet", "nope"])
    third = await app.workflows.start("stray", ["bad name!", "credit"])
    await drive(app)
    assert await app.workflows.result(first, timeout=5) == "UnknownEntity"
    assert await app.workflows.result(second, timeout=5) == "UnknownEntityHandler"
    assert await app.workflows.result(third, timeout=5) == "InvalidIdentifier"
