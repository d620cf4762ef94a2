"""Idempotency by key, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from statekeeper import App
from statekeeper.errors import IdempotencyInProgress, IdempotencyKeyReused, InvalidValue
from tests.conftest import FakeClock


async def test_first_call_runs_repeats_return_its_result(app: App) -> None:
    calls: list[int] = []

    async def charge(order: str, amount: int) -> dict[str, object]:
        calls.append(amount)
        return {"order": order, "charged": amount}

    first = await app.idempotency.run("charge:1", charge, "o1", 30)
    again = await app.idempotency.run("charge:1", charge, "o1", 30)
    assert first == again == {"order": "o1", "charged": 30}
    assert calls == [30]


async def test_same_key_other_payload_is_refused(app: App) -> None:
    async def f(x: int) -> int:
        return x

    await app.idempotency.run("k", f, 1)
    with pytest.raises(IdempotencyKeyReused) as caught:
        await app.idempotency.run("k", f, 2)
    assert caught.value.http_status == 422
    assert await app.idempotency.run("k2", f, 2, payload={"a": 1, "b": 2}) == 2
    assert await app.idempotency.run("k2", f, 3, payload={"b": 2, "a": 1}) == 2  # same payload


async def test_concurrent_duplicate_is_in_progress_or_waits(app: App) -> None:
    release = asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "done"

    first = asyncio.create_task(app.idempotency.run("slow", slow))
    await asyncio.sleep(0.05)
    with pytest.raises(IdempotencyInProgress) as caught:
        await app.idempotency.run("slow", slow)
    assert caught.value.http_status == 409
    waiter = asyncio.create_task(app.idempotency.run("slow", slow, wait=True, wait_timeout=5))
    await asyncio.sleep(0.05)
    release.set()
    assert await first == "done"
    assert await waiter == "done"
    assert calls == 1


async def test_a_failed_call_stores_nothing_and_can_run_again(app: App) -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("transient")
        return "ok"

    with pytest.raises(RuntimeError):
        await app.idempotency.run("flaky", flaky)
    assert await app.idempotency.run("flaky", flaky) == "ok"
    assert attempts == 2


async def test_an_owner_that_died_is_taken_over(app: App, clock: FakeClock) -> None:
    """A record left running by a dead process (its lease lapsed) is claimed anew."""
    now = clock()
    claimed = await app.backend.idempotency.claim(
        app.namespace, "orphan", fingerprint=_digest(), owner="dead-process",
        lease_expires_at=now + 30, expires_at=now + 3600, now=now,
    )  # fmt: skip
    assert claimed

    async def work() -> str:
        return "recovered"

    with pytest.raises(IdempotencyInProgress):
        await app.idempotency.run("orphan", work)
    clock.advance(31)
    assert await app.idempotency.run("orphan", work) == "recovered"
    assert await app.idempotency.run("orphan", work) == "recovered"


async def test_results_expire_after_their_ttl(app: App, clock: FakeClock) -> None:
    calls = 0

    async def f() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await app.idempotency.run("ttl", f, ttl=60) == 1
    clock.advance(30)
    assert await app.idempotency.run("ttl", f, ttl=60) == 1
    clock.advance(31)
    assert await app.idempotency.run("ttl", f, ttl=60) == 2


async def test_decorator_and_sync_functions(app: App) -> None:
    calls: list[str] = []

    @app.idempotent(key=lambda order: f"ship:{order}")
    async def ship(order: str) -> str:
        calls.append(order)
        return f"shipped {order}"

    assert await ship("a") == await ship("a") == "shipped a"
    assert await ship("b") == "shipped b"
    assert calls == ["a", "b"]

    def sync_total(x: int, y: int) -> int:
        return x + y

    assert await app.idempotency.run("sum", sync_total, 2, 3) == 5


async def test_unserialisable_result_is_an_error_and_nothing_is_stored(app: App) -> None:
    async def bad() -> object:
        return object()

    with pytest.raises(InvalidValue, match="result of idempotent call 'bad'"):
        await app.idempotency.run("bad", bad)

    async def good() -> int:
        return 1

    assert await app.idempotency.run("bad", good) == 1


def _digest() -> str:
    from statekeeper.idempotency import fingerprint

    return fingerprint([[], {}])
