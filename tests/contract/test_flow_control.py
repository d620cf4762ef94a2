"""Flow control: workflow queues admit runs within their limits (concurrency, per-key
concurrency, rates, priorities, debounce, singletons), decided in the database; driven by
hand with a fake clock (docs/flow-control.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from statekeeper import App
from statekeeper.errors import (
    ConfigurationError,
    FlowKeyBusy,
    UnknownFlowQueue,
    ValidationError,
    WorkflowConflict,
)
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock
from tests.contract.raw_sql import query


def echo_workflow(app: App, seen: list[Any]) -> Any:
    @app.function
    async def note(value: Any) -> Any:
        seen.append(value)
        return value

    @app.workflow
    async def echo(ctx: WorkflowContext, value: Any) -> Any:
        return await ctx.step(note, value)

    return echo


async def states(app: App, ids: Sequence[str]) -> list[str]:
    found = []
    for id in ids:
        run = await app.workflows.flow.run_state(id)
        assert run is not None
        found.append(run["state"])
    return found


async def drain(runner: WorkflowRunner, rounds: int = 50) -> None:
    for _ in range(rounds):
        if not await runner.run_due():
            return


async def test_concurrency_admits_at_most_the_limit_and_an_end_admits_the_next(app: App) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    jobs = app.workflow_queue("jobs", concurrency=2)
    ids = [await jobs.start(echo, n) for n in range(5)]
    assert await states(app, ids) == ["admitted"] * 2 + ["waiting"] * 3
    runner = WorkflowRunner(app.workflows)
    leased = await runner.lease()
    assert sorted(w.id for w in leased) == sorted(ids[:2])
    assert await runner.lease() == []  # nothing else is due: the others wait
    await runner.execute(leased[0])  # its end admits the next, in its transaction
    assert (await states(app, ids)).count("admitted") == 2
    [third] = await runner.lease()
    assert third.id == ids[2]
    await runner.execute(leased[1])
    await runner.execute(third)
    await drain(runner)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert await states(app, ids) == ["done"] * 5
    [queue] = await app.workflows.flow.state()
    assert (queue["name"], queue["waiting"], queue["running"]) == ("jobs", 0, 0)


async def test_per_key_concurrency_holds_each_key_to_its_limit(app: App) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    tenants = app.workflow_queue("tenants", per_key_concurrency=1, key="tenant")
    a1 = await tenants.start(echo, {"tenant": "a", "n": 1})
    a2 = await tenants.start(echo, {"tenant": "a", "n": 2})
    b1 = await tenants.start(echo, {"tenant": "b", "n": 1})
    given = await app.workflows.start(echo, {"n": 3}, queue="tenants", key="b")
    assert await states(app, [a1, a2, b1, given]) == ["admitted", "waiting", "admitted", "waiting"]
    runner = WorkflowRunner(app.workflows)
    leased = await runner.lease()
    assert sorted(w.id for w in leased) == sorted([a1, b1])
    await runner.execute(next(w for w in leased if w.id == a1))
    assert await states(app, [a1, a2, b1, given]) == ["done", "admitted", "admitted", "waiting"]
    await runner.execute(next(w for w in leased if w.id == b1))
    await drain(runner)
    assert await states(app, [a1, a2, b1, given]) == ["done"] * 4
    run = await app.workflows.flow.run_state(given)
    assert run is not None and run["key"] == "b"


async def test_a_higher_priority_starts_first_within_a_queue(app: App) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    one = app.workflow_queue("one", concurrency=1)
    first = await one.start(echo, "first")
    for name, priority in (("low", 1), ("high", 9), ("mid", 5), ("high-later", 9)):
        await one.start(echo, name, priority=priority)
    assert await states(app, [first]) == ["admitted"]
    await drain(WorkflowRunner(app.workflows))
    assert seen == ["first", "high", "high-later", "mid", "low"]


async def test_a_rate_limit_admits_n_a_period(app: App, clock: FakeClock) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    limited = app.workflow_queue("limited", rate=(3, 10.0))
    ids = [await limited.start(echo, n) for n in range(7)]
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    assert sorted(seen) == [0, 1, 2]
    clock.advance(9.9)
    await drain(runner)
    assert len(seen) == 3  # the period has not passed
    clock.advance(0.2)
    await drain(runner)
    assert sorted(seen) == [0, 1, 2, 3, 4, 5]
    clock.advance(10.0)
    await drain(runner)
    assert sorted(seen) == list(range(7))
    assert await states(app, ids) == ["done"] * 7


async def test_a_per_key_rate_limit_holds_each_key(app: App, clock: FakeClock) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("keyed", per_key_rate=(1, 60.0))
    for key, n in (("a", 1), ("a", 2), ("b", 1)):
        await app.workflows.start(echo, f"{key}{n}", queue="keyed", key=key)
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    assert sorted(seen) == ["a1", "b1"]
    clock.advance(61)
    await drain(runner)
    assert sorted(seen) == ["a1", "a2", "b1"]


async def test_debounce_coalesces_starts_of_a_key_into_one_run_with_the_latest_input(
    app: App, clock: FakeClock
) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("search-index", debounce=5.0, key=lambda doc: doc["doc"])
    runner = WorkflowRunner(app.workflows)
    first = await app.workflows.start(echo, {"doc": "d1", "v": 1}, queue="search-index")
    clock.advance(3)
    await drain(runner)
    again = await app.workflows.start(echo, {"doc": "d1", "v": 2}, queue="search-index")
    other = await app.workflows.start(echo, {"doc": "d2", "v": 1}, queue="search-index")
    clock.advance(3)  # 6 s after the first start, 3 after the last of d1
    await drain(runner)
    assert again == first and other != first
    assert seen == []
    latest = await app.workflows.start(echo, {"doc": "d1", "v": 3}, queue="search-index")
    assert latest == first
    clock.advance(2.5)  # d2's window passed; d1's (from its last start) did not
    await drain(runner)
    assert seen == [{"doc": "d2", "v": 1}]
    clock.advance(3)
    await drain(runner)
    assert seen == [{"doc": "d2", "v": 1}, {"doc": "d1", "v": 3}]
    assert (await app.workflows.status(first)).status == "succeeded"
    # Once admitted, the run is no longer debounced: a new start is a new run.
    after = await app.workflows.start(echo, {"doc": "d1", "v": 4}, queue="search-index")
    assert after != first


async def test_singleton_reject_refuses_a_second_start_while_one_is_queued_or_runs(
    app: App,
) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("reports", singleton="reject")
    first = await app.workflows.start(echo, 1, queue="reports", key="tenant-7")
    with pytest.raises(FlowKeyBusy) as refused:
        await app.workflows.start(echo, 2, queue="reports", key="tenant-7")
    assert "tenant-7" in refused.value.message and refused.value.http_status == 409
    assert refused.value.details["running"] == first
    other = await app.workflows.start(echo, 3, queue="reports", key="tenant-8")
    await drain(WorkflowRunner(app.workflows))
    assert sorted(seen) == [1, 3] and other != first
    again = await app.workflows.start(echo, 4, queue="reports", key="tenant-7")
    await drain(WorkflowRunner(app.workflows))
    assert seen[-1] == 4 and again != first


async def test_singleton_queue_makes_a_second_start_wait_for_the_first(app: App) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("sync", singleton="queue")
    first = await app.workflows.start(echo, 1, queue="sync", key="acct")
    second = await app.workflows.start(echo, 2, queue="sync", key="acct")
    assert await states(app, [first, second]) == ["admitted", "waiting"]
    runner = WorkflowRunner(app.workflows)
    [leased] = await runner.lease()
    assert leased.id == first
    await runner.execute(leased)
    assert await states(app, [first, second]) == ["done", "admitted"]
    await drain(runner)
    assert seen == [1, 2]


async def test_a_slot_is_kept_while_its_run_sleeps_and_after_its_worker_dies(
    app: App, clock: FakeClock
) -> None:
    @app.workflow
    async def napper(ctx: WorkflowContext, n: int) -> int:
        await ctx.sleep(100)
        return n

    app.workflow_queue("naps", concurrency=1)
    first = await app.workflows.start(napper, 1, queue="naps")
    second = await app.workflows.start(napper, 2, queue="naps")
    dead = WorkflowRunner(app.workflows)
    [leased] = await dead.lease()  # a worker takes it, then is killed: never runs it
    assert leased.id == first
    clock.advance(app.workflows.lease + 1)
    runner = WorkflowRunner(app.workflows)
    await drain(runner)  # the lease ran out: another worker runs it; it sleeps
    assert await states(app, [first, second]) == ["admitted", "waiting"]
    assert (await app.workflows.status(first)).status == "sleeping"
    clock.advance(101)
    await drain(runner)
    clock.advance(101)
    await drain(runner)
    assert await states(app, [first, second]) == ["done", "done"]
    assert await app.workflows.result(second) == 2


async def test_repeating_a_start_by_id_is_idempotent(app: App) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("idem", concurrency=1)
    run = await app.workflows.start(echo, 1, queue="idem", id="once")
    assert await app.workflows.start(echo, 1, queue="idem", id="once") == run
    with pytest.raises(WorkflowConflict):
        await app.workflows.start(echo, 2, queue="idem", id="once")
    await drain(WorkflowRunner(app.workflows))
    assert seen == [1]


async def test_a_cancelled_queued_run_ends_without_taking_a_slot(app: App) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("cancels", concurrency=1)
    first = await app.workflows.start(echo, 1, queue="cancels")
    queued = await app.workflows.start(echo, 2, queue="cancels")
    await app.workflows.cancel(queued)
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    assert (await app.workflows.status(queued)).status == "cancelled"
    assert (await app.workflows.status(first)).status == "succeeded"
    assert await states(app, [first, queued]) == ["done", "done"]
    [queue] = await app.workflows.flow.state()
    assert queue["running"] == 0


async def test_bad_starts_and_declarations_are_refused_naming_the_problem(app: App) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("named", singleton="reject")
    with pytest.raises(UnknownFlowQueue, match="nowhere"):
        await app.workflows.start(echo, 1, queue="nowhere")
    with pytest.raises(ValidationError, match="needs a key"):
        await app.workflows.start(echo, 1, queue="named")
    with pytest.raises(ValidationError, match="priority"):
        await app.workflows.start(echo, 1, queue="named", key="k", priority="high")  # type: ignore[call-overload]
    for bad, text in (
        ({"concurrency": 0}, "concurrency"),
        ({"rate": (5,)}, "rate"),
        ({"rate": (5, -1.0)}, "seconds"),
        ({"singleton": "maybe"}, "singleton"),
        ({"singleton": "reject", "debounce": 1.0}, "debounce"),
    ):
        with pytest.raises(ConfigurationError, match=text):
            app.workflow_queue("bad", **bad)
    with pytest.raises(ConfigurationError, match="declared already"):
        app.workflow_queue("named", concurrency=3)
    assert seen == []


async def test_a_consumers_per_group_concurrency_holds_in_the_database(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    """``@app.consumer(q, per_group_concurrency=2)``: at most 2 messages of one group in
    hand at a time, whichever process receives; the others wait in order."""
    app = App(database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None)

    @app.consumer("jobs", per_group_concurrency=2)
    async def handle(message: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="per_group_concurrency"):
        app.consumer("other", per_group_concurrency=0)
    async with app:
        jobs = app.queue("jobs")
        await jobs.send_batch(
            [{"body": {"n": n}, "group": "g"} for n in range(5)]
            + [{"body": {"n": n}, "group": "h"} for n in range(5, 8)]
        )
        first = await jobs.receive(10)
        assert sorted(m.body["n"] for m in first) == [0, 1, 5, 6]
        assert await jobs.receive(10) == []
        await next(m for m in first if m.body["n"] == 0).ack()
        [second] = await jobs.receive(10)
        assert second.body["n"] == 2
        for message in [*first, second]:
            if message.body["n"] != 0:
                await message.ack()
        rest = await jobs.receive(10)
        assert sorted(m.body["n"] for m in rest) == [3, 4, 7]
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=None) as plain:  # fmt: skip
        fifo = plain.queue("fifo")  # no limit declared: FIFO groups, one at a time
        await fifo.send_batch([{"body": {"n": n}, "group": "g"} for n in range(3)])
        assert [m.body["n"] for m in await fifo.receive(10)] == [0]


async def test_a_consumers_global_concurrency_holds_across_receivers(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    """``@app.consumer(q, global_concurrency=3)``: at most 3 messages of the queue in
    hand at a time, however many receivers (here two apps, and concurrent receives) ask;
    an acknowledgement or an expired lease makes room for the next."""
    app = App(database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None)

    @app.consumer("capped", global_concurrency=3, per_group_concurrency=2)
    async def handle(message: Any) -> None: ...

    with pytest.raises(ConfigurationError, match="global_concurrency"):
        app.consumer("other", global_concurrency=True)
    async with (
        app,
        App(
            database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None
        ) as other,
    ):
        mine, theirs = app.queue("capped"), other.queue("capped")
        await mine.send_batch([{"body": {"n": n}} for n in range(10)])
        got = await asyncio.gather(*(q.receive(10) for q in (mine, theirs) * 4))
        held = [m for batch in got for m in batch]
        assert sorted(m.body["n"] for m in held) == [0, 1, 2]
        assert await theirs.receive(10) == []
        await held[0].ack()
        [next_one] = await theirs.receive(10)
        assert next_one.body["n"] == 3
        clock.advance(31)  # the leases in hand run out: their messages count no more
        again = await mine.receive(10)
        assert len(again) == 3
        await mine.send_batch([{"body": {"n": n}, "group": "g"} for n in range(10, 13)])
        for message in again:
            await message.ack()
        grouped = await theirs.receive(10)  # the per-group limit still holds beside it
        assert len(grouped) == 3 and sum(m.group == "g" for m in grouped) <= 2


async def test_runs_ending_together_in_one_queue_do_not_deadlock(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """Two runners end a run and the cancelled runs queued behind it at once: each end
    gives its place back and admits the next under the queue's lock, in one order (on
    PostgreSQL a cycle of locks was "deadlock detected", and the finish failed)."""
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("ends", concurrency=1)
    first = await app.workflows.start(echo, 0, queue="ends")
    queued = [await app.workflows.start(echo, n, queue="ends") for n in range(1, 12)]
    for id in queued:
        await app.workflows.cancel(id)
    one, two = WorkflowRunner(app.workflows), WorkflowRunner(app.workflows)
    mine, theirs = await one.lease(6), await two.lease(6)
    assert len(mine) + len(theirs) == 12
    with caplog.at_level("WARNING", logger="statekeeper.workflows"):
        await asyncio.gather(*(one.execute(w) for w in mine), *(two.execute(w) for w in theirs))
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []
    assert (await app.workflows.status(first)).status == "succeeded"
    assert {(await app.workflows.status(id)).status for id in queued} == {"cancelled"}
    assert await states(app, [first, *queued]) == ["done"] * 12
    [queue] = await app.workflows.flow.state()
    assert (queue["waiting"], queue["running"]) == (0, 0)
    assert seen == [0]


async def test_a_finish_the_database_refuses_is_logged_and_the_run_given_back(
    own_database_url: str, namespace: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A finish that fails (here a conflict a trigger raises, as a deadlock would) does
    not escape the runner: it is logged, the run given back, and run again."""
    if own_database_url.startswith("sqlite"):
        refuse = [
            "CREATE TRIGGER refuse_finish BEFORE UPDATE OF status ON sk_workflows "
            "WHEN NEW.id = 'doomed' AND NEW.status = 'succeeded' "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
        allow = ["DROP TRIGGER refuse_finish"]
    else:
        refuse = [
            "CREATE FUNCTION refuse_finish() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'refused by the test' USING ERRCODE = '40P01'; END $$",
            "CREATE TRIGGER refuse_finish BEFORE UPDATE OF status ON sk_workflows "
            "FOR EACH ROW WHEN (NEW.id = 'doomed' AND NEW.status = 'succeeded') "
            "EXECUTE FUNCTION refuse_finish()",
        ]
        allow = ["DROP TRIGGER refuse_finish ON sk_workflows"]
    async with App(
        own_database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None
    ) as app:
        seen: list[Any] = []
        echo = echo_workflow(app, seen)
        app.workflow_queue("refused", concurrency=1)
        await app.workflows.start(echo, 1, queue="refused", id="doomed")
        for sql in refuse:
            await query(own_database_url, sql)
        runner = WorkflowRunner(app.workflows)
        with caplog.at_level("WARNING", logger="statekeeper.workflows"):
            assert await runner.run_due() == 1  # nothing escapes
        assert any("finishing a workflow failed" in r.getMessage() for r in caplog.records)
        assert (await app.workflows.status("doomed")).status == "pending"
        assert await states(app, ["doomed"]) == ["admitted"]
        for sql in allow:
            await query(own_database_url, sql)
        await drain(runner)
        assert (await app.workflows.status("doomed")).status == "succeeded"
        assert await states(app, ["doomed"]) == ["done"]
        assert seen == [1]  # its step ran once: the run again replayed it


async def test_a_run_ended_by_a_process_that_declares_no_queue_gives_its_slot_back(
    app: App, database_url: str, namespace: str, clock: FakeClock
) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("elsewhere", concurrency=1)
    first = await app.workflows.start(echo, 1, queue="elsewhere")
    second = await app.workflows.start(echo, 2, queue="elsewhere")
    async with App(
        database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None
    ) as plain:  # runs the workflow, declares no queue
        echo_workflow(plain, seen)
        await drain(WorkflowRunner(plain.workflows))
    assert await states(app, [first, second]) == ["done", "done"]
    assert seen == [1, 2]
    [queue] = await app.workflows.flow.state()
    assert (queue["waiting"], queue["running"]) == (0, 0)


async def test_a_paused_waiting_run_stays_waiting_and_is_admitted_once_resumed(app: App) -> None:
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("pauses", concurrency=1)
    first = await app.workflows.start(echo, 1, queue="pauses")
    paused = await app.workflows.start(echo, 2, queue="pauses")
    third = await app.workflows.start(echo, 3, queue="pauses")
    await app.workflows.pause(paused)
    runner = WorkflowRunner(app.workflows)
    await drain(runner)  # the paused run is passed over: it holds no slot
    assert seen == [1, 3]
    assert await states(app, [first, paused, third]) == ["done", "waiting", "done"]
    await app.workflows.resume(paused)
    assert await states(app, [paused]) == ["admitted"]  # the resume admits it
    await drain(runner)
    assert seen == [1, 3, 2]
    assert (await app.workflows.status(paused)).status == "succeeded"


async def test_a_queued_run_times_out_while_it_waits(app: App, clock: FakeClock) -> None:
    seen: list[Any] = []

    @app.function
    async def begin(n: int) -> int:
        seen.append(n)
        return n

    @app.workflow
    async def napper(ctx: WorkflowContext, n: int) -> int:
        await ctx.step(begin, n)
        await ctx.sleep(1000)
        return n

    app.workflow_queue("deadlines", concurrency=1)
    first = await app.workflows.start(napper, 1, queue="deadlines")
    late = await app.workflows.start(napper, 2, queue="deadlines", timeout=30)
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    clock.advance(29)
    await drain(runner)
    assert (await app.workflows.status(late)).status == "pending"
    assert await states(app, [first, late]) == ["admitted", "waiting"]
    clock.advance(2)
    await drain(runner)
    assert (await app.workflows.status(late)).status == "timed_out"
    assert await states(app, [first, late]) == ["admitted", "done"]
    assert seen == [1]  # it timed out without running
    [queue] = await app.workflows.flow.state()
    assert (queue["waiting"], queue["running"]) == (0, 1)


async def test_retried_and_rewound_runs_wait_for_their_queue_again(app: App) -> None:
    seen: list[Any] = []
    failing = {"on": True}

    @app.function
    async def work(n: int) -> int:
        seen.append(n)
        return n

    @app.workflow
    async def flaky(ctx: WorkflowContext, n: int) -> int:
        if failing["on"]:
            raise RuntimeError("not yet")
        return await ctx.step(work, n)

    app.workflow_queue("redo", concurrency=2)
    ids = [await app.workflows.start(flaky, n, queue="redo") for n in range(5)]
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    assert {(await app.workflows.status(id)).status for id in ids} == {"failed"}
    assert await states(app, ids) == ["done"] * 5
    failing["on"] = False
    for id in ids[:4]:
        await app.workflows.retry(id)
    await app.workflows.rewind(ids[4], 1)
    assert sorted(await states(app, ids)) == ["admitted"] * 2 + ["waiting"] * 3
    leased = await runner.lease()
    assert len(leased) == 2  # the queue's limit holds for runs run again
    for workflow in leased:
        await runner.execute(workflow)
    await drain(runner)
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert {(await app.workflows.status(id)).status for id in ids} == {"succeeded"}
    assert await states(app, ids) == ["done"] * 5


async def test_a_fork_of_a_queued_run_waits_in_its_queue(app: App) -> None:
    """A fork of a run started into a workflow queue takes the same place (queue, key,
    priority): it waits while the queue's limits are taken, and is admitted in turn."""
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("forks", concurrency=1)
    first = await app.workflows.start(echo, "a", queue="forks", key="k", priority=3)
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    assert seen == ["a"]
    holder = await app.workflows.start(echo, "b", queue="forks")  # holds the one slot
    forked = await app.workflows.fork(first, 1, new_id="forked")
    place = await app.workflows.flow.run_state(forked)
    assert place is not None
    assert (place["queue"], place["key"], place["priority"], place["state"]) == (
        "forks", "k", 3, "waiting"
    )  # fmt: skip
    [leased] = await runner.lease()
    assert leased.id == holder  # the fork is not due while the slot is taken
    await runner.execute(leased)  # its end admits the fork
    assert await states(app, [forked]) == ["admitted"]
    await drain(runner)
    assert await app.workflows.result(forked) == "a"
    assert seen == ["a", "b", "a"]
    assert await states(app, [first, holder, forked]) == ["done"] * 3


async def test_a_consumers_limits_removed_from_its_code_are_removed_when_it_opens(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    """The limits stored are those of the last process to open with a consumer of the
    queue: one deployed without them takes them away (no stale throttle stays)."""

    def deployed(**limits: Any) -> App:
        app = App(
            database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None
        )

        @app.consumer("limited", **limits)
        async def handle(message: Any) -> None: ...

        return app

    async with deployed(global_concurrency=1, per_group_concurrency=1) as first:
        await first.queue("limited").send_batch([{"n": n} for n in range(3)])
        assert len(await first.queue("limited").receive(10)) == 1
    async with deployed() as second:
        assert len(await second.queue("limited").receive(10)) == 2  # no cap any more
