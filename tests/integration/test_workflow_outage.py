"""A workflow whose checkpoint cannot be written because the database went away (here:
its connection terminated by the server, as a restart, a failover or a dead link ends
it) is given back, not failed, and its saga does not compensate: the run goes on from
its last checkpoint once the database takes writes again."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from statekeeper import App
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from statekeeper.workflows.runner import OUTAGE_RETRY
from tests.conftest import FakeClock, pg_dsn

pytestmark = pytest.mark.postgres


async def _cut_the_next_statement(schema: str, workflow_id: str, ready: asyncio.Event) -> None:
    """Hold the workflow's row locked, so that the run's next checkpoint waits on it;
    end that waiting connection from the server's side (as a restart or a failover
    ends it, mid-statement); then let go of the row."""
    admin = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
    try:
        async with admin.transaction():
            await admin.execute("SELECT 1 FROM sk_workflows WHERE id = $1 FOR UPDATE", workflow_id)
            ready.set()
            waiting = None
            while waiting is None:
                await asyncio.sleep(0.01)
                waiting = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                    admin.get_server_pid(),
                )
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", waiting)
    finally:
        await admin.close()


async def test_a_lost_connection_at_a_checkpoint_gives_the_workflow_back(
    fresh_pg_url: str,
) -> None:
    cut = {"done": False}
    ran: list[str] = []
    cutting: list[asyncio.Task[None]] = []
    ready = asyncio.Event()
    schema = parse_qs(urlsplit(fresh_pg_url).query)["schema"][0]
    clock = FakeClock(time.time())
    async with App(fresh_pg_url, purge_interval=None, clock=clock) as app:

        async def book(what: str) -> str:
            ran.append(what)
            return what

        async def unbook(what: str) -> None:
            ran.append(f"undo {what}")

        async def cut_the_connection() -> str:
            ran.append("cut")
            if not cut["done"]:  # once: the next run goes through
                cut["done"] = True
                cutting.append(
                    asyncio.create_task(_cut_the_next_statement(schema, "trip-1", ready))
                )
                await ready.wait()
            return "cut"

        @app.workflow
        async def trip(ctx: WorkflowContext, who: str) -> list[str]:
            async with ctx.saga() as saga:
                hotel = await saga.step(book, "hotel", compensate=unbook)
                gap = await ctx.step(cut_the_connection)  # its checkpoint fails
                flight = await saga.step(book, "flight", compensate=unbook)
            return [hotel, gap, flight]

        await app.workflows.start("trip", "ada", id="trip-1")
        runner = WorkflowRunner(app.workflows)
        await runner.run_due()  # the checkpoint after the cut fails: given back
        await cutting[0]
        status = await app.workflows.status("trip-1")
        assert status.status == "pending", status  # not failed
        assert runner.given_back == 1
        await runner.run_due()
        status = await app.workflows.status("trip-1")
        assert status.status == "pending"  # not due yet: an outage is not retried at once
        clock.advance(OUTAGE_RETRY)
        await runner.run_due()
        status = await app.workflows.status("trip-1")
        assert status.status == "succeeded", status
        assert status.output == ["hotel", "cut", "flight"]
    # The hotel step ran once (its checkpoint was kept); the step whose checkpoint was
    # lost ran again; nothing was compensated.
    assert ran == ["hotel", "cut", "cut", "flight"]
