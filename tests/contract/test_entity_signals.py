"""Entity signals, reminders and workflow starts on SQLite and PostgreSQL: a signal is
stored before it returns and run once by a worker (a redelivery gets the recorded
answer); what a handler signals, reminds and starts commits with its call, and nothing
of it when the handler fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from statekeeper import App
from statekeeper.entities import EntityContext
from statekeeper.entities.signals import ENTITY_CALLS
from statekeeper.errors import (
    EntityCallFailed,
    ErrorRecord,
    InvalidIdentifier,
    UnknownEntity,
    UnknownEntityHandler,
    UnknownWorkflow,
)
from statekeeper.queues.requests import request_status
from statekeeper.workflows import WorkflowContext
from tests.support import drive, run_until


def declare(app: App) -> list[str]:
    """A counter whose handlers signal, remind and start workflows; what ``done`` saw."""
    seen: list[str] = []
    counter = app.entity("counter", initial=0)

    @counter.handler
    def increment(ctx: EntityContext, by: int = 1) -> int:
        ctx.state += by
        return int(ctx.state)

    @counter.handler
    def fail(ctx: EntityContext) -> None:
        ctx.state += 100
        ctx.signal("counter", "other", "increment", 1)
        ctx.start_workflow("greet", "never")
        raise RuntimeError("no")

    @counter.handler
    def fan_out(ctx: EntityContext, keys: list[str]) -> None:
        for key in keys:
            ctx.signal("counter", key, "increment", 10)

    @counter.handler
    def arm(ctx: EntityContext, delay: float) -> None:
        ctx.state = "armed"
        ctx.remind("ring", "now", delay=delay)

    @counter.handler
    def ring(ctx: EntityContext, note: str) -> None:
        ctx.state = f"rang {note}"
        seen.append(ctx.key)

    @counter.handler
    def kick_off(ctx: EntityContext, name: str) -> str:
        ctx.state += 1
        return ctx.start_workflow("greet", name, id=f"greet-{ctx.key}-{ctx.state}")

    @counter.handler
    def start_unknown(ctx: EntityContext) -> None:
        ctx.state += 1
        ctx.start_workflow("no-such-workflow")

    @counter.handler
    def signal_unknown(ctx: EntityContext) -> None:
        ctx.signal("counter", "k", "no_such_handler")

    @counter.handler(readonly=True)
    def peek_and_start(ctx: EntityContext) -> None:
        ctx.start_workflow("greet", "x")

    @app.workflow(name="greet")
    async def greet(ctx: WorkflowContext, name: str) -> str:
        return f"hello {name}"

    return seen


async def settled(app: App, ids: list[str], limit: float = 10.0) -> list[dict[str, Any]]:
    """Run a worker until every request in ``ids`` ended; their status documents."""
    worker = app.worker(poll=0.05)
    documents: dict[str, dict[str, Any]] = {}

    async def check() -> None:
        for id in ids:
            found = await request_status(app.backend, app.namespace, id, app.sealer)
            if found is not None and found["status"] in ("succeeded", "dead-lettered"):
                documents[id] = found

    task = asyncio.create_task(run_until(worker, lambda: len(documents) == len(ids), limit))
    while not task.done():
        await check()
        await asyncio.sleep(0.05)
    await task
    return [documents[id] for id in ids]


async def test_a_signal_is_stored_then_run_once_by_a_worker(live_app: App) -> None:
    declare(live_app)
    ids = [await live_app.entities.signal("counter", "s", "increment", n) for n in (1, 2, 3)]
    assert len(set(ids)) == 3
    assert await live_app.entities.get("counter", "s") is None  # stored, not yet run
    documents = await settled(live_app, ids)
    assert {d["status"] for d in documents} == {"succeeded"}
    assert sorted(d["result"] for d in documents)[-1] == 6
    got = await live_app.entities.get("counter", "s")
    assert got is not None and (got.state, got.version) == (6, 3)


async def test_a_redelivered_signal_gets_its_recorded_answer(app: App) -> None:
    declare(app)
    await app.entities.signal("counter", "r", "increment", 5)
    [message] = await app.queue(ENTITY_CALLS).receive()
    assert await app.entities.deliver(message) == 5
    assert await app.entities.deliver(message) == 5  # as after a crash before the ack
    got = await app.entities.get("counter", "r")
    assert got is not None and (got.state, got.version) == (5, 1)


async def test_a_signal_with_a_dedup_id_is_stored_once(app: App) -> None:
    declare(app)
    first = await app.entities.signal("counter", "d", "increment", 1, dedup_id="once")
    again = await app.entities.signal("counter", "d", "increment", 1, dedup_id="once")
    assert first == again
    assert (await app.queue(ENTITY_CALLS).stats()).ready == 1


async def test_a_failing_signal_is_dead_lettered_at_once_with_its_error(live_app: App) -> None:
    declare(live_app)
    failing = await live_app.entities.signal("counter", "f", "fail")
    [document] = await settled(live_app, [failing])
    assert document["status"] == "dead-lettered" and document["attempts"] == 1
    assert document["error"]["type"] == "EntityCallFailed"
    assert "no" in document["error"]["message"]
    got = await live_app.entities.get("counter", "f")  # only its answer was recorded
    assert got is not None and (got.state, got.version) == (0, 0)
    assert await live_app.entities.get("counter", "other") is None  # nothing signalled
    assert await live_app.workflows.list() == []  # nothing started


async def test_signals_from_a_handler_commit_with_it(live_app: App) -> None:
    declare(live_app)
    keys = [f"k{n}" for n in range(5)]
    await live_app.entities.call("counter", "hub", "fan_out", keys)
    assert (await live_app.queue(ENTITY_CALLS).stats()).ready == 5
    worker = live_app.worker(poll=0.05)
    values: dict[str, Any] = {}

    async def poll() -> None:
        while len(values) < len(keys):
            for key in keys:
                got = await live_app.entities.get("counter", key)
                if got is not None and got.version > 0:  # committed
                    values[key] = got.state
            await asyncio.sleep(0.05)

    poller = asyncio.create_task(poll())
    await run_until(worker, lambda: len(values) == len(keys))
    await poller
    assert values == dict.fromkeys(keys, 10)


async def test_a_reminder_calls_its_entity_after_the_delay(live_app: App) -> None:
    seen = declare(live_app)
    before = live_app.clock()
    await live_app.entities.call("counter", "alarm", "arm", 0.4)
    got = await live_app.entities.get("counter", "alarm")
    assert got is not None and got.state == "armed"
    worker = live_app.worker(poll=0.05)
    await run_until(worker, lambda: seen == ["alarm"])
    assert live_app.clock() - before >= 0.4
    got = await live_app.entities.get("counter", "alarm")
    assert got is not None and got.state == "rang now"


async def test_a_workflow_started_by_a_handler_commits_with_it(app: App) -> None:
    declare(app)
    started = await app.entities.call("counter", "w", "kick_off", "ann")
    assert started == "greet-w-1"
    await drive(app)
    assert await app.workflows.result(started, timeout=5) == "hello ann"
    again = await app.entities.call("counter", "w", "kick_off", "bob")
    await drive(app)
    assert await app.workflows.result(again, timeout=5) == "hello bob"


def failed_with(failed: EntityCallFailed) -> ErrorRecord:
    assert failed.error is not None
    return failed.error


async def test_what_a_handler_asks_for_is_checked_and_fails_its_call(app: App) -> None:
    declare(app)
    with pytest.raises(EntityCallFailed) as unknown_workflow:
        await app.entities.call("counter", "u", "start_unknown")
    assert failed_with(unknown_workflow.value).type == UnknownWorkflow.__name__
    with pytest.raises(EntityCallFailed) as unknown_handler:
        await app.entities.call("counter", "u", "signal_unknown")
    assert failed_with(unknown_handler.value).type == UnknownEntityHandler.__name__
    with pytest.raises(EntityCallFailed) as read_only:
        await app.entities.call("counter", "u", "peek_and_start")
    assert "start nothing" in failed_with(read_only.value).message
    got = await app.entities.get("counter", "u")  # made by the lease; no call changed it
    assert got is not None and (got.state, got.version) == (0, 0)
    assert await app.workflows.list() == []
    assert (await app.queue(ENTITY_CALLS).stats()).ready == 0


async def test_bad_signals_are_refused_before_anything_is_stored(app: App) -> None:
    declare(app)
    with pytest.raises(UnknownEntity):
        await app.entities.signal("nope", "k", "increment")
    with pytest.raises(UnknownEntityHandler):
        await app.entities.signal("counter", "k", "nope")
    with pytest.raises(InvalidIdentifier):
        await app.entities.signal("counter", "", "increment")
    with pytest.raises(InvalidIdentifier):
        await app.entities.signal("counter", "k" * 300, "increment")
    assert (await app.queue(ENTITY_CALLS).stats()).ready == 0
