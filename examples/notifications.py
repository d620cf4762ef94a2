"""A notification service: webhook ingress, a durable queue, a consumer that can fail,
dead letters and redrive.

Serve it:   statekeeper serve --app examples.notifications:app --dev
Or run the walk-through (what `make demo` shows):   python examples/notifications.py

Clients POST notifications to /v1/queues/notifications/messages and get 202 with a
status URL at once; the consumer delivers them through a "provider" that is
sometimes down. Failed deliveries are retried with backoff; a notification whose
provider stays down is dead-lettered, and redriven once the provider is back.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
from typing import Any

import httpx
import uvicorn

from statekeeper import App, Message, Retry
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app

app = App(namespace="notifications")
app.queue("notifications", retry=Retry(max_attempts=3, initial_interval=0.1, max_delay=0.5))


class InvalidRecipient(Exception):
    """Retrying will not help: the notification is dead-lettered at once."""


class ProviderDown(Exception):
    """The delivery provider is unavailable: worth retrying."""


class Provider:
    """Stands for an e-mail/SMS provider; some of its domains can be made to fail."""

    def __init__(self) -> None:
        self.down_domains: set[str] = set()
        self.flaky_once: set[str] = set()
        self.delivered: list[str] = []

    def send(self, to: str, text: str) -> None:
        domain = to.split("@", 1)[1]
        if domain in self.down_domains:
            raise ProviderDown(f"provider cannot reach {domain}")
        if to in self.flaky_once:
            self.flaky_once.discard(to)
            raise ProviderDown("provider timed out")
        self.delivered.append(to)


provider = Provider()


@app.consumer("notifications", concurrency=4, non_retryable=(InvalidRecipient,))
async def deliver(message: Message) -> dict[str, Any]:
    notification = message.body
    to = str(notification.get("to", ""))
    if "@" not in to:
        raise InvalidRecipient(f"{to!r} is not an address")
    provider.send(to, str(notification.get("text", "")))
    return {"delivered_to": to, "attempt": message.attempt}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_final(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, Any]:
    final = {"succeeded", "dead-lettered"}
    statuses: dict[str, Any] = {}
    for _ in range(500):
        statuses = {name: (await client.get(url)).json() for name, url in urls.items()}
        if all(s["status"] in final for s in statuses.values()):
            return statuses
        await asyncio.sleep(0.02)
    raise AssertionError(f"notifications did not finish: {statuses}")


async def walk_through(database_url: str | None = None) -> None:
    global app
    if database_url:  # an app of its own on the given database, same consumer
        app = App(database_url, namespace="notifications")
        app.queue("notifications", retry=Retry(max_attempts=3, initial_interval=0.1, max_delay=0.5))
        app.consumer("notifications", concurrency=4, non_retryable=(InvalidRecipient,))(deliver)
    token = secrets.token_urlsafe(24)
    port = _free_port()
    provider.down_domains = {"down.example"}
    provider.flaky_once = {"bob@flaky.example"}
    async with app:
        await app.queue("notifications").purge()
        await app.queue("notifications").purge(dead=True)
        server = uvicorn.Server(
            uvicorn.Config(
                create_http_app(app, HttpConfig(token=token)),
                host="127.0.0.1", port=port, log_level="warning", lifespan="off",
            )
        )  # fmt: skip
        serving = asyncio.create_task(server.serve())
        worker = app.worker(poll=0.05)
        working = asyncio.create_task(worker.run())
        for _ in range(500):  # the server binds its port
            if server.started:
                break
            await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        try:
            async with httpx.AsyncClient(base_url=base, headers=headers) as client:
                requests = {
                    "ada": ({"to": "ada@ok.example", "text": "welcome"}, "welcome-ada"),
                    "bob": ({"to": "bob@flaky.example", "text": "hello"}, None),
                    "eve": ({"to": "not-an-address", "text": "hi"}, None),
                    "joe": ({"to": "joe@down.example", "text": "alert"}, None),
                }
                urls: dict[str, str] = {}
                for name, (body, key) in requests.items():
                    extra = {"Idempotency-Key": key} if key else {}
                    answer = await client.post(
                        "/v1/queues/notifications/messages", json=body, headers=extra
                    )
                    assert answer.status_code == 202, answer.text
                    urls[name] = answer.headers["location"]
                    print(f"POST {name:>4} -> 202, status at {urls[name]}")
                repeat = await client.post(
                    "/v1/queues/notifications/messages",
                    json=requests["ada"][0],
                    headers={"Idempotency-Key": "welcome-ada"},
                )
                assert repeat.json()["id"] == urls["ada"].rsplit("/", 1)[1]
                print("POST  ada again with the same Idempotency-Key -> the same request")

                statuses = await _wait_final(client, urls)
                for name, status in statuses.items():
                    detail = status.get("result") or status.get("error")
                    state, attempts = status["status"], status["attempts"]
                    print(f"  {name:>4}: {state:<13} attempts={attempts}  {detail}")
                assert statuses["ada"]["status"] == "succeeded"
                assert statuses["bob"]["status"] == "succeeded" and statuses["bob"]["attempts"] == 2
                assert statuses["eve"]["status"] == "dead-lettered"
                assert statuses["eve"]["attempts"] == 1  # not retryable
                assert statuses["joe"]["status"] == "dead-lettered"
                assert statuses["joe"]["attempts"] == 3  # retried, then dead-lettered

                queue = app.queue("notifications")
                dead = await queue.peek(dead=True)
                print(f"dead letters: {[m.body['to'] for m in dead]}")
                provider.down_domains.clear()
                joe_id = urls["joe"].rsplit("/", 1)[1]
                print(f"provider is back: redrive {joe_id} -> {await queue.redrive([joe_id])}")
                statuses = await _wait_final(client, {"joe": urls["joe"]})
                print(f"  joe: {statuses['joe']['status']}")
                assert statuses["joe"]["status"] == "succeeded"
                assert provider.delivered.count("ada@ok.example") == 1
                print(f"stats: {(await queue.stats()).to_dict()}")
        finally:
            worker.stop()
            server.should_exit = True
            await asyncio.gather(working, serving)
    print("notification service walk-through: every check passed")


if __name__ == "__main__":
    asyncio.run(walk_through(sys.argv[1] if len(sys.argv) > 1 else None))
