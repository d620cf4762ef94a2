"""Hostile input over HTTP (in process, both backends): a clear 4xx, never a 5xx, and
nothing stored or lost. One test per case found when issue 7 was filed."""

from __future__ import annotations

import hashlib
import math
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from statekeeper import App
from statekeeper.errors import (
    InvalidFilter,
    InvalidIdentifier,
    InvalidKey,
    InvalidNamespace,
    InvalidQueueName,
    InvalidValue,
    InvalidWorkflowId,
)
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.workflows import WorkflowContext

TOKEN = "hostile-input-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEEP = b"[" * 2000 + b"]" * 2000


def nested(levels: int) -> bytes:
    return b'{"a":' * (levels - 1) + b"[]" + b"}" * (levels - 1)


Served = tuple[App, httpx.AsyncClient]


async def serve(app: App) -> AsyncIterator[Served]:
    async with app:
        http = create_http_app(app, HttpConfig(token=TOKEN))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client


def new_app(database_url: str, namespace: str, secret: str | None) -> App:
    app = App(database_url, namespace=namespace, purge_interval=None, encryption=None)
    app.workflows.secret = secret
    app.queue("orders")

    async def waits(ctx: WorkflowContext, _: Any) -> Any:
        return await ctx.wait_for_event("go", timeout=3600)

    app.workflows.register(waits, "W")
    return app


@pytest.fixture
async def served(database_url: str, namespace: str) -> AsyncIterator[Served]:
    async for pair in serve(new_app(database_url, namespace, "hostile-callback-secret")):
        yield pair


@pytest.fixture
async def served_without_secret(database_url: str, namespace: str) -> AsyncIterator[Served]:
    async for pair in serve(new_app(database_url, namespace, None)):
        yield pair


