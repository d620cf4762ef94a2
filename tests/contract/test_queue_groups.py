"""FIFO groups, on SQLite and PostgreSQL: one message of a group in hand at a time, in
order, whichever way its predecessor leaves (ack, dead letter, expired lease, purge), and
under concurrent senders and receivers in separate apps."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

from statekeeper import App, Retry
from tests.conftest import FakeClock

ONCE = Retry(max_attempts=1, initial_interval=1.0, jitter=False)


async def test_the_next_message_of_a_group_follows_every_way_out(
    app: App, clock: FakeClock
) -> None:
    q = app.queue("jobs", retry=ONCE, visibility_timeout=10)
    for n in range(5):
        await q.send(n, group="g")
    stats = await q.stats()
    assert (stats.ready, stats.waiting) == (1, 4)

    [first] = await q.receive(10)  # acknowledged
    assert first.body == 0 and await q.receive(10) == []
    await first.ack()
    [second] = await q.receive(10)  # dead-lettered by a failure on its last attempt
    assert second.body == 1
    assert await second.fail("boom") == "dead"
    [third] = await q.receive(10)  # its lease runs out on the last attempt
    assert third.body == 2
    clock.advance(11)
    # The receive that finds 2's lease run out dead-letters it; 3 is promoted, and
    # leased by that receive or the next.
    got = await q.receive(10) or await q.receive(10)
    assert [m.body for m in got] == [3]
    fourth = got[0]
    assert sorted(m.body for m in await q.peek(10, dead=True)) == [1, 2]
    await fourth.ack()
    [fifth] = await q.receive(10)
    assert fifth.body == 4
    await fifth.ack()
    stats = await q.stats()
    assert (stats.ready, stats.in_flight, stats.waiting, stats.dead) == (0, 0, 0, 2)


async def test_purge_keeps_the_message_in_hand_and_redrive_rejoins_the_line(
    app: App, clock: FakeClock
) -> None:
    q = app.queue("jobs", retry=ONCE)
    for n in range(4):
        await q.send(n, group="g")
    [head] = await q.receive(10)
    assert await q.purge() == 3  # the waiting ones; the head is in hand
    await q.send(4, group="g")
    assert await q.receive(10) == []  # still behind the head
    assert await head.fail("gone") == "dead"
    [after] = await q.receive(10)
    assert after.body == 4
    assert await q.redrive() == 1  # 0 comes back, behind 4
    assert await q.receive(10) == []
    await after.ack()
    [again] = await q.receive(10)
    assert again.body == 0 and again.attempt == 1
    await again.ack()
    assert (await q.stats()).waiting == 0


async def test_a_batch_and_an_outbox_keep_group_order(app: App) -> None:
    q = app.queue("jobs")
    await q.send_batch([{"body": n, "group": "g"} for n in range(3)])
    async with app.state.transaction() as tx:
        tx.put("order", 1)
        for n in range(3, 6):
            tx.send("jobs", n, group="g")
    seen = []
    for _ in range(6):
        [message] = await q.receive(10)
        seen.append(message.body)
        await message.ack()
    assert seen == list(range(6))


async def test_concurrent_senders_and_receivers_in_two_apps(
    database_url: str, namespace: str
) -> None:
    """Four senders and four receivers over two apps (two pools, or two SQLite writer
    threads): no group ever has two messages in hand, each sender's messages of a group are
    handled in the order sent, every message once, and no group is left waiting."""
    groups, per_sender, senders = 5, 40, 4
    total = per_sender * senders
    apps = [App(database_url, namespace=namespace, purge_interval=None) for _ in range(2)]
    for opened in apps:
        await opened.open()
    try:
        in_hand: dict[str, int] = defaultdict(int)
        handled: dict[str, list[tuple[int, int]]] = defaultdict(list)
        overlaps = 0
        sent = asyncio.Event()

        async def sender(index: int) -> None:
            q = apps[index % 2].queue("jobs")
            for n in range(per_sender):
                group = f"g{n % groups}"
                await q.send({"sender": index, "n": n}, group=group)
                if random.random() < 0.3:
                    await asyncio.sleep(0)

        async def receiver(index: int) -> None:
            nonlocal overlaps
            q = apps[index % 2].queue("jobs")
            while True:
                messages = await q.receive(3)
                if not messages:
                    if sent.is_set() and sum(len(v) for v in handled.values()) >= total:
                        return
                    await asyncio.sleep(0.005)
                    continue
                for message in messages:
                    assert message.group is not None
                    in_hand[message.group] += 1
                    overlaps += in_hand[message.group] > 1
                for message in messages:
                    await asyncio.sleep(random.random() / 500)
                    assert message.group is not None
                    handled[message.group].append((message.body["sender"], message.body["n"]))
                    # Out of hand as the ack starts: once it commits, the group's next message
                    # may be leased before this coroutine resumes.
                    in_hand[message.group] -= 1
                    await message.ack()

        async def send_all() -> None:
            await asyncio.gather(*(sender(i) for i in range(senders)))
            sent.set()

        await asyncio.wait_for(
            asyncio.gather(send_all(), *(receiver(i) for i in range(4))), timeout=120
        )
        assert overlaps == 0
        assert sum(len(v) for v in handled.values()) == total
        for entries in handled.values():
            for index in range(senders):
                mine = [n for sender_index, n in entries if sender_index == index]
                assert mine == sorted(mine)
        stats = await apps[0].queue("jobs").stats()
        assert (stats.ready, stats.in_flight, stats.waiting) == (0, 0, 0)
    finally:
        for opened in apps:
            await opened.close()


async def test_a_lease_running_out_on_the_last_attempt_is_announced(
    app: App, clock: FakeClock
) -> None:
    """A receiver that died on the message's last attempt: the next receive dead-letters it
    with its reason and announces the outcome, as any dead letter is, and the group's next
    message comes forward."""
    q = app.queue("jobs", retry=ONCE, visibility_timeout=10)
    app.queue("replies")
    first = q.new_message({"n": 1}, group="g", reply_to={"queue": "replies"})
    await q.send_message(first)
    await q.send({"n": 2}, group="g")
    [taken] = await q.receive(10)
    assert taken.id == first.id
    clock.advance(11)  # its receiver died
    got = await q.receive(10) or await q.receive(10)
    assert [m.body for m in got] == [{"n": 2}]
    [dead] = await q.peek(dead=True)
    assert (dead.id, str(dead.last_error)) == (
        first.id,
        "LeaseExpired: lease expired on attempt 1",
    )
    [reply] = await app.queue("replies").receive()
    assert reply.body["request_id"] == first.id
    assert reply.body["status"] == "dead-lettered"
    assert reply.body["error"] == {"type": "LeaseExpired", "message": "lease expired on attempt 1"}


async def test_a_worker_takes_a_group_s_next_message_at_once(
    database_url: str, namespace: str
) -> None:
    """Settling a grouped message wakes the receivers: twenty messages of one group go
    through a worker polling once a second in far less than twenty seconds."""
    from statekeeper import Message

    async with App(database_url, namespace=namespace, purge_interval=None) as app:
        done: list[int] = []
        finished = asyncio.Event()

        @app.consumer("jobs", concurrency=4)
        async def handle(message: Message) -> None:
            done.append(message.body)
            if len(done) == 20:
                finished.set()

        await app.queue("jobs").send_batch([{"body": n, "group": "g"} for n in range(20)])
        worker = app.worker(poll=1.0)
        running = asyncio.create_task(worker.run())
        try:
            await asyncio.wait_for(finished.wait(), 8.0)
        finally:
            worker.stop()
            await running
        assert done == list(range(20))
