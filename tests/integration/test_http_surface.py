"""The HTTP layer's structure, in process on both backends: the auth middleware covers
every route but the declared open ones, the document describes exactly the routes
served, and answers carry only documented fields."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel
from starlette.routing import Route

from statekeeper import App, Retry
from statekeeper.http.auth import OPEN_PATHS
from statekeeper.http.config import HttpConfig
from statekeeper.http.models import RequestStatus, Workflow
from statekeeper.http.openapi import document
from statekeeper.http.server import api_operations, create_http_app
from statekeeper.workflows import WorkflowContext
from tests.support import run_until

TOKEN = "surface-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VALUES = {"queue": "orders", "name": "W", "id": "w-1", "event": "go", "token": "a.b",
          "stream": "order-1", "category": "order", "topic": "t", "update": "u",
          "key": "k", "operation": "cancel", "type": "counter", "handler": "add"}  # fmt: skip

Served = tuple[App, httpx.AsyncClient]


def new_app(database_url: str, namespace: str) -> App:
    app = App(database_url, namespace=namespace, purge_interval=None, encryption=None)
    app.queue("orders", retry=Retry(max_attempts=2, initial_interval=0.01, jitter=False))
    app.workflows.secret = "surface-callback-secret"

    async def waits(ctx: WorkflowContext, _: Any) -> Any:
        return await ctx.wait_for_event("go", timeout=3600)

    async def adds(ctx: WorkflowContext, numbers: list[int]) -> int:
        return sum(numbers)

    async def breaks(ctx: WorkflowContext, _: Any) -> Any:
        empty: dict[str, int] = {}
        return empty["missing"]

    for name, fn in (("W", waits), ("adds", adds), ("breaks", breaks)):
        app.workflows.register(fn, name)
    return app


@pytest.fixture
async def served(database_url: str, namespace: str) -> AsyncIterator[Served]:
    async with new_app(database_url, namespace) as app:
        http = create_http_app(app, HttpConfig(token=TOKEN, max_body_bytes=1024))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda found: VALUES[found.group(1)], path)


async def test_every_route_but_the_open_ones_needs_the_token(served: Served) -> None:
    app, client = served
    operations = api_operations(app, HttpConfig(token=TOKEN))
    assert {op.path for op in operations} >= OPEN_PATHS
    wrong: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ]
    for op in operations:
        for headers in wrong:
            answer = await client.request(
                op.method, concrete(op.path), json={"status": "success"}, headers=headers
            )
            if op.path in OPEN_PATHS:  # the middleware lets it through
                assert "www-authenticate" not in answer.headers, (op.path, answer.text)
                continue
            assert answer.status_code == 401, (op.path, headers, answer.text)
            assert answer.json()["error"]["code"] == "unauthorized"
            assert answer.headers["www-authenticate"] == 'Bearer realm="statekeeper"'
    assert (await app.queue("orders").stats()).ready == 0
    assert await app.workflows.list() == []
    scheme_any_case = {"Authorization": f"bEaReR {TOKEN} "}
    answer = await client.post("/v1/queues/orders/messages", json=1, headers=scheme_any_case)
    assert answer.status_code == 202
    no_token = create_http_app(app, HttpConfig(dev=True))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=no_token), base_url="http://sk"
    ) as open_client:
        assert (await open_client.get("/v1/requests/nope")).status_code == 404  # dev: no auth


async def test_the_document_describes_exactly_the_routes_served(served: Served) -> None:
    app, client = served
    config = HttpConfig(token=TOKEN)
    served_routes: dict[tuple[str, str], set[str]] = {}
    for route in create_http_app(app, config).routes:
        assert isinstance(route, Route)
        if route.path.startswith("/ui"):  # the dashboard's pages: not API (test_ui.py)
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            served_routes[(method, route.path)] = set(route.param_convertors)
    spec = (await client.get("/openapi.json", headers=AUTH)).json()
    assert spec == document(api_operations(app, config))
    documented: dict[tuple[str, str], set[str]] = {}
    for path, operations in spec["paths"].items():
        for method, described in operations.items():
            params = described.get("parameters", [])
            documented[(method.upper(), path)] = {p["name"] for p in params if p["in"] == "path"}
            if path == "/":  # the Step Functions API checks its own credentials
                assert described["security"] == [{"awsSigV4": []}, {"bearer": []}]
            elif path in OPEN_PATHS:
                assert described["security"] == []
            else:
                assert "security" not in described and "401" in described["responses"]
    assert documented == served_routes
    assert spec["security"] == [{"bearer": []}]
    names = spec["paths"]["/v1/workflows/{name}"]["post"]["parameters"][0]["schema"]
    assert names == {"type": "string", "enum": ["W", "adds", "breaks"]}


def undocumented(body: dict[str, Any], model: type[BaseModel]) -> set[str]:
    return set(body) - set(model.model_fields)


async def test_request_status_answers_carry_only_documented_fields(served: Served) -> None:
    """Accepted, processing, failed, dead-lettered, succeeded, and a replay."""
    app, client = served
    queue = app.queue("orders")
    seen: list[dict[str, Any]] = []

    async def post(body: object, key: str) -> str:
        headers = {**AUTH, "Idempotency-Key": key}
        answer = await client.post("/v1/queues/orders/messages", json=body, headers=headers)
        seen.append(answer.json())
        return str(answer.json()["status_url"])

    async def look(url: str) -> None:
        seen.append((await client.get(url, headers=AUTH)).json())

    first = await post({"n": 1}, "k-1")
    await look(first)
    [message] = await queue.receive()
    await look(first)
    await message.fail("busy")
    await look(first)
    await asyncio.sleep(0.05)
    [message] = await queue.receive()
    await message.fail("broken", retryable=False)
    await look(first)
    second = await post({"n": 2}, "k-2")
    [message] = await queue.receive()
    await message.ack({"ok": True})
    await look(second)
    await post({"n": 2}, "k-2")  # a replay: the whole status
    states = {body["status"] for body in seen}
    assert states == {"accepted", "processing", "failed", "dead-lettered", "succeeded"}
    for body in seen:
        RequestStatus.model_validate(body)
        assert undocumented(body, RequestStatus) == set(), body


async def test_workflow_answers_carry_only_documented_fields(served: Served) -> None:
    app, client = served
    bodies = [
        (await client.post(f"/v1/workflows/{name}?id={name}-1", json=data, headers=AUTH)).json()
        for name, data in (("adds", [1, 2]), ("breaks", None))
    ]
    worker = app.worker(poll=0.05)
    finished: list[dict[str, Any]] = []

    def both_done() -> bool:
        return len(finished) == 2

    async def follow() -> None:
        for name in ("adds", "breaks"):
            for _ in range(500):
                body = (await client.get(f"/v1/workflows/{name}/{name}-1", headers=AUTH)).json()
                if body["status"] in ("succeeded", "failed"):
                    finished.append(body)
                    break
                await asyncio.sleep(0.02)

    watcher = asyncio.create_task(follow())
    await run_until(worker, both_done)
    await watcher
    assert [body["status"] for body in finished] == ["succeeded", "failed"]
    assert finished[0]["output"] == 3 and finished[1]["error"] == {
        "type": "KeyError",
        "message": "'missing'",
    }
    for body in [*bodies, *finished]:
        Workflow.model_validate(body)
        assert undocumented(body, Workflow) == set(), body


async def test_callback_answers_are_checked_against_their_model(served: Served) -> None:
    app, client = served
    await app.workflows.start("W", None, id="w-1")
    for body, fragment in (
        ({"status": "maybe"}, "status: Input should be 'success', 'failure' or 'heartbeat'"),
        ({"data": 1}, "status: Field required"),
        ([1], "the body must be an object"),
    ):
        answer = await client.post("/v1/callbacks/a.b", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_input"
        assert fragment in answer.json()["error"]["message"]


async def test_unknown_paths_and_methods_answer_in_the_error_shape(served: Served) -> None:
    _, client = served
    nowhere = await client.get("/v2/nowhere", headers=AUTH)
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"
    wrong = await client.get("/v1/callbacks/a.b")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "POST"
