"""Queues under SIGKILL: workers and the ingress server are killed mid-work and restarted.

Nothing acknowledged is lost (every message processed, every 202 request processed)
and nothing is applied twice (one effect row per message), with no stuck lease and
an empty dead-letter queue at the end.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from statekeeper import App
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import TOKEN, kill_workers_until, start, stop_workers

pytestmark = pytest.mark.crash


@pytest.fixture
async def prepared(schema: str) -> AsyncIterator[App]:
    url = f"{pg_dsn()}?schema={schema}"
    async with App(url, namespace="crash", purge_interval=None) as app:  # creates the schema
        conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
        await conn.execute(
            "CREATE TABLE crash_effects (message_id TEXT PRIMARY KEY, body TEXT NOT NULL)"
        )
        await conn.close()
        yield app


async def effects(schema: str) -> list[str]:
    conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
    try:
        return [row[0] for row in await conn.fetch("SELECT message_id FROM crash_effects")]
    finally:
        await conn.close()


async def assert_clean(app: App, schema: str) -> None:
    stats = await app.queue("work").stats()
    assert (stats.ready, stats.in_flight, stats.delayed, stats.dead) == (0, 0, 0, 0), stats
    conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
    try:
        leased = await conn.fetchval("SELECT count(*) FROM sk_messages WHERE state = 'leased'")
    finally:
        await conn.close()
    assert leased == 0


async def test_workers_killed_every_half_second(
    prepared: App, schema: str, processes: list[Process]
) -> None:
    app = prepared
    total = 2000
    sent = {r.id for r in await app.queue("work").send_batch([{"n": n} for n in range(total)])}
    assert len(sent) == total

    async def all_applied() -> bool:
        return len(await effects(schema)) >= total

    workers, kills = await kill_workers_until(schema, processes, all_applied, seed=42, limit=240)
    # Let leases of the last killed worker lapse and everything finish, then stop cleanly.
    for _ in range(200):
        stats = await app.queue("work").stats()
        if stats.ready + stats.in_flight + stats.delayed == 0:
            break
        await asyncio.sleep(0.1)
    # 0: a graceful stop. -SIGTERM: the signal came while a just-restarted worker was
    # still importing, before its handler existed (it held nothing yet).
    assert set(stop_workers(workers)) <= {0, -signal.SIGTERM}
    applied = await effects(schema)
    assert kills >= 3, "too few kills to prove anything"
    assert len(applied) == len(set(applied)) == total  # exactly one effect per message
    assert set(applied) == sent
    await assert_clean(app, schema)


async def test_fifo_groups_hold_their_order_while_workers_die(
    prepared: App, schema: str, processes: list[Process]
) -> None:
    """Six groups of 80 messages over 3 workers, one SIGKILLed every 0.5 s: each message's
    effect once, each group's effects in the order sent, never two of a group in hand."""
    app = prepared
    conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
    await conn.execute(
        "CREATE TABLE group_effects (message_id TEXT PRIMARY KEY, grp TEXT NOT NULL, "
        "n INTEGER NOT NULL, applied BIGSERIAL); "
        "CREATE TABLE group_overlaps (grp TEXT NOT NULL, message_id TEXT NOT NULL)"
    )
    groups, per_group = 6, 80
    total = groups * per_group
    queue = app.queue("ordered")
    sent = await queue.send_batch(
        [{"body": {"n": n}, "group": f"g{g}"} for n in range(per_group) for g in range(groups)]
    )
    assert len({r.id for r in sent}) == total

    async def all_applied() -> bool:
        return int(await conn.fetchval("SELECT count(*) FROM group_effects")) >= total

    try:
        workers, kills = await kill_workers_until(
            schema, processes, all_applied, seed=7, limit=240, extra={"CRASH_WORK_SECONDS": "0.01"}
        )
        assert set(stop_workers(workers)) <= {0, -signal.SIGTERM}
        rows = await conn.fetch("SELECT message_id, grp, n FROM group_effects ORDER BY applied")
        overlaps = await conn.fetch("SELECT grp, message_id FROM group_overlaps")
    finally:
        await conn.close()
    assert kills >= 3, "too few kills to prove anything"
    assert len(rows) == len({r["message_id"] for r in rows}) == total
    for g in range(groups):
        assert [r["n"] for r in rows if r["grp"] == f"g{g}"] == list(range(per_group))
    assert overlaps == []
    stats = await queue.stats()
    assert (stats.ready, stats.in_flight, stats.waiting, stats.dead) == (0, 0, 0, 0), stats


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_ingress_server_killed_midway(
    prepared: App, schema: str, processes: list[Process]
) -> None:
    app = prepared
    port = free_port()
    serve = ["serve", "--app", "crash_app:app", "--port", str(port), "--grace", "5"]
    server = start(serve, schema)
    processes.append(server)
    total = 1000
    accepted: dict[int, str] = {}
    killed = asyncio.Event()
    third_accepted = asyncio.Event()
    retries = 0

    async def post(client: httpx.AsyncClient, n: int) -> None:
        nonlocal retries
        while True:  # a client retrying with the same key until it gets its 202
            try:
                answer = await client.post(
                    "/v1/queues/work/messages",
                    json={"n": n},
                    headers={"Idempotency-Key": f"request-{n}"},
                )
            except httpx.TransportError:
                retries += 1
                await asyncio.sleep(0.05)
                continue
            assert answer.status_code == 202, answer.text
            accepted[n] = answer.json()["id"]
            if len(accepted) >= total // 3:
                third_accepted.set()
            return

    async def killer() -> None:
        await third_accepted.wait()
        server.send_signal(signal.SIGKILL)
        server.wait()
        killed.set()
        await asyncio.sleep(0.3)
        processes.append(start(serve, schema))

    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=16)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=10
    ) as client:
        for _ in range(200):  # the server starts
            try:
                await client.get("/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        kill = asyncio.create_task(killer())
        semaphore = asyncio.Semaphore(16)

        async def bounded(n: int) -> None:
            async with semaphore:
                await post(client, n)

        await asyncio.wait_for(asyncio.gather(*(bounded(n) for n in range(total))), 180)
        await kill
        # The same keys again: the original requests come back, nothing new is enqueued.
        for n in range(0, total, 97):
            again = await client.post(
                "/v1/queues/work/messages",
                json={"n": n},
                headers={"Idempotency-Key": f"request-{n}"},
            )
            assert again.json()["id"] == accepted[n]
    assert killed.is_set() and retries > 0
    assert len(accepted) == total and len(set(accepted.values())) == total
    for _ in range(600):
        if len(await effects(schema)) >= total:
            break
        await asyncio.sleep(0.1)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    applied = await effects(schema)
    assert len(applied) == len(set(applied)) == total
    assert set(applied) == set(accepted.values())
    await assert_clean(app, schema)