def error_of(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


async def nothing_queued(app: App) -> bool:
    stats = await app.queue("orders").stats()
    return stats.ready + stats.in_flight + stats.delayed + stats.dead == 0


async def test_non_ascii_callback_token_is_401(served: Served) -> None:
    _, client = served
    for token in ("x.%C3%A9", "%C3%A9", "x." + "%C3%A9" * 40, "a" * 5000, "x.y.z"):
        answer = await client.post(f"/v1/callbacks/{token}", json={"status": "success"})
        error_of(answer, 401, "invalid_callback_token")


async def test_callbacks_without_a_secret_are_404_not_500(served_without_secret: Served) -> None:
    _, client = served_without_secret
    answer = await client.post("/v1/callbacks/x.%C3%A9", json={"status": "success"})
    assert "not enabled" in error_of(answer, 404, "callbacks_disabled")


@pytest.mark.parametrize("route", ["callback", "start", "event"])
async def test_deep_bodies_are_400_and_store_nothing(served: Served, route: str) -> None:
    app, client = served
    run = await app.workflows.start("W", None, id="w-1")
    path = {
        "callback": "/v1/callbacks/abc.0123",
        "start": "/v1/workflows/W?id=w-2",
        "event": "/v1/workflows/W/w-1/events/go",
    }[route]
    for body in (DEEP, nested(201)):
        answer = await client.post(path, content=body, headers=AUTH)
        assert "nested deeper than 200 levels" in error_of(answer, 400, "malformed_json")
    assert [w["id"] for w in await app.workflows.list()] == [run]
    history = await app.workflows.history(run)
    assert all(entry["kind"] != "event" for entry in history)


async def test_trailing_newline_in_a_workflow_id_stores_nothing(served: Served) -> None:
    app, client = served
    for query in ("id=abc%0A", "id=abc%0D", "id=a%00b", "id=" + "a" * 201):
        answer = await client.post(f"/v1/workflows/W?{query}", json={}, headers=AUTH)
        assert "a workflow id is 1-200" in error_of(answer, 400, "invalid_workflow_id")
    for key in (b"abc def", "é".encode(), b"k" * 256, b""):
        header = [(b"authorization", AUTH["Authorization"].encode()), (b"idempotency-key", key)]
        answer = await client.post("/v1/workflows/W?id=fine", json={}, headers=header)
        message = error_of(answer, 400, "invalid_idempotency_key")
        assert "1-255 visible ASCII characters" in message
    assert await app.workflows.list() == []
    with pytest.raises(InvalidWorkflowId):
        await app.workflows.start("W", None, id="abc\n")
    assert await app.workflows.list() == []


async def test_an_idempotency_key_starts_one_workflow_and_refuses_another_input(
    served: Served,
) -> None:
    """The header follows the Idempotency-Key rule, as at the ingress: a key that is not
    a workflow id stands for ``idem:<sha256>``; a repeat with another input or workflow
    name is 409 (saying which differs, never the input) and starts nothing."""
    app, client = served

    async def other(ctx: WorkflowContext, _: Any) -> Any:
        return None

    app.workflows.register(other, "V")
    key = "order#42/x?y=" + "k" * 200  # visible ASCII, not a workflow id, 213 characters
    expected = "idem:" + hashlib.sha256(key.encode()).hexdigest()
    header = {**AUTH, "Idempotency-Key": key}
    first = await client.post("/v1/workflows/W", json={"n": 1, "m": [1.5]}, headers=header)
    assert first.status_code == 202 and first.json()["id"] == expected
    assert first.headers["location"] == f"/v1/workflows/W/{quote(expected, safe='')}"
    again = await client.post(
        "/v1/workflows/W", content=b'{"m": [1.5], "n": 1}', headers=header
    )  # the same input, spelled otherwise
    assert again.status_code == 202 and again.json()["id"] == expected
    for path, body, differs in (
        ("W", {"n": 2, "m": [1.5]}, "different input"),
        ("W", None, "different input"),
        ("V", {"n": 1, "m": [1.5]}, "another workflow name"),
    ):
        answer = await client.post(f"/v1/workflows/{path}", json=body, headers=header)
        message = error_of(answer, 409, "workflow_conflict")
        assert f"was used before with {differs}" in message and "1.5" not in message
    by_id = await client.post("/v1/workflows/W?id=plain-1", json=1, headers=AUTH)
    assert by_id.status_code == 202 and by_id.json()["id"] == "plain-1"
    answer = await client.post("/v1/workflows/W?id=plain-1", json=2, headers=AUTH)
    assert "different input" in error_of(answer, 409, "workflow_conflict")
    valid = {**AUTH, "Idempotency-Key": "plain-2"}  # a valid workflow id is the id itself
    assert (await client.post("/v1/workflows/W", json=1, headers=valid)).json()["id"] == "plain-2"
    assert sorted(w["id"] for w in await app.workflows.list()) == sorted(
        [expected, "plain-1", "plain-2"]
    )
    assert (await app.workflows.status(expected)).name == "W"


async def test_location_is_percent_encoded_and_leads_back(served: Served) -> None:
    _, client = served
    answer = await client.post("/v1/workflows/W?id=order:42@shop", json={}, headers=AUTH)
    assert answer.status_code == 202
    location = answer.headers["location"]
    assert location == "/v1/workflows/W/order%3A42%40shop"
    described = await client.get(location, headers=AUTH)
    assert described.status_code == 200 and described.json()["id"] == "order:42@shop"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"x":1e999}', "beyond the range of a 64-bit float"),
        (b"[-1e400]", "beyond the range of a 64-bit float"),
        (b"1" * 400 + b".5", "beyond the range of a 64-bit float"),
        (b'{"x":NaN}', "NaN, which is not JSON"),
        (b"[Infinity]", "Infinity, which is not JSON"),
        (b"9" * 5000, "integer of more than"),
        (b'\xef\xbb\xbf{"x":1}', "byte order mark"),
        ('{"x":1}'.encode("utf-16"), "only UTF-8"),
        ('{"x":1}'.encode("utf-16-le"), "only UTF-8"),
        ('{"x":1}'.encode("utf-32"), "only UTF-8"),
        (b'{"x":"\xff"}', "not valid UTF-8"),
        (b'{"x":"\xed\xa0\x80"}', "not valid UTF-8"),
        (b'{"x":"\\ud800"}', "lone surrogate"),
        (b'["\\udc00", "ok"]', "lone surrogate"),
        (b"", "empty"),
        (b"  \n", "empty"),
        (DEEP, "nested deeper than 200"),
        (nested(201), "nested deeper than 200"),
    ],
)
async def test_ingress_refuses_what_could_not_be_stored_or_read_back(
    served: Served, body: bytes, fragment: str
) -> None:
    app, client = served
    answer = await client.post("/v1/queues/orders/messages", content=body, headers=AUTH)
    assert fragment in error_of(answer, 400, "malformed_json")
    assert await nothing_queued(app)


