"""The storage layer itself, on SQLite and PostgreSQL: each block's protocol, and the
unit of work, all or nothing whatever it holds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from statekeeper.errors import AlreadyExists, ConflictError, TransactionConflict
from statekeeper.storage import Storage, create_backend, parse
from statekeeper.storage.rows import (
    DeleteOp,
    NewMessage,
    PutOp,
    Settlement,
    StepRecord,
    UnitOfWork,
    WorkflowStart,
)

NOW = 1_800_000_000.0


@pytest.fixture
async def storage(database_url: str) -> AsyncIterator[Storage]:
    backend = create_backend(parse(database_url))
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


def message(queue: str, body: bytes = b"{}", **options: object) -> NewMessage:
    return NewMessage(id=uuid.uuid4().hex, queue=queue, body=body, available_at=NOW, **options)  # type: ignore[arg-type]


async def running_workflow(storage: Storage, namespace: str, id: str) -> int:
    """A workflow leased by a runner; its fence."""
    assert await storage.workflows.create(namespace, id, "flow", b"null", None, NOW)
    [leased] = await storage.workflows.lease(
        namespace, ["flow"], owner="me", lease_end=NOW + 30, limit=1, now=NOW
    )
    return leased.fence


# --- state ------------------------------------------------------------------------------


async def test_state_conditions(storage: Storage, namespace: str) -> None:
    state = storage.state
    await state.put(namespace, PutOp("k", b"1", "e1"), NOW)
    with pytest.raises(AlreadyExists):
        await state.put(namespace, PutOp("k", b"2", "e2", only_if_absent=True), NOW)
    with pytest.raises(ConflictError):
        await state.put(namespace, PutOp("k", b"2", "e2", if_match="nope"), NOW)
    await state.put(namespace, PutOp("k", b"2", "e2", if_match="e1", expires_at=NOW + 5), NOW)
    item = await state.get(namespace, "k", NOW)
    assert item is not None and (item.value, item.etag) == (b"2", "e2")
    assert await state.get(namespace, "k", NOW + 6) is None  # expired: invisible
    assert await state.get_many(namespace, ["k", "missing"], NOW) == {"k": item}
    listed = await state.list(namespace, after="", low="", high=None, limit=10, now=NOW)
    assert [i.key for i in listed] == ["k"]
    with pytest.raises(ConflictError):
        await state.delete(namespace, "k", "nope", NOW)
    assert await state.delete(namespace, "k", None, NOW)
    assert not await state.delete(namespace, "k", None, NOW)


# --- the unit of work ---------------------------------------------------------------------


async def test_writes_and_messages_commit_together(storage: Storage, namespace: str) -> None:
    sent = message("out")
    done = await storage.commit(
        UnitOfWork(namespace, NOW, writes=[PutOp("a", b"1", "e"), DeleteOp("gone")],
                   messages=[sent])
    )  # fmt: skip
    assert done.applied and done.writes == [True, False]
    [leased] = await storage.queues.receive(
        namespace, "out", limit=5, lease_token="t", lease_end=NOW + 30, max_attempts=3, now=NOW
    )
    assert leased.id == sent.id


async def test_a_failed_condition_applies_no_intent(storage: Storage, namespace: str) -> None:
    fence = await running_workflow(storage, namespace, "wf")
    await storage.state.put(namespace, PutOp("b", b"1", "e1"), NOW)
    unit = UnitOfWork(
        namespace,
        NOW,
        writes=[PutOp("new", b"1", "n"), PutOp("b", b"2", "e2", if_match="stale")],
        messages=[message("out")],
        step=StepRecord("wf", fence, 1, "step", "s", NOW + 30, output=b"1"),
    )
    with pytest.raises(TransactionConflict) as raised:
        await storage.commit(unit)
    assert raised.value.details["index"] == 1
    assert await storage.state.get(namespace, "new", NOW) is None
    assert (await storage.queues.stats(namespace, "out", NOW)).ready == 0
    assert await storage.workflows.journal(namespace, "wf") == []


async def test_a_lost_fence_applies_no_intent(storage: Storage, namespace: str) -> None:
    fence = await running_workflow(storage, namespace, "wf")
    unit = UnitOfWork(
        namespace,
        NOW,
        writes=[PutOp("c", b"1", "e")],
        messages=[message("out")],
        step=StepRecord("wf", fence + 1, 1, "step", "s", NOW + 30, output=b"1"),
    )
    assert not (await storage.commit(unit)).applied
    assert await storage.state.get(namespace, "c", NOW) is None
    assert (await storage.queues.stats(namespace, "out", NOW)).ready == 0
    step = StepRecord("wf", fence, 1, "step", "s", NOW + 30, output=b"1")
    good = UnitOfWork(namespace, NOW, writes=[PutOp("c", b"1", "e")], step=step)
    done = await storage.commit(good)
    assert done.applied and not done.cancel_requested
    [entry] = await storage.workflows.journal(namespace, "wf")
    assert (entry.position, entry.output) == (1, b"1")


async def test_workflow_starts_commit_with_the_unit(storage: Storage, namespace: str) -> None:
    fence = await running_workflow(storage, namespace, "wf")
    lost = StepRecord("wf", fence + 1, 1, "step", "s", NOW + 30, output=b"1")
    starts = [WorkflowStart("child-1", "flow", b"1", deadline=NOW + 60, version="v2")]
    assert not (await storage.commit(UnitOfWork(namespace, NOW, step=lost, starts=starts))).applied
    assert await storage.workflows.get(namespace, "child-1") is None  # nothing of it
    step = StepRecord("wf", fence, 1, "step", "s", NOW + 30, output=b"1")
    unit = UnitOfWork(namespace, NOW, messages=[message("out")], step=step, starts=starts)
    assert (await storage.commit(unit)).applied
    made = await storage.workflows.get(namespace, "child-1")
    assert made is not None and (made.name, made.status, made.input) == ("flow", "pending", b"1")
    assert (made.deadline, made.version) == (NOW + 60, "v2")
    assert (await storage.queues.stats(namespace, "out", NOW)).ready == 1
    # An id taken already is left as it is; the rest of the unit applies.
    again = [WorkflowStart("child-1", "other", b"2")]
    assert (await storage.commit(UnitOfWork(namespace, NOW, starts=again))).applied
    kept = await storage.workflows.get(namespace, "child-1")
    assert kept is not None and (kept.name, kept.input) == ("flow", b"1")


async def test_settling_under_a_lease(storage: Storage, namespace: str) -> None:
    q = storage.queues
    first, second, third = message("jobs"), message("jobs"), message("jobs")
    await q.send(namespace, [first, second, third], NOW)
    leased = await q.receive(
        namespace, "jobs", limit=3, lease_token="t", lease_end=NOW + 30, max_attempts=3, now=NOW
    )
    assert [m.id for m in leased] == [first.id, second.id, third.id]
    reply = message("replies")
    ack = Settlement("ack", "jobs", first.id, "t", archive=True, result=b'"ok"')
    assert (await storage.commit(UnitOfWork(namespace, NOW, messages=[reply], settle=ack))).applied
    lost = Settlement("ack", "jobs", first.id, "t")  # settled already
    again = UnitOfWork(namespace, NOW, settle=lost, messages=[message("replies")])
    assert not (await storage.commit(again)).applied
    retry = Settlement("retry", "jobs", second.id, "t", error="busy", retry_at=NOW + 10)
    assert (await storage.commit(UnitOfWork(namespace, NOW, settle=retry))).applied
    dead = Settlement("dead", "jobs", third.id, "t", error="broken")
    assert (await storage.commit(UnitOfWork(namespace, NOW, settle=dead))).applied
    found = await q.find(namespace, first.id)
    assert found is not None and (found.state, found.result) == ("done", b'"ok"')
    waiting = await q.find(namespace, second.id)
    assert waiting is not None and (waiting.state, waiting.available_at) == ("ready", NOW + 10)
    stats = await q.stats(namespace, "jobs", NOW)
    assert (stats.delayed, stats.dead) == (1, 1)
    assert (await q.stats(namespace, "replies", NOW)).ready == 1  # only the applied one


async def test_a_unit_of_only_a_step(storage: Storage, namespace: str) -> None:
    """A checkpoint alone (its own plain statement on PostgreSQL): fenced, an attempt
    replaced by the outcome, a recorded outcome never replaced, cancellation read."""
    fence = await running_workflow(storage, namespace, "solo")

    def step(kind: str, output: bytes, at_fence: int = fence) -> UnitOfWork:
        record = StepRecord("solo", at_fence, 1, kind, "s", NOW + 30, output=output)
        return UnitOfWork(namespace, NOW, step=record)

    assert not (await storage.commit(step("step", b"1", fence + 1))).applied
    assert await storage.workflows.journal(namespace, "solo") == []
    assert (await storage.commit(step("attempt", b"0"))).applied
    assert (await storage.commit(step("step", b"1"))).applied  # replaces the attempt
    assert (await storage.commit(step("step", b"2"))).applied  # recorded: kept as it is
    [entry] = await storage.workflows.journal(namespace, "solo")
    assert (entry.kind, entry.output) == ("step", b"1")
    assert await storage.workflows.cancel(namespace, "solo", NOW) is not None
    assert (await storage.commit(step("step", b"3"))).cancel_requested


async def test_a_unit_of_only_an_ack(storage: Storage, namespace: str) -> None:
    """An acknowledgement alone (its own plain statement on PostgreSQL): under the
    lease, archived with its result when asked, once."""
    q = storage.queues
    kept, dropped = message("solo"), message("solo")
    await q.send(namespace, [kept, dropped], NOW)
    await q.receive(
        namespace, "solo", limit=2, lease_token="t", lease_end=NOW + 30, max_attempts=3, now=NOW
    )
    wrong = Settlement("ack", "solo", kept.id, "not-the-token")
    assert not (await storage.commit(UnitOfWork(namespace, NOW, settle=wrong))).applied
    archived = Settlement("ack", "solo", kept.id, "t", archive=True, result=b'"r"')
    assert (await storage.commit(UnitOfWork(namespace, NOW, settle=archived))).applied
    assert not (await storage.commit(UnitOfWork(namespace, NOW, settle=archived))).applied
    gone = Settlement("ack", "solo", dropped.id, "t")
    assert (await storage.commit(UnitOfWork(namespace, NOW, settle=gone))).applied
    found = await q.find(namespace, kept.id)
    assert found is not None and (found.state, found.result) == ("done", b'"r"')
    assert await q.find(namespace, dropped.id) is None  # not archived
    assert (await q.stats(namespace, "solo", NOW)).ready == 0
