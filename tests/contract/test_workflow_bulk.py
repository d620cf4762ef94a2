"""Bulk operator operations: cancel, pause, resume and retry by filter, with a count
and a dry run that changes nothing; batches walk a keyset cursor; repeating is safe."""

from __future__ import annotations

from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.errors import InvalidFilter
from statekeeper.workflows import WorkflowContext
from tests.conftest import FakeClock
from tests.support import drive

failing = {"on": True}


def register(app: App) -> None:
    @app.function
    async def flaky(n: int) -> int:
        if failing["on"] and n % 2:
            raise ValueError("down")
        return n

    @app.workflow
    async def waiter(ctx: WorkflowContext, n: int) -> int:
        await ctx.set_attributes({"tenant": f"t{n % 2}", "n": n})
        await ctx.wait_for_event("go")
        return n

    @app.workflow
    async def job(ctx: WorkflowContext, n: int) -> int:
        await ctx.set_attributes({"tenant": f"t{n % 2}", "n": n})
        return await ctx.step(flaky, n, retry=Retry(max_attempts=1))


async def statuses(app: App, ids: list[str]) -> list[str]:
    return [(await app.workflows.status(i)).status for i in ids]


async def start(app: App, clock: FakeClock, name: str, count: int) -> list[str]:
    runs: list[str] = []
    for n in range(count):
        runs.append(await app.workflows.start(name, n, id=f"{name}-{n:02d}"))
        clock.advance(1)
    await drive(app)
    return runs


async def test_a_dry_run_counts_and_samples_and_changes_nothing(app: App, clock: FakeClock) -> None:
    register(app)
    runs = await start(app, clock, "waiter", 7)
    result = await app.workflows.bulk(
        "cancel", name="waiter", attributes={"tenant": "t1"}, dry_run=True
    )
    assert result.dry_run and result.matched == 3 and result.changed == 0
    assert result.sample == ["waiter-05", "waiter-03", "waiter-01"]
    assert await statuses(app, runs) == ["waiting"] * 7
    assert not any([(await app.workflows.status(r)).paused for r in runs])


async def test_bulk_cancel_walks_every_batch_and_is_safe_to_repeat(
    app: App, clock: FakeClock
) -> None:
    register(app)
    runs = await start(app, clock, "waiter", 7)
    result = await app.workflows.bulk(
        "cancel", status="waiting", attributes={"n": {"gte": 1}}, batch=2
    )
    assert (result.matched, result.changed, result.skipped) == (6, 6, 0)
    await drive(app)
    assert await statuses(app, runs) == ["waiting"] + ["cancelled"] * 6
    again = await app.workflows.bulk("cancel", attributes={"n": {"gte": 1}}, batch=2)
    assert (again.matched, again.changed, again.skipped) == (6, 0, 6)
    assert await statuses(app, runs) == ["waiting"] + ["cancelled"] * 6


async def test_bulk_pause_then_resume_by_time_range(app: App, clock: FakeClock) -> None:
    register(app)
    start_time = clock()
    runs = await start(app, clock, "waiter", 6)
    paused = await app.workflows.bulk(
        "pause", created_after=start_time + 2, created_before=start_time + 5
    )
    assert (paused.matched, paused.changed) == (3, 3)
    assert [(await app.workflows.status(r)).paused for r in runs] == [
        False, False, True, True, True, False,
    ]  # fmt: skip
    for run in runs:
        await app.workflows.send_event(run, "go", None)
    await drive(app)
    assert await statuses(app, runs) == [
        "succeeded",
        "succeeded",
        "waiting",
        "waiting",
        "waiting",
        "succeeded",
    ]
    resumed = await app.workflows.bulk("resume", status="waiting")
    assert (resumed.matched, resumed.changed) == (3, 3)
    await drive(app)
    assert await statuses(app, runs) == ["succeeded"] * 6


async def test_bulk_retry_of_the_failed_runs_of_one_tenant(app: App, clock: FakeClock) -> None:
    register(app)
    failing["on"] = True
    runs = await start(app, clock, "job", 6)
    assert await statuses(app, runs) == ["succeeded", "failed"] * 3
    dry = await app.workflows.bulk(
        "retry", status="failed", attributes={"tenant": "t1"}, dry_run=True
    )
    assert dry.matched == 3 and dry.sample == ["job-05", "job-03", "job-01"]
    failing["on"] = False
    try:
        done = await app.workflows.bulk(
            "retry", status="failed", attributes={"tenant": "t1"}, batch=1
        )
        assert (done.matched, done.changed) == (3, 3)
        await drive(app)
        assert await statuses(app, runs) == ["succeeded"] * 6
        # Nothing is failed now: a repeat matches nothing.
        assert (await app.workflows.bulk("retry", status="failed")).matched == 0
    finally:
        failing["on"] = True


@pytest.mark.parametrize(
    ("operation", "options"),
    [
        ("delete", {}),
        ("cancel", {"status": "gone"}),
        ("cancel", {"status": "waiting", "batch": 0}),
        ("retry", {"attributes": {"n": {"near": 1}}}),
        ("cancel", {}),
    ],
    ids=["operation", "status", "batch", "bounds", "no-filter"],
)
async def test_hostile_bulk_requests_are_refused(
    app: App, operation: str, options: dict[str, Any]
) -> None:
    with pytest.raises(InvalidFilter):
        await app.workflows.bulk(operation, **options)


async def test_every_workflow_only_when_asked(app: App, clock: FakeClock) -> None:
    register(app)
    runs = await start(app, clock, "waiter", 3)
    dry = await app.workflows.bulk("pause", all_workflows=True, dry_run=True)
    assert dry.matched == 3
    done = await app.workflows.bulk("pause", all_workflows=True)
    assert done.changed == 3
    assert all([(await app.workflows.status(r)).paused for r in runs])
