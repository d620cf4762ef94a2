"""The complete example of docs/testing-workflows.md: testing workflows on a temporary
SQLite file with a fake clock. The guide quotes this file; a test below checks that
every code block of the guide appears here, so the guide cannot drift from code that runs.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.errors import WorkflowFailed
from statekeeper.workflows import WorkflowContext, WorkflowRunner

# --- the code under test ---


charged: list[str] = []  # what the steps did, so tests can count it
shipped: list[str] = []


async def charge(order_id: str, total: int) -> str:
    if total <= 0:
        raise ValueError(f"cannot charge {total}")
    charged.append(order_id)
    return f"payment-{order_id}"


async def ship(order_id: str) -> str:
    shipped.append(order_id)
    return f"parcel-{order_id}"


async def order(ctx: WorkflowContext, request: dict[str, Any]) -> dict[str, Any]:
    payment = await ctx.step(charge, request["id"], request["total"], non_retryable=(ValueError,))
    approval = await ctx.wait_for_event("approved", timeout=24 * 3600)
    await ctx.sleep(3600)  # an hour to cancel, before shipping
    parcel = await ctx.step(ship, request["id"])
    return {"payment": payment, "by": approval["by"], "parcel": parcel}


# --- the harness ---


class Clock:
    """Unix seconds that move only when the test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(tmp_path: Path, clock: Clock) -> AsyncIterator[App]:
    test_app = App(
        f"sqlite:///{tmp_path}/state.db",  # a new database file for each test
        clock=clock,  # durable sleeps, timeouts and leases read this clock
        purge_interval=None,  # no background purging during a test
        encryption=None,  # whatever keys the environment holds
    )
    test_app.workflow(order)  # register the workflows under test
    async with test_app:
        yield test_app


@pytest.fixture(autouse=True)
def forget_effects() -> None:
    charged.clear()
    shipped.clear()


async def drive(app: App, rounds: int = 20) -> None:
    """Run every workflow that is due now until none is left: each run goes on until
    it finishes, sleeps or waits for an event."""
    runner = WorkflowRunner(app.workflows)
    for _ in range(rounds):
        if not await runner.run_due():
            return


# --- the tests ---


async def test_an_order_runs_to_the_end(app: App, clock: Clock) -> None:
    run = await app.workflows.start(order, {"id": "o-1", "total": 30}, id="order-o-1")
    await drive(app)
    assert (await app.workflows.status(run)).status == "waiting"  # for "approved"

    await app.workflows.send_event(run, "approved", {"by": "ada"})
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"  # the hour to cancel
    assert shipped == []

    clock.advance(3600)
    await drive(app)
    result = await app.workflows.result(run)
    assert result == {"payment": "payment-o-1", "by": "ada", "parcel": "parcel-o-1"}
    history = await app.workflows.history(run)
    assert [(entry["kind"], entry["name"]) for entry in history] == [
        ("step", "charge"),
        ("wait", "approved"),
        ("event", "approved"),
        ("sleep", "sleep"),
        ("step", "ship"),
    ]
    assert charged == ["o-1"]  # every run replayed the journal: charged once


async def test_a_declined_charge_fails_the_order(app: App) -> None:
    run = await app.workflows.start(order, {"id": "o-2", "total": 0})
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "failed"
    assert status.error is not None
    assert status.error.type == "ValueError"  # the step's error type is kept
    assert status.error.message == "step 'charge' failed: cannot charge 0"
    with pytest.raises(WorkflowFailed) as failed:
        await app.workflows.result(run)
    assert failed.value.error == status.error


async def test_no_approval_within_a_day(app: App, clock: Clock) -> None:
    run = await app.workflows.start(order, {"id": "o-3", "total": 30})
    await drive(app)
    clock.advance(24 * 3600)
    await drive(app)
    status = await app.workflows.status(run)
    assert (status.status, status.error and status.error.type) == ("failed", "EventTimeout")


# --- retries ---


flaky_calls: list[float] = []


async def flaky(times: int) -> str:
    """Fails ``times`` times, then succeeds."""
    flaky_calls.append(0.0)
    if len(flaky_calls) <= times:
        raise ConnectionError(f"refused on attempt {len(flaky_calls)}")
    return "done"


async def quick_retries(ctx: WorkflowContext, times: int) -> str:
    return await ctx.step(flaky, times, retry=Retry(max_attempts=3, initial_interval=0))


async def slow_retries(ctx: WorkflowContext, times: int) -> str:
    retry = Retry(max_attempts=3, initial_interval=60, jitter=False)  # wait exactly 60 s
    return await ctx.step(flaky, times, retry=retry)


async def test_a_step_is_retried_until_it_succeeds(app: App) -> None:
    flaky_calls.clear()
    app.workflow(quick_retries)
    run = await app.workflows.start(quick_retries, 2)
    await drive(app)
    assert await app.workflows.result(run) == "done"
    [entry] = await app.workflows.history(run)
    assert (entry["kind"], entry["attempts"], entry["error"]) == ("step", 3, None)


async def test_a_long_backoff_is_a_durable_sleep(app: App, clock: Clock) -> None:
    flaky_calls.clear()
    app.workflow(slow_retries)
    run = await app.workflows.start(slow_retries, 1)
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"  # until the retry
    [entry] = await app.workflows.history(run)
    assert (entry["kind"], entry["attempts"]) == ("attempt", 1)
    assert entry["error"]["type"] == "ConnectionError"

    clock.advance(60)
    await drive(app)
    assert await app.workflows.result(run) == "done"
    assert len(flaky_calls) == 2


# --- crashes and replay ---


async def test_a_second_runner_replays_the_journal(app: App) -> None:
    run = await app.workflows.start(order, {"id": "o-4", "total": 30})
    await drive(app)  # charged; waiting for approval
    await app.workflows.send_event(run, "approved", {"by": "ada"})
    await drive(app)  # another runner: the charge comes from the journal
    assert charged == ["o-4"]


async def test_a_step_cut_short_runs_again_elsewhere(app: App, clock: Clock) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def pack(order_id: str) -> str:
        started.set()
        await finish.wait()
        return f"box-{order_id}"

    async def packing(ctx: WorkflowContext, order_id: str) -> list[str]:
        payment = await ctx.step(charge, order_id, 10)
        box = await ctx.step(pack, order_id)
        return [payment, box]

    app.workflow(packing)
    run = await app.workflows.start(packing, "o-5")
    first = WorkflowRunner(app.workflows)
    [leased] = await first.lease(1)
    crashed = asyncio.create_task(first.execute(leased))
    await started.wait()
    crashed.cancel()  # the process dies in the middle of "pack"
    await asyncio.gather(crashed, return_exceptions=True)

    clock.advance(app.workflows.lease + 1)  # its lease ends
    finish.set()
    await drive(app)  # another runner resumes it
    assert await app.workflows.result(run) == ["payment-o-5", "box-o-5"]
    assert charged == ["o-5"]  # the finished step did not run again; "pack" did


# --- the guide quotes this file ---


def test_the_guide_quotes_this_file() -> None:
    root = Path(__file__).parents[2]
    guide = (root / "docs" / "testing-workflows.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
    assert blocks, "the guide has no python code blocks"
    here = Path(__file__).read_text()
    missing = [block for block in blocks if block not in here]
    assert missing == [], "docs/testing-workflows.md shows code that is not in this file"
