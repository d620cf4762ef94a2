"""Two worker hosts and a database host, 1 ms more per round trip between them: work
completes exactly once in effect while one worker host is cut off for 10 s mid-work;
the other takes its leases over, and the cut-off host's late checkpoints and acks are
refused by the fences when its link comes back, after which it works again."""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from statekeeper import App
from statekeeper.chaos.cluster import Cluster
from tests.hosts.conftest import TABLES, worker_env

WORKFLOWS, STEPS, MESSAGES = 500, 10, 2000
PARTITION = 10.0
WORKER = ["worker", "--app", "statekeeper.chaos.workload_app:app"]


@pytest.fixture
async def driver(cluster: Cluster) -> AsyncIterator[App]:
    """The harness's own app, on the database's Unix socket (no added latency)."""
    app = App(cluster.socket_url, namespace="chaos", purge_interval=None)

    @app.workflow
    async def ten_steps(ctx: object, workflow_id: str) -> int:  # the names the workers run
        raise AssertionError("runs only on the worker hosts")

    @app.workflow
    async def ten_pure_steps(ctx: object, workflow_id: str) -> int:
        raise AssertionError("runs only on the worker hosts")

    app.queue("work")
    async with app:
        conn = await asyncpg.connect(cluster.socket_url)
        try:
            await conn.execute(TABLES)
        finally:
            await conn.close()
        yield app


