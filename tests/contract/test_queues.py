"""The queue contract, on SQLite and PostgreSQL, with an injectable clock (no sleeps)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.errors import (
    InvalidQueueName,
    InvalidValue,
    LeaseLost,
    ValidationError,
    ValueTooLarge,
)
from statekeeper.queues import Queue
from statekeeper.storage.postgres import PostgresBackend
from tests.conftest import FakeClock

FIXED = Retry(max_attempts=3, initial_interval=2.0, backoff_rate=3.0, max_delay=100, jitter=False)


def queue(app: App, name: str = "jobs", **options: object) -> Queue:
    return app.queue(name, **options)  # type: ignore[arg-type]


async def test_send_receive_ack(app: App, clock: FakeClock) -> None:
    q = queue(app)
    sent = await q.send({"to": "ada"}, attributes={"kind": "mail"}, correlation="req-1")
    assert not sent.duplicate
    [message] = await q.receive()
    assert message.id == sent.id
    assert message.body == {"to": "ada"}
    assert message.attributes == {"kind": "mail"}
    assert message.correlation_id == "req-1"
    assert message.attempt == 1
    assert message.lease_expires_at == clock.now + 30
    assert await q.receive() == []  # leased: invisible to others
    stats = await q.stats()
    assert (stats.ready, stats.in_flight, stats.delayed, stats.dead) == (0, 1, 0, 0)
    await message.ack()
    stats = await q.stats()
    assert (stats.ready, stats.in_flight, stats.oldest_age) == (0, 0, None)
    with pytest.raises(LeaseLost):
        await message.ack()  # settled already


async def test_lease_expiry_redelivers_and_fences_the_old_receiver(
    app: App, clock: FakeClock
) -> None:
    q = queue(app, visibility_timeout=10.0)
    await q.send("work")
    [first] = await q.receive()
    clock.advance(9)
    assert await q.receive() == []
    clock.advance(2)
    [second] = await q.receive()
    assert second.id == first.id and second.attempt == 2
    with pytest.raises(LeaseLost):
        await first.ack()  # the lease moved on: the old receiver cannot settle it
    with pytest.raises(LeaseLost):
        await first.fail("late")
    await second.ack()
    assert (await q.stats()).in_flight == 0


async def test_extend_is_a_heartbeat(app: App, clock: FakeClock) -> None:
    q = queue(app, visibility_timeout=10.0)
    await q.send("long job")
    [message] = await q.receive()
    clock.advance(8)
    await message.extend(10)
    clock.advance(8)
    assert await q.receive() == []  # 16 s after receive, still leased
    assert message.lease_expires_at == clock.now + 2
    await message.ack()


async def test_failures_back_off_then_dead_letter(app: App, clock: FakeClock) -> None:
    q = queue(app, retry=FIXED)
    await q.send("flaky")
    [m1] = await q.receive()
    assert await m1.fail(RuntimeError("boom 1")) == "ready"
    assert (await q.stats()).delayed == 1
    clock.advance(1.9)
    assert await q.receive() == []  # backoff after attempt 1: 2 s
    clock.advance(0.2)
    [m2] = await q.receive()
    assert m2.attempt == 2 and str(m2.last_error) == "RuntimeError: boom 1"
    await m2.fail("boom 2")
    clock.advance(5.9)
    assert await q.receive() == []  # after attempt 2: 2 * 3 = 6 s
    clock.advance(0.2)
    [m3] = await q.receive()
    assert m3.attempt == 3
    assert await m3.fail("boom 3") == "dead"
    clock.advance(1000)
    assert await q.receive() == []
    [dead] = await q.peek(dead=True)
    assert (dead.id, dead.state, dead.attempts, str(dead.last_error)) == (
        m1.id,
        "dead",
        3,
        "Error: boom 3",
    )
    stats = await q.stats()
    assert (stats.ready, stats.delayed, stats.dead) == (0, 0, 1)


async def test_a_lease_expiring_on_the_last_attempt_dead_letters(
    app: App, clock: FakeClock
) -> None:
    q = queue(app, retry=Retry(max_attempts=2), visibility_timeout=5.0)
    await q.send("crashes its consumer")
    await q.receive()
    clock.advance(6)
    [again] = await q.receive()
    assert again.attempt == 2
    clock.advance(6)  # the consumer died again
    assert await q.receive() == []
    [dead] = await q.peek(dead=True)
    assert dead.attempts == 2 and str(dead.last_error) == "LeaseExpired: lease expired on attempt 2"


async def test_non_retryable_failure_dead_letters_at_once(app: App) -> None:
    q = queue(app, retry=FIXED)
    await q.send({"bad": "input"})
    [message] = await q.receive()
    assert await message.fail(ValueError("malformed"), retryable=False) == "dead"
    assert (await q.stats()).dead == 1


async def test_redrive_all_or_selected(app: App, clock: FakeClock) -> None:
    q = queue(app, retry=Retry(max_attempts=1))
    ids = [(await q.send(n)).id for n in range(3)]
    for message in await q.receive(10):
        await message.fail("no")
    assert (await q.stats()).dead == 3
    assert await q.redrive([ids[1]]) == 1
    [back] = await q.receive(10)
    assert back.id == ids[1] and back.attempt == 1  # fresh attempts
    await back.ack()
    assert await q.redrive() == 2
    assert sorted(m.id for m in await q.receive(10)) == sorted([ids[0], ids[2]])
    assert await q.redrive(["no-such-id"]) == 0


async def test_deduplication_within_the_window(app: App, clock: FakeClock) -> None:
    q = queue(app, dedup_window=60.0)
    first = await q.send({"order": 1}, dedup_id="order-1")
    again = await q.send({"order": 1}, dedup_id="order-1")
    other = await q.send({"order": 2}, dedup_id="order-2")
    assert again.duplicate and again.id == first.id
    assert not other.duplicate
    assert len(await q.peek(10)) == 2
    clock.advance(61)
    later = await q.send({"order": 1}, dedup_id="order-1")
    assert not later.duplicate and later.id != first.id
    batch = await q.send_batch(
        [{"body": 1, "dedup_id": "b"}, {"body": 2, "dedup_id": "b"}, {"body": 3}]
    )
    assert [r.duplicate for r in batch] == [False, True, False]
    assert batch[1].id == batch[0].id


async def test_concurrent_duplicates_enqueue_once(app: App) -> None:
    q = queue(app)
    results = await asyncio.gather(*(q.send("x", dedup_id="same") for _ in range(20)))
    assert len({r.id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert len(await q.peek(100)) == 1


async def test_fifo_per_group(app: App, clock: FakeClock) -> None:
    q = queue(app, retry=FIXED)
    for body in ("a1", "a2", "a3"):
        await q.send(body, group="a")
    for body in ("b1", "b2"):
        await q.send(body, group="b")
    await q.send("free")
    first = await q.receive(10)
    assert sorted(m.body for m in first) == ["a1", "b1", "free"]  # one in flight per group
    by_body = {m.body: m for m in first}
    await by_body["a1"].ack()
    await by_body["b1"].fail("retry me")
    second = await q.receive(10)
    assert [m.body for m in second] == ["a2"]  # b1 waits out its backoff; b2 waits for b1
    clock.advance(2.5)
    third = await q.receive(10)
    assert [m.body for m in third] == ["b1"]  # a2 still in flight, b1 before b2
    await third[0].ack()
    await second[0].ack()
    assert sorted(m.body for m in await q.receive(10)) == ["a3", "b2"]


async def test_delayed_messages(app: App, clock: FakeClock) -> None:
    q = queue(app)
    await q.send("later", delay=30)
    await q.send("now")
    [now] = await q.receive(10)
    assert now.body == "now"
    await now.ack()
    stats = await q.stats()
    assert stats.delayed == 1
    clock.advance(31)
    [later] = await q.receive(10)
    assert later.body == "later"


async def test_release_gives_back_without_counting_the_attempt(app: App) -> None:
    q = queue(app)
    await q.send("x")
    [message] = await q.receive()
    await message.release()
    [again] = await q.receive()
    assert again.attempt == 1
    with pytest.raises(LeaseLost):
        await message.release()


async def test_archive_and_replay(app: App, clock: FakeClock) -> None:
    q = queue(app)
    t0 = clock.now
    for n, kind in enumerate(["a", "b", "a", "b"]):
        await q.send({"n": n}, attributes={"kind": kind})
        [message] = await q.receive()
        await message.ack()
        clock.advance(10)
    assert await q.receive() == []
    replayed = await q.replay(since=t0 + 5, until=t0 + 25)  # n=1, n=2: completed t0+10, +20
    assert replayed == 2
    bodies = sorted(m.body["n"] for m in await q.receive(10))
    assert bodies == [1, 2]
    assert await q.replay(attributes={"kind": "a"}) == 2
    replays = await q.receive(10)
    assert sorted(m.body["n"] for m in replays) == [0, 2]
    assert all(m.attributes["replay_of"] for m in replays)
    assert await q.replay(limit=1) == 1
    with pytest.raises(ValidationError, match="must be before"):
        await q.replay(since=10, until=5)


async def test_unarchived_queue_keeps_nothing(app: App) -> None:
    q = queue(app, "no-archive", archive=False)
    await q.send(1)
    [message] = await q.receive()
    await message.ack()
    assert await q.replay() == 0


async def test_purge(app: App, clock: FakeClock) -> None:
    q = queue(app, retry=Retry(max_attempts=1))
    for n in range(3):
        await q.send(n)
    [leased] = await q.receive()
    await leased.fail("dead")
    [leased] = await q.receive()
    assert await q.purge() == 1  # the ready one; the leased one stays
    assert await q.purge(dead=True) == 1
    stats = await q.stats()
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 1, 0)


async def test_stats_report_the_oldest_message_age(app: App, clock: FakeClock) -> None:
    q = queue(app)
    await q.send(1)
    clock.advance(5)
    await q.send(2)
    clock.advance(2)
    stats = await q.stats()
    assert stats.ready == 2 and stats.oldest_age == pytest.approx(7)


async def test_queues_and_namespaces_are_separate(database_url: str, clock: FakeClock) -> None:
    async with (
        App(database_url, namespace="qa-x1", clock=clock, purge_interval=None) as a,
        App(database_url, namespace="qb-x1", clock=clock, purge_interval=None) as b,
    ):
        await a.queue("shared").send("from a")
        await a.queue("other").send("other queue")
        assert await b.queue("shared").receive() == []
        [got] = await a.queue("shared").receive()
        assert got.body == "from a"
        await got.ack()
        [other] = await a.queue("other").receive()
        await other.ack()


async def test_concurrent_receivers_never_share_a_message(app: App) -> None:
    q = queue(app, "busy")
    await q.send_batch(list(range(200)))
    seen: list[int] = []

    async def consumer() -> None:
        while True:
            messages = await q.receive(7)
            if not messages:
                return
            for message in messages:
                seen.append(message.body)
                await message.ack()

    await asyncio.gather(*(consumer() for _ in range(8)))
    assert sorted(seen) == list(range(200))


async def test_waiting_receiver_wakes_on_send(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, purge_interval=None) as app:
        q = app.queue("wake")

        async def send_soon() -> None:
            await asyncio.sleep(0.2)
            await q.send("hello")

        started = time.monotonic()
        sender = asyncio.create_task(send_soon())
        messages = await q.receive(wait=5.0)
        waited = time.monotonic() - started
        await sender
        assert [m.body for m in messages] == ["hello"]
        assert waited < 2.0
        started = time.monotonic()
        assert await q.receive(wait=0.3) == []
        assert time.monotonic() - started >= 0.29


async def test_bad_input(app: App) -> None:
    with pytest.raises(InvalidQueueName):
        app.queue("no spaces allowed")
    with pytest.raises(InvalidQueueName):
        app.queue("")
    q = queue(app, max_message_bytes=100)
    with pytest.raises(InvalidValue):
        await q.send(object())
    with pytest.raises(ValueTooLarge, match="body for queue 'jobs' is 202 bytes"):
        await q.send("x" * 200)
    for options in (
        {"delay": -1},
        {"delay": "soon"},
        {"dedup_id": ""},
        {"group": 5},
        {"attributes": ["not", "a", "map"]},
        {"attributes": {1: "x"}},
    ):
        with pytest.raises((ValidationError, InvalidValue)):
            await q.send("x", **options)
    with pytest.raises(ValidationError, match="unknown message option"):
        await q.send_batch([{"body": 1, "priority": 9}])
    for count in (0, 101, "3"):
        with pytest.raises(ValidationError, match="max_messages"):
            await q.receive(count)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await q.receive(visibility_timeout=0)
    assert await q.peek(100) == []


def test_retry_policy() -> None:
    policy = Retry(max_attempts=5, initial_interval=1.0, backoff_rate=2.0, max_delay=5.0)
    assert [policy.ceiling(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(delays) > 3.0 and min(delays) < 1.0  # full jitter spreads over the range
    assert Retry(jitter=False, initial_interval=3).delay(1, rng) == 3.0
    assert Retry(backoff_rate=10, max_delay=60).ceiling(10_000) == 60
    from statekeeper.errors import ConfigurationError

    for bad in ({"max_attempts": 0}, {"initial_interval": -1}, {"backoff_rate": 0.5}):
        with pytest.raises(ConfigurationError):
            Retry(**bad)


def test_queue_options_are_fixed_on_first_use(app: App) -> None:
    from statekeeper.errors import ConfigurationError

    first = app.queue("configured", visibility_timeout=5.0)
    assert app.queue("configured") is first
    assert app.queue("configured", visibility_timeout=5.0) is first
    with pytest.raises(ConfigurationError, match="visibility_timeout"):
        app.queue("configured", visibility_timeout=9.0)


async def test_a_receiver_in_another_process_is_woken(
    backend_name: str, tmp_path: object, fresh_pg_url: str
) -> None:
    """Two apps with their own connections stand for two processes. On PostgreSQL the
    send is announced (LISTEN/NOTIFY) and the waiting receiver wakes at once; on
    SQLite it finds the message at its next poll."""
    url = f"sqlite:///{tmp_path}/wake.db" if backend_name == "sqlite" else fresh_pg_url
    async with (
        App(url, namespace="wake", purge_interval=None) as sender,
        App(url, namespace="wake", purge_interval=None) as receiver,
    ):
        if isinstance(receiver.backend, PostgresBackend):
            await receiver.backend.wait_listening()

        async def send_soon() -> None:
            await asyncio.sleep(0.1)
            await sender.queue("q").send("ping")

        task = asyncio.create_task(send_soon())
        started = time.monotonic()
        messages = await receiver.queue("q").receive(wait=5.0)
        waited = time.monotonic() - started
        await task
        assert [m.body for m in messages] == ["ping"]
        assert waited < (0.7 if backend_name == "postgres" else 1.5), waited


async def test_the_purger_forgets_old_archive_and_dedup_records(
    database_url: str, namespace: str
) -> None:
    async with App(
        database_url, namespace=namespace, purge_interval=0.05, archive_retention=0.1
    ) as app:
        q = app.queue("old", dedup_window=0.1)
        await q.send("x", dedup_id="d1")
        [message] = await q.receive()
        await message.ack()
        assert await app.backend.queues.find(namespace, message.id) is not None
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await app.backend.queues.find(namespace, message.id) is None:
                break
        assert await app.backend.queues.find(namespace, message.id) is None
        assert await q.replay() == 0


async def test_table_upkeep_vacuums_a_churned_queue_table(
    own_database_url: str, namespace: str
) -> None:
    """After thousands of messages went through, maintenance vacuums the queue table on
    PostgreSQL (whose dead rows it counts), and runs on SQLite without error."""
    async with App(own_database_url, namespace=namespace, purge_interval=None) as app:
        q = app.queue("churn", archive=False)
        for _ in range(6):
            await q.send_batch(list(range(500)))
            while messages := await q.receive(100):
                for message in messages:
                    await message.ack()
        if app.backend.dialect == "sqlite":
            assert (await app.backend.maintain()).vacuumed == []
            return
    # The churning app's connections are closed: a server process sends its pending
    # statistics as it exits, so none arrives after the vacuum below to count again.
    async with App(own_database_url, namespace=namespace, purge_interval=None) as app:
        vacuumed: list[str] = []
        for _ in range(50):  # the statistics system counts dead rows within a second or so
            vacuumed = (await app.backend.maintain()).vacuumed
            if "sk_messages" in vacuumed:
                break
            await asyncio.sleep(0.1)
        assert "sk_messages" in vacuumed
        backend: Any = app.backend
        async with backend.pool.acquire() as conn:
            last = await conn.fetchval(
                "SELECT last_vacuum FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname = 'sk_messages'"
            )
        assert last is not None
        # Nothing left to do: the vacuum reset the count (a process still exiting may
        # report its deletes late, once, so allow a few rounds before calling it stuck).
        for _ in range(30):
            if "sk_messages" not in (await app.backend.maintain()).vacuumed:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("maintenance vacuums sk_messages again and again")


@pytest.mark.postgres
async def test_table_upkeep_leaves_tables_it_does_not_own(
    fresh_pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A role that may read and write statekeeper's tables but does not own them cannot
    vacuum them (PostgreSQL only warns and skips): upkeep does nothing and says so once."""
    import secrets

    import asyncpg

    from statekeeper.storage.postgres_maintenance import TableKeeper
    from tests.conftest import pg_dsn

    schema = fresh_pg_url.rsplit("schema=", 1)[1]
    async with App(fresh_pg_url, purge_interval=None) as app:  # tables owned by the test's role
        await app.queue("jobs").send_batch(list(range(50)))
    role = f"sk_upkeep_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_dsn())
    await admin.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        await admin.execute(
            f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"; '
            f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"'
        )
        pool = await asyncpg.create_pool(
            pg_dsn(), user=role, min_size=1, max_size=1, server_settings={"search_path": schema}
        )
        try:
            keeper = TableKeeper()
            with caplog.at_level("WARNING", logger="statekeeper.storage"):
                for _ in range(3):
                    done = await keeper.maintain(pool)
                    assert (done.vacuumed, done.analyzed) == ([], [])
            said = [r for r in caplog.records if "does not own" in r.getMessage()]
            assert keeper.refused and len(said) == 1
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP OWNED BY "{role}"; DROP ROLE "{role}"')
        await admin.close()


