"""Schedules into workflow queues, on SQLite and PostgreSQL, driven by the injected clock:
a fire starts its run queued (pending, not due, its place 'waiting') in the transaction
that moves the schedule on, and admission follows; the queue's limits, priorities and
keys hold; a fire decided twice makes one run and one place; a crash before admission
strands nothing; overlap policies see a waiting run as active (docs/schedules.md, "Into
a workflow queue")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from statekeeper import App
from statekeeper.errors import InvalidSchedule, UnknownFlowQueue
from statekeeper.schedules import Definition, Scheduler, make_spec
from statekeeper.schedules.policy import run_id
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock
from tests.contract.raw_sql import query


def register(app: App, seen: list[Any]) -> None:
    @app.function
    async def note(value: Any) -> Any:
        seen.append(value)
        return value

    @app.workflow
    async def job(ctx: WorkflowContext, value: Any) -> Any:
        return await ctx.step(note, value)

    @app.workflow
    async def held(ctx: WorkflowContext, value: Any) -> Any:
        """Runs until it is sent 'go' (it keeps its slot meanwhile)."""
        await ctx.wait_for_event("go")
        return await ctx.step(note, value)


def every(
    id: str, *, anchor: float, queue: str | None = "reports", overlap: str = "allow_all",
    workflow: str = "job", input: Any = None, **more: Any,
) -> Definition:  # fmt: skip
    return Definition.checked(
        id, workflow, make_spec(every=60, anchor=anchor), input=input, overlap=overlap,
        catchup=3600, queue=queue, **more,
    )  # fmt: skip


@pytest.fixture
def start(clock: FakeClock) -> float:
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % 60
    return clock.now


async def places(app: App, url: str) -> dict[str, tuple[str, str | None, int, str]]:
    """Every place in a workflow queue of the app's namespace: id -> (queue, key,
    priority, state), read behind statekeeper's back."""
    rows = await query(url, "SELECT id, queue, key, priority, state FROM sk_flow_runs "
                            "WHERE namespace = $1", app.namespace)  # fmt: skip
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


async def statuses(app: App) -> dict[str, str]:
    return {w["id"]: w["status"] for w in await app.workflows.list(limit=1000)}


async def drain(app: App, rounds: int = 50) -> None:
    runner = WorkflowRunner(app.workflows)
    for _ in range(rounds):
        if not await runner.run_due():
            return


async def test_fires_into_a_queue_of_one_wait_and_are_admitted_in_turn(
    app: App, clock: FakeClock, start: float, database_url: str
) -> None:
    seen: list[Any] = []
    register(app, seen)
    app.workflow_queue("reports", concurrency=1)
    await app.schedules.create(every("r", anchor=start, input="report"))
    ids = [run_id("r", start + 60 * n) for n in (1, 2, 3)]
    for n in (1, 2, 3):  # three fires, three rounds: each a write of one schedule
        clock.now = start + 60 * n
        assert await Scheduler(app.schedules).run_due() == 1
    found = await places(app, database_url)
    assert [found[i][3] for i in ids] == ["admitted", "waiting", "waiting"]
    assert await statuses(app) == {i: "pending" for i in ids}  # waiting runs are pending
    runner = WorkflowRunner(app.workflows)
    [first] = await runner.lease()
    assert first.id == ids[0] and await runner.lease() == []  # the others are not due
    await runner.execute(first)  # its end admits the next, in its transaction
    found = await places(app, database_url)
    assert [found[i][3] for i in ids] == ["done", "admitted", "waiting"]
    [second] = await runner.lease()
    assert second.id == ids[1]
    await runner.execute(second)
    await drain(app)
    assert seen == ["report"] * 3
    assert await statuses(app) == {i: "succeeded" for i in ids}
    assert [s[3] for s in (await places(app, database_url)).values()] == ["done"] * 3
    [queue] = await app.workflows.flow.state()
    assert (queue["name"], queue["waiting"], queue["running"]) == ("reports", 0, 0)


