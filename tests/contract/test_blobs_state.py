"""Payloads out of line beyond workflows and queues, on both backends: state values
(puts, conditions, transactions, the cache, queries, TTL, re-encryption), entity
states and answers, event-store events and snapshots, schedule inputs, workflow
updates and idempotent results: each comes back whole, and its blob goes when the
last row referring to it does."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from statekeeper import App, Keyring
from statekeeper.errors import (
    AlreadyExists,
    ConflictError,
    TransactionConflict,
    WorkflowNotFound,
    WrongExpectedVersion,
)
from statekeeper.schedules import Definition, Scheduler, make_spec
from statekeeper.storage.state_query import Compare, StateQuery
from tests.conftest import FakeClock, redis_url
from tests.contract.test_blobs import THRESHOLD, blob_app, blobs, finish  # noqa: F401
from tests.contract.test_workflow_messages import settle
from tests.support import drive

BIG = {"text": "v" * 2_500_000}  # out of line, three chunks


@pytest.fixture
def app(blob_app: App) -> App:  # noqa: F811 (the imported fixture, used)
    """test_blobs.py's app: a low blob threshold, no encryption."""
    return blob_app


async def value_of(app: App, key: str) -> Any:
    item = await app.state.get(key)
    assert item is not None
    return item.value


async def refs(app: App) -> list[int]:
    return [row[0] for row in await blobs(app)]


async def test_state_values_go_out_of_line_with_their_row(app: App, clock: FakeClock) -> None:
    state = app.state
    item = await state.put("big", BIG)
    assert (await state.get("big")) == item and item.value == BIG
    assert await refs(app) == [1]
    # Below the threshold a value stays in its row.
    await state.put("small", {"n": 1})
    assert await refs(app) == [1]
    # Conditions hold as for any put; a refused one leaves no blob behind.
    with pytest.raises(ConflictError):
        await state.put("big", {"t": "w" * 500}, if_match="stale")
    with pytest.raises(AlreadyExists):
        await state.put("big", {"t": "w" * 500}, only_if_absent=True)
    assert await refs(app) == [1]
    # Overwriting releases the old blob; the sweep removes it.
    again = await state.put("big", {"t": "w" * 500}, if_match=item.etag)
    assert (await state.get("big")) == again
    assert sorted(await refs(app)) == [0, 1]
    assert await app.payloads.blobs.sweep() == 1
    # Reads of several keys, listing and updates fill values from their blobs.
    assert (await state.get_many(["big", "small"]))["big"] == again
    page = await state.list("")
    assert [i.value for i in page.items] == [{"t": "w" * 500}, {"n": 1}]
    updated = await state.update("big", lambda v: {"t": v["t"] + "!"})
    assert updated.value == {"t": "w" * 500 + "!"}
    # A transaction: all or nothing, blobs included.
    tx = state.transaction()
    tx.put("a", {"a": "a" * 400})
    tx.put("small", {"n": 2}, if_match="stale")
    with pytest.raises(TransactionConflict):
        await tx.commit()
    assert await state.get("a") is None
    tx = state.transaction()
    tx.put("a", {"a": "a" * 400})
    tx.delete("big")
    await tx.commit()
    assert (await state.get("a")) is not None and await state.get("big") is None
    await app.payloads.blobs.sweep()
    assert await refs(app) == [1]  # only "a"'s
    # Expiry: the purge deletes the row, the sweep its blob.
    await state.put("short", {"s": "s" * 400}, ttl=5)
    clock.advance(10)
    await state.purge_expired()
    await app.payloads.blobs.sweep()
    assert await refs(app) == [1]


async def test_entries_list_without_reading_values(app: App) -> None:
    await app.state.put("e/small", {"n": 1})
    await app.state.put("e/big", {"pad": "p" * 400}, ttl=60)  # out of line here
    entries, cursor = await app.state.entries("e/", limit=1)
    assert [e.key for e in entries] == ["e/big"] and cursor is not None
    [big] = entries
    assert big.out_of_line and big.expires_at is not None
    assert big.etag == (await app.state.get("e/big")).etag  # type: ignore[union-attr]
    rest, end = await app.state.entries("e/", limit=1, cursor=cursor)
    assert [(e.key, e.out_of_line, e.stored_bytes) for e in rest] == [("e/small", False, 7)]
    assert end is None
    assert await app.state.entry("e/none") is None
    one = await app.state.entry("e/small")
    assert one is not None and one.stored_bytes == 7 and not one.out_of_line