async def scalar(cluster: Cluster, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(cluster.socket_url)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def wait_for(check: object, timeout: float, what: str) -> float:
    """Poll the awaitable factory ``check`` every 0.2 s; the seconds it took."""
    started = time.monotonic()
    while not await check():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def fence_refusals(cluster: Cluster, host: str) -> tuple[int, int]:
    """How many late checkpoints (workflow runs) and late acks (messages) of ``host``
    were refused, by its log."""
    text = (cluster.logs / f"{host}.log").read_text(errors="replace")
    runs = len(re.findall(r"workflow run abandoned: its lease moved on", text))
    acks = len(re.findall(r"message finished after its lease was lost", text))
    return runs, acks


async def test_a_worker_host_cut_off_for_10_s_loses_its_leases_and_rejoins(
    cluster: Cluster, driver: App
) -> None:
    app = driver
    for n in range(WORKFLOWS):
        await app.workflows.start("ten_steps", f"wf-{n}", id=f"wf-{n}")
    await app.queue("work").send_batch([{"n": n} for n in range(MESSAGES)])
    workers = {
        name: cluster.start_statekeeper(
            name,
            WORKER,
            worker_env(cluster, name, STATEKEEPER_CHAOS_STEP_SECONDS="0.1"),
            log=f"{name}.log",
        )
        for name in ("w1", "w2")
    }
    by_w1 = "SELECT count(*) FROM attempts WHERE host = 'w1'"

    async def w1_busy() -> bool:
        return await scalar(cluster, by_w1) >= 300

    await wait_for(w1_busy, 120, "the first worker host did not get going")
    done_at_cut = await scalar(cluster, "SELECT count(*) FROM effects")
    w1_at_cut = await scalar(cluster, by_w1)
    clock = "SELECT extract(epoch FROM clock_timestamp())::float8 * 1000"
    cut_at = await scalar(cluster, clock)  # in ms, on the database's clock
    cluster.partition("w1")
    await asyncio.sleep(PARTITION)
    done_at_heal = await scalar(cluster, "SELECT count(*) FROM effects")
    w1_at_heal = await scalar(cluster, by_w1)
    heal_at = await scalar(cluster, clock)
    cluster.heal("w1")
    # What w1 had sent just before the cut may still land (it was past the link); from
    # a second after the cut until the heal, nothing of w1's reaches the database.
    w1_cut_off = await scalar(
        cluster, "SELECT count(*) FROM attempts WHERE host = 'w1' AND at BETWEEN "
        "to_timestamp($1::bigint / 1000.0 + 1) AND to_timestamp($2::bigint / 1000.0)",
        cut_at, heal_at,
    )  # fmt: skip

    async def all_done() -> bool:
        total = await scalar(cluster, "SELECT count(*) FROM effects")
        return total >= WORKFLOWS * STEPS + MESSAGES

    finished_in = await wait_for(all_done, 300, "the work did not complete")

    async def late_writes_refused() -> bool:
        runs, acks = fence_refusals(cluster, "w1")
        return runs + acks > 0

    # w1's writes held up by the cut reach the database when TCP next resends them (its
    # back-off doubles from 0.2 s: up to ~13 s after the heal); the fences refuse them.
    refused_in = await wait_for(late_writes_refused, 60, "no late write of w1's was refused")

    # The cut-off host rejoins: new work reaches it too.
    extra = [{"n": n} for n in range(MESSAGES, MESSAGES + 400)]
    sent = await app.queue("work").send_batch(extra)
    new_ids = [s.id for s in sent]

    async def extra_done() -> bool:
        found = await scalar(
            cluster, "SELECT count(*) FROM effects WHERE kind = 'message' AND key = ANY($1)",
            new_ids,
        )  # fmt: skip
        return found == len(new_ids)

    await wait_for(extra_done, 120, "work sent after the heal did not complete")
    w1_after = await scalar(
        cluster, "SELECT count(*) FROM effects WHERE host = 'w1' AND key = ANY($1)", new_ids
    )
    for process in workers.values():
        process.terminate()
    for process in workers.values():
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("a worker did not stop on SIGTERM within 30 s") from None

    statuses = await scalar(
        cluster, "SELECT count(*) FROM sk_workflows WHERE namespace = 'chaos' "
        "AND status = 'succeeded'",
    )  # fmt: skip
    outputs = {(await app.workflows.status(f"wf-{n}")).output for n in range(WORKFLOWS)}
    journal = await scalar(
        cluster, "SELECT count(*) FROM sk_workflow_steps WHERE namespace = 'chaos' "
        "AND kind = 'step'",
    )  # fmt: skip
    taken_over = await scalar(
        cluster,
        "SELECT count(*) FROM (SELECT split_part(key, '/', 1) FROM effects WHERE kind = 'step' "
        "GROUP BY 1 HAVING count(DISTINCT host) = 2) t",
    )
    attempts = await scalar(cluster, "SELECT count(*) FROM attempts")
    effects = await scalar(cluster, "SELECT count(*) FROM effects")
    stats = await app.queue("work").stats()
    refused = fence_refusals(cluster, "w1")
    print(
        f"\npartition of w1 for {PARTITION:.0f} s: {done_at_cut} effects before, "
        f"{done_at_heal - done_at_cut} by w2 during it (w1: {w1_at_heal - w1_at_cut}, sent before "
        f"the cut); "
        f"all done {finished_in:.1f} s after the heal; {taken_over} workflows run on both "
        f"hosts; {attempts - effects} tries repeated; {refused[0]} late checkpoints and "
        f"{refused[1]} late acks of w1 refused by a fence ({refused_in:.1f} s after the work "
        f"was done); {w1_after} of {len(new_ids)} new messages handled by w1 after rejoining"
    )
    assert statuses == WORKFLOWS
    assert outputs == {sum(range(STEPS))}
    assert journal == WORKFLOWS * STEPS  # one checkpoint per step: none twice
    assert effects == WORKFLOWS * STEPS + MESSAGES + len(new_ids)
    assert (stats.ready, stats.in_flight, stats.delayed) == (0, 0, 0)  # no stuck lease
    assert w1_cut_off == 0  # cut off: nothing of w1's reached the database
    assert done_at_heal > done_at_cut  # w2 went on
    assert taken_over > 0  # w2 finished workflows that w1 had begun
    assert w1_after > 0  # and w1 works again


async def test_a_step_costs_about_one_round_trip_over_the_link(
    cluster: Cluster, driver: App
) -> None:
    """One workflow at a time: the time between two steps' checkpoints, against a
    bare ``SELECT 1`` round trip from the same host over the same link."""
    worker = cluster.start_statekeeper(
        "w2",
        WORKER,
        worker_env(cluster, "w2", STATEKEEPER_CHAOS_STEP_SECONDS="0"),
        log="w2-alone.log",
    )
    probe = (
        "import asyncio, asyncpg, time, statistics, sys\n"
        "async def main():\n"
        "    c = await asyncpg.connect(sys.argv[1])\n"
        "    took = []\n"
        "    for _ in range(300):\n"
        "        t = time.perf_counter(); await c.fetchval('SELECT 1')\n"
        "        took.append(time.perf_counter() - t)\n"
        "    print(statistics.median(took))\n"
        "asyncio.run(main())\n"
    )
    done = cluster.host("w1").run([sys.executable, "-c", probe, cluster.worker_dsn])
    assert done.returncode == 0, done.stderr
    round_trip = float(done.stdout)
    gaps: list[float] = []
    try:
        for n in range(20):
            await driver.workflows.start("ten_pure_steps", f"alone-{n}", id=f"alone-{n}")
            assert await driver.workflows.result(f"alone-{n}", timeout=60) == sum(range(STEPS))
            conn = await asyncpg.connect(cluster.socket_url)
            try:
                ends = [r[0] for r in await conn.fetch(
                    "SELECT finished_at FROM sk_workflow_steps WHERE namespace = 'chaos' "
                    "AND workflow_id = $1 AND kind = 'step' ORDER BY position", f"alone-{n}",
                )]  # fmt: skip
            finally:
                await conn.close()
            gaps += [b - a for a, b in itertools.pairwise(ends)]
    finally:
        worker.terminate()
        worker.wait(30)
    step = statistics.median(gaps)
    print(
        f"\none step at a time over the link: {step * 1000:.2f} ms (median of {len(gaps)}); "
        f"a SELECT 1 round trip: {round_trip * 1000:.2f} ms; ratio {step / round_trip:.2f}"
    )
    # The checkpoint's round trip and the commit's flush: less than two round trips.
    assert step < 2 * round_trip
