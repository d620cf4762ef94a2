"""Schedules under SIGKILL: a schedule firing every second for 60 s of schedule time over
3 PostgreSQL workers, a random one killed every 0.5 s (wall time) and restarted. The workers run
on an injected clock 4x faster than real time (shared origin, see schedule_crash_app),
so the 60 s of schedule time take about 15 s of wall time. Each fire time must have
started exactly one run (the run id is the schedule id and fire time), and none may be
missing (every fire is within the catch-up window).

The fires counted are those from the schedule's first, which is the first fire time
after it is created (not the anchor's first): the test's own setup (the schema's
migrations) takes some of the 0.25 s of wall time a schedule second lasts, and a
fire that has passed by then is, by design, never run."""

from __future__ import annotations

import time

import asyncpg
import pytest

from statekeeper import App
from statekeeper.schedules import Definition, make_spec
from statekeeper.schedules.policy import run_id
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import kill_workers_until, stop_workers

pytestmark = pytest.mark.crash

SPEED = 4.0
SECONDS = 60
T0 = 1_900_000_000.0


async def test_a_schedule_fires_each_second_once_while_workers_are_killed(
    schema: str, processes: list[Process]
) -> None:
    wall0 = time.time()
    env = {"CRASH_SCHED_T0": str(T0), "CRASH_SCHED_WALL0": repr(wall0),
           "CRASH_SCHED_SPEED": str(SPEED)}  # fmt: skip

    def clock() -> float:
        return T0 + (time.time() - wall0) * SPEED

    app = App(f"{pg_dsn()}?schema={schema}", namespace="crash", purge_interval=None,
              clock=clock)  # fmt: skip

    @app.workflow
    async def beat(ctx: object, input: object) -> None:
        raise AssertionError("runs only in the worker processes")

    async with app:
        # as the workers declare it (so their upsert leaves it alone): from T0 on, its
        # first fire the first after now
        created = await app.schedules.create(Definition.checked(
            "beat", "beat", make_spec(every=1, anchor=T0), overlap="allow_all", catchup=3600,
        ))  # fmt: skip
        first = created.next_fire_at
        assert first is not None and first <= T0 + 20, "the setup took too long"
        expected = {run_id("beat", first + n) for n in range(SECONDS)}
        conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})

        async def started() -> set[str]:
            rows = await conn.fetch("SELECT id FROM sk_workflows WHERE name = 'beat'")
            return {row[0] for row in rows}

        async def all_fired() -> bool:
            return expected <= await started()

        try:
            workers, kills = await kill_workers_until(
                schema, processes, all_fired, seed=23, limit=75, extra=env, every=0.5,
                worker=["worker", "--app", "schedule_crash_app:app"],
            )  # fmt: skip
            stop_workers(workers)
            found = await started()
            beyond = clock()
        finally:
            await conn.close()
        schedule = await app.schedules.get("beat")
    assert kills >= 20, f"too few kills to prove anything: {kills}"
    assert expected <= found, f"missed fires: {sorted(expected - found)[:5]}"
    # nothing but the fires' own runs: every id is a fire time, none of the future
    fires = {run_id("beat", first + n) for n in range(int(beyond - first) + 2)}
    assert found <= fires, sorted(found - fires)[:5]
    assert schedule.next_fire_at is not None and schedule.next_fire_at >= first + SECONDS
