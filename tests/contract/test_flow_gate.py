"""PostgreSQL's admission without the queue's lock (schema/postgres.sql: sk_flow_admit,
sk_flow_admit_start): a start that finds its queue full holds the start gate shared
instead of waiting for the admission lock; an end that frees a slot of a full queue and
finds no run to fill it with waits for the starts in flight and looks again; an end
hands its slot on without the lock, the per-key limit held by the key's slots. Each
test holds a lock or a transaction from a connection of its own at the racy moment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from statekeeper import App
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock, pg_dsn
from tests.contract.raw_sql import pg_schema
from tests.contract.test_flow_control import drain, echo_workflow, states

GATE = 1397441101  # the gate's first key (the admission lock's is one less)


@pytest.fixture
async def pg_app(pg_shared_url: str, namespace: str, clock: FakeClock) -> AsyncIterator[App]:
    async with App(
        pg_shared_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None
    ) as opened:
        yield opened


async def connect(url: str) -> Any:
    return await asyncpg.connect(pg_dsn(), server_settings={"search_path": pg_schema(url)})


async def blocked_on_the_gate(conn: Any, namespace: str, queue: str) -> None:
    """Wait until some session waits for the gate of ``queue``."""
    key = await conn.fetchval("SELECT hashtext($1 || chr(31) || $2)", namespace, queue)
    for _ in range(500):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = $1 AND objid = $2 AND objsubid = 2",
            GATE, key & 0xFFFFFFFF,
        )  # fmt: skip
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nobody waited for the gate")


async def hold(conn: Any, key: int, namespace: str, queue: str, *, shared: bool = False) -> Any:
    """A transaction opened on ``conn`` that holds advisory lock ``key`` of ``queue``."""
    transaction = conn.transaction()
    await transaction.start()
    take = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(f"SELECT {take}($1, hashtext($2 || chr(31) || $3))", key, namespace, queue)
    return transaction


async def someone_waits(conn: Any, locktype: str) -> None:
    """Wait until some session waits for a lock of ``locktype``."""
    for _ in range(500):
        sql = "SELECT count(*) FROM pg_locks WHERE locktype = $1 AND NOT granted"
        if await conn.fetchval(sql, locktype):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"nobody waited for a {locktype} lock")


async def test_a_start_that_counted_a_full_queue_admits_itself_when_a_slot_opened_meanwhile(
    pg_app: App, namespace: str, pg_shared_url: str
) -> None:
    app = pg_app
    echo = echo_workflow(app, [])
    app.workflow_queue("gate", concurrency=1)
    first = await app.workflows.start(echo, 1, queue="gate")
    holder, watcher = await connect(pg_shared_url), await connect(pg_shared_url)
    try:
        ending = await hold(holder, GATE, namespace, "gate")
        # The start counts the queue full, then waits for the gate held here...
        start = asyncio.create_task(app.workflows.start(echo, 2, queue="gate", id="late"))
        await blocked_on_the_gate(watcher, namespace, "gate")
        # ... while the first run's slot is given back, with nothing admitted into it.
        await holder.execute(
            "UPDATE sk_flow_runs SET state = 'done' WHERE namespace = $1 AND id = $2",
            namespace, first,
        )  # fmt: skip
        await ending.commit()
        assert await start == "late"
    finally:
        await holder.close()
        await watcher.close()
    assert await states(app, [first, "late"]) == ["done", "admitted"]


async def test_an_end_that_frees_a_full_queues_slot_waits_for_the_starts_in_flight(
    pg_app: App, namespace: str, clock: FakeClock, pg_shared_url: str
) -> None:
    app = pg_app
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("gate", concurrency=1)
    first = await app.workflows.start(echo, 1, queue="gate")
    runner = WorkflowRunner(app.workflows)
    [leased] = await runner.lease()
    starting, watcher = await connect(pg_shared_url), await connect(pg_shared_url)
    try:
        # A start in flight: its run placed, the queue counted full, the gate held shared.
        start = starting.transaction()
        await start.start()
        now = clock()
        await starting.execute(
            "INSERT INTO sk_workflows (namespace, id, name, status, input, fence, created_at, "
            "updated_at) VALUES ($1, 'late', 'echo', 'pending', '2', 0, $2, $2)",
            namespace, now,
        )  # fmt: skip
        await starting.execute(
            "INSERT INTO sk_flow_runs (namespace, id, queue, priority, state, not_before, "
            "created_at) VALUES ($1, 'late', 'gate', 0, 'waiting', $2, $2)",
            namespace, now,
        )  # fmt: skip
        await starting.execute(
            "SELECT pg_advisory_xact_lock_shared($1, hashtext($2 || chr(31) || 'gate'))",
            GATE, namespace,
        )  # fmt: skip
        # The first run ends: its pick cannot see the start's run, so it waits for the
        # gate before it looks again...
        ending = asyncio.create_task(runner.execute(leased))
        await blocked_on_the_gate(watcher, namespace, "gate")
        assert not ending.done()
        await start.commit()  # ... and then sees it.
        await ending
    finally:
        await starting.close()
        await watcher.close()
    assert await states(app, [first, "late"]) == ["done", "admitted"]
    await runner.run_due()
    assert seen == [1, 2]


ADMISSION = GATE - 1  # the queue's admission lock


async def test_an_end_hands_its_slot_on_without_the_queues_admission_lock(
    pg_app: App, namespace: str, pg_shared_url: str
) -> None:
    app = pg_app
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("hand", concurrency=1, per_key_concurrency=1)
    first = await app.workflows.start(echo, 1, queue="hand", key="a")
    second = await app.workflows.start(echo, 2, queue="hand", key="b")
    runner = WorkflowRunner(app.workflows)
    [leased] = await runner.lease()
    holder = await connect(pg_shared_url)
    try:
        held = await hold(holder, ADMISSION, namespace, "hand")
        await asyncio.wait_for(runner.execute(leased), 10)  # not held up by the lock
        await held.rollback()
    finally:
        await holder.close()
    assert await states(app, [first, second]) == ["done", "admitted"]
    await runner.run_due()
    assert seen == [1, 2]


async def test_two_ends_handing_slots_to_runs_of_one_key_admit_one(
    pg_app: App, namespace: str, pg_shared_url: str, clock: FakeClock
) -> None:
    """Ends hand their slots on without the queue's lock; the per-key limit is held by
    the key's slots: the second end waits for the first, finds the key's one slot
    taken, and leaves the other run of that key waiting."""
    app = pg_app
    echo = echo_workflow(app, [])
    app.workflow_queue("keys", concurrency=2, per_key_concurrency=1)
    a = await app.workflows.start(echo, 1, queue="keys", key="a")
    b = await app.workflows.start(echo, 2, queue="keys", key="b")
    c = await app.workflows.start(echo, 3, queue="keys", key="k")
    d = await app.workflows.start(echo, 4, queue="keys", key="k")
    assert await states(app, [a, b, c, d]) == ["admitted", "admitted", "waiting", "waiting"]
    runner = WorkflowRunner(app.workflows)
    leased = {w.id: w for w in await runner.lease()}
    ending, watcher = await connect(pg_shared_url), await connect(pg_shared_url)
    try:
        first_end = ending.transaction()
        await first_end.start()  # a's end, by hand: it hands a's slot to c, uncommitted
        handed = await ending.fetchval(
            "SELECT sk_flow_admit($1, NULL, $2, $3, 1)", namespace, a, clock()
        )
        assert handed == 1
        second_end = asyncio.create_task(runner.execute(leased[b]))  # b's end picks d
        await someone_waits(watcher, "transactionid")  # ... and waits for a's end to commit
        await first_end.commit()
        await asyncio.wait_for(second_end, 10)
    finally:
        await ending.close()
        await watcher.close()
    assert await states(app, [b, c, d]) == ["done", "admitted", "waiting"]


async def test_a_runs_end_takes_the_next_run_of_its_queue_to_run_at_once(pg_app: App) -> None:
    app = pg_app
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("chain", concurrency=1)
    ids = [await app.workflows.start(echo, n, queue="chain") for n in range(3)]
    runner = WorkflowRunner(app.workflows)
    runner.take_next = True
    [first] = await runner.lease()
    await runner.execute(first)  # its end took the second, whose end took the third
    assert seen == [0, 1, 2] and runner.taken == 2
    assert await states(app, ids) == ["done"] * 3
    assert {(await app.workflows.status(id)).status for id in ids} == {"succeeded"}


async def test_a_run_the_runner_cannot_run_is_admitted_not_taken(
    pg_app: App, pg_shared_url: str, namespace: str, clock: FakeClock
) -> None:
    app = pg_app
    seen: list[Any] = []
    echo = echo_workflow(app, seen)

    @app.workflow
    async def other(ctx: WorkflowContext, value: int) -> int:
        return value

    app.workflow_queue("mixed", concurrency=1)
    first = await app.workflows.start(echo, 1, queue="mixed")
    second = await app.workflows.start(other, 2, queue="mixed")
    async with App(
        pg_shared_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None
    ) as echoes:  # runs echo only
        echo_workflow(echoes, seen)
        runner = WorkflowRunner(echoes.workflows)
        runner.take_next = True
        [leased] = await runner.lease()
        await runner.execute(leased)
        assert runner.taken == 0 and await runner.lease() == []
    assert await states(app, [first, second]) == ["done", "admitted"]
    [due] = await WorkflowRunner(app.workflows).lease()  # due for a runner that runs it
    assert due.id == second


async def test_a_run_taken_as_the_runner_stops_is_given_back(pg_app: App) -> None:
    app = pg_app
    seen: list[Any] = []
    echo = echo_workflow(app, seen)
    app.workflow_queue("stop", concurrency=1)
    first = await app.workflows.start(echo, 1, queue="stop")
    second = await app.workflows.start(echo, 2, queue="stop")
    stopping = asyncio.Event()

    class Stopped(WorkflowRunner):
        async def _finish(self, *args: Any) -> None:
            await super()._finish(*args)
            stopping.set()  # the stop comes just after the end took the next run

    runner = Stopped(app.workflows)
    runner.take_next = True
    runner._stopping = stopping
    [leased] = await runner.lease()
    await runner.execute(leased)
    assert runner.taken == 1 and seen == [1]
    assert (await app.workflows.status(second)).status == "pending"  # given back: due
    [again] = await WorkflowRunner(app.workflows).lease()
    assert again.id == second and await states(app, [first]) == ["done"]


async def admitted_of(conn: Any, namespace: str, queue: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT id FROM sk_flow_runs WHERE namespace = $1 AND queue = $2 "
        "AND state = 'admitted' ORDER BY id",
        namespace, queue,
    )  # fmt: skip
    return [row["id"] for row in rows]


async def test_a_waiting_run_admitted_while_its_end_waits_for_the_lock_gives_its_slot_back(
    pg_app: App, namespace: str, pg_shared_url: str, clock: FakeClock
) -> None:
    """A waiting run ends (its deadline passed) while an admission that picked it holds
    the queue's lock: the end, once it has the lock, gives back the slot it was given."""
    app = pg_app
    echo = echo_workflow(app, [])
    app.workflow_queue("leak", concurrency=1)
    first = await app.workflows.start(echo, 1, queue="leak", id="first")
    await app.workflows.start(echo, 2, queue="leak", id="late")
    admitting, ending = await connect(pg_shared_url), await connect(pg_shared_url)
    watcher = await connect(pg_shared_url)
    try:
        admission = await hold(admitting, ADMISSION, namespace, "leak")
        await admitting.execute(
            "UPDATE sk_flow_runs SET state = 'admitted', admitted_at = $2 "
            "WHERE namespace = $1 AND id = 'late'",
            namespace, clock(),
        )  # fmt: skip
        end = asyncio.create_task(
            ending.fetchval("SELECT sk_flow_admit($1, NULL, 'late', $2, 1)", namespace, clock())
        )  # its place read as waiting; now it waits for the lock
        await someone_waits(watcher, "advisory")
        await admission.commit()
        assert await asyncio.wait_for(end, 10) == 0
        assert await admitted_of(watcher, namespace, "leak") == [first]
    finally:
        for conn in (admitting, ending, watcher):
            await conn.close()


