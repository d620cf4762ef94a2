"""Schedules, on SQLite and PostgreSQL, driven by the injected clock: specs (cron with
time zones and DST, intervals, one-off), each overlap policy, jitter, the catch-up
window, backfill, pause / resume / trigger, next fire times, schedules declared in
code, and schedulers racing for the same fires (one run per fire)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from statekeeper import App
from statekeeper.errors import (
    InvalidSchedule,
    ScheduleExists,
    ScheduleNotFound,
    UnknownWorkflow,
)
from statekeeper.schedules import Definition, Scheduler, make_spec
from statekeeper.schedules.policy import jitter_offset, run_id
from statekeeper.schedules.scheduler import CLAIM_LEASE
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock

MINUTE = 60.0


def register(app: App) -> None:
    @app.workflow
    async def job(ctx: WorkflowContext, input: Any) -> Any:
        """Runs until it is sent 'go' (so a schedule's run stays active meanwhile)."""
        await ctx.wait_for_event("go")
        return input

    @app.workflow
    async def quick(ctx: WorkflowContext, input: Any) -> Any:
        return input


async def fire(app: App) -> int:
    """A scheduler round, then the runners: how many schedules were claimed."""
    claimed = await Scheduler(app.schedules).run_due()
    await WorkflowRunner(app.workflows).run_due()
    return claimed


async def runs(app: App) -> dict[str, str]:
    """Every run: id -> status."""
    found = await app.workflows.list(limit=1000)
    return {w["id"]: w["status"] for w in found}


async def finish(app: App, id: str) -> None:
    await app.workflows.send_event(id, "go")
    await WorkflowRunner(app.workflows).run_due()


def every(id: str, seconds: float, *, overlap: str = "skip", workflow: str = "job",
          catchup: float = 60.0, jitter: float = 0.0, anchor: float | None = None,
          input: Any = None) -> Definition:  # fmt: skip
    return Definition.checked(
        id, workflow, make_spec(every=seconds, anchor=anchor), input=input, overlap=overlap,
        catchup=catchup, jitter=jitter,
    )  # fmt: skip


@pytest.fixture
def start(clock: FakeClock) -> float:
    """A round minute of the fake clock."""
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % 60
    return clock.now


async def test_a_cron_schedule_fires_once_per_fire_time(app: App, clock: FakeClock) -> None:
    register(app)
    clock.now = datetime(2027, 1, 15, 8, 0, 30, tzinfo=UTC).timestamp()
    made = await app.schedules.create(
        Definition.checked("tick", "quick", make_spec("*/5 * * * *"), input={"n": 1})
    )
    first = datetime(2027, 1, 15, 8, 5, tzinfo=UTC).timestamp()
    assert made.next_fire_at == first
    assert await app.schedules.next_fire_times("tick", 3) == [first, first + 300, first + 600]
    assert await fire(app) == 0  # nothing due yet
    clock.now = first
    assert await fire(app) == 1
    assert await fire(app) == 0  # the fire is done; the next is five minutes on
    assert await runs(app) == {"tick@20270115T080500Z": "succeeded"}
    assert (await app.workflows.status("tick@20270115T080500Z")).output == {"n": 1}
    got = await app.schedules.get("tick")
    assert got.next_fire_at == first + 300 and got.last_run_id == "tick@20270115T080500Z"


async def test_an_interval_counts_from_its_anchor(app: App, clock: FakeClock) -> None:
    register(app)
    anchor = clock.now - 7
    await app.schedules.create(every("i", 10, anchor=anchor, workflow="quick", overlap="allow_all"))
    assert await app.schedules.next_fire_times("i", 2) == [anchor + 10, anchor + 20]
    clock.now = anchor + 25
    await fire(app)
    assert sorted(await runs(app)) == [run_id("i", anchor + 10), run_id("i", anchor + 20)]
    # without an anchor, it counts from its creation
    made = await app.schedules.create(every("j", 30, workflow="quick"))
    assert made.next_fire_at == clock.now + 30


async def test_a_one_off_start_fires_once(app: App, clock: FakeClock) -> None:
    register(app)
    at = clock.now + 90
    await app.schedules.create(Definition.checked("once", "quick", make_spec(at=at)))
    clock.advance(100)
    assert await fire(app) == 1
    clock.advance(1000)
    assert await fire(app) == 0
    assert list(await runs(app)) == [run_id("once", at)]
    done = await app.schedules.get("once")
    assert done.next_fire_at is None and done.due_at is None
    with pytest.raises(InvalidSchedule):  # a one-off start is in the future
        await app.schedules.create(Definition.checked("past", "quick", make_spec(at=clock.now)))


async def test_dst_a_skipped_hour_fires_after_the_gap_a_repeated_one_once(app: App) -> None:
    register(app)
    berlin = ZoneInfo("Europe/Berlin")
    spec = make_spec("30 2 * * *", timezone="Europe/Berlin")
    # 2027-03-28: 02:00 -> 03:00 in Berlin; 02:30 does not exist that day
    spring = spec.fires(datetime(2027, 3, 27, 12, tzinfo=berlin).timestamp(), float("inf"), 3)
    shown = [datetime.fromtimestamp(t, berlin).strftime("%d %H:%M") for t in spring]
    assert shown == ["28 03:00", "29 02:30", "30 02:30"]
    # 2027-10-31: 03:00 -> 02:00; 02:30 happens twice, the schedule fires once
    autumn = spec.fires(datetime(2027, 10, 30, 12, tzinfo=berlin).timestamp(), float("inf"), 3)
    assert [datetime.fromtimestamp(t, berlin).strftime("%d %H:%M") for t in autumn] == [
        "31 02:30", "01 02:30", "02 02:30",
    ]  # fmt: skip
    assert autumn[1] - autumn[0] == 25 * 3600  # the repeated hour is not fired again


async def test_dst_fires_through_the_scheduler(app: App, clock: FakeClock) -> None:
    register(app)
    berlin = ZoneInfo("Europe/Berlin")
    clock.now = datetime(2027, 3, 28, 1, 0, tzinfo=berlin).timestamp()
    definition = Definition.checked(
        "nightly", "quick", make_spec("30 2 * * *", timezone="Europe/Berlin"), catchup=3600
    )
    await app.schedules.create(definition)
    clock.now = datetime(2027, 3, 28, 3, 1, tzinfo=berlin).timestamp()
    await fire(app)
    assert list(await runs(app)) == ["nightly@20270328T010000Z"]  # 03:00 CEST


@pytest.mark.parametrize("overlap", ["skip", "buffer_one", "buffer_all", "cancel_other",
                                     "allow_all"])  # fmt: skip
async def test_overlap_policies(app: App, clock: FakeClock, start: float, overlap: str) -> None:
    register(app)
    await app.schedules.create(every("o", 60, overlap=overlap, anchor=start, catchup=600))
    ids = [run_id("o", start + 60 * n) for n in (1, 2, 3, 4)]
    for n in (1, 2, 3):  # three fires while the first run waits
        clock.now = start + 60 * n
        await fire(app)
    state = await runs(app)
    got = await app.schedules.get("o")
    if overlap == "skip":
        assert state == {ids[0]: "waiting"} and got.buffered == []
    elif overlap == "buffer_one":
        assert state == {ids[0]: "waiting"} and got.buffered == [ids[1]]
    elif overlap == "buffer_all":
        assert state == {ids[0]: "waiting"} and got.buffered == [ids[1], ids[2]]
    elif overlap == "cancel_other":
        assert state == {ids[0]: "cancelled", ids[1]: "cancelled", ids[2]: "waiting"}
    else:
        assert state == {i: "waiting" for i in ids[:3]}
    # the first run ends: a buffered fire starts at the next look (within a second)
    await finish(app, ids[2] if overlap == "cancel_other" else ids[0])
    clock.advance(1.5)
    await fire(app)
    state = await runs(app)
    if overlap == "buffer_one":
        assert state[ids[1]] == "waiting" and ids[2] not in state
    elif overlap == "buffer_all":
        assert state[ids[1]] == "waiting" and ids[2] not in state
        await finish(app, ids[1])
        clock.advance(1.5)
        await fire(app)
        assert (await runs(app))[ids[2]] == "waiting"
        assert (await app.schedules.get("o")).buffered == []
    elif overlap == "skip":
        assert list(state) == [ids[0]]
        clock.now = start + 240
        await fire(app)
        assert (await runs(app))[ids[3]] == "waiting"  # the next fire runs again


async def test_the_catch_up_window(app: App, clock: FakeClock, start: float) -> None:
    """Fires missed within the window run on recovery; older ones are skipped."""
    register(app)
    await app.schedules.create(
        every("c", 60, overlap="allow_all", anchor=start, catchup=150, workflow="quick")
    )
    clock.now = start + 600  # ten fires missed (no scheduler ran)
    await fire(app)
    assert sorted(await runs(app)) == [run_id("c", start + 60 * n) for n in (8, 9, 10)]
    assert (await app.schedules.get("c")).next_fire_at == start + 660


async def test_jitter_is_deterministic_and_delays_the_start(
    app: App, clock: FakeClock, start: float
) -> None:
    register(app)
    await app.schedules.create(every("j", 60, anchor=start, jitter=30, workflow="quick"))
    fire_at = start + 60
    offset = jitter_offset("j", fire_at, 30)
    assert 0 <= offset < 30 and offset == jitter_offset("j", fire_at, 30)
    assert jitter_offset("k", fire_at, 30) != offset  # spread across schedules
    assert (await app.schedules.get("j")).due_at == fire_at + offset
    clock.now = fire_at + offset - 0.01
    assert await fire(app) == 0
    clock.now = fire_at + offset
    assert await fire(app) == 1
    assert list(await runs(app)) == [run_id("j", fire_at)]  # named by its nominal time


async def test_backfill_starts_one_run_per_fire_time(
    app: App, clock: FakeClock, start: float
) -> None:
    register(app)
    await app.schedules.create(every("b", 60, overlap="allow_all", anchor=start,
                                     workflow="quick"))  # fmt: skip
    clock.now = start + 30
    started = await app.schedules.backfill("b", start - 300, start)
    assert started == [run_id("b", start - 60 * n) for n in (5, 4, 3, 2, 1)]
    await app.schedules.backfill("b", start - 300, start)  # again: no second run per fire
    await WorkflowRunner(app.workflows).run_due()
    assert len(await runs(app)) == 5
    assert (await app.schedules.get("b")).next_fire_at == start + 60  # untouched
    with pytest.raises(InvalidSchedule):
        await app.schedules.backfill("b", start, start + 3600)  # the future
    with pytest.raises(InvalidSchedule):
        await app.schedules.backfill("b", start, start - 60)


async def test_backfill_honours_the_overlap_policy(
    app: App, clock: FakeClock, start: float
) -> None:
    register(app)
    await app.schedules.create(every("s", 60, overlap="buffer_all", anchor=start))
    clock.now = start + 30
    started = await app.schedules.backfill("s", start - 180, start)
    assert started == [run_id("s", start - 180)]  # the others wait their turn
    assert (await app.schedules.get("s")).buffered == [
        run_id("s", start - 120), run_id("s", start - 60),
    ]  # fmt: skip


async def test_pause_resume_and_trigger(app: App, clock: FakeClock, start: float) -> None:
    register(app)
    await app.schedules.create(every("p", 60, anchor=start, workflow="quick"))
    paused = await app.schedules.pause("p")
    assert paused.paused and paused.due_at is None
    clock.now = start + 300
    assert await fire(app) == 0 and await runs(app) == {}
    triggered = await app.schedules.trigger("p")  # works while paused too
    await WorkflowRunner(app.workflows).run_due()
    assert triggered == f"p@manual-{datetime.fromtimestamp(start + 300, UTC):%Y%m%dT%H%M%S}Z"
    resumed = await app.schedules.resume("p")
    assert not resumed.paused and resumed.next_fire_at == start + 360  # paused fires skipped
    clock.now = start + 360
    await fire(app)
    assert sorted(await runs(app)) == sorted([triggered, run_id("p", start + 360)])


async def test_trigger_honours_the_overlap_policy(app: App, start: float) -> None:
    register(app)
    await app.schedules.create(every("t", 60, anchor=start, overlap="skip"))
    first = await app.schedules.trigger("t")
    await WorkflowRunner(app.workflows).run_due()
    assert first is not None
    assert await app.schedules.trigger("t") is None  # the first is still running


async def test_two_schedulers_racing_start_one_run_per_fire(
    app: App, database_url: str, namespace: str, clock: FakeClock, start: float
) -> None:
    register(app)
    for n in range(20):
        await app.schedules.create(
            every(f"r{n}", 10, overlap="allow_all", anchor=start, workflow="quick", catchup=600)
        )
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=None) as other:  # fmt: skip
        register(other)
        schedulers = [Scheduler(app.schedules, batch=7), Scheduler(other.schedules, batch=7),
                      Scheduler(app.schedules, batch=3)]  # fmt: skip
        for step in range(1, 7):
            clock.now = start + 10 * step
            for _ in range(4):
                await asyncio.gather(*(s.run_due() for s in schedulers))
            # a claim's lease ends: every scheduler may look at every schedule again
            clock.now += 11
            await asyncio.gather(*(s.run_due() for s in schedulers))
            clock.now -= 11
        started = sum(s.started for s in schedulers)
    found = await runs(app)
    expected = {run_id(f"r{n}", start + 10 * k) for n in range(20) for k in range(1, 8)}
    assert set(found) <= expected and len(found) >= 20 * 6
    assert started == len(found)  # no scheduler created a run that another had made