async def test_what_the_ingress_accepts_is_stored_echoed_and_read_back(served: Served) -> None:
    """200 levels, a surrogate pair, a large float: accepted, and the handler's echo of
    the body is stored as its result and read back (it was refused before at 250)."""
    app, client = served
    bodies = [nested(200), b'"\\ud83d\\ude00"', b"[1.5e308, -2e-308, 12345678901234567890]"]
    for body in bodies:
        answer = await client.post("/v1/queues/orders/messages", content=body, headers=AUTH)
        assert answer.status_code == 202, answer.text
        [message] = await app.queue("orders").receive()
        await message.ack(message.body)  # the echo is storable
        status = (await client.get(answer.headers["location"], headers=AUTH)).json()
        assert status["status"] == "succeeded" and status["result"] == message.body


async def test_python_api_refuses_infinity_like_the_ingress(app: App) -> None:
    queue = app.queue("orders")
    for body in ({"x": math.inf}, [1e999], -math.inf, {"x": math.nan}):
        with pytest.raises(InvalidValue, match="not JSON-serializable"):
            await queue.send(body)
    stats = await queue.stats()
    assert stats.ready == 0
    with pytest.raises(InvalidValue):
        await app.state.put("k", {"x": 1e999})
    assert await app.state.get("k") is None


def headers(key: str) -> dict[str, str]:
    return {**AUTH, "Idempotency-Key": key}


async def test_idempotency_key_limit_message_and_check_agree(served: Served) -> None:
    app, client = served
    longest = "k" * 255
    answer = await client.post(
        "/v1/queues/orders/messages", json=1, headers={**AUTH, "Idempotency-Key": longest}
    )
    assert answer.status_code == 202
    for key in ("k" * 256, "a b", "tab\tkey", "caf\xe9"):
        answer = await client.post(
            "/v1/queues/orders/messages",
            content=b"1",
            headers=[(k.encode(), v.encode("latin-1")) for k, v in headers(key).items()],
        )
        message = error_of(answer, 400, "invalid_idempotency_key")
        assert "1-255 visible ASCII characters" in message
    [stored] = await app.queue("orders").peek(10)
    assert stored.body == 1


async def test_cancel_checks_the_workflow_name(served: Served) -> None:
    app, client = served
    run = await app.workflows.start("W", None, id="keep-me")
    for path in ("/v1/workflows/WRONGNAME/keep-me/cancel", "/v1/workflows/w/keep-me/cancel"):
        error_of(await client.post(path, headers=AUTH), 404, "workflow_not_found")
    described = await client.get("/v1/workflows/WRONGNAME/keep-me", headers=AUTH)
    error_of(described, 404, "workflow_not_found")
    status = await app.workflows.status(run)
    assert status.status == "pending"
    assert (await client.post(f"/v1/workflows/W/{run}/cancel", headers=AUTH)).status_code == 202


async def test_bad_names_ids_and_events_in_paths(served: Served) -> None:
    app, client = served
    await app.workflows.start("W", None, id="w-1")
    cases = [
        ("POST", "/v1/workflows/W%0A", 400, "invalid_workflow_name"),
        ("POST", "/v1/workflows/Nope", 404, "unknown_workflow"),
        ("GET", "/v1/workflows/W/w-1%0A", 400, "invalid_workflow_id"),
        ("POST", "/v1/workflows/W/w-1%0A/cancel", 400, "invalid_workflow_id"),
        ("POST", "/v1/workflows/W/w-1/events/go%0A", 400, "invalid_event_name"),
        ("POST", "/v1/workflows/W/w-1/events/" + "e" * 201, 400, "invalid_event_name"),
        ("GET", "/v1/requests/abc%0A", 404, "not_found"),
    ]
    for method, path, status, code in cases:
        error_of(await client.request(method, path, headers=AUTH), status, code)
    assert [w["id"] for w in await app.workflows.list()] == ["w-1"]
    assert (await app.workflows.status("w-1")).status == "pending"


