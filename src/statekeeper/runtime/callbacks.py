"""Completion callbacks: POST a request's outcome to its callback URL, signed, with retries.

The body is the outcome JSON. ``Statekeeper-Signature: t=<unix time>,v1=<hex>`` where
``v1`` is HMAC-SHA256 over ``"<t>.<body>"`` with the shared secret; receivers check it
with ``verify``. A 2xx answer settles the callback; 408, 429 and 5xx (or no answer)
are retried with backoff; any other answer dead-letters it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from statekeeper.queues import Message, Retry

ENV_SECRET = "STATEKEEPER_CALLBACK_SECRET"
SIGNATURE_HEADER = "Statekeeper-Signature"
CALLBACK_RETRY = Retry(max_attempts=10, initial_interval=1.0, backoff_rate=2.0, max_delay=300.0)


class CallbackRefused(Exception):
    """The receiver answered with a status that retrying will not change."""


class CallbackFailed(Exception):
    """The receiver did not answer, or answered with a status worth retrying."""


def sign(secret: str, body: bytes, at: int | None = None) -> str:
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, *, tolerance: float = 300.0) -> bool:
    """Whether ``header`` is a valid signature of ``body``, made within ``tolerance`` s."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class CallbackSender:
    """The consumer of the internal callback queue."""

    def __init__(self, secret: str, *, timeout: float = 10.0) -> None:
        self._secret = secret
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def __call__(self, message: Message) -> dict[str, Any]:
        url = str(message.body["url"])
        body = json.dumps(message.body["payload"], separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "Statekeeper-Request-Id": str(message.body["payload"].get("request_id", "")),
        }
        try:
            answer = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise CallbackFailed(f"POST {url} failed: {type(exc).__name__}: {exc}") from None
        status = answer.status_code
        if 200 <= status < 300:
            return {"url": url, "status": status}
        if status in (408, 429) or status >= 500:
            raise CallbackFailed(f"POST {url} answered {status}")
        raise CallbackRefused(f"POST {url} answered {status}")