async def test_a_write_from_a_stale_read_is_refused(
    app: App, clock: FakeClock, start: float
) -> None:
    """The fence: two decisions made from the same read; only one is written."""
    register(app)
    await app.schedules.create(every("f", 60, anchor=start, overlap="allow_all",
                                     workflow="quick"))  # fmt: skip
    clock.now = start + 60
    row = await app.backend.schedules.get(app.namespace, "f")
    assert row is not None
    one = await app.schedules.firing.decide(row, clock.now)
    two = await app.schedules.firing.decide(row, clock.now)
    store = app.backend.schedules
    assert await store.write(app.namespace, one.row, clock.now, runs=one.runs)
    assert not await store.write(app.namespace, two.row, clock.now, runs=[*two.runs])
    clock.now = start + 60.5
    assert await fire(app) == 0
    assert list(await runs(app)) == [run_id("f", start + 60)]


async def test_create_update_delete_list(app: App, clock: FakeClock, start: float) -> None:
    register(app)
    await app.schedules.create(every("a", 60, anchor=start, input=[1]))
    await app.schedules.create(every("b", 60, anchor=start))
    with pytest.raises(ScheduleExists):
        await app.schedules.create(every("a", 30))
    assert [s.id for s in await app.schedules.list()] == ["a", "b"]
    assert [s.id for s in await app.schedules.list(after="a")] == ["b"]
    updated = await app.schedules.update(
        Definition.checked("a", "quick", make_spec("0 * * * *"), input=[2], overlap="allow_all")
    )
    assert updated.input == [2] and updated.overlap == "allow_all"
    assert updated.next_fire_at == start + 3600 - start % 3600
    await app.schedules.delete("a")
    with pytest.raises(ScheduleNotFound):
        await app.schedules.get("a")
    with pytest.raises(ScheduleNotFound):
        await app.schedules.delete("a")
    with pytest.raises(UnknownWorkflow):
        await app.schedules.create(every("c", 60, workflow="nope"))