async def test_a_run_requeued_after_holding_a_key_slot_is_admitted_without_one(
    pg_app: App, namespace: str, pg_shared_url: str, clock: FakeClock
) -> None:
    """An end gives its key's slot back: runs of one key that held slot 1, requeued and
    admitted once the queue has no per-key limit, do not collide on the old slot."""
    app = pg_app
    echo = echo_workflow(app, [])
    app.workflow_queue("stale", per_key_concurrency=1)
    ids = [await app.workflows.start(echo, n, queue="stale", key="k") for n in range(2)]
    await drain(WorkflowRunner(app.workflows))
    conn = await connect(pg_shared_url)
    try:
        slots = await conn.fetch(
            "SELECT key_slot FROM sk_flow_runs WHERE namespace = $1 AND queue = 'stale'",
            namespace,
        )  # fmt: skip
        assert [row["key_slot"] for row in slots] == [None, None]
        await conn.execute(
            "UPDATE sk_flow_queues SET per_key_concurrency = NULL "
            "WHERE namespace = $1 AND name = 'stale'",
            namespace,
        )  # fmt: skip
        await conn.execute(
            "UPDATE sk_flow_runs SET state = 'waiting' WHERE namespace = $1 AND queue = 'stale'",
            namespace,
        )  # fmt: skip
        admitted = await conn.fetchval(
            "SELECT sk_flow_admit($1, 'stale', NULL, $2, 16)", namespace, clock()
        )
        assert admitted == 2
        assert await admitted_of(conn, namespace, "stale") == sorted(ids)
    finally:
        await conn.close()


