"""Three things users expect of workflows, on SQLite and PostgreSQL: a repeated start
with another name or input is a conflict; nothing is delivered to a finished workflow;
a workflow started with a timeout ends ``timed_out`` at its deadline, whatever it is
doing then."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from statekeeper import App, Keyring
from statekeeper.errors import (
    DuplicateEvent,
    ValidationError,
    WorkflowConflict,
    WorkflowFailed,
    WorkflowFinished,
    WorkflowNotFound,
)
from statekeeper.workflows import ChildFailed, WorkflowContext, WorkflowRunner
from statekeeper.workflows.tokens import CallbackTarget, issue
from tests.conftest import FakeClock, pg_dsn
from tests.contract.raw_sql import pg_schema
from tests.support import drive

ran: list[str] = []


@pytest.fixture(autouse=True)
def forget_runs() -> None:
    ran.clear()


async def noted(what: str) -> str:
    ran.append(what)
    return what


# --- a repeated start ---------------------------------------------------------------------


async def test_a_repeated_start_with_the_same_input_returns_the_run(app: App) -> None:
    @app.workflow
    async def order(ctx: WorkflowContext, order: dict[str, Any]) -> str:
        return await ctx.step(noted, "charged")

    first = await app.workflows.start(
        order, {"card": "4111", "total": 30, "items": [1, 2]}, id="o1"
    )
    # The same JSON value, spelled otherwise: keys in another order, 30 as 30.0.
    again = await app.workflows.start(
        order, {"items": [1, 2], "total": 30.0, "card": "4111"}, id="o1"
    )
    assert first == again == "o1"
    await drive(app)
    assert await app.workflows.result(first) == "charged"
    assert ran == ["charged"]
    assert await app.workflows.start(order, {"card": "4111", "total": 30, "items": [1, 2]},
                                     id="o1") == "o1"  # fmt: skip
    assert [w["id"] for w in await app.workflows.list()] == ["o1"]


async def test_a_repeated_start_with_other_input_is_a_conflict_that_hides_the_input(
    app: App,
) -> None:
    @app.workflow
    async def order(ctx: WorkflowContext, order: Any) -> None:
        return None

    await app.workflows.start(order, {"card": "4111-1111", "total": 30}, id="o2")
    for other in ({"card": "4111-9999", "total": 30}, {"card": "4111-1111"}, None, [30], True):
        with pytest.raises(WorkflowConflict) as caught:
            await app.workflows.start(order, other, id="o2")
        error = caught.value
        assert (error.code, error.http_status) == ("workflow_conflict", 409)
        assert error.message == "workflow 'o2' ('order') was started before with different input"
        assert error.details == {"id": "o2", "differs": "input"}
    await app.workflows.start(order, True, id="o3")
    with pytest.raises(WorkflowConflict):  # true is not 1
        await app.workflows.start(order, 1, id="o3")
    [row] = [w for w in await app.workflows.list() if w["id"] == "o2"]
    assert row["status"] == "pending"


async def test_a_repeated_start_with_another_name_is_a_conflict_naming_both(app: App) -> None:
    @app.workflow
    async def first(ctx: WorkflowContext, _: Any) -> None:
        return None

    @app.workflow
    async def second(ctx: WorkflowContext, _: Any) -> None:
        return None

    await app.workflows.start(first, 1, id="taken")
    with pytest.raises(WorkflowConflict) as caught:
        await app.workflows.start(second, 1, id="taken")
    assert caught.value.message == (
        "workflow id 'taken' is taken by a workflow named 'first', not 'second'"
    )
    assert caught.value.details["differs"] == "name"


async def test_sealed_inputs_are_compared_opened(database_url: str, namespace: str) -> None:
    keyring = Keyring.parse(f"k1:{Keyring.generate_key()}")
    async with App(
        database_url, namespace=namespace, encryption=keyring, purge_interval=None
    ) as app:

        @app.workflow
        async def secret(ctx: WorkflowContext, _: Any) -> None:
            return None

        assert await app.workflows.start(secret, {"pin": 1234}, id="s") == "s"
        assert await app.workflows.start(secret, {"pin": 1234}, id="s") == "s"
        with pytest.raises(WorkflowConflict, match="different input"):
            await app.workflows.start(secret, {"pin": 4321}, id="s")


# --- nothing is delivered to a finished workflow -------------------------------------------


async def test_an_event_to_a_finished_workflow_is_refused(app: App) -> None:
    @app.workflow
    async def quick(ctx: WorkflowContext, _: Any) -> int:
        return 1

    @app.workflow
    async def listens(ctx: WorkflowContext, _: Any) -> Any:
        return await ctx.wait_for_event("go")

    done = await app.workflows.start(quick)
    heard = await app.workflows.start(listens)
    await app.workflows.send_event(heard, "go", "now")
    await drive(app)
    assert (await app.workflows.status(done)).status == "succeeded"
    with pytest.raises(WorkflowFinished) as caught:
        await app.workflows.send_event(done, "late", {"x": 1})
    assert (caught.value.code, caught.value.http_status) == ("workflow_finished", 409)
    assert caught.value.message == (
        f"workflow {done!r} has finished (succeeded): event 'late' was not delivered"
    )
    assert await app.backend.workflows.event_data(app.namespace, done, "late") == (False, None)
    # An event it had received before it finished is still a duplicate (a redelivery).
    with pytest.raises(DuplicateEvent):
        await app.workflows.send_event(heard, "go", "again")
    with pytest.raises(WorkflowNotFound):
        await app.workflows.send_event("nobody", "late")


async def test_a_callback_answer_to_a_finished_workflow_is_refused(app: App) -> None:
    app.workflows.secret = "semantics-secret"

    @app.workflow
    async def asks(ctx: WorkflowContext, _: Any) -> Any:
        callback = await ctx.callback(timeout=3600)
        await ctx.step(noted, callback.token)
        return await callback.result()

    run = await app.workflows.start(asks)
    await drive(app)
    [token] = ran
    await app.workflows.cancel(run)
    await drive(app)
    assert (await app.workflows.status(run)).status == "cancelled"
    for answer in ({"status": "success", "data": 1}, {"status": "heartbeat"}):
        with pytest.raises(WorkflowFinished, match="has finished"):
            await app.workflows.answer_callback(token, answer)
    # A token for a workflow that never existed stays "not found".
    never = issue("semantics-secret", CallbackTarget(app.namespace, "never", "callback:0", 2e9))
    with pytest.raises(WorkflowNotFound):
        await app.workflows.answer_callback(never, {"status": "success"})


async def test_a_child_ends_although_its_parent_has_finished(app: App) -> None:
    gate = asyncio.Event()

    async def waits() -> str:
        await gate.wait()
        return "late"

    @app.workflow
    async def kid(ctx: WorkflowContext, _: Any) -> str:
        return await ctx.step(waits)

    @app.workflow
    async def parent(ctx: WorkflowContext, _: Any) -> Any:
        return await ctx.child(kid, None, id="the-kid")

    run = await app.workflows.start(parent)
    runner = WorkflowRunner(app.workflows)
    [leased] = await runner._lease(["parent"], 1)
    await runner.execute(leased)  # started its child, waits for it
    [child] = await runner._lease(["kid"], 1)
    child_run = asyncio.create_task(runner.execute(child))
    await app.workflows.cancel(run)
    await drive(app)  # the parent ends cancelled while its child runs
    assert (await app.workflows.status(run)).status == "cancelled"
    gate.set()
    await child_run
    assert (await app.workflows.status("the-kid")).status == "succeeded"
    assert runner.completed == 1


async def test_an_event_racing_the_finish_is_kept_or_refused_never_lost(
    app: App, clock: FakeClock
) -> None:
    """Each event sent while its workflow finishes is either stored (it came first) or
    refused with WorkflowFinished (it came after): an accepted event is never dropped."""
    gates = {n: asyncio.Event() for n in range(16)}

    async def held(n: int) -> int:
        await gates[n].wait()
        return n

    @app.workflow
    async def racer(ctx: WorkflowContext, n: int) -> int:
        return await ctx.step(held, n)

    for n in gates:
        await app.workflows.start(racer, n, id=f"r{n}")
    runner = WorkflowRunner(app.workflows)
    leased = await runner._lease(["racer"], 16)
    runs = [asyncio.create_task(runner.execute(w)) for w in leased]
    await asyncio.sleep(0.05)

    async def send(n: int) -> str:
        await asyncio.sleep(0.0005 * n)
        try:
            await app.workflows.send_event(f"r{n}", "ping", n)
        except WorkflowFinished:
            return "refused"
        return "accepted"

    async def finish(n: int) -> None:
        await asyncio.sleep(0.0005 * (16 - n))
        gates[n].set()

    outcomes = await asyncio.gather(*(send(n) for n in gates), *(finish(n) for n in gates))
    await asyncio.gather(*runs)
    for n, outcome in zip(gates, outcomes, strict=False):
        assert (await app.workflows.status(f"r{n}")).status == "succeeded"
        stored, _ = await app.backend.workflows.event_data(app.namespace, f"r{n}", "ping")
        assert stored == (outcome == "accepted"), (n, outcome)


async def test_postgres_stores_no_event_after_a_finish_it_waited_for(
    own_database_url: str, namespace: str
) -> None:
    """An event that reads the workflow while a finish holds its row waits for the
    finish, and then refuses: the decision is the event's own statement's."""
    if not own_database_url.startswith("postgres"):
        pytest.skip("SQLite runs one writing transaction at a time")
    async with App(own_database_url, namespace=namespace, purge_interval=None) as app:

        @app.workflow
        async def target(ctx: WorkflowContext, _: Any) -> None:
            return None

        run = await app.workflows.start(target)
        conn = await asyncpg.connect(
            pg_dsn(), server_settings={"search_path": pg_schema(own_database_url)}
        )
        try:
            finishing = conn.transaction()
            await finishing.start()
            await conn.execute(
                "UPDATE sk_workflows SET status = 'succeeded', wake_at = NULL "
                "WHERE namespace = $1 AND id = $2",
                namespace, run,
            )  # fmt: skip
            sent = asyncio.create_task(app.workflows.send_event(run, "late"))
            await asyncio.sleep(0.3)
            assert not sent.done()  # it waits for the finish's row
            await finishing.commit()
            with pytest.raises(WorkflowFinished):
                await sent
        finally:
            await conn.close()
        assert await app.backend.workflows.event_data(namespace, run, "late") == (False, None)


# --- timeouts -----------------------------------------------------------------------------


async def test_a_timeout_is_a_positive_number_of_seconds(app: App) -> None:
    @app.workflow
    async def any_flow(ctx: WorkflowContext, _: Any) -> None:
        return None

    for bad in (0, -1, math.nan, math.inf, True, "5"):
        with pytest.raises(ValidationError, match="positive number of seconds"):
            await app.workflows.start(any_flow, None, timeout=bad)  # type: ignore[arg-type]
    assert await app.workflows.list() == []


async def test_a_workflow_leased_after_its_deadline_times_out_without_running(
    app: App, clock: FakeClock
) -> None:
    @app.workflow
    async def late(ctx: WorkflowContext, _: Any) -> str:
        return await ctx.step(noted, "ran")

    run = await app.workflows.start(late, None, timeout=5)
    row = await app.backend.workflows.get(app.namespace, run)
    assert row is not None and row.deadline == clock.now + 5
    clock.advance(5)
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "timed_out" and ran == []
    assert status.error is not None and status.error.type == "WorkflowTimedOut"
    assert status.error.message == f"workflow {run!r} timed out: it did not finish within its " \
        "timeout of 5 s"  # fmt: skip
    with pytest.raises(WorkflowFailed) as caught:
        await app.workflows.result(run)
    assert caught.value.status == "timed_out"
    assert caught.value.error is not None and caught.value.error.type == "WorkflowTimedOut"
    assert [w["id"] for w in await app.workflows.list(status="timed_out")] == [run]
    with pytest.raises(WorkflowFinished):
        await app.workflows.send_event(run, "go")
    with pytest.raises(WorkflowFinished):
        await app.workflows.cancel(run)


async def test_a_step_running_at_the_deadline_is_stopped(app: App) -> None:
    stopped = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            stopped.set()

    @app.workflow
    async def stuck(ctx: WorkflowContext, _: Any) -> None:
        await ctx.step(noted, "before")
        await ctx.step(forever)

    run = await app.workflows.start(stuck, None, timeout=0.3)
    began = time.monotonic()
    await drive(app)
    assert time.monotonic() - began < 2
    assert stopped.is_set()
    status = await app.workflows.status(run)
    assert status.status == "timed_out" and ran == ["before"]
    assert status.error is not None and "timeout of 0.3 s" in status.error.message


async def test_a_timeout_the_code_raises_is_its_own_failure(app: App) -> None:
    @app.workflow
    async def raises(ctx: WorkflowContext, _: Any) -> None:
        raise TimeoutError("my own")

    run = await app.workflows.start(raises, None, timeout=60)
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "failed"
    assert status.error is not None and status.error.type == "TimeoutError"


async def test_a_waiting_workflow_is_woken_at_its_deadline(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def waits(ctx: WorkflowContext, _: Any) -> Any:
        return await ctx.wait_for_event("approval")

    run = await app.workflows.start(waits, None, timeout=10)
    await drive(app)
    row = await app.backend.workflows.get(app.namespace, run)
    assert row is not None and (row.status, row.wake_at) == ("waiting", row.deadline)
    clock.advance(9)
    await drive(app)
    assert (await app.workflows.status(run)).status == "waiting"
    clock.advance(1)
    await drive(app)
    assert (await app.workflows.status(run)).status == "timed_out"
    with pytest.raises(WorkflowFinished):
        await app.workflows.send_event(run, "approval", True)


async def test_a_sleep_ends_at_its_deadline(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def naps(ctx: WorkflowContext, _: Any) -> None:
        await ctx.sleep(5)
        await ctx.step(noted, "after a short nap")
        await ctx.sleep(3600)

    run = await app.workflows.start(naps, None, timeout=60)
    await drive(app)
    row = await app.backend.workflows.get(app.namespace, run)
    assert row is not None and row.wake_at == clock.now + 5  # before the deadline: its own
    clock.advance(5)
    await drive(app)
    row = await app.backend.workflows.get(app.namespace, run)
    assert row is not None and row.wake_at == row.deadline
    clock.advance(55)
    await drive(app)
    assert (await app.workflows.status(run)).status == "timed_out"
    assert ran == ["after a short nap"]


async def test_a_child_timing_out_fails_its_parent_step(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def slow(ctx: WorkflowContext, _: Any) -> None:
        await ctx.sleep(3600)

    @app.workflow
    async def parent(ctx: WorkflowContext, _: Any) -> dict[str, str]:
        try:
            await ctx.child(slow, None, id="slow-kid", timeout=5)
        except ChildFailed as failed:
            return {"type": failed.error_type, "message": failed.error.message}
        return {}

    run = await app.workflows.start(parent)
    await drive(app)
    clock.advance(5)
    await drive(app)
    assert (await app.workflows.status("slow-kid")).status == "timed_out"
    output = await app.workflows.result(run)
    assert output["type"] == "WorkflowTimedOut"
    assert output["message"].startswith("child 'slow-kid' timed_out: ")


async def test_a_child_timeout_is_checked(app: App) -> None:
    @app.workflow
    async def kid(ctx: WorkflowContext, _: Any) -> None:
        return None

    @app.workflow
    async def bad(ctx: WorkflowContext, _: Any) -> None:
        await ctx.child(kid, None, timeout=-1)

    run = await app.workflows.start(bad)
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "failed"
    assert status.error is not None and status.error.type == "ValidationError"
    assert "positive number of seconds" in status.error.message


async def test_retry_of_a_timed_out_workflow_runs_on_without_a_timeout(
    app: App, clock: FakeClock
) -> None:
    @app.workflow
    async def long(ctx: WorkflowContext, _: Any) -> str:
        await ctx.step(noted, "first")
        await ctx.sleep(100)
        return await ctx.step(noted, "second")

    run = await app.workflows.start(long, None, timeout=10)
    await drive(app)
    clock.advance(10)
    await drive(app)
    assert (await app.workflows.status(run)).status == "timed_out"
    await app.workflows.retry(run)
    row = await app.backend.workflows.get(app.namespace, run)
    assert row is not None and (row.status, row.deadline) == ("pending", None)
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"  # until its own wake-up
    clock.advance(90)
    await drive(app)
    assert await app.workflows.result(run) == "second"
    assert ran == ["first", "second"]


@pytest.fixture
async def real_time_app(database_url: str, namespace: str) -> AsyncIterator[App]:
    async with App(database_url, namespace=namespace, purge_interval=None) as opened:
        yield opened


async def test_an_hour_long_sleep_with_a_second_timeout_ends_within_two(
    real_time_app: App,
) -> None:
    app = real_time_app

    @app.workflow
    async def sleepy(ctx: WorkflowContext, _: Any) -> None:
        await ctx.sleep(3600)

    stopping = asyncio.Event()
    runner = WorkflowRunner(app.workflows, poll=0.2)
    running = asyncio.create_task(runner.run(stopping))
    try:
        began = time.monotonic()
        run = await app.workflows.start(sleepy, None, timeout=1)
        with pytest.raises(WorkflowFailed) as caught:
            await app.workflows.result(run, timeout=3)
        assert caught.value.status == "timed_out"
        assert time.monotonic() - began < 2.2
    finally:
        stopping.set()
        await running