@pytest.mark.parametrize("bad", [
    {"cron": "* * *"}, {"cron": "61 * * * *"}, {"cron": "* * * * *", "timezone": "Mars/Base"},
    {"every": 0}, {"every": float("nan")}, {"every": True}, {"at": "tomorrow"}, {},
    {"cron": "* * * * *", "every": 5},
])  # fmt: skip
async def test_invalid_specs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidSchedule):
        make_spec(**bad)


@pytest.mark.parametrize("field,value", [
    ("id", ""), ("id", "a/b"), ("id", "x" * 161), ("overlap", "sometimes"),
    ("jitter", -1), ("catchup", float("inf")),
])  # fmt: skip
async def test_invalid_definitions_are_refused(field: str, value: Any) -> None:
    given: dict[str, Any] = {"id": "ok", "overlap": "skip", "jitter": 0, "catchup": 60}
    given[field] = value
    with pytest.raises(InvalidSchedule):
        Definition.checked(
            given["id"], "job", make_spec(every=5), overlap=given["overlap"],
            jitter=given["jitter"], catchup=given["catchup"],
        )  # fmt: skip


async def test_declared_schedules_are_upserted(app: App, clock: FakeClock) -> None:
    @app.schedule("*/5 * * * *", timezone="Europe/Paris", overlap="allow_all", input={"r": 1})
    @app.workflow
    async def report(ctx: WorkflowContext, input: Any) -> Any:
        return input

    assert await app.schedules.upsert_declared() == ["report"]
    first = await app.schedules.get("report")
    assert first.spec.timezone == "Europe/Paris" and first.input == {"r": 1}
    clock.advance(1)
    await app.schedules.upsert_declared()  # unchanged code: the row is not touched
    assert (await app.schedules.get("report")).updated_at == first.updated_at
    await app.schedules.pause("report")
    app.schedule("0 * * * *", id="report", overlap="skip")(report)  # the code changes
    await app.schedules.upsert_declared()
    changed = await app.schedules.get("report")
    assert changed.overlap == "skip" and changed.spec.cron == "0 * * * *" and changed.paused