async def test_a_batch_of_schedules_honours_priority_and_keys(
    app: App, clock: FakeClock, start: float, database_url: str
) -> None:
    """Several schedules fire in one write (the scheduler's batch): their runs take
    their places by priority, and each key is held to its limit."""
    seen: list[Any] = []
    register(app, seen)
    app.workflow_queue("reports", concurrency=1)
    app.workflow_queue("tenants", per_key_concurrency=1, key="tenant")
    blocker = await app.workflows.start("held", "blocker", queue="reports")  # takes the slot
    for name, priority in (("low", 1), ("high", 9), ("mid", 5), ("none", 0)):
        await app.schedules.create(every(name, anchor=start, input=name, priority=priority))
    for name, tenant in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        await app.schedules.create(every(name, anchor=start, input={"tenant": tenant, "n": name},
                                         queue="tenants"))  # fmt: skip
    await app.schedules.create(every("given", anchor=start, input={"n": "given"},
                                     queue="tenants", key="b"))  # fmt: skip
    assert (await app.schedules.get("a1")).key == "a"  # the queue's key rule, from the input
    clock.now = start + 60
    assert await Scheduler(app.schedules).run_due() == 8  # one batch, one transaction
    found = await places(app, database_url)
    fired = {name: run_id(name, start + 60) for name in
             ("low", "high", "mid", "none", "a1", "a2", "b1", "given")}  # fmt: skip
    for one, other in (("a1", "a2"), ("b1", "given")):  # one run of each key at a time
        assert sorted([found[fired[one]][3], found[fired[other]][3]]) == ["admitted", "waiting"]
    assert found[fired["given"]][1] == "b" and found[fired["high"]][2] == 9
    assert all(found[fired[n]][3] == "waiting" for n in ("low", "high", "mid", "none"))
    await app.workflows.send_event(blocker, "go")
    await drain(app)
    reports = [s for s in seen if isinstance(s, str)]
    assert reports == ["blocker", "high", "mid", "low", "none"]
    assert {s["n"] for s in seen if isinstance(s, dict)} == {"a1", "a2", "b1", "given"}
    assert all(p[3] == "done" for p in (await places(app, database_url)).values())


async def test_a_fire_decided_twice_makes_one_run_and_one_place(
    app: App, clock: FakeClock, start: float, database_url: str
) -> None:
    seen: list[Any] = []
    register(app, seen)
    app.workflow_queue("reports", concurrency=1)
    for name in ("x", "y"):
        await app.schedules.create(every(name, anchor=start, input=name))
    store = app.backend.schedules
    clock.now = start + 60
    rows = await store.claim(app.namespace, now=clock.now, lease_end=clock.now + 3, limit=10)
    decided = [await app.schedules.firing.decide(row, clock.now) for row in rows]
    writes = [(d.row, d.runs, d.cancel) for d in decided]
    # The batch; it answers the runs it created, by workflow.
    assert await store.write_many(app.namespace, writes, clock.now) == {"job": 2}
    assert await store.write_many(app.namespace, writes, clock.now) is None  # stale: refused
    # The same runs written again under the schedules' current versions (a replayed
    # write, a second scheduler whose decision reached the database): nothing is added
    # and nothing fails, in a batch and one by one.
    for attempt in range(2):
        current = [await store.get(app.namespace, d.row.id) for d in decided]
        again = [(row, d.runs, d.cancel) for row, d in zip(current, decided, strict=True)
                 if row is not None]  # fmt: skip
        if attempt == 0:  # written, and no run created
            assert await store.write_many(app.namespace, again, clock.now) == {}
        else:
            for row, runs, cancel in again:
                written = await store.write(app.namespace, row, clock.now, runs=runs, cancel=cancel)
                assert written == {}
    await app.schedules.admit(r for d in decided for r in d.runs)
    # A backfill over the fire time decides it again too: it starts nothing new.
    clock.now = start + 61
    assert await app.schedules.backfill("x", start + 60, start + 61) == [run_id("x", start + 60)]
    found = await places(app, database_url)
    assert sorted(found) == [run_id("x", start + 60), run_id("y", start + 60)]
    assert sorted(p[3] for p in found.values()) == ["admitted", "waiting"]
    assert len(await statuses(app)) == 2
    await drain(app)
    assert sorted(seen) == ["x", "y"]


