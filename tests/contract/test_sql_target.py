"""Projections into a separate PostgreSQL database (events/sql_target.py), with the
events on every backend: the read model and its checkpoint commit together in the
target, exactly once across restarts and lost connections, one process at a time,
poison events parked there, and rebuilds into a new generation behind a view that
readers keep querying."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from statekeeper import App, Retry
from statekeeper.errors import ConfigurationError, DatabaseUnavailable, InvalidDatabaseURL
from statekeeper.events.model import EventData, RecordedEvent
from statekeeper.events.projections import Projection
from statekeeper.events.sql_target import SqlContext, SqlRunner, SqlTarget
from statekeeper.events.subscriptions import Options
from tests.conftest import pg_dsn

NO_WAIT = Retry(max_attempts=3, initial_interval=0.0, jitter=False)
ORDERS = (
    "CREATE TABLE {table} (id text PRIMARY KEY, total numeric NOT NULL, "
    "status text NOT NULL, events int NOT NULL DEFAULT 1)"
)


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(pg_dsn())
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def target_db() -> Iterator[str]:
    """A PostgreSQL database of this module's own, the read side (dropped at the end)."""
    name = f"sk_read_{secrets.token_hex(5)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(pg_dsn())._replace(path=f"/{name}", query=""))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def schema() -> str:
    return f"t_{secrets.token_hex(5)}"


@pytest.fixture
def target_url(target_db: str, schema: str) -> str:
    """The read database, in a schema of this test's own."""
    return f"{target_db}?schema={schema}"


@asynccontextmanager
async def reader(target_db: str, schema: str) -> AsyncIterator[asyncpg.Connection]:
    """A reader of the read database, as a reporting tool connects: no statekeeper."""
    conn = await asyncpg.connect(target_db, server_settings={"search_path": schema})
    try:
        yield conn
    finally:
        await conn.close()


def placed(total: int) -> EventData:
    return EventData("Placed", {"total": total})


async def project_order(event: RecordedEvent, sql: SqlContext) -> None:
    """Accumulates (never idempotent): an event handled twice shows in the totals."""
    t = sql.table("orders")
    if event.type == "Placed":
        await sql.execute(
            f"INSERT INTO {t} (id, total, status) VALUES ($1, $2, 'placed') ON CONFLICT (id) "
            f"DO UPDATE SET total = {t}.total + EXCLUDED.total, events = {t}.events + 1",
            event.stream,
            event.data["total"],
        )
    elif event.type == "Paid":
        await sql.execute(
            f"UPDATE {t} SET status = 'paid', events = events + 1 WHERE id = $1", event.stream
        )


def orders_projection(app: App, url: str, **options: Any) -> SqlTarget:
    target = SqlTarget(url, tables={"orders": ORDERS})
    app.projection("orders", category="order", target=target, **options)(project_order)
    return target


async def rows(conn: asyncpg.Connection, relation: str = "orders") -> list[tuple[Any, ...]]:
    found = await conn.fetch(f"SELECT id, total, status, events FROM {relation} ORDER BY id")
    return [(r["id"], int(r["total"]), r["status"], r["events"]) for r in found]


async def test_the_read_model_and_its_checkpoint_commit_in_the_target(
    app: App, target_url: str, target_db: str, schema: str
) -> None:
    orders_projection(app, target_url, batch=3)
    await app.events.append("order-1", [placed(10), EventData("Paid")])
    await app.events.append("user-1", [EventData("Joined")])
    await app.events.append("order-2", [placed(5), placed(7)])
    await app.events.append("user-2", [EventData("Joined")])  # the log's head: 6
    assert await app.projections.catch_up("orders") == 6
    async with reader(target_db, schema) as conn:
        assert await rows(conn) == [("order-1", 10, "paid", 2), ("order-2", 12, "placed", 2)]
        assert await rows(conn, "orders__g1") == await rows(conn)
        checkpoint = await conn.fetch(
            "SELECT namespace, name, generation, position FROM statekeeper_projections"
        )
        assert [tuple(r) for r in checkpoint] == [(app.namespace, "orders", 1, 6)]
    status = await app.projections.status("orders")
    assert status["current"]["position"] == 6 and status["current"]["lag"] == 0
    assert status["current"]["failures"] == 0 and status["current"]["parked"] == 0
    # Nothing is in the state store: the read model lives in the target only.
    assert (await app.state.list("projections/")).items == []
    await app.close()
    projection = app.projections.get("orders")
    assert projection.target is not None and projection.target._pool is None  # type: ignore[attr-defined]