async def test_the_scheduler_service_sleeps_until_due_and_wakes_on_change(
    app: App, clock: FakeClock, start: float
) -> None:
    register(app)
    stopping = asyncio.Event()
    scheduler = Scheduler(app.schedules, poll=30.0)
    task = asyncio.create_task(scheduler.run(stopping))
    try:
        await asyncio.sleep(0.05)  # asleep: nothing is scheduled, it waits the poll
        await app.schedules.create(every("w", 60, anchor=start - 59.9, workflow="quick"))
        clock.now = start + 1  # due; the create's wake-up lets it see so
        for _ in range(200):
            if scheduler.started:
                break
            await asyncio.sleep(0.01)
        assert scheduler.started == 1
    finally:
        stopping.set()
        await asyncio.wait_for(task, 5)


async def test_a_batch_with_one_stale_schedule_writes_nothing(
    app: App, clock: FakeClock, start: float
) -> None:
    """A scheduler's batch is written whole or not at all; the scheduler then writes
    each schedule on its own, and the stale one is left to whoever changed it."""
    register(app)
    for name in ("x", "y", "z"):
        await app.schedules.create(every(name, 60, anchor=start, overlap="allow_all",
                                         workflow="quick"))  # fmt: skip
    clock.now = start + 60
    store = app.backend.schedules
    rows = await store.claim(app.namespace, now=clock.now, lease_end=clock.now + 10, limit=10)
    decided = [await app.schedules.firing.decide(row, clock.now) for row in rows]
    await app.schedules.pause("y")  # changes y's version after the claim
    writes = [(d.row, d.runs, d.cancel) for d in decided]
    assert await store.write_many(app.namespace, writes, clock.now) is None
    assert await runs(app) == {}
    for d in decided:
        await store.write(app.namespace, d.row, clock.now, runs=d.runs)
    assert sorted(await runs(app)) == [run_id("x", start + 60), run_id("z", start + 60)]
    assert (await app.schedules.get("y")).paused


