"""The state store's contract, run on SQLite and on PostgreSQL (real servers)."""

from __future__ import annotations

import asyncio

import pytest

from statekeeper import App
from statekeeper.errors import (
    AlreadyExists,
    ConflictError,
    InvalidCursor,
    InvalidKey,
    InvalidTTL,
    InvalidValue,
    TooManyRetries,
    TransactionConflict,
    ValidationError,
    ValueTooLarge,
)
from tests.conftest import FakeClock

# --- put, get, delete, ETags ----------------------------------------------------------


async def test_put_then_get_round_trips_json(app: App) -> None:
    value = {"name": "Ada", "tags": ["x", "y"], "n": 1.5, "ok": True, "none": None}
    put = await app.state.put("user:1", value)
    got = await app.state.get("user:1")
    assert got is not None
    assert got.value == value
    assert got.etag == put.etag
    assert got.expires_at is None
    assert await app.state.get("user:2") is None


async def test_every_write_changes_the_etag(app: App) -> None:
    etags = {(await app.state.put("k", {"v": 1})).etag for _ in range(20)}
    assert len(etags) == 20
    # Delete then recreate the same value: still a new ETag (no ABA).
    before = (await app.state.put("k", 1)).etag
    await app.state.delete("k")
    assert (await app.state.put("k", 1)).etag != before


async def test_if_match_accepts_the_current_etag_and_refuses_a_stale_one(app: App) -> None:
    first = await app.state.put("k", 1)
    second = await app.state.put("k", 2, if_match=first.etag)
    with pytest.raises(ConflictError) as caught:
        await app.state.put("k", 3, if_match=first.etag)
    assert caught.value.http_status == 409
    assert caught.value.code == "conflict"
    got = await app.state.get("k")
    assert got is not None and got.value == 2 and got.etag == second.etag


async def test_if_match_on_a_missing_key_conflicts(app: App) -> None:
    with pytest.raises(ConflictError):
        await app.state.put("nope", 1, if_match="some-etag")
    assert await app.state.get("nope") is None


async def test_only_if_absent(app: App) -> None:
    await app.state.put("k", 1, only_if_absent=True)
    with pytest.raises(AlreadyExists):
        await app.state.put("k", 2, only_if_absent=True)
    got = await app.state.get("k")
    assert got is not None and got.value == 1


async def test_only_if_absent_and_if_match_cannot_combine(app: App) -> None:
    with pytest.raises(ValidationError, match="cannot be combined"):
        await app.state.put("k", 1, if_match="e", only_if_absent=True)


async def test_last_write_wins_without_conditions(app: App) -> None:
    await asyncio.gather(*(app.state.put("k", i) for i in range(50)))
    got = await app.state.get("k")
    assert got is not None and got.value in range(50)


async def test_delete(app: App) -> None:
    item = await app.state.put("k", 1)
    assert await app.state.delete("missing") is False
    with pytest.raises(ConflictError):
        await app.state.delete("k", if_match="stale")
    assert await app.state.get("k") is not None
    assert await app.state.delete("k", if_match=item.etag) is True
    assert await app.state.get("k") is None
    with pytest.raises(ConflictError):
        await app.state.delete("k", if_match=item.etag)


async def test_namespaces_never_see_each_other(database_url: str, clock: FakeClock) -> None:
    async with (
        App(database_url, namespace="tenant-a-x1", clock=clock, purge_interval=None) as a,
        App(database_url, namespace="tenant-b-x1", clock=clock, purge_interval=None) as b,
    ):
        await a.state.put("shared-key", "from a")
        assert await b.state.get("shared-key") is None
        await b.state.put("shared-key", "from b")
        got_a, got_b = await a.state.get("shared-key"), await b.state.get("shared-key")
        assert got_a is not None and got_a.value == "from a"
        assert got_b is not None and got_b.value == "from b"
        assert [i.key for i in (await b.state.list()).items] == ["shared-key"]
        await a.state.delete("shared-key")
        assert await b.state.get("shared-key") is not None
        await b.state.delete("shared-key")


# --- TTL ------------------------------------------------------------------------------