async def test_each_event_takes_effect_once_across_restarts(
    database_url: str, namespace: str, target_url: str, target_db: str, schema: str
) -> None:
    async def open_app() -> App:
        app = App(database_url, namespace=namespace, purge_interval=None, encryption=None)
        return await app.open()

    first = await open_app()
    orders_projection(first, target_url, batch=4)
    for n in range(10):
        await first.events.append(f"order-{n % 3}", [placed(n)])
    await first.projections.catch_up("orders")
    # A process dies in the middle of a batch: its transaction goes with it.
    await first.events.append("order-0", [placed(100), placed(200)])
    inside, never = asyncio.Event(), asyncio.Event()
    stuck = SqlTarget(target_url, tables={"orders": ORDERS})

    async def dies_midway(event: RecordedEvent, sql: SqlContext) -> None:
        await project_order(event, sql)
        if event.data["total"] == 200:
            inside.set()
            await never.wait()

    # The same projection in another process, whose handler never returns from 200.
    doomed = Projection("orders", dies_midway, Options(category="order", batch=4), stuck)
    stuck.bind(first.projections, doomed)
    runner = stuck.runner(doomed, 1)
    task = asyncio.create_task(runner.run_until_caught_up())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await stuck.close()
    await first.close()
    again = await open_app()  # the restart
    try:
        orders_projection(again, target_url, batch=4)
        assert await again.projections.catch_up("orders") == 12
        await again.projections.catch_up("orders")
        expected = {f"order-{k}": 0 for k in range(3)}
        counts = dict.fromkeys(expected, 0)
        for n in range(10):
            expected[f"order-{n % 3}"] += n
            counts[f"order-{n % 3}"] += 1
        expected["order-0"] += 300
        counts["order-0"] += 2
        async with reader(target_db, schema) as conn:
            assert await rows(conn) == [
                (k, expected[k], "placed", counts[k]) for k in sorted(expected)
            ]
    finally:
        await again.close()


async def test_a_lost_connection_mid_batch_is_retried_without_double_effects(
    app: App, target_url: str, target_db: str, schema: str
) -> None:
    killed = asyncio.Event()

    async def project(event: RecordedEvent, sql: SqlContext) -> None:
        await project_order(event, sql)
        if event.data.get("total") == 3 and not killed.is_set():
            killed.set()  # the read database drops this connection (a failover, a restart)
            await _admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE pid = {await sql.fetchval('SELECT pg_backend_pid()')}"
            )
            await sql.execute("SELECT 1")

    target = SqlTarget(target_url, tables={"orders": ORDERS})
    app.projection("orders", category="order", target=target)(project)
    await app.events.append("order-1", [placed(1), placed(2), placed(3), placed(4)])
    runner = app.projections.runner(app.projections.get("orders"), 1)
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    for _ in range(200):
        if runner.position == 4:
            break
        await asyncio.sleep(0.05)
    stopping.set()
    await task
    assert killed.is_set()
    async with reader(target_db, schema) as conn:
        assert await rows(conn) == [("order-1", 10, "placed", 4)]


async def test_two_processes_sharing_a_projection_never_handle_an_event_twice(
    database_url: str, namespace: str, target_url: str, target_db: str, schema: str
) -> None:
    handled: list[tuple[str, int]] = []
    inside, go_on = asyncio.Event(), asyncio.Event()

    def process(tag: str) -> tuple[App, SqlRunner]:
        app = App(database_url, namespace=namespace, purge_interval=None, encryption=None)

        async def project(event: RecordedEvent, sql: SqlContext) -> None:
            handled.append((tag, event.position))
            await project_order(event, sql)
            if tag == "a" and event.position == 4:  # paused mid-batch, holding the checkpoint
                inside.set()
                await go_on.wait()

        target = SqlTarget(target_url, tables={"orders": ORDERS})
        app.projection("orders", category="order", target=target, batch=10)(project)
        return app, app.projections.runner(app.projections.get("orders"), 1)  # type: ignore[return-value]

    (a, runner_a), (b, runner_b) = process("a"), process("b")
    await a.open()
    await b.open()
    try:
        await a.events.append("order-1", [placed(1), placed(2)])
        assert await runner_a.run_until_caught_up() == 2
        await a.events.append("order-1", [placed(3), placed(4), placed(5)])
        paused = asyncio.create_task(runner_a.step())
        await inside.wait()
        assert await runner_b.step() is False  # at once: the checkpoint is a's until COMMIT
        assert runner_b.position == 2  # what a committed, learned without waiting
        go_on.set()
        assert await paused is False and runner_a.position == 5
        assert await runner_b.run_until_caught_up() == 5  # learned from the row
        assert handled == [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("a", 5)]
        # Both follow the log live while events arrive: each is handled once.
        handled.clear()
        stopping = asyncio.Event()
        tasks = [asyncio.create_task(r.run(stopping)) for r in (runner_a, runner_b)]
        for n in range(40):
            await (a if n % 2 else b).events.append(f"order-{n % 4}", [placed(1) for _ in range(5)])
            await asyncio.sleep(0.005)
        head = await a.events.head()
        for _ in range(400):
            if runner_a.position == head or runner_b.position == head:
                break
            await asyncio.sleep(0.025)
        stopping.set()
        await asyncio.gather(*tasks)
        positions = sorted(p for _, p in handled)
        assert positions == list(range(6, head + 1))  # every one, none twice
        async with reader(target_db, schema) as conn:
            totals = {r[0]: r[1] for r in await rows(conn)}
        assert totals == {"order-0": 50, "order-1": 65, "order-2": 50, "order-3": 50}
    finally:
        await a.close()
        await b.close()