async def test_a_schedule_created_after_a_fire_time_starts_from_the_next(
    app: App, clock: FakeClock, start: float
) -> None:
    """The schedule crash test's lost fire: a schedule anchored at ``start`` but created
    once ``start + 1`` has passed (its setup was slow) never runs that fire; it starts
    from the first fire after its creation, by design (docs/schedules.md)."""
    register(app)
    clock.now = start + 0.996  # created in time: the fire at start + 1 is its first
    await app.schedules.create(every("early", 1, anchor=start, overlap="allow_all",
                                     workflow="quick", catchup=3600))  # fmt: skip
    clock.now = start + 1.004  # created a few milliseconds late: that fire has passed
    late = await app.schedules.create(every("late", 1, anchor=start, overlap="allow_all",
                                            workflow="quick", catchup=3600))  # fmt: skip
    assert late.next_fire_at == start + 2
    clock.now = start + 3
    await fire(app)
    assert sorted(await runs(app)) == sorted(
        [run_id("early", start + n) for n in (1, 2, 3)]
        + [run_id("late", start + n) for n in (2, 3)]
    )


async def test_a_scheduler_killed_between_claim_and_write_loses_no_fire(
    app: App, clock: FakeClock, start: float
) -> None:
    """A scheduler claims, decides and dies before its write; the fires due meanwhile
    pile up under its claim. When the claim's lease ends another scheduler (its clock
    a little behind) starts every one of them, oldest first, in one write; the dead
    scheduler's decision, written late, is refused and starts nothing."""
    register(app)
    await app.schedules.create(every("k", 1, anchor=start, overlap="allow_all",
                                     workflow="quick", catchup=3600))  # fmt: skip
    store = app.backend.schedules
    clock.now = start + 1
    claimed = await store.claim(app.namespace, now=clock.now, lease_end=clock.now + 10, limit=10)
    assert [row.id for row in claimed] == ["k"]
    dead = await app.schedules.firing.decide(claimed[0], clock.now)  # never written
    clock.now = start + 10.9  # within the lease: nobody may fire it
    assert await Scheduler(app.schedules).run_due() == 0
    clock.now = start + 11.0  # the lease ends
    assert await Scheduler(app.schedules).run_due() == 1
    expected = [run_id("k", start + n) for n in range(1, 12)]
    assert sorted(await runs(app)) == expected
    assert (await app.schedules.get("k")).next_fire_at == start + 12
    assert not await store.write(app.namespace, dead.row, clock.now, runs=dead.runs)
    for n in range(12, 40):  # then a fire a second, the rounds at uneven times
        clock.now = start + n + (0.3 if n % 3 else 0.0)
        await Scheduler(app.schedules).run_due()
    assert sorted(await runs(app)) == [run_id("k", start + n) for n in range(1, 40)]


