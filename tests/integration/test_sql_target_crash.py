"""A projection into a separate PostgreSQL database under SIGKILL: 3 worker processes
share it, one killed every ~0.5 s and restarted while 10,000 events are appended; the
read model ends identical to a replay of the log from scratch (the rebuild into
generation 2, run here without kills), with each event's effects there once."""

from __future__ import annotations

import asyncio
import random
import secrets
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from statekeeper.events.model import EventData
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import start, stop_workers
from tests.integration.sql_target_crash_app import PROJECTION, ledger_app

pytestmark = pytest.mark.crash

TOTAL = 10_000
WORKER = ["worker", "--app", "sql_target_crash_app:app"]


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(pg_dsn())
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def target_db() -> Iterator[str]:
    """The read database, of this module's own (dropped at the end)."""
    name = f"sk_read_{secrets.token_hex(5)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(pg_dsn())._replace(path=f"/{name}", query=""))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def kill_holders_until(
    schema: str,
    extra: dict[str, str],
    processes: list[Process],
    finished: Callable[[], Awaitable[bool]],
    holder: Callable[[], Awaitable[int | None]],
    *,
    seed: int,
    limit: float,
) -> tuple[list[Process], int, int]:
    """Run 3 workers; every 0.3-1 s until ``finished()``, SIGKILL the worker that last
    moved the checkpoint (``holder()``, a pid) if it is alive (it is most likely inside
    its next transaction), else one in four times a worker at random (starting up,
    waiting for the checkpoint), and start it again. A worker takes seconds to start on
    a busy machine: killing only a holder that has committed since it took over paces
    the kills to the projection's progress. The workers still running, the kills, and
    how many hit the holder."""
    workers: list[Process] = [start(WORKER, schema, extra) for _ in range(3)]
    processes.extend(workers)
    rng = random.Random(seed)
    kills = hits = 0
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.3, 1.0))
        if await finished():
            break
        pid = await holder()
        chosen = [i for i, w in enumerate(workers) if w.pid == pid]
        if chosen:
            victim = chosen[0]
            hits += 1
        elif rng.random() < 0.25:
            victim = rng.randrange(len(workers))
        else:
            continue
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].wait()
        kills += 1
        workers[victim] = start(WORKER, schema, extra)
        processes.append(workers[victim])
    return workers, kills, hits


def read_traces(directory: Path) -> tuple[int, Counter[int]]:
    """How many workers handled events, and how many times each event was handled."""
    traces = sorted(directory.glob("*.trace"))
    return len(traces), Counter(int(n) for t in traces for n in t.read_text().split())


async def fetch(target_db: str, schema: str, sql: str) -> list[Any]:
    conn = await asyncpg.connect(target_db, server_settings={"search_path": schema})
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


@pytest.mark.timeout(900)  # workers take seconds to start on a busy machine
async def test_a_sql_projection_survives_killed_workers(
    schema: str, target_db: str, tmp_path: Path, processes: list[Process]
) -> None:
    target_url = f"{target_db}?schema={schema}"
    app = ledger_app(f"{pg_dsn()}?schema={schema}", target_url)
    rng = random.Random(11)
    expected: Counter[str] = Counter()
    async with app:
        appended = asyncio.Event()

        async def append() -> None:
            """10,000 deposits in 1,000 appends over ~10 s, audit events between."""
            for n in range(TOTAL // 10):
                stream = f"account-{rng.randrange(50)}"
                amounts = [rng.randrange(1, 1000) for _ in range(10)]
                expected[stream] += sum(amounts)
                await app.events.append(
                    stream, [EventData("Deposited", {"amount": a}) for a in amounts]
                )
                if n % 7 == 0:
                    await app.events.append(f"audit-{n}", [EventData("Checked")])
                    await app.events.append(stream, [EventData("Noted", {"amount": 10**6})])
                await asyncio.sleep(0.01)
            appended.set()

        async def caught_up() -> bool:
            if not appended.is_set():
                return False
            found = await app.projections.status(PROJECTION)
            return bool(found["current"]["position"] == await app.events.head())

        async def holder() -> int | None:
            last = "SELECT holder FROM statekeeper_projections WHERE generation = 1"
            try:
                found = await fetch(target_db, schema, last)
            except asyncpg.UndefinedTableError:  # no worker has set the target up yet
                return None
            return int(found[0][0].split(":")[1]) if found and found[0][0] else None

        started = time.monotonic()
        appending = asyncio.create_task(append())
        extra = {"CRASH_TARGET_URL": target_url, "CRASH_TRACE_DIR": str(tmp_path)}
        try:
            workers, kills, hits = await kill_holders_until(
                schema, extra, processes, caught_up, holder, seed=5, limit=600
            )
        finally:
            appending.cancel()
        elapsed = time.monotonic() - started
        assert set(stop_workers(workers)) <= {0, -signal.SIGTERM}
        assert appended.is_set(), "the appends did not finish"
        head = await app.events.head()
        status = await app.projections.status(PROJECTION)
        current = status["current"]
        assert current["position"] == head and current["lag"] == 0
        assert (current["parked"], current["failures"]) == (0, 0)

        applied = await fetch(target_db, schema, "SELECT position FROM applied__g1")
        positions = [r[0] for r in applied]
        assert len(positions) == len(set(positions)) == TOTAL  # each event's effects once
        balances = await fetch(target_db, schema, "SELECT id, balance FROM accounts")
        assert {r[0]: r[1] for r in balances} == dict(expected)

        # The replay from scratch: generation 2, built here without kills, then compared
        # with what the killed workers left in generation 1.
        assert await app.projections.rebuild(PROJECTION) == 2
        await app.projections.catch_up(PROJECTION)
        assert (await app.projections.status(PROJECTION))["generation"] == 2
        differences = await fetch(
            target_db,
            schema,
            "SELECT count(*) FROM ((TABLE accounts__g1 EXCEPT ALL TABLE accounts__g2) UNION ALL "
            "(TABLE accounts__g2 EXCEPT ALL TABLE accounts__g1)) d",
        )
        assert differences[0][0] == 0
        replayed = await fetch(target_db, schema, "SELECT position FROM applied__g2")
        assert sorted(r[0] for r in replayed) == sorted(positions)
        assert [r[0] for r in await fetch(target_db, schema, "SELECT count(*) FROM accounts")] == [
            len(expected)
        ]

    processes_seen, calls = read_traces(tmp_path)
    again = sum(n - 1 for n in calls.values())
    print(
        f"\nSQL target under kills: {TOTAL} events in {elapsed:.1f} s, {kills} kills "
        f"({hits} of the checkpoint's last holder), {processes_seen} worker processes, {again} "
        "handler calls repeated after a kill rolled their transaction back"
    )
    assert kills >= 5, "too few kills to prove anything"
    assert set(calls) == set(positions)  # the trace saw every event handled