async def test_two_schedulers_racing_make_one_place_per_fire(
    app: App, database_url: str, namespace: str, clock: FakeClock, start: float
) -> None:
    seen: list[Any] = []
    register(app, seen)
    app.workflow_queue("reports", concurrency=2)
    for n in range(12):
        await app.schedules.create(every(f"s{n}", anchor=start, input=n))
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=None) as other:  # fmt: skip
        register(other, seen)
        other.workflow_queue("reports", concurrency=2)
        schedulers = [Scheduler(app.schedules, batch=5), Scheduler(other.schedules, batch=5),
                      Scheduler(app.schedules, batch=2)]  # fmt: skip
        for step in (1, 2, 3):
            clock.now = start + 60 * step
            for _ in range(4):
                for scheduler in schedulers:
                    await scheduler.run_due()
            clock.now += 4  # the claims end: every scheduler may look again
            for scheduler in schedulers:
                await scheduler.run_due()
        started = sum(s.started for s in schedulers)
    found = await places(app, database_url)
    assert started == len(found) == len(await statuses(app)) == 36
    assert sorted(p[3] for p in found.values()).count("admitted") == 2


async def test_a_crash_between_the_write_and_admission_strands_no_run(
    app: App, clock: FakeClock, start: float, database_url: str
) -> None:
    """The fire's write commits and its process dies before admitting: the next
    admission pass (every worker's runner makes one) admits the runs."""
    seen: list[Any] = []
    register(app, seen)
    app.workflow_queue("reports", concurrency=5)
    for name in ("one", "two", "three"):
        await app.schedules.create(every(name, anchor=start, input=name))
    store = app.backend.schedules
    clock.now = start + 60
    rows = await store.claim(app.namespace, now=clock.now, lease_end=clock.now + 3, limit=10)
    decided = [await app.schedules.firing.decide(row, clock.now) for row in rows]
    first, *rest = decided
    assert await store.write(app.namespace, first.row, clock.now, runs=first.runs) == {"job": 1}
    assert await store.write_many(app.namespace, [(d.row, d.runs, d.cancel) for d in rest],
                                  clock.now) == {"job": 2}  # fmt: skip
    found = await places(app, database_url)
    assert sorted(p[3] for p in found.values()) == ["waiting"] * 3
    due = await query(database_url, "SELECT id FROM sk_workflows WHERE namespace = $1 "
                                    "AND wake_at IS NOT NULL", app.namespace)  # fmt: skip
    assert due == []  # none is due before admission
    assert await app.workflows.flow.admission_pass(throttle=False) == 3
    await drain(app)
    assert sorted(seen) == ["one", "three", "two"]


@pytest.mark.parametrize("overlap", ["skip", "buffer_one", "cancel_other"])
async def test_overlap_policies_see_a_run_waiting_in_its_queue_as_active(
    app: App, clock: FakeClock, start: float, database_url: str, overlap: str
) -> None:
    seen: list[Any] = []
    register(app, seen)
    app.workflow_queue("reports", concurrency=1)
    blocker = await app.workflows.start("held", "blocker", queue="reports")
    await app.schedules.create(every("o", anchor=start, overlap=overlap, input="o"))
    first, second = run_id("o", start + 60), run_id("o", start + 120)
    for n in (1, 2):
        clock.now = start + 60 * n
        await Scheduler(app.schedules).run_due()
    await WorkflowRunner(app.workflows).run_due()
    got = await app.schedules.get("o")
    found = await places(app, database_url)
    state = await statuses(app)
    if overlap == "skip":  # the first run waits for its slot: the second fire is dropped
        assert found[first][3] == "waiting" and second not in state
    elif overlap == "buffer_one":
        assert found[first][3] == "waiting" and got.buffered == [second]
    else:  # the waiting run is cancelled without ever holding a slot
        assert state[first] == "cancelled" and found[first][3] == "done"
        assert found[second][3] == "waiting"
    await app.workflows.send_event(blocker, "go")
    await drain(app)
    clock.advance(1.5)  # a buffered fire starts at the schedule's next look
    await Scheduler(app.schedules).run_due()
    await drain(app)
    expected = {"skip": ["blocker", "o"], "buffer_one": ["blocker", "o", "o"],
                "cancel_other": ["blocker", "o"]}  # fmt: skip
    assert seen == expected[overlap]


