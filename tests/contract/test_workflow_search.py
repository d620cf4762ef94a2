"""Workflow search: attributes set by workflows (typed, journaled, replay-safe), list
filters on attributes, time ranges, status and name, paged; counts by status and name."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.errors import InvalidCursor, InvalidFilter, ValidationError, WorkflowNotFound
from statekeeper.workflows import WorkflowContext
from statekeeper.workflows.search import decode_cursor, encode_cursor
from tests.conftest import FakeClock
from tests.support import drive

DUE = datetime(2030, 1, 1, tzinfo=UTC)


def register_orders(app: App) -> None:
    @app.function
    async def charge(n: int) -> int:
        if n % 5 == 4:
            raise ValueError("card declined")
        return n

    @app.workflow
    async def order(ctx: WorkflowContext, n: int) -> int:
        await ctx.set_attributes(
            {"customer": f"c-{n % 3}", "amount": n * 10, "vip": n % 2 == 0, "due": DUE}
        )
        return await ctx.step(charge, n, retry=Retry(max_attempts=1))


async def start_orders(app: App, clock: FakeClock, count: int) -> list[str]:
    runs: list[str] = []
    for n in range(count):
        runs.append(await app.workflows.start("order", n, id=f"o-{n:03d}"))
        clock.advance(1)
    await drive(app)
    return runs


async def ids(app: App, **filters: Any) -> list[str]:
    return [w["id"] for w in await app.workflows.list(**filters)]


async def test_attributes_are_typed_stored_and_read_back(app: App, clock: FakeClock) -> None:
    register_orders(app)
    await start_orders(app, clock, 2)
    assert await app.workflows.attributes("o-000") == {
        "amount": 0, "customer": "c-0", "due": DUE, "vip": True,
    }  # fmt: skip
    assert await app.workflows.attributes("o-001") == {
        "amount": 10, "customer": "c-1", "due": DUE, "vip": False,
    }  # fmt: skip
    with pytest.raises(WorkflowNotFound):
        await app.workflows.attributes("nope")


async def test_filters_on_attributes_status_name_and_time(app: App, clock: FakeClock) -> None:
    register_orders(app)
    start = clock()
    await start_orders(app, clock, 15)
    newest_first = [f"o-{n:03d}" for n in range(14, -1, -1)]
    assert await ids(app, attributes={"customer": "c-1"}) == [
        i for i in newest_first if int(i[2:]) % 3 == 1
    ]
    # An equality and a range together; the range bounds exclusive and inclusive.
    assert await ids(app, attributes={"customer": "c-0", "amount": {"gt": 30, "lte": 120}}) == [
        "o-012", "o-009", "o-006",
    ]  # fmt: skip
    assert await ids(app, attributes={"amount": {"gte": 100}}) == newest_first[:5]
    assert await ids(app, attributes={"vip": True, "amount": {"lt": 40}}) == ["o-002", "o-000"]
    assert await ids(app, attributes={"due": DUE.isoformat()}) == newest_first
    # Status: n % 5 == 4 fails.
    assert await ids(app, status="failed", attributes={"vip": False}) == ["o-009"]
    failed = await ids(app, status="failed", created_after=start)
    assert failed == ["o-014", "o-009", "o-004"]
    assert await ids(app, status="failed", created_after=start + 5, created_before=start + 14) == [
        "o-009"
    ]
    assert await ids(
        app, name="order", attributes={"customer": "c-2"}, created_before=start + 3
    ) == ["o-002"]
    assert await ids(app, name="other", attributes={"customer": "c-2"}) == []
    # An attribute no workflow has matches nothing.
    assert await ids(app, attributes={"colour": "red"}) == []


async def test_pages_follow_the_cursor(app: App, clock: FakeClock) -> None:
    register_orders(app)
    await start_orders(app, clock, 12)
    seen: list[str] = []
    before = (float("inf"), "")
    for _ in range(10):
        page = await app.workflows.list(attributes={"amount": {"gte": 20}}, limit=4, before=before)
        seen += [w["id"] for w in page]
        if len(page) < 4:
            break
        before = (page[-1]["created_at"], page[-1]["id"])
    assert seen == [f"o-{n:03d}" for n in range(11, 1, -1)]
    cursor = encode_cursor(*before)
    assert decode_cursor(cursor) == before
    with pytest.raises(InvalidCursor):
        decode_cursor("not a cursor")


async def test_counts_by_status_and_name(app: App, clock: FakeClock) -> None:
    register_orders(app)
    start = clock()
    await start_orders(app, clock, 10)
    counts = await app.workflows.counts()
    assert counts["total"] == 10
    assert counts["by_status"]["succeeded"] == 8 and counts["by_status"]["failed"] == 2
    assert counts["by_name"] == {"order": 10}
    vip = await app.workflows.counts(attributes={"vip": True})
    assert vip["total"] == 5 and vip["by_status"]["failed"] == 1  # o-004
    late = await app.workflows.counts(created_after=start + 5, status="failed")
    assert late["total"] == 1 and late["by_name"] == {"order": 1}
    assert (await app.workflows.counts(attributes={"colour": "red"}))["total"] == 0


async def test_a_replay_does_not_rewrite_attributes(app: App, clock: FakeClock) -> None:
    """Set, then set again, then sleep: the run that wakes replays both sets and writes
    neither (the later value stays); an unset removes the attribute."""
    writes: list[str] = []

    @app.function
    async def mark(label: str) -> str:
        writes.append(label)
        return label

    @app.workflow
    async def phases(ctx: WorkflowContext, _: None) -> str:
        await ctx.set_attributes({"phase": "one", "tries": 1, "note": "x"})
        await ctx.step(mark, "a")
        await ctx.set_attributes({"phase": "two", "note": None})
        await ctx.sleep(60)
        await ctx.step(mark, "b")
        return "done"

    run = await app.workflows.start(phases, None, id="p-1")
    await drive(app)
    assert await app.workflows.attributes(run) == {"phase": "two", "tries": 1}
    clock.advance(61)
    await drive(app)
    assert await app.workflows.result(run) == "done"
    assert writes == ["a", "b"]
    assert await app.workflows.attributes(run) == {"phase": "two", "tries": 1}
    assert await ids(app, attributes={"phase": "one"}) == []
    history = await app.workflows.history(run)
    assert [e["kind"] for e in history].count("attributes") == 2


async def test_a_name_keeps_its_first_kind(app: App) -> None:
    @app.workflow
    async def typed(ctx: WorkflowContext, value: Any) -> str:
        await ctx.set_attributes({"size": value})
        return "ok"

    first = await app.workflows.start(typed, 3, id="t-1")
    await drive(app)
    assert await app.workflows.result(first) == "ok"
    second = await app.workflows.start(typed, "big", id="t-2")
    await drive(app)
    status = await app.workflows.status(second)
    assert status.status == "failed" and status.error is not None
    assert "'size' holds int values" in status.error.message
    assert await app.workflows.attributes(second) == {}
    # A filter is read as the attribute's kind: text that is not an int is refused.
    with pytest.raises(InvalidFilter, match="'size'"):
        await app.workflows.list(attributes={"size": "big"})
    assert await ids(app, attributes={"size": "3"}) == ["t-1"]


@pytest.mark.parametrize(
    "value",
    [float("nan"), 2**60, datetime(2030, 1, 1), [1], "x" * 1001, "a\x00b"],
    ids=["nan", "huge-int", "naive-time", "list", "long", "nul"],
)
async def test_values_that_cannot_be_attributes(app: App, value: Any) -> None:
    @app.workflow
    async def bad(ctx: WorkflowContext, _: None) -> None:
        await ctx.set_attributes({"v": value})

    run = await app.workflows.start(bad, None, id="bad-1")
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "failed" and status.error is not None
    assert status.error.type == "ValidationError" and "'v'" in status.error.message


@pytest.mark.parametrize(
    "filters",
    [
        {"status": "nope"},
        {"name": "bad name!"},
        {"attributes": {"bad name": 1}},
        {"attributes": {"a": {"between": 1}}},
        {"attributes": {f"a{n}": 1 for n in range(9)}},
        {"created_after": "yesterday"},
        {"created_before": float("nan")},
        {"limit": 0},
    ],
    ids=["status", "name", "attr-name", "attr-op", "too-many", "after", "before", "limit"],
)
async def test_hostile_filters_are_refused_naming_the_parameter(
    app: App, filters: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as caught:
        await app.workflows.list(**{"created_after": 0.0, **filters})
    assert caught.value.http_status == 400
    named = next(iter(filters))
    word = {"attributes": "attribute", "limit": "limit"}.get(named, named)
    assert word in caught.value.message
