"""HTTP endpoints as state machine Task resources: the payload POSTed as JSON.

A Task's ``Resource`` may be an ``https://`` (or ``http://``) URL. The URL comes
from a definition, which anyone allowed to create state machines writes, so the
request obeys the same outbound policy as completion callbacks: only public
addresses unless ``STATEKEEPER_CALLBACK_ALLOW`` (``App(callback_allow=...)``)
names others; every address a host name resolves to is checked as it connects
(``GuardedNetwork``); redirects are not followed.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

import httpcore

from statekeeper.asl.failure import TASK_FAILED, TIMEOUT, StatesError
from statekeeper.errors import CallbackAddressRefused, InvalidCallbackURL
from statekeeper.outbound import CallbackPolicy
from statekeeper.runtime.guarded_network import GuardedNetwork

DEFAULT_TIMEOUT = 60.0  # seconds, for a task without TimeoutSeconds
MAX_ANSWER = 1 << 20  # bytes of an answer read; a result is at most 256 KiB anyway


class TaskPoster:
    """POSTs Task payloads; ``await poster(url, body, timeout)`` -> (status, body)."""

    def __init__(
        self, policy: Callable[[], CallbackPolicy], *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._policy = policy
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            network_backend=GuardedNetwork(policy),
            max_connections=64,
            retries=0,
        )

    async def close(self) -> None:
        await self._pool.aclose()

    async def __call__(self, url: str, body: bytes, timeout: float | None) -> tuple[int, bytes]:
        try:
            self._policy().check_url(url)
        except InvalidCallbackURL as error:
            raise StatesError(TASK_FAILED, f"the task URL is refused: {error.message}") from None
        limit = timeout or DEFAULT_TIMEOUT
        timeouts = {"connect": limit, "read": limit, "write": limit, "pool": limit}
        headers = [("Host", urlsplit(url).netloc), ("Content-Type", "application/json")]
        try:
            async with self._pool.stream(
                "POST", url, headers=headers, content=body, extensions={"timeout": timeouts}
            ) as answer:
                chunks: list[bytes] = []
                size = 0
                async for chunk in answer.aiter_stream():
                    size += len(chunk)
                    if size > MAX_ANSWER:
                        raise StatesError(
                            TASK_FAILED, f"{url} answered with more than {MAX_ANSWER} bytes"
                        )
                    chunks.append(chunk)
                return answer.status, b"".join(chunks)
        except CallbackAddressRefused as error:
            raise StatesError(TASK_FAILED, f"the task URL is refused: {error.message}") from None
        except httpcore.TimeoutException:
            raise StatesError(TIMEOUT, f"{url} did not answer within {limit:g} s") from None
        except (httpcore.UnsupportedProtocol, httpcore.NetworkError, httpcore.ProtocolError) as exc:
            raise StatesError(TASK_FAILED, f"POST {url} failed: {type(exc).__name__}") from None
