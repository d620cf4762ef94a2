"""The event store's routes of the HTTP API, in process on both backends: appends with
expected versions (body and header), stream, log and category reads paged with
``next``, the stream listing, projections' status and rebuilds, subscriptions and
parked events; every answer checked against its documented model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import BaseModel

from statekeeper import App, Retry
from statekeeper.events.model import RecordedEvent
from statekeeper.http import event_models as models
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from tests.conftest import FakeClock

TOKEN = "events-http-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ONCE = Retry(max_attempts=1, initial_interval=0.0, jitter=False)

Served = tuple[App, httpx.AsyncClient]


def new_app(database_url: str, namespace: str, clock: FakeClock, **options: Any) -> App:
    app = App(
        database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None,
        **options,
    )  # fmt: skip

    @app.projection("totals", category="order", retry=ONCE)
    async def totals(event: RecordedEvent, view: Any) -> None:
        if event.type == "Poison":
            raise RuntimeError("cannot digest this")
        view.put(event.stream, event.data)

    return app


async def serve(app: App, config: HttpConfig) -> AsyncIterator[Served]:
    async with app:
        transport = httpx.ASGITransport(app=create_http_app(app, config))
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client


@pytest.fixture
async def served(database_url: str, namespace: str, clock: FakeClock) -> AsyncIterator[Served]:
    async for pair in serve(new_app(database_url, namespace, clock), HttpConfig(token=TOKEN)):
        yield pair


def checked(answer: httpx.Response, status: int, model: type[BaseModel]) -> dict[str, Any]:
    """The answer's body, which has ``status`` and exactly the fields of ``model``."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body: dict[str, Any] = answer.json()
    model.model_validate(body)
    assert set(body) <= set(model.model_fields), set(body) - set(model.model_fields)
    return body