async def test_the_engines_own_events_cannot_be_posted(served: Served) -> None:
    """Child ids are predictable and callbacks are answered by token only: a client
    posting ``child:<id>`` or ``callback:<n>`` gets 400 and nothing is delivered."""
    app, client = served
    await app.workflows.start("W", None, id="w-1")
    forged = {"status": "succeeded", "output": "forged", "error": None}
    for event in ("child:w-1:1", "child:other", "callback:1", "callback:"):
        path = f"/v1/workflows/W/w-1/events/{quote(event, safe='')}"
        answer = await client.post(path, json=forged, headers=AUTH)
        assert "workflow engine's own" in error_of(answer, 400, "invalid_event_name")
        arrived, _ = await app.backend.workflows.event_data(app.namespace, "w-1", event)
        assert not arrived
    answer = await client.post("/v1/workflows/W/w-1/events/children:1", json=1, headers=AUTH)
    assert answer.status_code == 202  # only the exact prefixes are reserved


async def test_invalid_filters_are_errors(app: App) -> None:
    with pytest.raises(InvalidFilter, match="status is one of pending, running"):
        await app.workflows.list(status="bogus")
    with pytest.raises(InvalidFilter, match="invalid name filter"):
        await app.workflows.list(name="W\n")
    assert await app.workflows.list(status="failed") == []
    await app.state.put("a", 1)
    # The same kind of input, the same code: whatever is wrong with a prefix.
    for prefix in ("a\n", "a\x00", "a\x7f", "\ud800", "é" * 513, 7, None, b"a"):
        with pytest.raises(InvalidFilter, match="invalid prefix filter"):
            await app.state.list(prefix)  # type: ignore[arg-type]
    longest = await app.state.list("é" * 512)
    assert longest.items == []


async def test_every_bad_delay_is_one_code_naming_the_limits(served: Served) -> None:
    app, client = served
    for delay in ("abc", "1e9", "31536001", "-1", "-0.5", "nan", "inf", "", "0x10"):
        path = f"/v1/queues/orders/messages?delay={delay}"
        answer = await client.post(path, json={"n": 1}, headers=AUTH)
        message = error_of(answer, 400, "invalid_parameter")
        assert "a number of seconds from 0 to 31536000 (a year)" in message, message
    assert await nothing_queued(app)
    answer = await client.post(
        "/v1/queues/orders/messages?delay=31536000", json={"n": 1}, headers=AUTH
    )
    assert answer.status_code == 202
    assert (await app.queue("orders").stats()).delayed == 1


async def test_python_api_refuses_control_characters_and_stores_nothing(
    app: App, database_url: str
) -> None:
    for namespace in ("ns\n", "a\x00b", "tab\there", "x" * 129):
        with pytest.raises(InvalidNamespace):
            App(database_url, namespace=namespace, purge_interval=None, encryption=None)
    for key in ("user:1\n", "a\rb", "del\x7f"):
        with pytest.raises(InvalidKey, match="control character"):
            await app.state.put(key, 1)
    for options in ({"dedup_id": "d\n"}, {"group": "g\n"}, {"correlation": "c\n"}):
        with pytest.raises(InvalidIdentifier):
            await app.queue("orders").send(1, **options)  # type: ignore[arg-type]
    with pytest.raises(InvalidQueueName):
        app.queue("jobs\n")
    assert (await app.state.list("")).items == []
    assert (await app.queue("orders").stats()).ready == 0


# --- the event store's routes ------------------------------------------------------------


@pytest.fixture
async def served_events(database_url: str, namespace: str) -> AsyncIterator[Served]:
    app = App(database_url, namespace=namespace, purge_interval=None, encryption=None)

    @app.projection("totals", category="order")
    async def totals(event: Any, view: Any) -> None:
        view.put(event.stream, event.data)

    async for pair in serve(app):
        yield pair


async def nothing_appended(app: App) -> bool:
    return await app.events.head() == 0 and await app.events.streams() == []


@pytest.mark.parametrize(
    ("path", "code", "fragment"),
    [
        ("/v1/events/streams/order%0A1", "invalid_stream_name", "control character"),
        ("/v1/events/streams/order%001", "invalid_stream_name", "control character"),
        ("/v1/events/streams/%7F", "invalid_stream_name", "control character"),
        ("/v1/events/streams/" + "s" * 201, "invalid_stream_name", "it is 201 characters"),
    ],
)
async def test_bad_stream_names_are_400_and_store_nothing(
    served_events: Served, path: str, code: str, fragment: str
) -> None:
    app, client = served_events
    answer = await client.post(path, json={"events": [{"type": "E"}]}, headers=AUTH)
    assert fragment in error_of(answer, 400, code)
    assert "1-200 characters without control characters" in error_of(answer, 400, code)
    error_of(await client.get(path, headers=AUTH), 400, code)
    assert await nothing_appended(app)


