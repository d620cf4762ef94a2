"""Purging workflows on SQLite and PostgreSQL: a finished workflow's record, journal
and events go in one transaction, a running one is refused, and the id is free again."""

from __future__ import annotations

import pytest

from statekeeper import App
from statekeeper.errors import WorkflowNotFinished, WorkflowNotFound
from statekeeper.workflows import WorkflowContext
from tests.support import drive


async def test_a_finished_workflow_is_purged_with_its_journal_and_events(app: App) -> None:
    async def double(n: int) -> int:
        return n * 2

    @app.workflow(name="waits")
    async def waits(ctx: WorkflowContext, n: int) -> int:
        extra = await ctx.wait_for_event("go")
        return await ctx.step(double, n) + int(extra)

    await app.workflows.start("waits", 4, id="p1")
    await app.workflows.start("waits", 5, id="p2")
    await drive(app)
    with pytest.raises(WorkflowNotFinished):
        await app.workflows.purge("p1")  # waiting: it runs, and is not purged
    assert (await app.workflows.status("p1")).status == "waiting"

    await app.workflows.send_event("p1", "go", 1)
    await app.workflows.send_event("p2", "go", 2)
    await drive(app)
    assert await app.workflows.result("p1", timeout=1) == 9
    assert await app.workflows.history("p1")

    await app.workflows.purge("p1")
    with pytest.raises(WorkflowNotFound):
        await app.workflows.status("p1")
    with pytest.raises(WorkflowNotFound):
        await app.workflows.purge("p1")
    assert await app.workflows.result("p2", timeout=1) == 12  # another one is untouched
    assert len(await app.workflows.history("p2")) >= 1

    # The id starts afresh: no journal entry or event of the purged run is replayed.
    await app.workflows.start("waits", 7, id="p1")
    await drive(app)
    assert (await app.workflows.status("p1")).status == "waiting"
    await app.workflows.send_event("p1", "go", 3)
    await drive(app)
    assert await app.workflows.result("p1", timeout=1) == 17
