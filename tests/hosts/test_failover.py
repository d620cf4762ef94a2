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
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from statekeeper import App
from statekeeper.chaos.clients import API_KINDS, Calls, create_tables, harness_app, write_mixed
from statekeeper.chaos.failover import Formation, missing
from statekeeper.chaos.hosts import Network
from statekeeper.chaos.report import p99
from statekeeper.chaos.run import settle
from tests.hosts.conftest import ROOT

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
    app = harness_app(formation[1].socket_url)
    async with app:
        await create_tables(formation[1].socket_url)
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

    calls = Calls.of(API_KINDS)
    stop = asyncio.Event()
    writers = [asyncio.create_task(write_mixed(app, calls, n, stop)) for n in range(8)]
    await asyncio.sleep(8)
    assert nodes.primary() == "pg1"
    killed_at = time.monotonic()
    nodes.kill_host("pg1")
    promoted_in = await asyncio.to_thread(nodes.wait_primary, "pg2", 120)
    await asyncio.sleep(8)
    stop.set()
    await asyncio.gather(*writers)

    # Unavailable: from the kill until the first call started after the last failure
    # was acknowledged.
    back = calls.available_again(killed_at)
    assert back is not None, "no write succeeded after the failover"
    window = back - killed_at
    invariants, repeated = await settle(nodes.socket_url, app, calls)
    worker.terminate()
    worker.wait(30)
    journal = await asyncpg.connect(nodes.socket_url)
    try:
        steps = await journal.fetchval(
            "SELECT count(*) FROM sk_workflow_steps WHERE namespace = 'chaos' "
            "AND workflow_id = ANY($1)", calls.acked["workflow"],
        )  # fmt: skip
    finally:
        await journal.close()
    before = [end - start for start, end in calls.done if end < killed_at]
    after = [end - start for start, end in calls.done if start > killed_at + window + 1]
    print(
        f"\nfailover: pg1's host killed; pg2 primary after {promoted_in:.1f} s (monitor); "
        f"writes unavailable for {window:.1f} s after the kill; acknowledged: "
        f"{', '.join(f'{len(v)} {k}' for k, v in calls.acked.items())}; errors by kind "
        f"{dict(calls.errors)}; p99 {p99(before)} ms before, {p99(after)} ms after; "
        f"{repeated} effects tried again; invariants {invariants}"
    )
    assert set(invariants.values()) == {0}, invariants
    assert steps == 4 * len(calls.acked["workflow"])  # 3 steps and a transaction, once each
    assert set(calls.errors) == {"DatabaseUnavailable"}, "the failover went unnoticed"
