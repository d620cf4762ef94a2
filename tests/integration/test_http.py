"""The HTTP API in process (ASGI transport): ingress, status, idempotency, bad input."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper import App, Message, Retry
from statekeeper.errors import ConfigurationError
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.runtime.callbacks import SIGNATURE_HEADER, verify

TOKEN = "t0ken-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def served(database_url: str, namespace: str) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = App(database_url, namespace=namespace, purge_interval=None)
    app.queue("orders", retry=Retry(max_attempts=2, initial_interval=0.01, jitter=False))
    async with app:
        http = create_http_app(app, HttpConfig(token=TOKEN, max_body_bytes=1024))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client


async def test_accept_then_follow_the_status(served: tuple[App, httpx.AsyncClient]) -> None:
    app, client = served
    posted = await client.post("/v1/queues/orders/messages", json={"sku": "A1"}, headers=AUTH)
    assert posted.status_code == 202
    body = posted.json()
    assert body["status"] == "accepted"
    assert posted.headers["location"] == body["status_url"] == f"/v1/requests/{body['id']}"
    status = (await client.get(body["status_url"], headers=AUTH)).json()
    assert status["status"] == "accepted" and status["attempts"] == 0
    [message] = await app.queue("orders").receive()
    assert message.body == {"sku": "A1"}
    assert (await client.get(body["status_url"], headers=AUTH)).json()["status"] == "processing"
    await message.fail("warehouse busy")
    failed = (await client.get(body["status_url"], headers=AUTH)).json()
    assert failed["status"] == "failed" and failed["error"] == {
        "type": "Error",
        "message": "warehouse busy",
    }
    await asyncio.sleep(0.05)
    [again] = await app.queue("orders").receive()
    await again.ack({"shipped": True})
    done = (await client.get(body["status_url"], headers=AUTH)).json()
    assert done["status"] == "succeeded" and done["result"] == {"shipped": True}
    assert done["attempts"] == 2


async def test_dead_lettered_status(served: tuple[App, httpx.AsyncClient]) -> None:
    app, client = served
    posted = (await client.post("/v1/queues/orders/messages", json=1, headers=AUTH)).json()
    [message] = await app.queue("orders").receive()
    await message.fail("bad order", retryable=False)
    status = (await client.get(posted["status_url"], headers=AUTH)).json()
    assert status["status"] == "dead-lettered" and status["error"] == {
        "type": "Error",
        "message": "bad order",
    }


async def test_idempotency_key(served: tuple[App, httpx.AsyncClient]) -> None:
    app, client = served
    headers = {**AUTH, "Idempotency-Key": "order-77"}
    first = await client.post("/v1/queues/orders/messages", json={"n": 77}, headers=headers)
    again = await client.post("/v1/queues/orders/messages", json={"n": 77}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/queues/orders/messages", json={"n": 78}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(await app.queue("orders").peek(10)) == 1


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "code"),
    [
        ("/v1/queues/orders/messages", b"{not json", AUTH, 400, "malformed_json"),
        ("/v1/queues/orders/messages", b'"' + b"x" * 2000 + b'"', AUTH, 413, "payload_too_large"),
        ("/v1/queues/nope/messages", b"{}", AUTH, 404, "unknown_queue"),
        ("/v1/queues/orders/messages?delay=-1", b"{}", AUTH, 400, "invalid_parameter"),
        ("/v1/queues/orders/messages?delay=soon", b"{}", AUTH, 400, "invalid_parameter"),
        ("/v1/queues/orders/messages?color=red", b"{}", AUTH, 400, "invalid_parameter"),
        (
            "/v1/queues/orders/messages?callback_url=ftp://x",
            b"{}",
            AUTH,
            400,
            "invalid_callback_url",
        ),
        (
            "/v1/queues/orders/messages?reply_queue=bad%20name",
            b"{}",
            AUTH,
            400,
            "invalid_queue_name",
        ),
        ("/v1/queues/orders/messages", b"{}", {}, 401, "unauthorized"),
        (
            "/v1/queues/orders/messages",
            b"{}",
            {"Authorization": "Bearer wrong"},
            401,
            "unauthorized",
        ),
        ("/v1/queues/orders/messages", b"{}", {"Authorization": TOKEN}, 401, "unauthorized"),
    ],
)
async def test_bad_requests_store_nothing(
    served: tuple[App, httpx.AsyncClient],
    path: str,
    content: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    app, client = served
    answer = await client.post(path, content=content, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert await app.queue("orders").peek(10) == []


async def test_status_lookups(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    missing = await client.get("/v1/requests/no-such-id", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (await client.get("/v1/requests/x")).status_code == 401
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert (await client.get("/openapi.json")).status_code == 401  # it names the queues
    spec = (await client.get("/openapi.json", headers=AUTH)).json()
    assert spec["openapi"].startswith("3.")
    assert "/v1/queues/{queue}/messages" in spec["paths"]
    nowhere = await client.get("/nowhere")
    assert nowhere.status_code == 404 and nowhere.json()["error"]["code"] == "not_found"


def test_a_token_is_required_outside_dev_mode() -> None:
    with pytest.raises(ConfigurationError, match="needs a bearer token"):
        HttpConfig()
    with pytest.raises(ConfigurationError, match="at least 16"):
        HttpConfig(token="short")
    assert HttpConfig(dev=True).token is None


async def test_dev_mode_serves_without_a_token(database_url: str, namespace: str) -> None:
    app = App(database_url, namespace=namespace, purge_interval=None)
    app.queue("orders")
    async with app:
        http = create_http_app(app, HttpConfig(dev=True))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            answer = await client.post("/v1/queues/orders/messages", json={})
            assert answer.status_code == 202


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_completion_callbacks_are_signed_and_retried(
    database_url: str, namespace: str
) -> None:
    """A real HTTP receiver on loopback: it fails the first delivery with 503, then
    accepts; the body carries the outcome and a valid signature."""
    secret = "callback-secret-for-tests"
    received: list[tuple[int, dict[str, object]]] = []
    answers = iter([503, 200])

    async def receiver(request: Request) -> Response:
        body = await request.body()
        assert verify(secret, request.headers[SIGNATURE_HEADER], body)
        status = next(answers)
        received.append((status, json.loads(body)))
        return Response(status_code=status)

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=[Route("/hook", receiver, methods=["POST"])]),
                       host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )  # fmt: skip
    serving = asyncio.create_task(server.serve())
    app = App(database_url, namespace=namespace, purge_interval=None)

    @app.consumer("orders")
    async def handle(message: Message) -> dict[str, int]:
        return {"total": 42}

    assert app.enable_callbacks(secret, allow="127.0.0.1")
    try:
        async with app:
            app.queue("statekeeper.callbacks")._rng.seed(1)
            http = create_http_app(app, HttpConfig(token=TOKEN))
            transport = httpx.ASGITransport(app=http)
            async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
                posted = await client.post(
                    f"/v1/queues/orders/messages?callback_url=http://127.0.0.1:{port}/hook",
                    json={"sku": 1},
                    headers=AUTH,
                )
            worker = app.worker(poll=0.05)
            task = asyncio.create_task(worker.run())
            for _ in range(300):
                if len(received) == 2:
                    break
                await asyncio.sleep(0.02)
            worker.stop()
            await task
    finally:
        server.should_exit = True
        await serving
    assert [status for status, _ in received] == [503, 200]
    outcome = received[-1][1]
    assert outcome["request_id"] == posted.json()["id"]
    assert outcome["status"] == "succeeded" and outcome["result"] == {"total": 42}


def test_signatures() -> None:
    from statekeeper.runtime.callbacks import sign

    header = sign("s3cret", b'{"a":1}')
    assert verify("s3cret", header, b'{"a":1}')
    assert not verify("other", header, b'{"a":1}')
    assert not verify("s3cret", header, b'{"a":2}')
    assert not verify("s3cret", "garbage", b"{}")
    assert not verify("s3cret", sign("s3cret", b"{}", at=1000), b"{}")  # too old


async def test_the_ingress_groups_messages_by_the_queues_group_by(
    database_url: str, namespace: str
) -> None:
    app = App(database_url, namespace=namespace, purge_interval=None)
    app.queue("tenants", group_by="tenant")
    app.queue("strict", group_by=lambda body: body["account"])
    async with app:
        http = create_http_app(app, HttpConfig(token=TOKEN, max_body_bytes=1024))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            for n in range(3):
                posted = await client.post(
                    "/v1/queues/tenants/messages", json={"tenant": "acme", "n": n}, headers=AUTH
                )
                assert posted.status_code == 202
            refused = await client.post("/v1/queues/strict/messages", json={"n": 1}, headers=AUTH)
            assert refused.status_code == 400
            assert "group_by function failed" in refused.json()["error"]["message"]
        [head] = await app.queue("tenants").receive(10)  # one of the group at a time
        assert (head.group, head.body["n"]) == ("acme", 0)
