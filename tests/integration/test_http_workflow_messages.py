"""Messages, updates and published values over the HTTP API, in process, with the
workflow run by a worker of its own (the update's caller reads its answer from the
database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.workflows import WorkflowContext

TOKEN = "workflow-messages-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "/v1/workflows/counter/c-1"


@pytest.fixture
async def served(database_url: str, namespace: str) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = App(database_url, namespace=namespace, purge_interval=None)

    @app.workflow
    async def counter(ctx: WorkflowContext, start: int) -> dict[str, Any]:
        count = start
        notes: list[Any] = []

        def add(n: Any) -> int:
            nonlocal count
            if not isinstance(n, int) or n <= 0:
                raise ValueError(f"add takes a positive integer, got {n!r}")
            count += n
            return count

        ctx.on_update("add", add)
        await ctx.publish("count", count)
        while len(notes) < 2:
            notes.append(await ctx.receive("notes"))
            await ctx.publish("notes", notes)
        await ctx.sleep(0.3)  # an update while it sleeps
        return {"count": count, "notes": notes}

    async with app:
        worker = app.worker(poll=0.05)
        running = asyncio.create_task(worker.run())
        http = create_http_app(app, HttpConfig(token=TOKEN))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client
        worker.stop()
        await running


async def value(client: httpx.AsyncClient, key: str, wanted: Any) -> None:
    for _ in range(300):
        answer = await client.get(f"{BASE}/values/{key}", headers=AUTH)
        if answer.status_code == 200 and answer.json()["value"] == wanted:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{key} never became {wanted!r}: {answer.text}")


async def test_messages_updates_and_values_over_http(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    app, client = served
    started = await client.post("/v1/workflows/counter?id=c-1", json=10, headers=AUTH)
    assert started.status_code == 202
    await value(client, "count", 10)
    added = await client.post(f"{BASE}/updates/add?timeout=10", json=5, headers=AUTH)
    assert added.status_code == 200, added.text
    assert added.json() == {"id": "c-1", "update": "add", "result": 15}
    rejected = await client.post(f"{BASE}/updates/add?timeout=10", json=-1, headers=AUTH)
    assert rejected.status_code == 422
    assert rejected.json()["error"]["code"] == "update_rejected"
    assert "ValueError" in rejected.json()["error"]["message"]
    unknown = await client.post(f"{BASE}/updates/reset?timeout=10", headers=AUTH)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_update"
    for n, note in enumerate(["first", {"second": 2}], start=1):
        sent = await client.post(f"{BASE}/messages/notes", json=note, headers=AUTH)
        assert sent.status_code == 202, sent.text
        assert sent.json() == {"id": "c-1", "topic": "notes", "seq": n}
    await value(client, "notes", ["first", {"second": 2}])
    listed = await client.get(f"{BASE}/values", headers=AUTH)
    assert listed.json()["values"]["count"] == 10
    late = await client.post(f"{BASE}/updates/add?timeout=10", json=1, headers=AUTH)
    assert late.status_code in (200, 409)  # applied in its sleep, or it finished first
    output = await app.workflows.result("c-1", timeout=10)
    assert output["notes"] == ["first", {"second": 2}]
    assert output["count"] == (16 if late.status_code == 200 else 15)
    finished = await client.post(f"{BASE}/messages/notes", json=1, headers=AUTH)
    assert finished.status_code == 409
    assert finished.json()["error"]["code"] == "workflow_finished"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", f"{BASE}/messages/bad%20topic", 400),
        ("POST", f"{BASE}/messages/{'t' * 201}", 400),
        ("POST", f"{BASE}/updates/add?timeout=0", 400),
        ("POST", f"{BASE}/updates/add?timeout=1000", 400),
        ("POST", f"{BASE}/updates/add?timeout=nan", 400),
        ("POST", f"{BASE}/updates/bad%00name", 400),
        ("GET", f"{BASE}/values/bad%20key", 400),
        ("GET", f"{BASE}/values?limit=0", 400),
        ("GET", f"{BASE}/values?after=%00", 400),
        ("GET", f"{BASE}/values?after=a%1Fb", 400),
        ("GET", "/v1/workflows/counter/nobody/values/count", 404),
        ("POST", "/v1/workflows/counter/nobody/messages/t", 404),
        ("POST", "/v1/workflows/other/c-1/messages/t", 404),
        ("GET", f"{BASE}/values/missing", 404),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_hostile_requests_get_a_clear_4xx(
    served: tuple[App, httpx.AsyncClient], method: str, path: str, status: int
) -> None:
    _, client = served
    await client.post("/v1/workflows/counter?id=c-1", json=10, headers=AUTH)
    answer = await client.request(method, path, content=b"1", headers=AUTH)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"]


async def test_malformed_json_is_refused(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    await client.post("/v1/workflows/counter?id=c-1", json=10, headers=AUTH)
    answer = await client.post(f"{BASE}/messages/notes", content=b"{nope", headers=AUTH)
    assert answer.status_code == 400
