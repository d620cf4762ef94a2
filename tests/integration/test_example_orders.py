"""The order service example (examples/order_service.py) on both backends, through its
ASGI app: commands decided on replayed streams, rules and conflicts refused with 409,
queries answered from the read models the projections keep."""

from __future__ import annotations

import asyncio
import datetime
import importlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App, demo
from statekeeper.errors import TooManyRetries
from statekeeper.events import RecordedEvent

# The examples are scripts, not a package of the project: imported by name from the
# repository's root, which the tests run from.
service = importlib.import_module("examples.order_service")
stream_of = service.stream_of

BOOK = {"sku": "book", "quantity": 2, "price": 1250}
PEN = {"sku": "pen", "quantity": 3, "price": 150}

Served = tuple[App, httpx.AsyncClient]


@pytest.fixture
async def served(database_url: str, namespace: str) -> AsyncIterator[Served]:
    async with service.build(App(database_url, namespace=namespace, purge_interval=None)) as app:
        transport = httpx.ASGITransport(app=service.create_api(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            yield app, client


async def caught_up(app: App) -> None:
    for name in ("orders", "daily-revenue"):
        await app.projections.catch_up(name)


async def agrees_with_replay(app: App, order_id: str) -> Any:
    """The read model's summary of the order is what replaying its stream gives."""
    replayed = await service.load(app, order_id)
    summary = await app.projections.read_model("orders").get(f"order/{order_id}")
    assert summary == replayed.to_dict()
    assert replayed.version == await app.events.stream_version(stream_of(order_id))
    return replayed


async def place(client: httpx.AsyncClient, order_id: str, *lines: dict[str, Any]) -> None:
    body = {"id": order_id, "customer": "ada", "lines": list(lines)}
    placed = await client.post("/orders", json=body)
    assert placed.status_code == 202, placed.text
    assert placed.headers["location"] == f"/orders/{order_id}"


def refused(answer: httpx.Response, status: int, code: str, says: str) -> None:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and says in error["message"], error


async def test_commands_then_queries_from_the_read_model(served: Served) -> None:
    app, client = served
    await place(client, "o1", BOOK)
    added = await client.post("/orders/o1/lines", json=PEN)
    assert added.status_code == 202 and added.json() == {
        "id": "o1", "status": "placed", "total": 2950, "version": 2,
    }  # fmt: skip
    assert (await client.delete("/orders/o1/lines/book")).status_code == 202
    assert (await client.post("/orders/o1/pay")).status_code == 202
    assert (await client.post("/orders/o1/ship")).status_code == 202
    await place(client, "o2", BOOK)
    assert (await client.post("/orders/o2/pay")).status_code == 202
    assert (await client.post("/orders/o2/cancel")).json()["status"] == "cancelled"
    generated = await client.post("/orders", json={"customer": "bob", "lines": [PEN]})
    assert generated.status_code == 202
    bob_order = generated.json()["id"]

    assert (await client.get("/orders/o1")).status_code == 404  # not projected yet
    await caught_up(app)
    order = (await client.get("/orders/o1")).json()
    assert order == {
        "id": "o1", "customer": "ada", "status": "shipped",
        "lines": [{"sku": "pen", "quantity": 3, "price": 150}],
        "total": 450, "paid": 450, "version": 5,
    }  # fmt: skip
    await agrees_with_replay(app, "o1")
    await agrees_with_replay(app, "o2")
    ada = (await client.get("/customers/ada/orders")).json()
    assert ada == {
        "customer": "ada",
        "orders": [{"id": "o1", "status": "shipped", "total": 450},
                   {"id": "o2", "status": "cancelled", "total": 2500}],
        "spent": 450,  # o2 was paid, then cancelled and refunded
    }  # fmt: skip
    bob = (await client.get("/customers/bob/orders")).json()
    assert bob["orders"] == [{"id": bob_order, "status": "placed", "total": 450}]
    nobody = (await client.get("/customers/nobody/orders")).json()
    assert nobody == {"customer": "nobody", "orders": [], "spent": 0}

    [first] = await app.events.read_stream(stream_of("o1"), limit=1)
    day = datetime.datetime.fromtimestamp(first.recorded_at, datetime.UTC).date().isoformat()
    revenue = (await client.get(f"/revenue/{day}")).json()
    assert revenue == {
        "day": day,
        "placed": {"orders": 3, "amount": 2500 + 2500 + 450},
        "paid": {"orders": 2, "amount": 450 + 2500},
        "shipped": {"orders": 1, "amount": 450},
        "cancelled": {"orders": 1, "amount": 2500},
    }


async def test_rules_and_bad_input_are_refused_and_nothing_is_appended(served: Served) -> None:
    app, client = served
    await place(client, "o1", BOOK, PEN)
    refused(await client.post("/orders/o1/ship"), 409, "rule_violation", "not paid yet")
    refused(await client.delete("/orders/o1/lines/cup"), 409, "rule_violation", "no line")
    refused(await client.post("/orders/o1/lines", json=BOOK), 409, "rule_violation", "already")
    again = {"id": "o1", "customer": "ada", "lines": [BOOK]}
    refused(await client.post("/orders", json=again), 409, "rule_violation", "exists already")
    assert (await client.post("/orders/o1/pay")).status_code == 202
    refused(await client.post("/orders/o1/pay"), 409, "rule_violation", "paid already")
    refused(await client.post("/orders/o1/lines", json={**PEN, "sku": "cup"}), 409,
            "rule_violation", "cannot add a line to order o1")  # fmt: skip
    assert (await client.post("/orders/o1/ship")).status_code == 202
    refused(await client.post("/orders/o1/cancel"), 409, "rule_violation", "it has shipped")
    assert await app.events.stream_version(stream_of("o1")) == 3  # placed, paid, shipped

    refused(await client.post("/orders/o9/pay"), 404, "order_not_found", "'o9'")
    refused(await client.get("/orders/o9"), 404, "order_not_found", "'o9'")
    for body, says in [
        ({"customer": "ada", "lines": []}, "one or more lines"),
        ({"customer": "ada", "lines": [{**BOOK, "quantity": 0}]}, "quantity"),
        ({"customer": "ada", "lines": [{**BOOK, "price": 1.5}]}, "price"),
        ({"customer": "ada", "lines": [{**BOOK, "gift": True}]}, "no more"),
        ({"customer": "ada", "lines": [BOOK, BOOK]}, "twice"),
        ({"customer": "", "lines": [BOOK]}, "customer"),
        ({"id": "a/b", "customer": "ada", "lines": [BOOK]}, "order id"),
        ([BOOK], "JSON object"),
    ]:
        refused(await client.post("/orders", json=body), 400, "invalid_input", says)
    malformed = await client.post("/orders", content=b'{"customer": ')
    refused(malformed, 400, "malformed_json", "request body")
    assert [s.stream for s in await app.events.streams("order-")] == ["order-o1"]


def racing(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the first two reads of a stream wait for each other: two commands then
    decide on the same version, and one of their appends must fail."""
    barrier = asyncio.Barrier(2)
    read = app.events.read_stream
    reads = 0

    async def read_together(stream: str, **options: Any) -> list[RecordedEvent]:
        nonlocal reads
        reads += 1
        events = await read(stream, **options)
        if reads <= 2:
            await barrier.wait()
        return events

    monkeypatch.setattr(app.events, "read_stream", read_together)


async def test_of_two_conflicting_commands_exactly_one_wins(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = served
    await place(client, "o1", BOOK)
    assert (await client.post("/orders/o1/pay")).status_code == 202
    racing(app, monkeypatch)
    ship, cancel = await asyncio.gather(
        client.post("/orders/o1/ship"), client.post("/orders/o1/cancel")
    )
    assert sorted([ship.status_code, cancel.status_code]) == [202, 409]
    loser = ship if ship.status_code == 409 else cancel
    # Decided again on what the winner left, the loser is refused by a rule.
    says = "it has shipped" if loser is cancel else "it is cancelled"
    refused(loser, 409, "rule_violation", says)
    events = await app.events.read_stream(stream_of("o1"))
    assert [e.type for e in events][:2] == ["OrderPlaced", "OrderPaid"] and len(events) == 3
    await caught_up(app)
    order = await agrees_with_replay(app, "o1")
    assert order.status == ("shipped" if ship.status_code == 202 else "cancelled")


async def test_a_conflict_without_retries_is_a_409(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, client = served
    await place(client, "o1", BOOK)
    racing(app, monkeypatch)
    outcomes = await asyncio.gather(
        service.execute(app, "o1", service.pay, attempts=1),
        service.execute(app, "o1", service.pay, attempts=1),
        return_exceptions=True,
    )
    [won] = [o for o in outcomes if isinstance(o, service.Order)]
    [lost] = [o for o in outcomes if isinstance(o, BaseException)]
    assert won.status == "paid" and won.version == 2
    assert isinstance(lost, TooManyRetries) and lost.http_status == 409
    assert "kept changing" in lost.message


async def test_many_commands_at_once_on_many_orders(served: Served) -> None:
    app, client = served
    orders = [f"o{n}" for n in range(8)]
    for order_id in orders:
        await place(client, order_id, BOOK, PEN)
    # Each order is paid twice and has a line removed at once: one payment wins.
    answers = await asyncio.gather(
        *(client.post(f"/orders/{o}/pay") for o in orders for _ in range(2)),
        *(client.delete(f"/orders/{o}/lines/pen") for o in orders),
    )
    paid = [a.status_code for a in answers[: 2 * len(orders)]]
    assert paid.count(202) == len(orders) and paid.count(409) == len(orders)
    await caught_up(app)
    spent = 0
    for order_id in orders:
        order = await agrees_with_replay(app, order_id)
        assert order.status == "paid" and order.paid == order.total
        spent += order.paid
    ada = (await client.get("/customers/ada/orders")).json()
    assert ada["spent"] == spent and len(ada["orders"]) == len(orders)


async def test_with_a_token_the_api_wants_it(database_url: str, namespace: str) -> None:
    async with service.build(App(database_url, namespace=namespace, purge_interval=None)) as app:
        api = service.create_api(app, token="a-token-of-sixteen-or-more")
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            body = {"customer": "ada", "lines": [BOOK]}
            refused(await client.post("/orders", json=body), 401, "unauthorized", "missing")
            auth = {"Authorization": "Bearer a-token-of-sixteen-or-more"}
            assert (await client.post("/orders", json=body, headers=auth)).status_code == 202


async def test_the_demo_scene_on_both_backends(own_database_url: str) -> None:
    """`statekeeper demo`'s order scene (its test runs it on SQLite only)."""
    async with App(own_database_url, namespace="demo", purge_interval=None) as app:
        await demo._orders(app)