async def test_expired_item_is_invisible_at_once(app: App, clock: FakeClock) -> None:
    item = await app.state.put("session", {"u": 1}, ttl=10)
    assert item.expires_at == clock.now + 10
    got = await app.state.get("session")
    assert got is not None and got.expires_at == clock.now + 10
    assert got.expires is not None and got.expires.timestamp() == clock.now + 10
    clock.advance(9.9)
    assert await app.state.get("session") is not None
    clock.advance(0.2)
    assert await app.state.get("session") is None
    assert (await app.state.get_many(["session"]))["session"] is None
    assert (await app.state.list()).items == []


async def test_expired_item_counts_as_absent_for_conditions(app: App, clock: FakeClock) -> None:
    item = await app.state.put("k", 1, ttl=1)
    clock.advance(2)
    with pytest.raises(ConflictError):
        await app.state.put("k", 2, if_match=item.etag)
    with pytest.raises(ConflictError):
        await app.state.delete("k", if_match=item.etag)
    await app.state.put("k", 3, only_if_absent=True)
    got = await app.state.get("k")
    assert got is not None and got.value == 3 and got.expires_at is None


async def test_write_without_ttl_clears_the_expiry(app: App, clock: FakeClock) -> None:
    await app.state.put("k", 1, ttl=5)
    await app.state.put("k", 2)
    clock.advance(60)
    got = await app.state.get("k")
    assert got is not None and got.value == 2 and got.expires_at is None


async def test_delete_of_an_expired_item_reports_absent(app: App, clock: FakeClock) -> None:
    await app.state.put("k", 1, ttl=1)
    clock.advance(2)
    assert await app.state.delete("k") is False


async def test_purge_removes_only_expired_rows(app: App, clock: FakeClock) -> None:
    await app.state.put("short", 1, ttl=1)
    await app.state.put("long", 1, ttl=100)
    await app.state.put("forever", 1)
    clock.advance(2)
    assert await app.state.purge_expired() >= 1
    stored = await app.backend.state.get(app.namespace, "short", 0.0)
    assert stored is None  # gone from the table, not only hidden
    assert await app.backend.state.get(app.namespace, "long", 0.0) is not None
    assert await app.state.get("forever") is not None


async def test_background_purger(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, purge_interval=0.05) as app:
        await app.state.put("k", 1, ttl=0.01)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if await app.backend.state.get(namespace, "k", 0.0) is None:
                break
        assert await app.backend.state.get(namespace, "k", 0.0) is None


# --- transactions ---------------------------------------------------------------------


async def test_transaction_applies_everything(app: App) -> None:
    a = await app.state.put("a", 1)
    await app.state.put("gone", 1)
    async with app.state.transaction() as tx:
        tx.put("a", 2, if_match=a.etag)
        tx.put("b", 3, only_if_absent=True)
        tx.delete("gone")
        tx.delete("never-was")
    assert tx.deleted == {"gone": True, "never-was": False}
    got = await app.state.get_many(["a", "b", "gone"])
    assert got["a"] is not None and got["a"].value == 2 and got["a"].etag == tx.etags["a"]
    assert got["b"] is not None and got["b"].value == 3
    assert got["gone"] is None


async def test_transaction_is_all_or_nothing(app: App) -> None:
    a = await app.state.put("a", 1)
    await app.state.put("b", 1)
    await app.state.put("a", 2)  # a's etag is now stale
    with pytest.raises(TransactionConflict) as caught:
        async with app.state.transaction() as tx:
            tx.put("c", "new")
            tx.delete("b")
            tx.put("a", 3, if_match=a.etag)
    assert caught.value.details["index"] == 2
    assert caught.value.details["key"] == "a"
    assert caught.value.http_status == 409
    got = await app.state.get_many(["a", "b", "c"])
    assert got["a"] is not None and got["a"].value == 2
    assert got["b"] is not None
    assert got["c"] is None


async def test_transaction_reports_an_existing_key(app: App) -> None:
    await app.state.put("taken", 1)
    with pytest.raises(TransactionConflict) as caught:
        async with app.state.transaction() as tx:
            tx.put("free", 1)
            tx.put("taken", 2, only_if_absent=True)
    assert caught.value.details["index"] == 1
    assert caught.value.details["reason"] == "already_exists"
    assert "already exists" in caught.value.message
    assert await app.state.get("free") is None


