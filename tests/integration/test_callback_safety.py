"""Outbound callbacks are safe by default: real receivers on loopback, both backends.

Loopback stands in for every address a callback may not reach: it is refused at
the door when the URL spells it, at send time when a name resolves to it, and
delivered only when the allow-list names it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpcore
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from statekeeper import App, Message
from statekeeper.errors import CallbackAddressRefused
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.outbound import CallbackPolicy
from statekeeper.queues.message import StoredMessage
from statekeeper.runtime.callbacks import (
    SIGNATURE_HEADER,
    CallbackSender,
    CallbackUndelivered,
    verify,
)
from statekeeper.runtime.guarded_network import GuardedNetwork
from tests.integration.certs import receiver, self_signed

TOKEN = "t0ken-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET = "callback-secret-for-tests"
CALLBACKS = "statekeeper.callbacks"


@pytest.fixture(autouse=True)
def no_allow_list_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATEKEEPER_CALLBACK_ALLOW", raising=False)


class Recorder:
    """A receiver that records what reaches it and answers ``status``."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        return Response(status_code=self.status, headers=self.headers)


def make_app(database_url: str, namespace: str, allow: str | None = None) -> App:
    app = App(database_url, namespace=namespace, purge_interval=None, callback_allow=allow)

    @app.consumer("orders")
    async def handle(message: Message) -> dict[str, int]:
        return {"total": 42}

    assert app.enable_callbacks(SECRET)
    return app