def error_of(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


def events(*types: str, **data: Any) -> dict[str, Any]:
    return {"events": [{"type": t, "data": data or None} for t in types]}


async def append(client: httpx.AsyncClient, stream: str, body: Any, **headers: str) -> Any:
    path = f"/v1/events/streams/{quote(stream, safe='')}"
    return await client.post(path, json=body, headers={**AUTH, **headers})


async def pages(client: httpx.AsyncClient, path: str, param: str, **query: Any) -> list[Any]:
    """Every page of a listing, following ``next`` until it is null."""
    found: list[Any] = []
    while True:
        answer = await client.get(path, params=query, headers=AUTH)
        assert answer.status_code == 200, answer.text
        found.append(answer.json())
        following = answer.json()["next"]
        if following is None:
            return found
        query[param] = following


async def test_append_then_read_forwards_and_backwards(served: Served) -> None:
    app, client = served
    first = await append(
        client, "order-1", {**events("Placed", "Paid", total=3), "expected_version": "no_stream"}
    )
    body = checked(first, 201, models.Appended)
    assert (body["stream"], body["version"], body["first_position"]) == ("order-1", 2, 1)
    assert body["last_position"] == 2 and len(body["ids"]) == 2
    assert first.headers["location"] == "/v1/events/streams/order-1"
    chosen = {"events": [{"type": "Shipped", "id": "ship-1", "metadata": {"by": "ada"}}]}
    second = await append(
        client, "order-1", chosen,
        **{"Expected-Version": "2", "X-Correlation-Id": "corr-1", "X-Causation-Id": "cause-1"},
    )  # fmt: skip
    assert checked(second, 201, models.Appended)["ids"] == ["ship-1"]

    read = checked(await client.get(first.headers["location"], headers=AUTH), 200,
                   models.StreamEvents)  # fmt: skip
    assert read["direction"] == "forwards" and read["next"] is None
    assert [(e["type"], e["version"], e["position"]) for e in read["items"]] == [
        ("Placed", 1, 1), ("Paid", 2, 2), ("Shipped", 3, 3)
    ]  # fmt: skip
    for event in read["items"]:
        models.Event.model_validate(event)
    assert read["items"][0]["data"] == {"total": 3} and read["items"][0]["id"] == body["ids"][0]
    assert read["items"][2]["metadata"] == {
        "by": "ada", "correlation_id": "corr-1", "causation_id": "cause-1"
    }  # fmt: skip
    stored = await app.events.read_stream("order-1")
    assert [e.to_dict() for e in stored] == read["items"]

    path = "/v1/events/streams/order-1"
    forwards = await pages(client, path, "start", limit=2)
    assert [[e["version"] for e in p["items"]] for p in forwards] == [[1, 2], [3]]
    assert [p["next"] for p in forwards] == [3, None]
    backwards = await pages(client, path, "start", limit=2, direction="backwards")
    assert [[e["version"] for e in p["items"]] for p in backwards] == [[3, 2], [1]]
    assert [p["next"] for p in backwards] == [1, None]
    middle = await client.get(path, params={"start": 2, "direction": "backwards"}, headers=AUTH)
    assert [e["version"] for e in middle.json()["items"]] == [2, 1]
    past = await client.get(path, params={"start": 10}, headers=AUTH)
    assert checked(past, 200, models.StreamEvents)["items"] == []
    missing = await client.get("/v1/events/streams/order-2", headers=AUTH)
    assert "'order-2' has no event" in error_of(missing, 404, "stream_not_found")


async def test_expected_versions_in_the_body_and_the_header(served: Served) -> None:
    app, client = served
    accepted: list[tuple[dict[str, Any], dict[str, str]]] = [
        ({"expected_version": "no_stream"}, {}),
        ({"expected_version": "exists"}, {}),
        ({"expected_version": 2}, {}),
        ({}, {"Expected-Version": "3"}),
        ({}, {"Expected-Version": "exists"}),
        ({"expected_version": "any"}, {}),
        ({}, {}),
    ]
    for given, header in accepted:
        answer = await append(client, "cart-1", {**events("Added"), **given}, **header)
        assert answer.status_code == 201, (given, header, answer.text)
    assert await app.events.stream_version("cart-1") == 7
    zero = await append(client, "cart-2", {**events("Added"), "expected_version": 0})
    assert checked(zero, 201, models.Appended)["version"] == 1


@pytest.mark.parametrize(
    ("given", "header", "fragment"),
    [
        ("no_stream", None, "'cart-1' is at version 2, not no stream (version 0)"),
        (0, None, "'cart-1' is at version 2, not no stream (version 0)"),
        (1, None, "'cart-1' is at version 2, not version 1"),
        (5, None, "'cart-1' is at version 2, not version 5"),
        (None, "1", "'cart-1' is at version 2, not version 1"),
        (None, "no_stream", "is at version 2, not no stream"),
    ],
)
async def test_a_wrong_expected_version_is_409_and_stores_nothing(
    served: Served, given: Any, header: str | None, fragment: str
) -> None:
    app, client = served
    await app.events.append("cart-1", [{"type": "Added"}, {"type": "Added"}])
    body = events("Added", "Removed")
    if given is not None:
        body["expected_version"] = given
    headers = {"Expected-Version": header} if header is not None else {}
    answer = await append(client, "cart-1", body, **headers)
    assert fragment in error_of(answer, 409, "wrong_expected_version")
    assert await app.events.head() == 2
    missing = await append(client, "cart-9", {**events("Added"), "expected_version": "exists"})
    assert "'cart-9' is at version 0, not an existing stream" in error_of(
        missing, 409, "wrong_expected_version"
    )
    assert await app.events.head() == 2


async def test_the_global_log_and_categories_page_with_next(served: Served) -> None:
    _, client = served
    for stream, kinds in (("order-1", ("Placed", "Paid")), ("user-1", ("Joined",)),
                          ("order-2", ("Placed",)), ("order-1", ("Shipped",))):  # fmt: skip
        assert (await append(client, stream, events(*kinds))).status_code == 201
    log = await pages(client, "/v1/events", "after", limit=2)
    for page in log:
        models.EventLog.model_validate(page)
        assert page["head"] == 5
    assert [[e["position"] for e in p["items"]] for p in log] == [[1, 2], [3, 4], [5]]
    back = await pages(client, "/v1/events", "after", limit=2, direction="backwards")
    assert [[e["position"] for e in p["items"]] for p in back] == [[5, 4], [3, 2], [1]]
    after = await client.get("/v1/events", params={"after": 3}, headers=AUTH)
    assert [e["position"] for e in checked(after, 200, models.EventLog)["items"]] == [4, 5]
    before = await client.get("/v1/events?after=3&direction=backwards", headers=AUTH)
    assert [e["position"] for e in before.json()["items"]] == [2, 1]
    end = await client.get("/v1/events", params={"after": 5}, headers=AUTH)
    assert checked(end, 200, models.EventLog) == {
        "direction": "forwards", "head": 5, "items": [], "next": None
    }  # fmt: skip

    orders = await pages(client, "/v1/events/categories/order", "after", limit=2)
    for page in orders:
        models.CategoryEvents.model_validate(page)
        assert page["category"] == "order"
    assert [[(e["stream"], e["position"]) for e in p["items"]] for p in orders] == [
        [("order-1", 1), ("order-1", 2)], [("order-2", 4), ("order-1", 5)]
    ]  # fmt: skip
    users = await client.get("/v1/events/categories/user?after=3", headers=AUTH)
    assert checked(users, 200, models.CategoryEvents)["items"] == []
    for category, code in (("order-1", "invalid_filter"), ("or%0Ader", "invalid_stream_name"),
                           ("o" * 201, "invalid_stream_name")):  # fmt: skip
        answer = await client.get(f"/v1/events/categories/{category}", headers=AUTH)
        assert "invalid category" in error_of(answer, 400, code)


async def test_streams_are_listed_by_prefix_a_page_at_a_time(served: Served) -> None:
    app, client = served
    for stream in ("order-3", "order-1", "user-1", "order-2", "order-2"):
        await app.events.append(stream, [{"type": "E"}])
    listed = await pages(client, "/v1/events/streams", "after", prefix="order-", limit=2)
    for page in listed:
        checked_page = models.StreamList.model_validate(page)
        assert checked_page.items
    assert [[(s["stream"], s["version"]) for s in p["items"]] for p in listed] == [
        [("order-1", 1), ("order-2", 2)], [("order-3", 1)]
    ]  # fmt: skip
    assert listed[0]["next"] == "order-2"
    everything = await client.get("/v1/events/streams", headers=AUTH)
    names = [s["stream"] for s in checked(everything, 200, models.StreamList)["items"]]
    assert names == ["order-1", "order-2", "order-3", "user-1"]
    nothing = await client.get("/v1/events/streams?prefix=zzz", headers=AUTH)
    assert checked(nothing, 200, models.StreamList) == {"items": [], "next": None}


async def test_projection_status_and_rebuild(served: Served) -> None:
    app, client = served
    await app.events.append("order-1", [{"type": "Placed", "data": {"total": 5}}])
    await app.events.append("user-1", [{"type": "Joined"}])
    listed = checked(await client.get("/v1/events/projections", headers=AUTH), 200,
                     models.ProjectionList)  # fmt: skip
    [before] = listed["items"]
    assert (before["name"], before["generation"], before["building"]) == ("totals", 1, None)
    assert before["current"]["lag"] == 2 and "rebuild" not in before
    await app.projections.catch_up("totals")
    status = checked(await client.get("/v1/events/projections/totals", headers=AUTH), 200,
                     models.ProjectionStatus)  # fmt: skip
    assert status["head"] == 2 and status["current"]["position"] == 2
    assert status["current"]["lag"] == 0 and status["current"]["failures"] == 0

    started = await client.post("/v1/events/projections/totals/rebuild", headers=AUTH)
    assert checked(started, 202, models.RebuildStarted) == {
        "name": "totals", "building": 2, "status_url": "/v1/events/projections/totals"
    }  # fmt: skip
    assert started.headers["location"] == "/v1/events/projections/totals"
    again = await client.post("/v1/events/projections/totals/rebuild", headers=AUTH)
    assert "already rebuilding generation 2" in error_of(again, 409, "projection_busy")
    building = (await client.get(started.headers["location"], headers=AUTH)).json()
    models.ProjectionStatus.model_validate(building)
    assert (building["generation"], building["building"]) == (1, 2)
    assert building["rebuild"]["lag"] == 2 and building["current"]["lag"] == 0
    await app.projections.catch_up("totals")
    done = (await client.get("/v1/events/projections/totals", headers=AUTH)).json()
    assert (done["generation"], done["building"]) == (2, None)
    assert await app.projections.read_model("totals").get("order-1") == {"total": 5}

    for method, path in (("GET", "/v1/events/projections/nope"),
                         ("POST", "/v1/events/projections/nope/rebuild")):  # fmt: skip
        answer = await client.request(method, path, headers=AUTH)
        assert "no projection 'nope'" in error_of(answer, 404, "subscription_not_found")
    for name in ("to%0Atals", "a" * 81, "t%C3%A9"):
        answer = await client.get(f"/v1/events/projections/{name}", headers=AUTH)
        assert "invalid projection name" in error_of(answer, 400, "invalid_identifier")
    spec = (await client.get("/openapi.json", headers=AUTH)).json()
    parameter = spec["paths"]["/v1/events/projections/{name}"]["get"]["parameters"][0]
    assert parameter["schema"] == {"type": "string", "enum": ["totals"]}


async def test_subscriptions_and_their_parked_events(served: Served) -> None:
    app, client = served
    await app.events.append("order-1", [{"type": "Placed"}, {"type": "Poison"}])
    await app.events.append("order-2", [{"type": "Poison"}, {"type": "Placed"}])
    await app.events.append("user-1", [{"type": "Joined"}])
    await app.projections.catch_up("totals")
    listed = checked(await client.get("/v1/events/subscriptions", headers=AUTH), 200,
                     models.SubscriptionList)  # fmt: skip
    [row] = listed["items"]
    assert listed["head"] == 5 and listed["next"] is None
    assert row["name"] == "statekeeper.projection.totals.1"
    assert (row["position"], row["lag"], row["parked"], row["failures"]) == (5, 0, 2, 0)
    await app.events.append("order-3", [{"type": "Placed"}])
    lagging = (await client.get("/v1/events/subscriptions", headers=AUTH)).json()
    assert lagging["items"][0]["lag"] == 1 and lagging["head"] == 6

    path = f"/v1/events/subscriptions/{row['name']}/parked"
    parked = await pages(client, path, "after", limit=1)
    for page in parked:
        models.ParkedList.model_validate(page)
        assert page["subscription"] == row["name"]
    assert [[p["position"] for p in page["items"]] for page in parked] == [[2], [3]]
    first = parked[0]["items"][0]
    assert first["attempts"] == 1 and "RuntimeError: cannot digest this" in first["error"]
    missing = await client.get("/v1/events/subscriptions/nope/parked", headers=AUTH)
    assert "no subscription 'nope'" in error_of(missing, 404, "subscription_not_found")
    bad = await client.get("/v1/events/subscriptions/a%0Ab/parked", headers=AUTH)
    assert "invalid subscription name" in error_of(bad, 400, "invalid_identifier")

    await app.backend.subscriptions.create(app.namespace, "audit", 0, app.clock())
    names = await pages(client, "/v1/events/subscriptions", "after", limit=1)
    assert [[s["name"] for s in p["items"]] for p in names] == [
        ["audit"], ["statekeeper.projection.totals.1"]
    ]  # fmt: skip
    fresh = names[0]["items"][0]
    assert (fresh["position"], fresh["lag"], fresh["holder"]) == (0, 6, None)


async def test_limits_of_the_body_and_of_event_data(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    app = new_app(database_url, namespace, clock, max_value_bytes=1000)
    async for _, client in serve(app, HttpConfig(token=TOKEN, max_body_bytes=4096)):
        big_body = {"events": [{"type": "E", "data": "x" * 5000}]}
        answer = await append(client, "big-1", big_body)
        assert "larger than 4096 bytes" in error_of(answer, 413, "payload_too_large")
        big_data = {"events": [{"type": "E"}, {"type": "E", "data": "x" * 2000}]}
        answer = await append(client, "big-1", big_data)
        assert "event 1 of the append to 'big-1'" in error_of(answer, 413, "value_too_large")
        answer = await append(client, "big-1", {"events": [{"type": "E", "data": "x" * 900}]})
        assert answer.status_code == 201
        assert await app.events.head() == 1


async def test_every_event_route_needs_the_token(served: Served) -> None:
    app, client = served
    for method, path in (
        ("POST", "/v1/events/streams/order-1"), ("GET", "/v1/events/streams/order-1"),
        ("GET", "/v1/events/streams"), ("GET", "/v1/events"),
        ("GET", "/v1/events/categories/order"), ("GET", "/v1/events/projections"),
        ("GET", "/v1/events/projections/totals"),
        ("POST", "/v1/events/projections/totals/rebuild"),
        ("GET", "/v1/events/subscriptions"), ("GET", "/v1/events/subscriptions/x/parked"),
    ):  # fmt: skip
        answer = await client.request(method, path, json=events("E"))
        assert answer.status_code == 401, (method, path)
    assert await app.events.head() == 0
    assert (await app.projections.generations("totals")).building is None