async def test_an_empty_stream_name_reaches_no_append(served_events: Served) -> None:
    app, client = served_events
    for path in ("/v1/events/streams/", "/v1/events/streams//"):
        body = {"events": [{"type": "E"}]}
        answer = await client.post(path, json=body, headers=AUTH, follow_redirects=True)
        # Redirected to the stream listing, which takes no POST.
        error_of(answer, 405, "method_not_allowed")
    assert await nothing_appended(app)


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        ([{"type": "E"}], "invalid_input", "the request body is a list, not an object"),
        ("events", "invalid_input", "the request body is a string, not an object"),
        ({"events": [{"type": "E"}], "version": 1}, "invalid_input", "unknown field 'version'"),
        ({}, "invalid_event", "has no events"),
        ({"events": None}, "invalid_event", "has null: events are a list"),
        ({"events": {"type": "E"}}, "invalid_event", "has an object: events are a list"),
        ({"events": []}, "invalid_event", "has 0 events"),
        ({"events": [{"type": "E"}] * 1001}, "invalid_event", "has 1001 events"),
        ({"events": [{"type": "E"}, "E"]}, "invalid_event", "event 1 of the append to 'o-1' is"),
        ({"events": [{"type": "E", "extra": 1}]}, "invalid_event", "unknown field 'extra'"),
        ({"events": [{"data": 1}]}, "invalid_event", "event 0 of the append"),
        ({"events": [{"type": ""}]}, "invalid_event", "invalid event type"),
        ({"events": [{"type": 7}]}, "invalid_event", "invalid event type"),
        ({"events": [{"type": "E\n"}]}, "invalid_event", "control character"),
        ({"events": [{"type": "t" * 201}]}, "invalid_event", "201 characters"),
        ({"events": [{"type": "E", "metadata": [1]}]}, "invalid_event", "not an object"),
        ({"events": [{"type": "E", "id": ""}]}, "invalid_event", "invalid event id"),
        ({"events": [{"type": "E", "id": 5}]}, "invalid_event", "invalid event id"),
        ({"events": [{"type": "E"}], "expected_version": -1}, "invalid_input", "expected_vers"),
        ({"events": [{"type": "E"}], "expected_version": "1"}, "invalid_input", "expected_vers"),
        ({"events": [{"type": "E"}], "expected_version": "ANY"}, "invalid_input", "expected_v"),
        ({"events": [{"type": "E"}], "expected_version": True}, "invalid_input", "expected_v"),
        ({"events": [{"type": "E"}], "expected_version": 1.0}, "invalid_input", "expected_v"),
        ({"events": [{"type": "E"}], "expected_version": 2**53}, "invalid_input", "expected_v"),
        ({"events": [{"type": "E"}], "expected_version": None}, "invalid_input", "expected_v"),
    ],
)
async def test_malformed_appends_are_400_and_store_nothing(
    served_events: Served, body: Any, code: str, fragment: str
) -> None:
    app, client = served_events
    answer = await client.post("/v1/events/streams/o-1", json=body, headers=AUTH)
    assert fragment in error_of(answer, 400, code)
    assert await nothing_appended(app)


@pytest.mark.parametrize(
    "body",
    [DEEP, nested(201), b'{"events":[{"type":"E","data":NaN}]}', b"\xef\xbb\xbf{}", b"",
     b'{"events":[{"type":"E","data":"\\ud800"}]}', b"{bad", '{"a":1}'.encode("utf-16")],
)  # fmt: skip
async def test_non_json_append_bodies_are_400(served_events: Served, body: bytes) -> None:
    app, client = served_events
    answer = await client.post("/v1/events/streams/o-1", content=body, headers=AUTH)
    error_of(answer, 400, "malformed_json")
    assert await nothing_appended(app)


