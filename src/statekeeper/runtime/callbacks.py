"""Completion callbacks: POST a request's outcome to its callback URL, signed, with retries.

The body is the outcome JSON. ``Statekeeper-Signature: t=<unix time>,v1=<hex>`` where
``v1`` is HMAC-SHA256 over ``"<t>.<body>"`` with the shared secret; receivers check it
with ``verify``. A 2xx answer settles the callback; 408, 429 and 5xx (or no answer)
are retried with backoff; any other answer (redirects included: they are not
followed) dead-letters it, as does a URL or address the callback policy refuses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore

from statekeeper.errors import CallbackAddressRefused, InvalidCallbackURL
from statekeeper.outbound import CallbackPolicy
from statekeeper.queues import Message, Retry
from statekeeper.runtime.guarded_network import GuardedNetwork

SIGNATURE_HEADER = "Statekeeper-Signature"
CALLBACK_RETRY = Retry(max_attempts=10, initial_interval=1.0, backoff_rate=2.0, max_delay=300.0)


class CallbackRefused(Exception):
    """The receiver answered with a status that retrying will not change."""


class CallbackUndelivered(Exception):
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
    """The consumer of the internal callback queue.

    Each URL is checked again when it is sent (``CallbackPolicy.check_url``), and the
    connection goes through ``GuardedNetwork``: an address callbacks may not reach is
    refused (dead-lettered at once, nothing sent). Redirects are never followed.
    """

    def __init__(
        self,
        secret: str,
        policy: CallbackPolicy | Callable[[], CallbackPolicy] | None = None,
        *,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._secret = secret
        if isinstance(policy, CallbackPolicy):
            chosen = policy
            self._policy: Callable[[], CallbackPolicy] = lambda: chosen
        else:
            self._policy = policy or CallbackPolicy.from_env
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            network_backend=GuardedNetwork(self._policy),
            max_connections=64,
            retries=0,
        )

    async def close(self) -> None:
        await self._pool.aclose()

    async def __call__(self, message: Message) -> dict[str, Any]:
        url = message.body["url"]
        try:
            self._policy().check_url(url)
        except InvalidCallbackURL as error:
            raise CallbackRefused(error.message) from None
        shown = _without_query(url)
        body = json.dumps(message.body["payload"], separators=(",", ":")).encode()
        headers = [
            ("Host", urlsplit(url).netloc),
            ("Content-Type", "application/json"),
            (SIGNATURE_HEADER, sign(self._secret, body)),
            ("Statekeeper-Request-Id", str(message.body["payload"].get("request_id", ""))),
        ]
        try:
            async with self._pool.stream(
                "POST", url, headers=headers, content=body, extensions={"timeout": self._timeouts}
            ) as answer:
                status = answer.status  # the answer's body is not read
        except CallbackAddressRefused as error:
            raise CallbackRefused(error.message) from None
        except httpcore.UnsupportedProtocol as exc:
            raise CallbackRefused(f"POST {shown} cannot be sent: {exc}") from None
        except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise CallbackUndelivered(f"POST {shown} failed: {type(exc).__name__}: {exc}") from None
        if 200 <= status < 300:
            return {"url": shown, "status": status}
        if status in (408, 429) or status >= 500:
            raise CallbackUndelivered(f"POST {shown} answered {status}")
        note = " (redirects are not followed)" if 300 <= status < 400 else ""
        raise CallbackRefused(f"POST {shown} answered {status}{note}")


def _without_query(url: str) -> str:
    """The URL to show in errors and results: a query may carry a receiver's token."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment=""))