async def test_a_poison_event_is_retried_then_parked_in_the_target(
    app: App, target_url: str, target_db: str, schema: str
) -> None:
    calls: list[int] = []

    async def project(event: RecordedEvent, sql: SqlContext) -> None:
        calls.append(event.position)
        await project_order(event, sql)
        if event.type == "Poison":
            await sql.execute(f"INSERT INTO {sql.table('orders')} VALUES ('x', 0, 'bad')")
            raise RuntimeError("cannot digest this")

    target = SqlTarget(target_url, tables={"orders": ORDERS})
    app.projection("orders", target=target, retry=NO_WAIT)(project)
    await app.events.append("order-1", [placed(1), placed(2), EventData("Poison"), placed(4)])
    projection = app.projections.get("orders")
    runner = app.projections.runner(projection, 1)
    assert await runner.run_until_caught_up() == 2  # the events before it, committed
    status = await app.projections.status("orders")
    assert status["current"]["failing_position"] == 3
    assert status["current"]["failures"] == 1
    assert "cannot digest this" in status["current"]["last_error"]
    for _ in range(3):
        await runner.run_until_caught_up()
    assert calls.count(3) == 3  # max_attempts
    assert runner.position == 4
    async with reader(target_db, schema) as conn:
        assert await rows(conn) == [("order-1", 7, "placed", 3)]  # once each; 'x' never
        parked = await conn.fetch(
            "SELECT position, event_type, stream, attempts, error FROM statekeeper_parked_events"
        )
    assert [tuple(p)[:4] for p in parked] == [(3, "Poison", "order-1", 3)]
    assert "cannot digest this" in parked[0]["error"]
    status = await app.projections.status("orders")
    current = status["current"]
    assert (current["position"], current["parked"], current["failures"]) == (4, 1, 0)
    assert current["failing_position"] is None and "cannot digest" in current["last_error"]
    assert [p["position"] for p in await target.parked(projection, 1)] == [3]


async def test_a_rebuild_builds_generation_two_while_readers_see_generation_one(
    app: App, target_url: str, target_db: str, schema: str
) -> None:
    target = orders_projection(app, target_url, batch=2)
    for n in range(1, 6):
        await app.events.append(f"order-{n}", [placed(n)])
    await app.projections.catch_up("orders")
    projection = app.projections.get("orders")
    # New code: another column, totals in cents; rebuilt into generation 2.
    target.tables["orders"] = ORDERS.replace(
        "PRIMARY KEY,", "PRIMARY KEY, cents bool DEFAULT true,"
    )
    projection.handler = _in_cents
    assert await app.projections.rebuild("orders") == 2
    builder = app.projections.runner(projection, 2)
    assert isinstance(builder, SqlRunner)
    assert await builder.step() is True  # two events into generation 2, more to come
    async with reader(target_db, schema) as conn:
        assert [r[1] for r in await rows(conn)] == [1, 2, 3, 4, 5]  # still generation 1
        assert await conn.fetchval("SELECT count(*) FROM orders__g2") == 2
        status = await app.projections.status("orders")
        assert status["building"] == 2 and status["rebuild"]["position"] == 2
        assert status["rebuild"]["lag"] == 3
        assert await app.projections.finish_build(projection, 2) is False  # not caught up
        await app.projections.catch_up("orders")  # caught up: readers switch
        assert (await app.projections.status("orders"))["generation"] == 2
        assert [r[1] for r in await rows(conn)] == [100, 200, 300, 400, 500]
        assert await conn.fetchval("SELECT bool_and(cents) FROM orders") is True
        await app.events.append("order-6", [placed(6)])
        await app.projections.catch_up("orders")
        assert [r[1] for r in await rows(conn)][-1] == 600
        await app.projections.retire(projection, 1)
        assert await conn.fetchval("SELECT to_regclass('orders__g1')") is None
        assert await conn.fetchval("SELECT count(*) FROM orders") == 6
        generations = await conn.fetch(
            "SELECT generation FROM statekeeper_projections WHERE namespace = $1", app.namespace
        )
    assert [g[0] for g in generations] == [2]


