"""A primary lost mid-work: pg_auto_failover's monitor promotes the synchronous
secondary, and nothing statekeeper acknowledged is lost or applied twice.

The harness writes through both nodes' Unix sockets with ``target_session_attrs=
read-write`` (state puts, messages, workflow starts, each acknowledged when the call
returns); a worker host runs the messages and workflows through the nodes' network
addresses, the same way. Mid-work, every process on the primary's host is SIGKILLed
(its keeper and its postmaster: the machine is lost). Calls fail while there is no
primary (counted by error kind, and tried again, as a client would); once the
secondary is promoted they succeed again, and the workers go on there.
"""

from __future__ import annotations

import asyncio
import collections
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from statekeeper import App
from statekeeper.chaos.failover import Formation, missing
from statekeeper.chaos.hosts import Network
from statekeeper.errors import StatekeeperError
from tests.hosts.conftest import ROOT, TABLES

STEPS = 10
WORKER = ["worker", "--app", "statekeeper.chaos.workload_app:app"]


@pytest.fixture(scope="module")
def formation() -> Iterator[tuple[Network, Formation]]:
    reason = missing()
    if reason is not None:
        pytest.fail(f"cannot build the failover formation: {reason}")
    folder = Path(tempfile.mkdtemp(prefix="statekeeper-failover-"))
    with Network() as network:
        built = Formation(network, folder)
        try:
            built.start()
            yield network, built
        finally:
            built.stop()
            kept = ROOT / "tests" / "output" / "hosts" / "failover"
            shutil.rmtree(kept, ignore_errors=True)
            kept.mkdir(parents=True)
            for log in folder.glob("*.log"):
                shutil.copy(log, kept / log.name)
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def driver(formation: tuple[Network, Formation]) -> AsyncIterator[App]:
    app = App(formation[1].socket_url, namespace="chaos", purge_interval=None)

    @app.workflow
    async def ten_steps(ctx: object, workflow_id: str) -> int:
        raise AssertionError("runs only on the worker host")

    app.queue("work")
    async with app:
        conn = await asyncpg.connect(formation[1].socket_url)
        try:
            await conn.execute(TABLES)
        finally:
            await conn.close()
        yield app


async def test_a_primary_lost_mid_work_loses_nothing_acknowledged(
    formation: tuple[Network, Formation], driver: App
) -> None:
    network, nodes = formation
    app = driver
    worker_host = network.host("w1")
    env = {
        "PYTHONPATH": str(ROOT / "src"),
        "PATH": "/usr/bin:/bin",
        "STATEKEEPER_CHAOS_HOST": "w1",
        "STATEKEEPER_CHAOS_DSN": nodes.url,
        "STATEKEEPER_CHAOS_STEP_SECONDS": "0.02",
        "STATEKEEPER_LOG_LEVEL": "INFO",
    }
    with (nodes.directory / "w1.log").open("ab") as log:
        worker = worker_host.popen([sys.executable, "-m", "statekeeper", *WORKER], env=env,
                                   stdout=log, stderr=log)  # fmt: skip

    acked: dict[str, list[str]] = {"state": [], "message": [], "workflow": []}
    errors: collections.Counter[str] = collections.Counter()
    latencies: list[tuple[float, float]] = []  # (when, seconds) of acknowledged calls
    failed_at: list[float] = []  # when calls failed
    killed_at: float | None = None
    stop = asyncio.Event()

    async def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            kind = ("state", "message", "workflow")[i % 3]
            key = f"{kind}-{n}-{i}"
            started = time.monotonic()
            try:
                if kind == "state":
                    await app.state.put(key, {"i": i})
                elif kind == "message":
                    key = (await app.queue("work").send({"key": key})).id
                else:
                    await app.workflows.start("ten_steps", key, id=key)
            except StatekeeperError as error:
                errors[type(error).__name__] += 1
                failed_at.append(time.monotonic())
                await asyncio.sleep(0.2)
                continue  # not acknowledged: in doubt, a new item next
            latencies.append((time.monotonic(), time.monotonic() - started))
            acked[kind].append(key)
            i += 1
            await asyncio.sleep(0.01)

    writers = [asyncio.create_task(writer(n)) for n in range(8)]
    await asyncio.sleep(8)
    primary = nodes.primary()
    assert primary == "pg1"
    killed_at = time.monotonic()
    nodes.kill_host("pg1")
    promoted_in = await asyncio.to_thread(nodes.wait_primary, "pg2", 120)
    await asyncio.sleep(8)
    stop.set()
    await asyncio.gather(*writers)

    # Unavailable: from the kill until the first call started after the last failure
    # was acknowledged.
    last_failure = max(failed_at, default=killed_at)
    back = [when for when, took in latencies if when - took >= last_failure]
    assert back, "no write succeeded after the failover"
    window = back[0] - killed_at

    async def caught_up() -> bool:
        conn = await asyncpg.connect(nodes.socket_url)
        try:
            done = await conn.fetchval("SELECT count(*) FROM effects")
        finally:
            await conn.close()
        return int(done) >= len(acked["message"]) + STEPS * len(acked["workflow"])

    deadline = time.monotonic() + 180
    while not await caught_up():
        assert time.monotonic() < deadline, "the workers did not finish after the failover"
        await asyncio.sleep(0.5)
    worker.terminate()
    worker.wait(30)

    conn = await asyncpg.connect(nodes.socket_url)
    try:
        effects = {(r["kind"], r["key"]) for r in await conn.fetch("SELECT kind, key FROM effects")}
        attempts = int(await conn.fetchval("SELECT count(*) FROM attempts"))
        steps = await conn.fetchval(
            "SELECT count(*) FROM sk_workflow_steps WHERE namespace = 'chaos' AND kind = 'step' "
            "AND workflow_id = ANY($1)", acked["workflow"],
        )  # fmt: skip
        succeeded = await conn.fetchval(
            "SELECT count(*) FROM sk_workflows WHERE namespace = 'chaos' AND id = ANY($1) "
            "AND status = 'succeeded'", acked["workflow"],
        )  # fmt: skip
    finally:
        await conn.close()
    lost_state = [k for k in acked["state"] if await app.state.get(k) is None]
    lost_messages = [m for m in acked["message"] if ("message", m) not in effects]
    lost_steps = [
        w for w in acked["workflow"]
        if any(("step", f"{w}/{s}") not in effects for s in range(STEPS))
    ]  # fmt: skip
    stats = await app.queue("work").stats()
    p99_before = _p99([s for w, s in latencies if w < killed_at])
    p99_after = _p99([s for w, s in latencies if w > killed_at + window + 1])
    print(
        f"\nfailover: pg1's host killed; pg2 primary after {promoted_in:.1f} s (monitor); "
        f"writes unavailable for {window:.1f} s after the kill; acknowledged: "
        f"{len(acked['state'])} puts, {len(acked['message'])} messages, "
        f"{len(acked['workflow'])} workflows; errors by kind {dict(errors)}; "
        f"p99 {p99_before * 1000:.1f} ms before, {p99_after * 1000:.1f} ms after; "
        f"{attempts - len(effects)} effects tried again"
    )
    assert (lost_state, lost_messages, lost_steps) == ([], [], [])  # nothing acknowledged lost
    assert succeeded == len(acked["workflow"])
    assert steps == STEPS * len(acked["workflow"])  # each step checkpointed once
    assert (stats.ready, stats.in_flight, stats.delayed) == (0, 0, 0)
    assert errors, "the failover went unnoticed: nothing was tested"


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0
