"""Transactional steps, on SQLite and PostgreSQL: a step's state writes and messages
commit in the same transaction as its journal entry, exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

from statekeeper import App
from statekeeper.state.transaction import Transaction
from statekeeper.workflows import StepFailed, WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock

built: list[str] = []


async def run_due(app: App, names: list[str]) -> None:
    runner = WorkflowRunner(app.workflows)
    for leased in await runner._lease(names, 8):
        await runner.execute(leased)


async def test_a_transaction_step_applies_its_effects_once(app: App, clock: FakeClock) -> None:
    built.clear()
    app.queue("shipping")

    def reserve(tx: Transaction) -> str:
        built.append("reserve")
        tx.put("stock:lamp", {"left": 4})
        tx.send("shipping", {"sku": "lamp"})
        return "reserved"

    @app.workflow
    async def order(ctx: WorkflowContext, _: Any) -> str:
        done = await ctx.transaction(reserve)
        await ctx.sleep(60)  # the run ends here; the next one replays the transaction
        return str(done)

    run = await app.workflows.start("order")
    await run_due(app, ["order"])
    item = await app.state.get("stock:lamp")
    assert item is not None and item.value == {"left": 4}
    first_etag = item.etag
    clock.advance(61)
    await run_due(app, ["order"])
    assert (await app.workflows.status(run)).output == "reserved"
    assert built == ["reserve"]  # replayed, not run again
    again = await app.state.get("stock:lamp")
    assert again is not None and again.etag == first_etag  # not written twice
    assert len(await app.queue("shipping").peek(10)) == 1
    [entry] = [e for e in await app.workflows.history(run) if e["kind"] == "transaction"]
    assert entry["name"].endswith("reserve") and entry["output"] == "reserved"


async def test_a_stale_runner_s_transaction_applies_nothing(app: App, clock: FakeClock) -> None:
    app.queue("shipping")
    gate = asyncio.Event()

    async def late(tx: Transaction) -> str:
        await gate.wait()
        tx.put("stock:chair", {"left": 1})
        tx.send("shipping", {"sku": "chair"})
        return "late"

    @app.workflow
    async def slow_order(ctx: WorkflowContext, _: Any) -> str:
        return str(await ctx.transaction(late))

    await app.workflows.start("slow_order")
    stale = WorkflowRunner(app.workflows)
    [old] = await stale._lease(["slow_order"], 1)
    stale_run = asyncio.create_task(stale.execute(old))
    await asyncio.sleep(0.05)
    clock.advance(app.workflows.lease + 1)
    fresh = WorkflowRunner(app.workflows)
    [new] = await fresh._lease(["slow_order"], 1)  # the fence moves on
    gate.set()
    await stale_run
    assert await app.state.get("stock:chair") is None
    assert await app.queue("shipping").peek(10) == []
    await fresh.execute(new)
    item = await app.state.get("stock:chair")
    assert item is not None and item.value == {"left": 1}
    assert len(await app.queue("shipping").peek(10)) == 1


async def test_a_failed_condition_applies_nothing_and_fails_the_step_for_good(
    app: App,
) -> None:
    app.queue("shipping")
    await app.state.put("stock:desk", {"left": 2})

    def take(tx: Transaction) -> None:
        tx.put("stock:desk", {"left": 1}, if_match="not-the-etag")
        tx.send("shipping", {"sku": "desk"})

    @app.workflow
    async def conflicted(ctx: WorkflowContext, _: Any) -> str:
        try:
            await ctx.transaction(take)
        except StepFailed as failed:
            return f"{failed.error_type} / {failed.error.message}"
        return "applied"

    run = await app.workflows.start("conflicted")
    await run_due(app, ["conflicted"])
    output = (await app.workflows.status(run)).output
    assert output.startswith("TransactionConflict / transaction not applied")
    item = await app.state.get("stock:desk")
    assert item is not None and item.value == {"left": 2}
    assert await app.queue("shipping").peek(10) == []


async def test_a_caught_failed_transaction_replays_as_it_ran(app: App, clock: FakeClock) -> None:
    def take(tx: Transaction) -> None:
        tx.put("stock:chair", {"left": 1}, if_match="not-the-etag")

    @app.workflow
    async def caught(ctx: WorkflowContext, _: Any) -> str:
        try:
            await ctx.transaction(take)
            outcome = "applied"
        except StepFailed:
            outcome = "refused"
        await ctx.sleep(10)  # the run ends here; the next one replays the transaction
        return outcome

    run = await app.workflows.start("caught")
    await run_due(app, ["caught"])
    assert (await app.workflows.status(run)).status == "sleeping"
    clock.advance(11)
    await run_due(app, ["caught"])
    status = await app.workflows.status(run)
    assert (status.status, status.output) == ("succeeded", "refused")
    history = await app.workflows.history(run)
    assert [h["kind"] for h in history] == ["transaction", "sleep"]
