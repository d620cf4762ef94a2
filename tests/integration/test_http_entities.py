"""Entity calls over the HTTP API, in process, with a worker of its own: 202 then a
worker runs it once, ?wait answers the result, an Idempotency-Key repeat runs nothing
again, read-only handlers answer at once, and bad calls are 4xx naming what is wrong."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.entities import EntityContext
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app

TOKEN = "entity-routes-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def served(database_url: str, namespace: str) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = App(database_url, namespace=namespace, purge_interval=None)
    account = app.entity("account", initial={"balance": 0})

    @account.handler
    def deposit(ctx: EntityContext, amount: Any) -> int:
        if not isinstance(amount, int) or amount <= 0:
            raise ValueError(f"a deposit is a positive integer, got {amount!r}")
        ctx.state["balance"] += amount
        return int(ctx.state["balance"])

    @account.handler
    async def slow(ctx: EntityContext, seconds: float) -> str:
        await asyncio.sleep(seconds)
        ctx.state["slow"] = True
        return "done"

    @account.handler(readonly=True)
    def balance(ctx: EntityContext) -> int:
        return int(ctx.state["balance"])

    async with app:
        worker = app.worker(poll=0.05)
        running = asyncio.create_task(worker.run())
        http = create_http_app(app, HttpConfig(token=TOKEN))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client
        worker.stop()
        await running


async def finished(client: httpx.AsyncClient, location: str) -> dict[str, Any]:
    for _ in range(500):
        answer = await client.get(location, headers=AUTH)
        assert answer.status_code == 200, answer.text
        if answer.json()["status"] in ("succeeded", "dead-lettered"):
            return dict(answer.json())
        await asyncio.sleep(0.02)
    raise AssertionError(f"{location} never finished: {answer.text}")


async def test_a_call_is_stored_answered_202_and_run_once(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    _, client = served
    posted = await client.post("/v1/entities/account/a-1/deposit", json=5, headers=AUTH)
    assert posted.status_code == 202, posted.text
    location = posted.headers["location"]
    assert posted.json()["status"] == "accepted" and posted.json()["status_url"] == location
    document = await finished(client, location)
    assert (document["status"], document["result"]) == ("succeeded", 5)
    state = await client.get("/v1/entities/account/a-1", headers=AUTH)
    assert state.status_code == 200
    assert state.json()["state"] == {"balance": 5} and state.json()["version"] == 1


async def test_wait_answers_the_result_and_a_repeat_runs_nothing_again(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    app, client = served
    headers = {**AUTH, "Idempotency-Key": "dep-1"}
    first = await client.post("/v1/entities/account/a-2/deposit?wait=10", json=7, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["result"] == 7 and first.json()["request_id"]
    again = await client.post("/v1/entities/account/a-2/deposit?wait=10", json=7, headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    other = await client.post("/v1/entities/account/a-2/deposit?wait=10", json=8, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    document = await finished(client, f"/v1/requests/{first.json()['request_id']}")
    assert document["result"] == 7  # the worker got the recorded answer
    read = await client.post("/v1/entities/account/a-2/balance", headers=AUTH)
    assert read.status_code == 200 and read.json()["result"] == 7
    got = await app.entities.get("account", "a-2")
    assert got is not None and got.version == 1


async def test_a_wait_that_runs_out_answers_202_and_the_call_goes_on(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    app, client = served
    posted = await client.post("/v1/entities/account/a-3/slow?wait=0.1", json=0.5, headers=AUTH)
    assert posted.status_code == 202, posted.text
    document = await finished(client, posted.headers["location"])
    assert (document["status"], document["result"]) == ("succeeded", "done")
    got = await app.entities.get("account", "a-3")
    assert got is not None and got.state["slow"] is True and got.version == 1


async def test_a_failing_handler_is_409_with_its_error_and_changes_nothing(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    app, client = served
    failed = await client.post("/v1/entities/account/a-4/deposit?wait=5", json=-3, headers=AUTH)
    assert failed.status_code == 409, failed.text
    error = failed.json()["error"]
    assert error["code"] == "entity_call_failed"
    assert "positive integer" in error["message"]
    later = await client.post("/v1/entities/account/a-4/deposit", json="x", headers=AUTH)
    document = await finished(client, later.headers["location"])
    assert document["status"] == "dead-lettered" and document["attempts"] == 1
    assert document["error"]["type"] == "EntityCallFailed"
    got = await app.entities.get("account", "a-4")
    assert got is not None and (got.state, got.version) == ({"balance": 0}, 0)


async def test_a_delayed_call_runs_later(served: tuple[App, httpx.AsyncClient]) -> None:
    app, client = served
    posted = await client.post("/v1/entities/account/a-5/deposit?delay=0.3", json=2, headers=AUTH)
    assert posted.status_code == 202
    assert await app.entities.get("account", "a-5") is None
    document = await finished(client, posted.headers["location"])
    assert document["result"] == 2


async def test_listing_pages_through_the_entities_of_a_type(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    app, client = served
    for n in range(5):
        await app.entities.call("account", f"k{n}", "deposit", n + 1)
    first = await client.get("/v1/entities/account?limit=3", headers=AUTH)
    assert first.status_code == 200
    assert [e["key"] for e in first.json()["entities"]] == ["k0", "k1", "k2"]
    after = first.json()["next_after"]
    rest = await client.get(f"/v1/entities/account?after={after}&limit=3", headers=AUTH)
    assert [e["state"]["balance"] for e in rest.json()["entities"]] == [4, 5]
    assert rest.json()["next_after"] is None


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/v1/entities/nope/k/deposit", 1, 404, "unknown_entity"),
        ("POST", "/v1/entities/account/k/nope", 1, 404, "unknown_entity_handler"),
        ("POST", "/v1/entities/account/k/deposit?wait=-1", 1, 400, "invalid_input"),
        ("POST", "/v1/entities/account/k/deposit?wait=301", 1, 400, "invalid_input"),
        ("POST", "/v1/entities/account/k/deposit?wait=nan", 1, 400, "invalid_input"),
        ("POST", "/v1/entities/account/k/deposit?wait=1&delay=1", 1, 400, "invalid_input"),
        ("POST", "/v1/entities/account/k/deposit?bogus=1", 1, 400, "invalid_input"),
        ("POST", "/v1/entities/acc%20ount/k/deposit", 1, 400, "invalid_identifier"),
        ("POST", f"/v1/entities/account/{'k' * 257}/deposit", 1, 400, "invalid_identifier"),
        ("GET", "/v1/entities/account/never-called", None, 404, "entity_not_found"),
        ("GET", "/v1/entities/nope", None, 404, "unknown_entity"),
        ("GET", "/v1/entities/account?limit=0", None, 400, "invalid_input"),
        ("GET", "/v1/entities/account?limit=1001", None, 400, "invalid_input"),
    ],
)
async def test_bad_calls_are_4xx_naming_what_is_wrong(
    served: tuple[App, httpx.AsyncClient],
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    app, client = served
    answer = await client.request(method, path, json=body, headers=AUTH)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert (await app.queue("statekeeper.entity-calls").stats()).ready == 0


async def test_malformed_bodies_and_missing_tokens_are_refused(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    _, client = served
    path = "/v1/entities/account/k/deposit"
    broken = await client.post(path, content=b'{"a": ', headers=AUTH)
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "malformed_json"
    huge = await client.post(path, content=b"1" * (2 << 20), headers=AUTH)
    assert huge.status_code == 413
    anonymous = await client.post(path, json=1)
    assert anonymous.status_code == 401
    key = await client.post(path, json=1, headers={**AUTH, "Idempotency-Key": "bad\x7f"})
    assert key.status_code == 400