async def test_transaction_block_that_raises_applies_nothing(app: App) -> None:
    with pytest.raises(RuntimeError):
        async with app.state.transaction() as tx:
            tx.put("a", 1)
            raise RuntimeError("changed my mind")
    assert await app.state.get("a") is None


async def test_bad_input_inside_a_transaction_applies_nothing(app: App) -> None:
    with pytest.raises(InvalidValue):
        async with app.state.transaction() as tx:
            tx.put("a", 1)
            tx.put("b", object())
    assert await app.state.get("a") is None


async def test_concurrent_transactions_keep_a_sum(app: App) -> None:
    """Transfers between two accounts never create or destroy money."""
    await app.state.put_many({"acc:a": 1000, "acc:b": 1000})

    async def transfer(amount: int) -> None:
        while True:
            got = await app.state.get_many(["acc:a", "acc:b"])
            a, b = got["acc:a"], got["acc:b"]
            assert a is not None and b is not None
            try:
                async with app.state.transaction() as tx:
                    tx.put("acc:a", a.value - amount, if_match=a.etag)
                    tx.put("acc:b", b.value + amount, if_match=b.etag)
                return
            except TransactionConflict:
                await asyncio.sleep(0.001)

    await asyncio.gather(*(transfer(i % 7) for i in range(40)))
    got = await app.state.get_many(["acc:a", "acc:b"])
    a, b = got["acc:a"], got["acc:b"]
    assert a is not None and b is not None
    assert a.value + b.value == 2000
    assert b.value - 1000 == sum(i % 7 for i in range(40))


async def test_put_many_and_get_many(app: App) -> None:
    written = await app.state.put_many({"x": 1, "y": [2], "z": {"v": 3}})
    assert set(written) == {"x", "y", "z"}
    got = await app.state.get_many(["z", "missing", "x"])
    assert list(got) == ["z", "missing", "x"]
    assert got["missing"] is None
    assert got["x"] is not None and got["x"].etag == written["x"].etag
    assert await app.state.get_many([]) == {}


# --- listing --------------------------------------------------------------------------


async def test_prefix_listing_pages_with_a_cursor(app: App) -> None:
    keys = [f"user#{u}#order#{o:02d}" for u in (1, 2, 10) for o in range(12)]
    await app.state.put_many({k: {"k": k} for k in keys})
    await app.state.put("user#1", "the user itself")
    seen: list[str] = []
    cursor = None
    while True:
        page = await app.state.list("user#1#", limit=5, cursor=cursor)
        seen += [item.key for item in page.items]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == [f"user#1#order#{o:02d}" for o in range(12)]
    everything = await app.state.list(limit=1000)
    assert [i.key for i in everything.items] == sorted([*keys, "user#1"])
    assert everything.cursor is None


async def test_listing_orders_unicode_bytewise_and_handles_max_code_point(app: App) -> None:
    keys = ["a", "a\U0010ffff", "a\U0010ffffz", "ab", "b", "é", "日本", "\U0001f600"]
    await app.state.put_many({k: 1 for k in keys})
    assert [i.key for i in (await app.state.list()).items] == sorted(keys, key=str.encode)
    assert [i.key for i in (await app.state.list("a\U0010ffff")).items] == [
        "a\U0010ffff",
        "a\U0010ffffz",
    ]
    assert [i.key for i in (await app.state.list("a")).items] == [
        "a",
        "ab",
        "a\U0010ffff",
        "a\U0010ffffz",
    ]


async def test_listing_bad_input(app: App) -> None:
    with pytest.raises(ValidationError, match="limit must be an integer from 1 to 1000"):
        await app.state.list(limit=0)
    with pytest.raises(ValidationError, match="limit"):
        await app.state.list(limit=5000)
    with pytest.raises(InvalidCursor):
        await app.state.list(cursor="%%%not-base64")
    await app.state.put_many({"p:1": 1, "p:2": 2, "q:1": 1})
    page = await app.state.list("p:", limit=1)
    assert page.cursor is not None
    with pytest.raises(InvalidCursor, match="another prefix"):
        await app.state.list("q:", cursor=page.cursor)


# --- update ---------------------------------------------------------------------------


async def test_update_creates_and_modifies(app: App) -> None:
    created = await app.state.update("counter", lambda v: (v or 0) + 1)
    assert created.value == 1
    updated = await app.state.update("counter", lambda v: v + 10)
    assert updated.value == 11 and updated.etag != created.etag