async def test_expected_version_header_and_id_headers(served_events: Served) -> None:
    app, client = served_events
    await app.events.append("o-1", [{"type": "E"}])
    body = {"events": [{"type": "E"}]}
    for header, code, fragment in (
        ("2", "wrong_expected_version", "is at version 1, not version 2"),
        ("no_stream", "wrong_expected_version", "is at version 1, not no stream"),
        ("-1", "invalid_input", "invalid Expected-Version header '-1'"),
        ("1.0", "invalid_input", "invalid Expected-Version header"),
        ("9" * 17, "invalid_input", "invalid Expected-Version header"),
        ("ANY", "invalid_input", "invalid Expected-Version header"),
        ("", "invalid_input", "invalid Expected-Version header"),
    ):
        answer = await client.post(
            "/v1/events/streams/o-1", json=body, headers={**AUTH, "Expected-Version": header}
        )
        status = 409 if code == "wrong_expected_version" else 400
        assert fragment in error_of(answer, status, code), header
    both = {**body, "expected_version": 1}
    answer = await client.post(
        "/v1/events/streams/o-1", json=both, headers={**AUTH, "Expected-Version": "1"}
    )
    assert "given twice" in error_of(answer, 400, "invalid_input")
    for name in ("X-Correlation-Id", "X-Causation-Id"):
        for value in ("c" * 129, ""):
            answer = await client.post(
                "/v1/events/streams/o-1", json=body, headers={**AUTH, name: value}
            )
            what = name[2:].lower().replace("-", " ")
            assert f"invalid {what}" in error_of(answer, 400, "invalid_identifier")
    assert await app.events.head() == 1


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/v1/events?limit=1001", "invalid limit '1001': an integer from 1 to 1000"),
        ("/v1/events?limit=0", "invalid limit '0'"),
        ("/v1/events?limit=" + "9" * 5000, "invalid limit"),
        ("/v1/events?limit=1e3", "invalid limit '1e3'"),
        ("/v1/events?limit=1_0", "invalid limit '1_0'"),
        ("/v1/events?limit=%2B5", "invalid limit '+5'"),
        ("/v1/events?after=-1", "invalid after '-1': an integer from 0 to 9007199254740991"),
        ("/v1/events?after=9007199254740992", "invalid after"),
        ("/v1/events?after=" + "9" * 400, "invalid after"),
        ("/v1/events?direction=sideways", "invalid direction 'sideways': forwards or backwards"),
        ("/v1/events?limit=1&limit=2", "parameter 'limit' is given more than once"),
        ("/v1/events?position=1", "unknown parameter 'position'"),
        ("/v1/events/streams/o-1?start=-1", "invalid start '-1'"),
        ("/v1/events/streams/o-1?limit=100000", "invalid limit"),
        ("/v1/events/streams/o-1?after=1", "unknown parameter 'after'"),
        ("/v1/events/categories/order?after=-5", "invalid after '-5'"),
        ("/v1/events/categories/order?direction=backwards", "unknown parameter 'direction'"),
        ("/v1/events/streams?limit=-1", "invalid limit '-1'"),
        ("/v1/events/streams?prefix=a%0Ab", "invalid prefix 'a\\nb'"),
        ("/v1/events/streams?prefix=" + "p" * 201, "invalid prefix"),
        ("/v1/events/streams?after=%00", "invalid after"),
        ("/v1/events/subscriptions?limit=abc", "invalid limit 'abc'"),
        ("/v1/events/subscriptions?after=a%1Bb", "invalid after"),
        ("/v1/events/subscriptions/x/parked?after=-1", "invalid after '-1'"),
    ],
)
async def test_bad_query_parameters_are_400(
    served_events: Served, path: str, fragment: str
) -> None:
    app, client = served_events
    await app.events.append("o-1", [{"type": "E"}])
    answer = await client.get(path, headers=AUTH)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert fragment in error["message"]
    assert error["code"] in ("invalid_input", "invalid_filter", "invalid_stream_name",
                             "invalid_identifier")  # fmt: skip


async def test_unknown_projections_and_subscriptions(served_events: Served) -> None:
    app, client = served_events
    for method, path, status, code in (
        ("GET", "/v1/events/projections/nope", 404, "subscription_not_found"),
        ("POST", "/v1/events/projections/nope/rebuild", 404, "subscription_not_found"),
        ("GET", "/v1/events/projections/to%0Atals", 400, "invalid_identifier"),
        ("POST", "/v1/events/projections/" + "p" * 81 + "/rebuild", 400, "invalid_identifier"),
        ("GET", "/v1/events/subscriptions/nope/parked", 404, "subscription_not_found"),
        ("GET", "/v1/events/subscriptions/" + "s" * 201 + "/parked", 400, "invalid_identifier"),
    ):
        error_of(await client.request(method, path, headers=AUTH), status, code)
    assert (await app.projections.generations("totals")).building is None
    assert await app.backend.subscriptions.page(app.namespace) == []