async def test_an_end_does_not_hand_its_slot_on_in_a_queue_over_its_lowered_limit(
    pg_app: App, namespace: str, pg_shared_url: str, clock: FakeClock
) -> None:
    app = pg_app
    echo = echo_workflow(app, [])
    app.workflow_queue("lowered", concurrency=3)
    ids = [await app.workflows.start(echo, n, queue="lowered") for n in range(5)]
    assert await states(app, ids) == ["admitted"] * 3 + ["waiting"] * 2
    conn = await connect(pg_shared_url)
    try:
        await conn.execute(
            "UPDATE sk_flow_queues SET concurrency = 1 WHERE namespace = $1 AND name = 'lowered'",
            namespace,
        )  # fmt: skip
        for id in ids[:2]:  # two end: neither hands its slot on (2, then 1, running)
            handed = await conn.fetchval(
                "SELECT sk_flow_admit($1, NULL, $2, $3, 1)", namespace, id, clock()
            )
            assert handed == 0
        assert await admitted_of(conn, namespace, "lowered") == [ids[2]]
        handed = await conn.fetchval(
            "SELECT sk_flow_admit($1, NULL, $2, $3, 1)", namespace, ids[2], clock()
        )
        assert handed == 1  # under the limit again: the next is admitted
        assert await admitted_of(conn, namespace, "lowered") == [ids[3]]
    finally:
        await conn.close()