async def _in_cents(event: RecordedEvent, sql: SqlContext) -> None:
    await sql.execute(
        f"INSERT INTO {sql.table('orders')} (id, total, status) VALUES ($1, $2, 'placed')",
        event.stream,
        event.data["total"] * 100,
    )


async def test_a_running_projection_follows_live_appends(
    live_app: App, target_url: str, target_db: str, schema: str
) -> None:
    app = live_app
    target = SqlTarget(target_url, tables={"orders": ORDERS})
    app.projections.register("orders", project_order, Options(poll=30.0), target)
    runner = app.projections.runner(app.projections.get("orders"), 1)
    stopping = asyncio.Event()
    task = asyncio.create_task(runner.run(stopping))
    await asyncio.sleep(0.2)  # set up, then waiting (a poll of 30 s: only a wake-up is quick)
    await app.events.append("order-1", [placed(1)])
    await app.events.append("order-2", [placed(2), EventData("Paid")])
    for _ in range(100):
        if runner.position == 3:
            break
        await asyncio.sleep(0.02)
    stopping.set()
    await task
    async with reader(target_db, schema) as conn:
        assert await rows(conn) == [("order-1", 1, "placed", 1), ("order-2", 2, "paid", 2)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_target_is_retried_and_its_password_never_shown(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"postgresql://postgres:hunter2secret@127.0.0.1:{closed_port()}/nowhere"
    target = SqlTarget(url, tables={"orders": ORDERS})
    app.projection("orders", target=target)(project_order)
    await app.events.append("order-1", [placed(1)])
    runner = app.projections.runner(app.projections.get("orders"), 1)
    stopping = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="statekeeper.events"):
        task = asyncio.create_task(runner.run(stopping))
        await asyncio.sleep(1.5)
        assert not task.done()  # retrying, not crashed
        stopping.set()
        await task
    paused = [r for r in caplog.records if r.getMessage().startswith("SQL projection paused")]
    assert paused, "the failures are logged"
    assert all(getattr(r, "target", "").endswith("/nowhere") for r in paused)
    assert "hunter2secret" not in caplog.text and "hunter2secret" not in repr(target)
    with pytest.raises(DatabaseUnavailable) as raised:
        await app.projections.status("orders")
    assert "hunter2secret" not in str(raised.value) and "postgres:***@" in str(raised.value)


async def test_targets_are_checked_when_declared(app: App, target_url: str) -> None:
    target = SqlTarget(target_url, tables={"orders": ORDERS})
    app.projection("orders", target=target)(project_order)
    with pytest.raises(ConfigurationError, match="SqlTarget of its own"):
        app.projection("orders_again", target=target)(project_order)
    assert "orders_again" not in app.projections.registered
    with pytest.raises(InvalidDatabaseURL, match="PostgreSQL"):
        SqlTarget("sqlite:///read.db")
    with pytest.raises(ConfigurationError, match="lowercase SQL identifier"):
        SqlTarget(target_url, tables={"Orders; DROP": ORDERS})
    with pytest.raises(ConfigurationError, match="must create"):
        SqlTarget(target_url, tables={"orders": "CREATE TABLE orders (id text)"})
    with pytest.raises(InvalidDatabaseURL):
        SqlTarget("postgresql://u:pw@host/db?bogus=1")


def test_the_physical_tables_are_quoted_per_generation() -> None:
    target = SqlTarget("postgresql://h/db?schema=reports", tables={"orders": ORDERS})
    assert target.physical(2) == {"orders": '"reports"."orders__g2"'}
    plain = SqlTarget("postgresql://h/db", tables={"orders": ORDERS})
    assert plain.physical(1) == {"orders": '"orders__g1"'}