async def test_group_by_gives_messages_sent_without_a_group_their_group(app: App) -> None:
    """``app.queue(q, group_by=field or function)``: a message sent without ``group``
    takes the one its body gives (FIFO per group); ``group=`` still wins; a body that
    gives none has none; a function that fails is a ValidationError naming the queue."""
    by_field = app.queue("by-field", group_by="tenant")
    for n, tenant in enumerate(["t1", "t1", "t2", None]):
        await by_field.send({"n": n, "tenant": tenant})
    await by_field.send({"n": 4, "tenant": "t2"}, group="own")
    first = await by_field.receive(10)
    assert sorted((m.body["n"], m.group) for m in first) == [
        (0, "t1"), (2, "t2"), (3, None), (4, "own")
    ]  # fmt: skip
    await next(m for m in first if m.body["n"] == 0).ack()
    [second] = await by_field.receive(10)
    assert (second.body["n"], second.group) == (1, "t1")

    by_function = app.queue("by-function", group_by=lambda body: body["user"]["id"])
    await by_function.send_batch([{"user": {"id": 7}}, {"user": {"id": 7}}])
    assert [m.group for m in await by_function.receive(10)] == ["7"]
    with pytest.raises(ValidationError, match=r"by-function.*group_by function failed.*KeyError"):
        await by_function.send({"nobody": True})
    with pytest.raises(ValidationError, match="group_by"):
        app.queue("bad", group_by=42)  # type: ignore[arg-type]
