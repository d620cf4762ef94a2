"""Poison isolation, on SQLite and PostgreSQL: a message, result or input that cannot be
read or stored fails alone, with its real error, and takes nothing else down with it."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from statekeeper import App, Message, Retry
from statekeeper.queues.requests import request_status
from statekeeper.storage.rows import NewMessage, Settlement, UnitOfWork
from statekeeper.workflows import StepFailed, WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock
from tests.support import run_until

FAST = Retry(max_attempts=5, initial_interval=0.01, backoff_rate=1.0, jitter=False)

# Bodies that once got past the door: a UTF-8 byte order mark, UTF-16, a lone
# surrogate written as UTF-8 bytes (invalid), and bytes that are no JSON at all.
UNREADABLE = [
    b'\xef\xbb\xbf{"order": 1}',
    '{"order": 2}'.encode("utf-16"),
    b'{"order": "\xed\xa0\x80"}',
    b"\xff\xfe not json",
]


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


async def store_raw(app: App, queue: str, body: bytes, now: float) -> str:
    """A message stored as the given bytes, past every check (as an older version or
    another writer could have left it)."""
    message_id = uuid.uuid4().hex
    await app.backend.queues.send(
        app.namespace, [NewMessage(id=message_id, queue=queue, body=body, available_at=now)], now
    )
    return message_id


async def test_an_unreadable_body_is_dead_lettered_alone(app: App, clock: FakeClock) -> None:
    q = app.queue("orders", retry=FAST)
    good = [(await q.send({"order": n})).id for n in range(4)]
    bad = [await store_raw(app, "orders", body, clock.now) for body in UNREADABLE]
    good += [(await q.send({"order": n})).id for n in range(4, 8)]

    received = await q.receive(20)

    assert sorted(m.id for m in received) == sorted(good)
    assert all(m.attempt == 1 for m in received)
    dead = await q.peek(20, dead=True)
    assert sorted(m.id for m in dead) == sorted(bad)
    for stored in dead:
        assert stored.body is None and stored.body_error
        assert stored.last_error is not None
        assert stored.last_error.type == "UnreadableMessage"
        assert stored.last_error.message.startswith("unreadable message: ")
        assert stored.attempts == 1
    for message in received:
        await message.ack({"ok": True})
    stats = await q.stats()
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, len(bad))


async def test_peek_shows_an_unreadable_live_message(app: App, clock: FakeClock) -> None:
    q = app.queue("orders")
    await q.send({"order": 1})
    bad = await store_raw(app, "orders", b"\xef\xbb\xbf{}", clock.now)
    peeked = {m.id: m for m in await q.peek(10)}
    assert peeked[bad].body is None and "not readable" in str(peeked[bad].body_error)
    assert [m.body for m in peeked.values() if m.id != bad] == [{"order": 1}]


async def test_an_unreadable_result_does_not_break_the_request_status(
    app: App, clock: FakeClock
) -> None:
    q = app.queue("orders")
    await q.send({"order": 1})
    [message] = await q.receive()
    settle = Settlement(
        "ack", "orders", message.id, message.lease_token, archive=True, result=b"\xff not json"
    )
    done = await app.backend.commit(UnitOfWork(app.namespace, clock.now, settle=settle))
    assert done.applied
    document = await request_status(app.backend, app.namespace, message.id, app.sealer)
    assert document is not None
    assert document["status"] == "succeeded" and document["result"] is None
    assert "not readable" in document["result_error"]


async def test_the_worker_never_hands_an_unreadable_body_to_the_handler(live_app: App) -> None:
    app = live_app
    q = app.queue("orders", retry=FAST)
    handled: list[Any] = []

    @app.consumer("orders", concurrency=4)
    async def handle(message: Message) -> None:
        handled.append(message.body)

    bad = [await store_raw(app, "orders", body, app.clock()) for body in UNREADABLE]
    for n in range(8):
        await q.send({"order": n})
    worker = app.worker(poll=0.05)
    await run_until(worker, lambda: len(handled) == 8)
    assert sorted(b["order"] for b in handled) == list(range(8))
    dead = await q.peek(20, dead=True)
    assert sorted(m.id for m in dead) == sorted(bad)
    assert worker.processed == 8


async def test_a_result_that_cannot_be_stored_fails_once_for_good(live_app: App) -> None:
    app = live_app
    q = app.queue("echo", retry=FAST)
    runs: list[int] = []

    @app.consumer("echo")
    async def echo(message: Message) -> Any:
        runs.append(message.attempt)
        return nested(250)  # deeper than any stored value may be

    sent = await q.send({"x": 1})
    worker = app.worker(poll=0.05)
    await run_until(worker, lambda: worker.failed == 1)
    await asyncio.sleep(0.2)  # room for a redelivery, if there were one
    assert runs == [1]
    [dead] = await q.peek(dead=True)
    assert dead.id == sent.id and dead.attempts == 1
    assert dead.last_error is not None
    assert dead.last_error.type == "ResultNotStored"
    assert dead.last_error.message.startswith("the handler's result cannot be stored: ")
    assert "nested deeper than 200" in dead.last_error.message


async def test_a_step_result_that_cannot_be_stored_fails_the_step_once(app: App) -> None:
    runs: list[int] = []

    async def deep() -> Any:
        runs.append(1)
        return nested(250)

    @app.workflow
    async def unstorable(ctx: WorkflowContext, _: Any) -> str:
        try:
            await ctx.step(deep, retry=FAST)
        except StepFailed as failed:
            return f"caught: {failed}"
        return "not reached"

    run = await app.workflows.start("unstorable", None)
    runner = WorkflowRunner(app.workflows)
    for _ in range(3):
        for leased in await runner._lease(["unstorable"], 4):
            await runner.execute(leased)
    status = await app.workflows.status(run)
    assert status.status == "succeeded"
    assert "StepResultNotStored" in status.output and "nested deeper than 200" in status.output
    assert runs == [1]
    [entry] = await app.workflows.history(run)
    assert entry["error"]["type"] == "StepResultNotStored"


async def test_a_workflow_with_an_unreadable_input_fails_alone(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def echo(ctx: WorkflowContext, value: Any) -> Any:
        return value

    await app.backend.workflows.create(
        app.namespace, "poisoned", "echo", b"\xef\xbb\xbf{}", None, clock.now
    )
    fine = await app.workflows.start("echo", {"fine": True})
    runner = WorkflowRunner(app.workflows)
    for leased in await runner._lease(["echo"], 4):
        await runner.execute(leased)
    poisoned = await app.workflows.status("poisoned")
    assert poisoned.status == "failed"
    assert poisoned.error is not None and poisoned.error.type == "InvalidInput"
    assert (await app.workflows.status(fine)).output == {"fine": True}


async def test_a_journal_this_process_cannot_open_defers_and_never_compensates(
    own_database_url: str, clock: FakeClock
) -> None:
    """A runner lacking the key that sealed a step's result (a rolling restart after a key
    rotation) gives the workflow back for later: no compensation runs, nothing fails, and
    a runner with the key finishes it."""
    from statekeeper import Keyring

    k1, k2 = os.urandom(32), os.urandom(32)
    rotated = Keyring({"k2": k2, "k1": k1}, "k2")
    behind = Keyring({"k1": k1}, "k1")
    undone: list[str] = []

    async def book(trip: str) -> str:
        return f"booked {trip}"

    async def cancel(booking: str) -> None:
        undone.append(booking)

    async def trip(ctx: WorkflowContext, name: str) -> str:
        async with ctx.saga() as saga:
            booking = await saga.step(book, name, compensate=cancel)
            await ctx.wait_for_event("go")
            return str(booking)

    def make(keyring: Keyring) -> App:
        app = App(own_database_url, namespace="keys", clock=clock, purge_interval=None,
                  encryption=keyring)  # fmt: skip
        app.workflow(trip)
        return app

    async def run_due(app: App) -> None:
        runner = WorkflowRunner(app.workflows)
        for leased in await runner._lease(["trip"], 4):
            await runner.execute(leased)

    async with make(rotated) as new, make(behind) as old:
        run = await old.workflows.start("trip", "lisbon")  # its input: k1, readable by both
        await run_due(new)  # the step is journaled, sealed with k2; the run waits
        await old.workflows.send_event(run, "go", None)
        await run_due(old)  # cannot open k2: given back, due in 30 s
        status = await old.workflows.status(run)
        assert status.status == "pending" and undone == []
        await run_due(new)  # not due yet
        assert (await new.workflows.status(run)).status == "pending"
        clock.advance(31)
        await run_due(new)
        done = await new.workflows.status(run)
        assert (done.status, done.output) == ("succeeded", "booked lisbon")
        assert undone == []
        other = await new.workflows.start("trip", "porto")  # an input old cannot open
        await run_due(old)
        assert (await old.workflows.status(other)).status == "pending"  # deferred, not failed