async def test_queries_see_no_fields_in_values_out_of_line(app: App) -> None:
    await app.state.put("q/small", {"kind": "x", "n": 1})
    await app.state.put("q/big", {"kind": "x", "pad": "p" * 400})
    every = await app.state.query(StateQuery(), prefix="q/")
    assert {row.key: len(row.value) > 400 for row in every} == {"q/big": True, "q/small": False}
    matched = await app.state.query(StateQuery(Compare("EQ", ("kind",), "x")), prefix="q/")
    assert [row.key for row in matched] == ["q/small"]


async def test_cached_and_encrypted_values_out_of_line(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    async with App(
        database_url, namespace=namespace, clock=clock, purge_interval=None,
        encryption=keyring, blob_threshold=THRESHOLD, cache_url=redis_url(),
    ) as app:  # fmt: skip
        await app.state.put("big", BIG)
        assert await value_of(app, "big") == BIG  # a miss fills the cache
        assert await value_of(app, "big") == BIG  # a hit: the reference, then the blob
        stats = app.state.cache_stats()
        assert stats is not None and stats.hits >= 1
        backend: Any = app.backend
        stored = await backend.state.get(app.namespace, "big", clock())
        assert stored.key_id is None and len(stored.value) == 20  # a reference, not sealed
        report = await app.state.reencrypt()  # the reference stays; its chunks are sealed
        assert report.rewritten == 0
        assert await value_of(app, "big") == BIG
        # Overwritten by a process without the cache (the cached reference goes stale)
        # and its blob swept: a read finds the blob gone, reads the row again.
        async with App(
            database_url, namespace=namespace, clock=clock, purge_interval=None,
            encryption=keyring, blob_threshold=THRESHOLD,
        ) as other:  # fmt: skip
            await other.state.put("big", {"second": "s" * 500})
            assert await other.payloads.blobs.sweep() == 1
        assert await value_of(app, "big") == {"second": "s" * 500}


async def test_entity_states_and_answers_go_out_of_line(app: App) -> None:
    notes = app.entity("notes", initial="")

    @notes.handler
    def append(ctx: Any, text: str) -> int:
        ctx.state += text
        return len(ctx.state)

    @notes.handler
    def echo(ctx: Any, text: str) -> str:
        return text  # the state unchanged: its blob is kept, not written again

    @notes.handler(readonly=True)
    def read(ctx: Any) -> str:
        return str(ctx.state)

    assert await app.entities.call("notes", "n", "append", "a" * 300) == 300
    assert await refs(app) == [1]
    assert await app.entities.call("notes", "n", "read") == "a" * 300
    # An answer kept for a call id above the threshold: out of line, read back on a repeat.
    long = "e" * 400
    assert await app.entities.call("notes", "n", "echo", long, call_id="c1") == long
    assert await app.entities.call("notes", "n", "echo", long, call_id="c1") == long
    assert sorted(await refs(app)) == [1, 1]  # the state's blob (kept) and the answer's
    assert await app.entities.call("notes", "n", "append", "b") == 301
    snapshot = await app.entities.get("notes", "n")
    assert snapshot is not None and snapshot.state == "a" * 300 + "b"
    assert sorted(await refs(app)) == [0, 1, 1]  # the old state's blob released
    assert await app.payloads.blobs.sweep() == 1
    listed = await app.entities.list("notes")
    assert [s.state for s in listed] == ["a" * 300 + "b"]
    # A row read just before the state was replaced (and the old blob swept): its
    # state is read from the row as it is now.
    backend: Any = app.backend
    stale = await backend.entities.get(app.namespace, "notes", "n")
    assert await app.entities.call("notes", "n", "append", "c") == 302
    assert await app.payloads.blobs.sweep() == 1
    row, opened = await app.entities.writers.open_row("notes", stale)
    assert row is not None and opened == b'"' + b"a" * 300 + b'bc"'


async def test_workflow_updates_and_entity_call_results_go_out_of_line(
    app: App, clock: FakeClock
) -> None:
    notes = app.entity("pad", initial="")

    @notes.handler
    def write(ctx: Any, text: str) -> str:
        ctx.state = text
        return text

    @app.workflow(name="collector")
    async def collector(ctx: Any, _: Any) -> Any:
        got: list[str] = []

        def add(text: str) -> str:
            got.append(text)
            return text.upper()

        ctx.on_update("add", add)
        await ctx.wait_condition(lambda: len(got) == 1)
        echoed = await ctx.call("pad", "p", "write", got[0] * 2)  # a result of 1,000 chars
        return len(echoed)

    run = await app.workflows.start("collector", None, id="c1")
    asked = asyncio.create_task(app.workflows.update(run, "add", "u" * 500, timeout=10))
    assert await settle(app, asked) == "U" * 500  # data and result both out of line
    assert await finish(app, clock, run) == 1000
    kinds = {e["kind"] for e in await app.workflows.history(run)}
    assert {"update", "entity"} <= kinds
    assert len(await refs(app)) >= 5  # update data and result, journal entries, state
    await app.workflows.purge(run)  # and the sweep that follows it
    left = [1, 1]  # the entity's state, and the answer kept for the call's id
    assert await refs(app) == left
    # An update to a workflow that does not exist leaves no blob behind.
    with pytest.raises(WorkflowNotFound):
        await app.workflows.update("nobody", "add", "n" * 500, timeout=1)
    assert await refs(app) == left


async def test_schedule_inputs_go_out_of_line_and_runs_share_them(
    app: App, clock: FakeClock
) -> None:
    @app.workflow(name="report")
    async def report(ctx: Any, data: Any) -> Any:
        return len(data["rows"])

    big = {"rows": ["r" * 100] * 50}
    made = await app.schedules.create(
        Definition.checked("daily", "report", make_spec(every=60, anchor=clock()), input=big)
    )
    assert made.input == big and (await app.schedules.get("daily")).input == big
    assert await refs(app) == [1]
    for _ in range(2):  # two fires: both runs refer to the schedule's blob
        clock.advance(60)
        await Scheduler(app.schedules).run_due()
        await drive(app)
    done = [w for w in await app.workflows.list(limit=10) if w["status"] == "succeeded"]
    assert len(done) == 2
    assert await refs(app) == [3]
    for w in done:
        assert await app.workflows.input(w["id"]) == big
    # A new input: a new blob; the old one stays while the runs refer to it.
    smaller = {"rows": ["s" * 100] * 50}
    changed = await app.schedules.update(
        Definition.checked("daily", "report", make_spec(every=60, anchor=clock()), input=smaller)
    )
    assert changed.input == smaller
    assert sorted(await refs(app)) == [1, 2]
    await app.schedules.delete("daily")
    for w in done:
        await app.workflows.purge(w["id"])
    await app.payloads.blobs.sweep()
    assert await refs(app) == []


async def test_events_snapshots_and_idempotent_results_go_out_of_line(app: App) -> None:
    events = app.events
    big = {"text": "e" * 500}
    await events.append("order-1", [{"type": "placed", "data": big}, {"type": "paid", "data": 1}])
    assert await refs(app) == [1]  # inserted with the append
    read = await events.read_stream("order-1")
    assert [(e.type, e.data) for e in read] == [("placed", big), ("paid", 1)]
    assert [e.data for e in await events.read_all()] == [big, 1]
    assert [e.data for e in await events.read_category("order")] == [big, 1]
    # A refused append (a wrong expected version) leaves no blob behind.
    with pytest.raises(WrongExpectedVersion):
        await events.append("order-1", [{"type": "placed", "data": big}], expected_version=0)
    assert await refs(app) == [1]
    # In a unit with state writes and messages: every blob in the one transaction.
    await events.commit(
        [events.intent("order-2", [{"type": "placed", "data": big}])],
        writes=[app.state.put_op("summary", {"s": "s" * 500})],
    )
    assert sorted(await refs(app)) == [1, 1, 1]
    assert [e.data for e in await events.read_stream("order-2")] == [big]
    # Snapshots: a newer one kept releases the older's blob; an older one is not kept.
    await events.write_snapshot("order-1", 2, "Order", b'{"pad": "' + b"p" * 500 + b'"}')
    await events.write_snapshot("order-1", 1, "Order", b'{"old": "' + b"o" * 500 + b'"}')
    snapshot = await events.read_snapshot("order-1")
    assert snapshot is not None and snapshot.data.startswith(b'{"pad"')
    assert sorted(await refs(app)) == [1, 1, 1, 1]  # the refused older one: gone at once
    # An idempotent call's result above the threshold, read back on a repeat.
    calls: list[int] = []

    async def compute() -> str:
        calls.append(1)
        return "i" * 500

    assert await app.idempotency.run("k1", compute) == "i" * 500
    assert await app.idempotency.run("k1", compute) == "i" * 500
    assert calls == [1] and sorted(await refs(app)) == [1] * 5
