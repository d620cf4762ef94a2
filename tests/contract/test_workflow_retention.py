"""Retention of finished workflow runs, on SQLite and PostgreSQL: a run that finished
more than its retention ago (``App(workflow_retention=...)``, or its workflow's own) is
purged with its journal and events by the app's upkeep (``forget_old_records``), in
bounded batches; unfinished runs, and runs without a retention, are kept. The purge
covers every namespace of the database, so each test has a database of its own."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from typing import Any

import pytest

from statekeeper import App
from statekeeper.errors import ConfigurationError, WorkflowNotFound
from statekeeper.workflows import WorkflowContext
from tests.conftest import FakeClock
from tests.support import drive

HOUR = 3600.0


async def short(ctx: WorkflowContext, item: str) -> str:
    await ctx.step(echo, item)
    return item


async def waits(ctx: WorkflowContext, item: str) -> Any:
    return await ctx.wait_for_event("go")


async def echo(item: str) -> str:
    return item


async def fails(ctx: WorkflowContext, item: str) -> str:
    raise RuntimeError("no")


def make_app(url: str, namespace: str, clock: FakeClock, **options: Any) -> App:
    return App(
        url, namespace=namespace, clock=clock, purge_interval=None, encryption=None, **options
    )


async def exists(app: App, id: str) -> bool:
    try:
        await app.workflows.status(id)
    except WorkflowNotFound:
        return False
    return True


async def test_finished_runs_are_purged_after_the_retention(
    own_database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(own_database_url, namespace, clock, workflow_retention=HOUR) as app:
        app.workflow(short)
        app.workflow(waits)
        done = await app.workflows.start(short, "a")
        waiting = await app.workflows.start(waits, "b")
        await drive(app)
        await app.workflows.send_event(waiting, "early", 1)  # an event it never waits for
        assert len(await app.workflows.history(done)) == 1
        clock.advance(HOUR - 1)
        assert await app.forget_old_records() == 0
        assert await exists(app, done)
        clock.advance(2)
        assert await app.forget_old_records() == 1
        assert not await exists(app, done)
        assert await app.backend.workflows.history(namespace, done) == []
        assert await exists(app, waiting)  # unfinished: kept however old
        await app.workflows.send_event(waiting, "go", 2)
        await drive(app)
        clock.advance(HOUR + 1)
        assert await app.forget_old_records() == 1
        assert not await exists(app, waiting)
        assert await app.backend.workflows.event_data(namespace, waiting, "early") == (False, None)


async def test_a_workflow_retention_overrides_the_global_one(
    own_database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(own_database_url, namespace, clock, workflow_retention=10 * HOUR) as app:
        app.workflow(short)
        app.workflow(fails, retention=datetime.timedelta(hours=1))
        kept = await app.workflows.start(short, "a")
        failed = await app.workflows.start(fails, "b")
        await drive(app)
        assert (await app.workflows.status(failed)).status == "failed"
        clock.advance(HOUR + 1)
        assert await app.forget_old_records() == 1
        assert not await exists(app, failed) and await exists(app, kept)
        clock.advance(9 * HOUR)
        assert await app.forget_old_records() == 1
        assert not await exists(app, kept)


async def test_without_a_retention_runs_are_kept(
    own_database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(own_database_url, namespace, clock) as app:
        app.workflow(short)
        app.workflow(fails, retention=HOUR)
        kept = await app.workflows.start(short, "a")
        failed = await app.workflows.start(fails, "b")
        await drive(app)
        clock.advance(1000 * HOUR)
        assert await app.forget_old_records() == 1
        assert await exists(app, kept) and not await exists(app, failed)


async def test_a_retried_run_is_not_purged_while_it_runs_again(
    own_database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(own_database_url, namespace, clock, workflow_retention=HOUR) as app:
        app.workflow(fails)
        run = await app.workflows.start(fails, "a")
        await drive(app)
        await app.workflows.retry(run)  # pending again: no purge time
        clock.advance(2 * HOUR)
        assert await app.forget_old_records() == 0
        assert (await app.workflows.status(run)).status == "pending"
        await drive(app)  # fails again: purged an hour after this finish
        clock.advance(HOUR - 1)
        assert await app.forget_old_records() == 0
        clock.advance(2)
        assert await app.forget_old_records() == 1


async def test_purges_go_in_bounded_batches_across_namespaces(
    own_database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(own_database_url, namespace, clock, workflow_retention=HOUR) as app:
        other = app.in_namespace(namespace + "_b")
        for flows in (app.workflows, other.workflows):
            flows.register(short)
            for n in range(12):
                await flows.start("short", f"r{n}")
        await drive(app)
        await drive(other)
        clock.advance(HOUR + 1)
        purged = await app.backend.workflows.purge_expired(clock(), 10)
        assert purged == 10  # one batch
        assert await app.forget_old_records(batch=5) == 14  # the rest, 5 at a time
        assert await app.workflows.list() == [] and await other.workflows.list() == []


def test_retention_options_are_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    for bad in (0, -5, "1h", True, float("nan")):
        with pytest.raises(ConfigurationError, match="retention"):
            App(url, workflow_retention=bad)  # type: ignore[arg-type]
    app = App(url)
    with pytest.raises(ConfigurationError, match="retention"):
        app.workflow(short, retention=-1)
    monkeypatch.setenv("STATEKEEPER_WORKFLOW_RETENTION", "7200")
    assert App(url).workflows.retention.default == 7200.0
    monkeypatch.setenv("STATEKEEPER_WORKFLOW_RETENTION", "two hours")
    with pytest.raises(ConfigurationError, match="STATEKEEPER_WORKFLOW_RETENTION"):
        App(url)


async def tagged(ctx: WorkflowContext, item: str) -> str:
    await ctx.set_attributes({"item": item})
    return item


async def test_a_purged_run_takes_its_searchable_attributes_with_it(
    own_database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(own_database_url, namespace, clock, workflow_retention=HOUR) as app:
        app.workflow(tagged)
        run = await app.workflows.start(tagged, "kept-until-purged")
        await drive(app)
        assert await app.workflows.attributes(run) == {"item": "kept-until-purged"}
        clock.advance(HOUR + 1)
        assert await app.forget_old_records() == 1
        assert await app.workflows.list(attributes={"item": "kept-until-purged"}) == []
        assert await app.backend.search.attributes(namespace, run) == []


async def talker(ctx: WorkflowContext, item: str) -> Any:
    got = await ctx.receive("inbox")
    await ctx.publish("seen", got)
    return got


async def test_a_purged_run_takes_its_mailbox_and_published_values_with_it(
    own_database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with make_app(own_database_url, namespace, clock, workflow_retention=HOUR) as app:
        app.workflow(talker)
        run = await app.workflows.start(talker, "x")
        await drive(app)
        await app.workflows.send_message(run, "inbox", {"n": 1})
        await drive(app)
        assert await app.workflows.get(run, "seen") == {"n": 1}
        messages = app.backend.workflow_messages
        assert await messages.next_message(namespace, run, "inbox", 0) is not None
        clock.advance(HOUR + 1)
        assert await app.forget_old_records() == 1
        assert await messages.next_message(namespace, run, "inbox", 0) is None
        assert await messages.value(namespace, run, "seen") is None


async def test_concurrent_purges_leave_no_journal_behind(
    own_database_url: str, namespace: str, clock: FakeClock
) -> None:
    """Three apps purge at once, in small batches: each batch is chosen once and its runs
    go with everything they own, so no journal is left without its run."""
    apps = [make_app(own_database_url, namespace, clock, workflow_retention=HOUR) for _ in "abc"]
    for opened in apps:
        await opened.open()
    try:
        app = apps[0]
        app.workflow(short)
        ids = [await app.workflows.start(short, f"r{n}") for n in range(60)]
        await drive(app)
        clock.advance(HOUR + 1)
        purged = 0
        while True:
            done = await asyncio.gather(
                *(a.backend.workflows.purge_expired(clock(), 4) for a in apps)
            )
            purged += sum(done)
            if not any(done):
                break
        assert purged == 60
        for run in ids:
            assert await app.backend.workflows.history(namespace, run) == []
    finally:
        for opened in apps:
            await opened.close()