async def test_fires_past_due_are_all_started_when_a_round_comes_late(
    app: App, clock: FakeClock, start: float
) -> None:
    """A round that comes several fire times late starts each of them, not only the
    latest; more than one write's worth is worked through over the next rounds."""
    register(app)
    await app.schedules.create(every("p", 1, anchor=start, overlap="allow_all",
                                     workflow="quick", catchup=3600))  # fmt: skip
    clock.now = start + 250.5
    scheduler = Scheduler(app.schedules)
    for _ in range(3):
        await scheduler.run_due()
    assert sorted(await runs(app)) == sorted(run_id("p", start + n) for n in range(1, 251))
    assert scheduler.started == 250
    assert (await app.schedules.get("p")).next_fire_at == start + 251


async def test_claimed_ahead_a_fire_is_written_at_its_time_once(
    app: App, clock: FakeClock, start: float
) -> None:
    """A scheduler claims schedules due within ``ahead`` and decides them beforehand, but
    writes them only when their time comes; meanwhile no other scheduler takes them. One
    killed holding such a claim leaves the fire to another when the claim ends."""
    register(app)
    for name in ("a", "b"):
        await app.schedules.create(every(name, 60, anchor=start, overlap="allow_all",
                                         workflow="quick", catchup=600))  # fmt: skip
    clock.now = start + 59.7
    waiting = asyncio.create_task(Scheduler(app.schedules, poll=0.01, batch=1).run_due(ahead=0.5))
    killed = asyncio.create_task(Scheduler(app.schedules, poll=0.01, batch=1).run_due(ahead=0.5))
    await asyncio.sleep(0.1)
    assert not waiting.done() and not killed.done()
    assert await Scheduler(app.schedules).run_due(ahead=0.5) == 0  # both are claimed
    assert await runs(app) == {}  # nothing is written before its time
    killed.cancel()  # dies holding its claim
    clock.now = start + 60
    assert await asyncio.wait_for(waiting, 5) == 1
    assert len(await runs(app)) == 1
    clock.now = start + 59.6 + CLAIM_LEASE  # the dead one's claim lasts until 59.7 + lease
    assert await Scheduler(app.schedules).run_due() == 0
    clock.now = start + 59.7 + CLAIM_LEASE
    assert await Scheduler(app.schedules).run_due() == 1
    assert sorted(await runs(app)) == [run_id("a", start + 60), run_id("b", start + 60)]