@pytest.fixture
async def client_of() -> AsyncIterator[Callable[[App], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(app: App) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=create_http_app(app, HttpConfig(token=TOKEN)))
        clients.append(httpx.AsyncClient(transport=transport, base_url="http://sk"))
        return clients[-1]

    yield make
    for client in clients:
        await client.aclose()


async def post(client: httpx.AsyncClient, query: str) -> httpx.Response:
    return await client.post(f"/v1/queues/orders/messages?{query}", json={"n": 1}, headers=AUTH)


async def settle_callbacks(app: App, count: int) -> list[StoredMessage]:
    """Run a worker until ``count`` callbacks are settled; the dead-lettered ones."""
    worker = app.worker(poll=0.05)
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(400):
            if worker.processed + worker.failed >= 2 * count:  # the orders, then the callbacks
                stats = await app.queue(CALLBACKS).stats()
                if stats.ready + stats.in_flight + stats.delayed == 0:
                    break
            await asyncio.sleep(0.025)
    finally:
        worker.stop()
        await task
    return await app.queue(CALLBACKS).peek(100, dead=True)


@pytest.mark.parametrize(
    ("url", "code", "reason"),
    [
        ("http://127.0.0.1:8199/hook", "callback_address_refused", "127.0.0.1 is a loopback"),
        ("http://2130706433:8199/", "callback_address_refused", "is 127.0.0.1, a loopback"),
        ("http://0177.0.0.1:8199/", "callback_address_refused", "is 127.0.0.1, a loopback"),
        ("http://[::ffff:127.0.0.1]:8199/", "callback_address_refused", "a loopback address"),
        ("http://[::1]:8199/", "callback_address_refused", "::1 is a loopback"),
        ("http://169.254.169.254/latest/", "callback_address_refused", "cloud metadata"),
        ("http://10.0.0.7/", "callback_address_refused", "10.0.0.7 is a private"),
        ("http://100.64.0.1/", "callback_address_refused", "shared (carrier-grade NAT)"),
        ("http://0.0.0.0:8199/", "callback_address_refused", "unspecified"),
        ("http://example.com@127.0.0.1:8199/", "invalid_callback_url", "user information"),
        ("http://user:pw@example.com/", "invalid_callback_url", "user information"),
        ("file:///etc/passwd", "invalid_callback_url", "http(s) URL"),
        ("gopher://example.com/", "invalid_callback_url", "http(s) URL"),
        ("http://example.com\\@127.0.0.1/", "invalid_callback_url", "backslashes"),
    ],
)
async def test_refused_at_the_door_store_nothing(
    database_url: str,
    namespace: str,
    client_of: Callable[[App], httpx.AsyncClient],
    url: str,
    code: str,
    reason: str,
) -> None:
    async with make_app(database_url, namespace) as app:
        answer = await post(client_of(app), f"callback_url={quote(url, safe='')}")
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["code"] == code and reason in error["message"]
        if code == "callback_address_refused":
            assert "allow it with STATEKEEPER_CALLBACK_ALLOW" in error["message"]
        assert await app.queue("orders").peek(10) == []


async def test_reply_queue_cannot_name_internal_queues(
    database_url: str, namespace: str, client_of: Callable[[App], httpx.AsyncClient]
) -> None:
    async with make_app(database_url, namespace) as app:
        client = client_of(app)
        for name in (CALLBACKS, "statekeeper.workflow-callbacks", "statekeeper.anything"):
            answer = await post(client, f"reply_queue={name}")
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "invalid_queue_name"
            assert "internal" in answer.json()["error"]["message"]
        assert await app.queue("orders").peek(10) == []
        assert await app.queue(CALLBACKS).peek(10) == []


async def test_loopback_is_refused_by_default_when_sent(
    database_url: str, namespace: str, client_of: Callable[[App], httpx.AsyncClient]
) -> None:
    """A name resolving to loopback passes the door and is refused when sent; a literal
    127.0.0.1 accepted while it was allowed is refused once the allow-list drops it.
    Both are dead-lettered on their first attempt, and the receiver gets nothing."""
    hook = Recorder()
    async with receiver(hook) as port, make_app(database_url, namespace, "127.0.0.1") as app:
        client = client_of(app)
        literal = await post(client, f"callback_url=http://127.0.0.1:{port}/hook")
        assert literal.status_code == 202, literal.text
        app.enable_callbacks(SECRET, allow="")  # the operator takes loopback off the list
        named = await post(client, f"callback_url=http://localhost:{port}/hook")
        assert named.status_code == 202, named.text
        dead = await settle_callbacks(app, 2)
    assert hook.received == []
    by_request = {m.body["payload"]["request_id"]: m for m in dead}
    assert set(by_request) == {literal.json()["id"], named.json()["id"]}
    for message in dead:
        assert message.attempts == 1  # not retried
    literal_error = str(by_request[literal.json()["id"]].last_error)
    assert "refused: 127.0.0.1 is a loopback address" in literal_error
    assert "allow it with STATEKEEPER_CALLBACK_ALLOW" in literal_error
    named_error = str(by_request[named.json()["id"]].last_error)
    assert "refused: localhost resolves to" in named_error and "a loopback address" in named_error


async def test_delivered_signed_when_allowed_and_redirects_not_followed(
    database_url: str, namespace: str, client_of: Callable[[App], httpx.AsyncClient]
) -> None:
    """127.0.0.1 allowed: the callback arrives signed. A receiver there that redirects
    to 127.0.0.2 (loopback, not allowed) is not followed: dead-lettered, nothing sent."""
    hook, elsewhere = Recorder(), Recorder()
    async with (
        receiver(hook) as port,
        receiver(elsewhere, host="127.0.0.2") as other_port,
        make_app(database_url, namespace, "127.0.0.1") as app,
    ):
        redirect = Recorder(307, {"Location": f"http://127.0.0.2:{other_port}/hook"})
        async with receiver(redirect) as redirect_port:
            client = client_of(app)
            delivered = await post(client, f"callback_url=http://127.0.0.1:{port}/hook")
            redirected = await post(client, f"callback_url=http://127.0.0.1:{redirect_port}/r")
            assert delivered.status_code == redirected.status_code == 202
            dead = await settle_callbacks(app, 2)
    [(headers, body)] = hook.received
    assert verify(SECRET, headers[SIGNATURE_HEADER.lower()], body)
    outcome = json.loads(body)
    assert outcome["request_id"] == delivered.json()["id"] and outcome["result"] == {"total": 42}
    assert len(redirect.received) == 1 and elsewhere.received == []
    [refused] = dead
    assert refused.attempts == 1
    assert "answered 307 (redirects are not followed)" in str(refused.last_error)


async def test_tls_is_verified_against_the_host_name(tmp_path: Path) -> None:
    """The guarded connection goes to the checked address, and TLS still verifies the
    URL's name: a certificate for ``localhost`` only is accepted for https://localhost
    and refused for https://127.0.0.1 (the same server)."""
    cert, key = self_signed(tmp_path, names=["localhost"])
    trust = ssl.create_default_context(cafile=str(cert))
    hook = Recorder()
    by_name = CallbackSender(SECRET, CallbackPolicy.parse("localhost"), ssl_context=trust)
    by_address = CallbackSender(SECRET, CallbackPolicy.parse("127.0.0.1"), ssl_context=trust)
    payload = {"request_id": "r1"}
    async with receiver(hook, tls=(cert, key)) as port:
        named = callback_message(f"https://localhost:{port}/hook", payload)
        assert (await by_name(named))["status"] == 200
        literal = callback_message(f"https://127.0.0.1:{port}/hook", payload)
        with pytest.raises(CallbackUndelivered, match="CERTIFICATE_VERIFY_FAILED"):
            await by_address(literal)
    await by_name.close()
    await by_address.close()
    assert len(hook.received) == 1


def callback_message(url: str, payload: dict[str, str]) -> Message:
    return Message(
        id="m1", queue=CALLBACKS, body={"url": url, "payload": payload}, attributes={},
        correlation_id=None, group=None, attempt=1, enqueued_at=0.0, lease_token="",
        lease_expires_at=0.0,
    )  # fmt: skip


class RecordingNetwork(httpcore.AsyncNetworkBackend):
    """The real network, noting which host each connection was asked for."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def test_the_connection_goes_to_the_checked_address() -> None:
    """The name is resolved once, by the guard; the connection is made to the address it
    checked, so a second answer from DNS (rebinding) never comes into play."""
    hook = Recorder()
    network = RecordingNetwork()
    guarded = GuardedNetwork(lambda: CallbackPolicy.parse("localhost"), network)
    async with (
        receiver(hook) as port,
        httpcore.AsyncConnectionPool(network_backend=guarded) as pool,
    ):
        answer = await pool.request("POST", f"http://localhost:{port}/hook", content=b"{}")
    assert answer.status == 200 and len(hook.received) == 1
    assert network.hosts and "localhost" not in network.hosts
    assert all(ipaddress.ip_address(host).is_loopback for host in network.hosts)
    refusing = GuardedNetwork(CallbackPolicy, RecordingNetwork())
    async with httpcore.AsyncConnectionPool(network_backend=refusing) as pool:
        with pytest.raises(CallbackAddressRefused, match="localhost resolves to"):
            await pool.request("POST", f"http://localhost:{port}/hook", content=b"{}")
    assert len(hook.received) == 1
