"""Durable streams on SQLite and PostgreSQL (``ctx.write_stream``): every value once, in
order, to a reader that starts late, one that resumes from an offset and one that reads
live while the run goes on; replays write nothing again; a close ends the readers; the
stream goes with its workflow when it is purged; values are sealed like every payload."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from statekeeper import App, Keyring
from statekeeper.errors import InvalidValue, ValidationError, WorkflowNotFound
from statekeeper.workflows import WorkflowContext
from tests.conftest import FakeClock
from tests.support import drive


def declare(app: App) -> None:
    @app.workflow(name="ticker")
    async def ticker(ctx: WorkflowContext, n: int) -> int:
        for i in range(n):
            await ctx.write_stream("ticks", {"i": i})
            if i == n // 2:
                await ctx.sleep(1)  # the run ends here: a replay writes nothing again
        await ctx.write_stream("other", "done")
        return n

    @app.workflow(name="closer")
    async def closer(ctx: WorkflowContext, _: None) -> str:
        await ctx.write_stream("s", 1)
        await ctx.close_stream("s")
        try:
            await ctx.write_stream("s", 2)
        except ValidationError as refused:
            await ctx.write_stream("log", refused.message)
        await ctx.wait_for_event("never", timeout=3600)
        return "never"


ATTEMPTS: list[int] = []


def declare_flaky(app: App) -> None:
    @app.workflow(name="flaky")
    async def flaky(ctx: WorkflowContext, _: None) -> str:
        await ctx.write_stream("s", "a")
        await ctx.write_stream("s", "b")
        ATTEMPTS.append(1)
        if len(ATTEMPTS) == 1:
            raise RuntimeError("first run fails")
        await ctx.write_stream("s", "c")
        return "ok"


async def values(app: App, id: str, key: str, offset: int = 0) -> list[Any]:
    return [v async for v in app.workflows.read_stream(id, key, offset=offset)]


async def test_a_late_reader_gets_every_value_once_in_order(app: App, clock: FakeClock) -> None:
    declare(app)
    run = await app.workflows.start("ticker", 10, id="t1")
    await drive(app)
    clock.advance(2)
    await drive(app)
    assert await app.workflows.result(run, timeout=5) == 10
    assert await values(app, run, "ticks") == [{"i": i} for i in range(10)]
    assert await values(app, run, "ticks", offset=7) == [{"i": i} for i in range(7, 10)]
    assert await values(app, run, "other") == ["done"]
    assert await values(app, run, "none") == []  # never written: ends with the workflow
    page = await app.workflows.streams.page(run, "ticks", 8)
    assert [(e.offset, e.value) for e in page.entries] == [(8, {"i": 8}), (9, {"i": 9})]
    assert page.done and not page.closed


async def test_a_live_reader_and_a_resumed_one_see_every_value_once(live_app: App) -> None:
    app = live_app
    declare(app)
    run = await app.workflows.start("ticker", 40, id="t2")
    seen: list[Any] = []

    async def read_then_drop() -> None:  # a reader that disconnects after 5 values
        async for value in app.workflows.read_stream(run, "ticks"):
            seen.append(value)
            if len(seen) == 5:
                return

    reader = asyncio.create_task(read_then_drop())
    worker = app.worker(poll=0.05)
    working = asyncio.create_task(worker.run())
    await asyncio.wait_for(reader, 10)
    resumed = await asyncio.wait_for(values(app, run, "ticks", offset=len(seen)), 10)
    worker.stop()
    await working
    assert seen + resumed == [{"i": i} for i in range(40)]


async def test_a_close_ends_the_readers_and_refuses_more(app: App) -> None:
    declare(app)
    run = await app.workflows.start("closer", None, id="c1")
    await drive(app)
    assert (await app.workflows.status(run)).status == "waiting"  # still running
    assert await asyncio.wait_for(values(app, run, "s"), 5) == [1]  # ends at the close
    [refusal] = [v async for v in _first(app, run, "log", 1)]
    assert "is closed" in refusal


async def _first(app: App, run: str, key: str, count: int) -> Any:
    async for value in app.workflows.read_stream(run, key):
        yield value
        count -= 1
        if count == 0:
            return


async def test_the_stream_goes_with_its_purged_workflow(app: App, clock: FakeClock) -> None:
    declare(app)
    run = await app.workflows.start("ticker", 2, id="t3")
    await drive(app)
    clock.advance(2)
    await drive(app)
    assert await values(app, run, "ticks") == [{"i": 0}, {"i": 1}]
    await app.workflows.purge(run)
    with pytest.raises(WorkflowNotFound):
        await values(app, run, "ticks")
    rows = await app.backend.workflow_messages.stream(app.namespace, run, "ticks", 0, 10)
    assert rows == []


async def test_bad_reads_are_refused(app: App) -> None:
    declare(app)
    run = await app.workflows.start("ticker", 1, id="t4")
    with pytest.raises(InvalidValue):
        await values(app, run, "ticks", offset=-1)
    with pytest.raises(ValidationError):
        await values(app, run, "bad key!")
    with pytest.raises(WorkflowNotFound):
        await values(app, "no-such-run", "ticks")


async def test_values_are_sealed(database_url: str, namespace: str, clock: FakeClock) -> None:
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=keyring) as app:  # fmt: skip
        declare(app)
        run = await app.workflows.start("ticker", 2, id="t5")
        await drive(app)
        clock.advance(2)
        await drive(app)
        rows = await app.backend.workflow_messages.stream(app.namespace, run, "ticks", 0, 10)
        assert rows and all(value is not None and b'"i"' not in value for _, value, *_ in rows)
        assert await values(app, run, "ticks") == [{"i": 0}, {"i": 1}]


async def test_a_fork_writes_its_own_stream(app: App, clock: FakeClock) -> None:
    declare(app)
    run = await app.workflows.start("ticker", 4, id="t6")
    await drive(app)
    clock.advance(2)
    await drive(app)
    forked = await app.workflows.fork(run, from_position=4, new_id="t6-fork")
    await drive(app)
    clock.advance(2)
    await drive(app)
    assert await app.workflows.result(forked, timeout=5) == 4
    assert await values(app, forked, "ticks") == [{"i": i} for i in range(4)]


async def test_a_rewind_forgets_what_the_run_wrote_from_there(app: App) -> None:
    ATTEMPTS.clear()
    declare_flaky(app)
    run = await app.workflows.start("flaky", None, id="r1")
    await drive(app)
    assert (await app.workflows.status(run)).status == "failed"
    assert await values(app, run, "s") == ["a", "b"]
    await app.workflows.rewind(run, 2)  # from the second write on
    await drive(app)
    assert await app.workflows.result(run, timeout=5) == "ok"
    assert await values(app, run, "s") == ["a", "b", "c"]  # "b" once, at its offset
