"""Transactional outbox: a message sent in a state transaction is visible iff it commits."""

from __future__ import annotations

import pytest

from statekeeper import App
from statekeeper.errors import InvalidValue, TransactionConflict


async def test_committed_transaction_sends(app: App) -> None:
    orders = app.queue("orders")
    async with app.state.transaction() as tx:
        tx.put("order:1", {"status": "placed"})
        tx.send("orders", {"order": 1}, attributes={"kind": "placed"})
        tx.send(orders, {"order": 1, "step": "email"}, group="order-1")
    assert len(tx.sent) == 2
    messages = await orders.receive(10)
    assert sorted(m.id for m in messages) == sorted(tx.sent)
    assert {m.body.get("step") for m in messages} == {None, "email"}
    item = await app.state.get("order:1")
    assert item is not None and item.value == {"status": "placed"}


async def test_conflicting_transaction_sends_nothing(app: App) -> None:
    stale = await app.state.put("stock", 5)
    await app.state.put("stock", 4)
    with pytest.raises(TransactionConflict):
        async with app.state.transaction() as tx:
            tx.send("orders", {"order": 2})
            tx.put("stock", 3, if_match=stale.etag)
    assert tx.sent == []
    assert await app.queue("orders").receive(10) == []
    assert (await app.queue("orders").stats()).ready == 0


async def test_a_block_that_raises_sends_nothing(app: App) -> None:
    with pytest.raises(RuntimeError):
        async with app.state.transaction() as tx:
            tx.send("orders", {"order": 3})
            raise RuntimeError("abort")
    assert await app.queue("orders").receive(10) == []


async def test_message_only_transaction(app: App) -> None:
    async with app.state.transaction() as tx:
        tx.send("orders", 1)
        tx.send("audit", 2)
    assert [m.body for m in await app.queue("orders").receive()] == [1]
    assert [m.body for m in await app.queue("audit").receive()] == [2]


async def test_bad_message_fails_inside_the_block(app: App) -> None:
    with pytest.raises(InvalidValue):
        async with app.state.transaction() as tx:
            tx.put("k", 1)
            tx.send("orders", object())
    assert await app.state.get("k") is None