async def test_a_stopping_scheduler_writes_the_fires_it_claimed_ahead(
    app: App, clock: FakeClock, start: float
) -> None:
    register(app)
    await app.schedules.create(every("s", 60, anchor=start, overlap="allow_all",
                                     workflow="quick"))  # fmt: skip
    clock.now = start + 59.8
    stopping = asyncio.Event()
    task = asyncio.create_task(
        Scheduler(app.schedules, poll=0.01).run_due(ahead=0.5, stopping=stopping)
    )
    await asyncio.sleep(0.1)
    stopping.set()
    await asyncio.sleep(0.05)
    assert not task.done()  # it waits for the fire's time, a fraction of a second
    clock.now = start + 60
    assert await asyncio.wait_for(task, 5) == 1
    assert list(await runs(app)) == [run_id("s", start + 60)]


async def test_a_stopping_scheduler_does_not_wait_for_a_clock_that_stands(
    app: App, clock: FakeClock, start: float
) -> None:
    register(app)
    await app.schedules.create(every("t", 60, anchor=start, overlap="allow_all",
                                     workflow="quick"))  # fmt: skip
    clock.now = start + 59.8
    stopping = asyncio.Event()
    task = asyncio.create_task(
        Scheduler(app.schedules, poll=0.01).run_due(ahead=0.5, stopping=stopping)
    )
    await asyncio.sleep(0.1)
    stopping.set()  # the fire's time never comes: it gives up after a moment
    assert await asyncio.wait_for(task, 5) == 1
    assert await runs(app) == {}


async def test_a_round_that_outlasts_its_claim_leaves_the_fire_to_the_next_claim(
    app: App, clock: FakeClock, start: float, caplog: pytest.LogCaptureFixture
) -> None:
    """A scheduler whose claim ran out before it wrote (a stalled round) writes nothing
    and does not retry schedule by schedule: the one that claimed them since fires."""
    register(app)
    await app.schedules.create(every("slow", 60, anchor=start, overlap="allow_all",
                                     workflow="quick", catchup=600))  # fmt: skip
    clock.now = start + 58
    # It waits for the fire in one sleep of 2 s (its poll), so the other scheduler below
    # claims and fires first however busy the machine is.
    stalled = asyncio.create_task(Scheduler(app.schedules, poll=2.0).run_due(ahead=2.5))
    for _ in range(500):  # claimed ahead (due again at its claim's end), waiting for the fire
        row = await app.backend.schedules.get(app.schedules.namespace, "slow")
        if row is not None and row.due_at is not None and row.due_at > start + 60:
            break
        await asyncio.sleep(0.01)
    clock.now = start + 58 + CLAIM_LEASE  # ... which comes after its claim ended
    assert await Scheduler(app.schedules).run_due() == 1  # another claims it and fires
    assert await asyncio.wait_for(stalled, 5) == 1
    assert list(await runs(app)) == [run_id("slow", start + 60)]
    assert any("outlasted its claim" in r.getMessage() for r in caplog.records)