async def test_update_accepts_async_functions(app: App) -> None:
    async def add(value: object) -> dict[str, int]:
        await asyncio.sleep(0)
        return {"n": 1 if value is None else value["n"] + 1}  # type: ignore[index]

    await app.state.update("k", add)
    assert (await app.state.update("k", add)).value == {"n": 2}


async def test_concurrent_updates_lose_nothing(app: App) -> None:
    await asyncio.gather(*(app.state.update("c", lambda v: (v or 0) + 1) for _ in range(100)))
    got = await app.state.get("c")
    assert got is not None and got.value == 100


async def test_update_gives_up_after_max_attempts(app: App) -> None:
    await app.state.put("k", 0)

    async def meddle(value: object) -> int:
        await app.state.put("k", -1)  # a concurrent writer wins every time
        return 1

    with pytest.raises(TooManyRetries, match="conflicted 3 times"):
        await app.state.update("k", meddle, max_attempts=3)


# --- bad input: a clear error and nothing stored ---------------------------------------


async def test_bad_input_stores_nothing(app: App) -> None:
    cases: list[tuple[type[Exception], object, object, dict[str, object]]] = [
        (InvalidValue, "k1", object(), {}),
        (InvalidValue, "k2", float("nan"), {}),
        (InvalidKey, "", 1, {}),
        (InvalidKey, "x" * 1025, 1, {}),
        (InvalidKey, 7, 1, {}),
        (InvalidTTL, "k3", 1, {"ttl": -5}),
        (InvalidTTL, "k4", 1, {"ttl": "10"}),
        (InvalidTTL, "k5", 1, {"ttl": 0}),
        (ValidationError, "k6", 1, {"if_match": ""}),
    ]
    for error, key, value, options in cases:
        with pytest.raises(error):
            await app.state.put(key, value, **options)  # type: ignore[arg-type]
    assert (await app.state.list()).items == []


async def test_value_size_limit_is_configurable(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, max_value_bytes=100) as app:
        await app.state.put("ok", "x" * 98)
        with pytest.raises(ValueTooLarge, match="102 bytes as JSON; the limit is 100"):
            await app.state.put("big", "x" * 100)
        assert await app.state.get("big") is None


async def test_default_size_limit_is_the_payload_limit(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, max_payload_bytes=3 << 20) as app:
        await app.state.put("fits", "x" * ((3 << 20) - 2))  # out of line, as a blob
        with pytest.raises(ValueTooLarge) as caught:
            await app.state.put("big", "x" * (3 << 20))
        assert caught.value.http_status == 413
        assert await app.state.get("big") is None
        got = await app.state.get("fits")
        assert got is not None and len(got.value) == (3 << 20) - 2


async def test_bad_etags_and_prefixes_are_validation_errors(app: App) -> None:
    await app.state.put("k", 1)
    for etag in ("\ud800", "a\x00b", "x" * 2000):
        with pytest.raises(ValidationError, match="if_match"):
            await app.state.put("k", 2, if_match=etag)
        with pytest.raises(ValidationError, match="if_match"):
            await app.state.delete("k", if_match=etag)
    for prefix in ("\ud800", "a\x00"):
        with pytest.raises(ValidationError, match="prefix"):
            await app.state.list(prefix)
    got = await app.state.get("k")
    assert got is not None and got.value == 1


async def test_huge_ttl_is_refused_and_nothing_stored(app: App) -> None:
    with pytest.raises(InvalidTTL, match="at most"):
        await app.state.put("k", 1, ttl=1e12)
    assert await app.state.get("k") is None
    item = await app.state.put("k", 1, ttl=3153600000)
    assert item.to_dict()["expires_at"] is not None


async def test_transactions_over_the_same_keys_in_other_orders_never_deadlock(app: App) -> None:
    """Each multi-key write locks its keys in one global order, whatever its own."""

    async def writer(order: list[str]) -> None:
        for i in range(60):
            await app.state.put_many([(key, i) for key in order])

    await asyncio.gather(writer(["a", "b", "c"]), writer(["c", "b", "a"]), writer(["b", "c", "a"]))
    assert {(await app.state.get(k)).value for k in "abc"} <= set(range(60))  # type: ignore[union-attr]