async def test_a_queue_only_another_process_declares(
    app: App, database_url: str, namespace: str, clock: FakeClock, start: float
) -> None:
    """A schedule may name a queue a worker of the namespace declares (its limits are
    stored); its fires are admitted by those limits, here too. A queue nobody declared
    is refused."""
    seen: list[Any] = []
    register(app, seen)
    with pytest.raises(UnknownFlowQueue):
        await app.schedules.create(every("n", anchor=start, queue="elsewhere"))
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=None) as other:  # fmt: skip
        other.workflow_queue("elsewhere", concurrency=1)
        await other.workflows.flow.store_limits()  # what its worker does as it starts
    made = await app.schedules.create(every("n", anchor=start, queue="elsewhere", key="k"))
    assert (made.queue, made.key, made.priority) == ("elsewhere", "k", 0)
    clock.now = start + 120
    await Scheduler(app.schedules).run_due()
    found = await places(app, database_url)
    assert sorted(p[3] for p in found.values()) == ["admitted", "waiting"]


async def test_trigger_update_and_declared_schedules(
    app: App, clock: FakeClock, start: float, database_url: str
) -> None:
    seen: list[Any] = []
    register(app, seen)
    app.workflow_queue("reports", concurrency=1)
    app.workflow_queue("bulk", concurrency=3)

    @app.schedule(every=60, anchor=start, id="declared", queue="bulk", key="t", priority=3)
    @app.workflow
    async def nightly(ctx: WorkflowContext, value: Any) -> None:
        return None

    assert await app.schedules.upsert_declared() == ["declared"]
    declared = await app.schedules.get("declared")
    assert (declared.queue, declared.key, declared.priority) == ("bulk", "t", 3)
    assert declared.to_dict()["queue"] == "bulk"
    await app.schedules.upsert_declared()  # unchanged: not written again
    assert (await app.schedules.get("declared")).updated_at == declared.updated_at

    await app.schedules.create(every("t", anchor=start, input="t", priority=4))
    ran = await app.schedules.trigger("t")
    assert ran is not None
    assert (await places(app, database_url))[ran][:4] == ("reports", None, 4, "admitted")
    changed = await app.schedules.update(every("t", anchor=start, input="t", queue=None))
    assert (changed.queue, changed.key, changed.priority) == (None, None, 0)
    clock.now = start + 60
    await Scheduler(app.schedules).run_due()
    assert run_id("t", start + 60) not in await places(app, database_url)  # due at once
    await drain(app)
    assert seen == ["t", "t"]
    # Back into the queue: a backfill over that fire finds its run, started outside the
    # queue, and gives it no place (a place for a run that has ended would hold a slot).
    await app.schedules.update(every("t", anchor=start, input="t"))
    clock.now = start + 61
    await app.schedules.backfill("t", start + 60, start + 61)
    assert run_id("t", start + 60) not in await places(app, database_url)
    assert (await app.workflows.flow.state())[1]["running"] == 0  # reports: no slot held


@pytest.mark.parametrize("more,field", [
    ({"queue": "a b"}, "queue"),
    ({"queue": ""}, "queue"),
    ({"queue": "reports", "key": ""}, "key"),
    ({"queue": "reports", "key": "k" * 129}, "key"),
    ({"queue": "reports", "key": 5}, "key"),
    ({"queue": "reports", "priority": 1_000_001}, "priority"),
    ({"queue": "reports", "priority": True}, "priority"),
    ({"queue": "reports", "priority": 1.5}, "priority"),
    ({"queue": None, "key": "k"}, "key"),
    ({"queue": None, "priority": 2}, "priority"),
])  # fmt: skip
async def test_invalid_queue_fields_are_refused(more: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSchedule) as raised:
        every("bad", anchor=0.0, **more)
    assert raised.value.details["field"] == field


async def test_queues_whose_rules_act_on_starts_are_refused(app: App, start: float) -> None:
    """A fire takes no singleton or debounce lock: such a queue is refused (the schedule's
    overlap policy keeps its runs apart), and a queue that needs a key needs one."""
    register(app, [])
    app.workflow_queue("single", singleton="reject")
    app.workflow_queue("settle", debounce=5.0)
    app.workflow_queue("per-key", singleton="queue")
    for queue in ("single", "settle"):
        with pytest.raises(InvalidSchedule, match="overlap policy"):
            await app.schedules.create(every("s", anchor=start, queue=queue, key="k"))
    with pytest.raises(InvalidSchedule, match="needs a key"):
        await app.schedules.create(every("s", anchor=start, queue="per-key"))
    made = await app.schedules.create(every("s", anchor=start, queue="per-key", key="k"))
    assert made.key == "k"
    assert [s.id for s in await app.schedules.list()] == ["s"]


async def test_a_refused_declared_schedule_is_logged_and_the_others_fire(
    app: App, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A schedule declared in code into a queue nobody declares is refused on its own:
    it is logged, and the worker's other schedules are stored and fire."""

    @app.schedule(every=1, id="good")
    @app.workflow
    async def good(ctx: WorkflowContext, _: Any) -> None: ...

    @app.schedule(every=1, id="typo", queue="reprots")
    @app.workflow
    async def bad(ctx: WorkflowContext, _: Any) -> None: ...

    scheduler = Scheduler(app.schedules, poll=0.05)
    stopping = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stopping))
    for _ in range(10):
        clock.advance(1)
        await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert [s.id for s in await app.schedules.list()] == ["good"]
    assert scheduler.started > 0
    refused = [r for r in caplog.records if r.getMessage().startswith("a declared schedule")]
    assert refused and getattr(refused[0], "schedule", None) == "typo"


@pytest.mark.parametrize(
    ("rules", "key"),
    [({"singleton": "reject"}, "k"), ({"debounce": 5.0}, "k"), ({"singleton": "queue"}, None)],
)
async def test_a_queue_declared_by_another_process_is_checked_by_its_stored_rules(
    database_url: str, namespace: str, clock: FakeClock, rules: dict[str, Any], key: Any
) -> None:
    """A process that does not declare the queue (the command line, an HTTP server)
    checks a schedule against the start rules the declaring worker stored."""
    async with plain_app(database_url, namespace, clock) as worker:
        worker.workflow_queue("ruled", **rules)
        await worker.workflows.flow.store_limits()  # what a worker does as it starts
    async with plain_app(database_url, namespace, clock) as elsewhere:

        @elsewhere.workflow
        async def job(ctx: WorkflowContext, value: Any) -> Any:
            return value

        with pytest.raises(InvalidSchedule):
            await elsewhere.schedules.create(
                Definition.checked("s", "job", make_spec(every=60), queue="ruled", key=key)
            )


async def test_a_stored_key_field_gives_a_schedule_its_key_elsewhere(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    async with plain_app(database_url, namespace, clock) as worker:
        worker.workflow_queue("tenants", singleton="queue", key="tenant")
        await worker.workflows.flow.store_limits()
    async with plain_app(database_url, namespace, clock) as elsewhere:

        @elsewhere.workflow
        async def job(ctx: WorkflowContext, value: Any) -> Any:
            return value

        made = await elsewhere.schedules.create(
            Definition.checked(
                "s", "job", make_spec(every=60), input={"tenant": "acme"}, queue="tenants"
            )
        )
        assert made.to_dict()["key"] == "acme"


def plain_app(database_url: str, namespace: str, clock: FakeClock) -> App:
    return App(database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None)
