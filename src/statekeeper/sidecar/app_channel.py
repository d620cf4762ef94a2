"""The sidecar's connection to its app: waiting for it to listen (and be healthy),
asking it for its subscriptions (until it answers usably: a failed answer is never
taken for "no subscriptions"), and posting events to its routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from statekeeper.sidecar.context import SidecarConfig

log = logging.getLogger("statekeeper.sidecar.pubsub")

_FIRST_PAUSE = 0.05
_LONGEST_PAUSE = 1.0
_LONGEST_DISCOVERY_PAUSE = 5.0
MAX_SUBSCRIBE_ANSWER = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    """What the app answered to a delivery: its status and body; ``error`` (status 0)
    when it could not be reached or did not answer in time."""

    status: int
    body: bytes = b""
    error: str = ""


class AppChannel:
    """HTTP calls from the sidecar to the app at ``config.app_url``."""

    def __init__(self, config: SidecarConfig, *, timeout: float, connections: int) -> None:
        assert config.app_url is not None
        self.config = config
        self.base = config.app_url
        self._client = httpx.AsyncClient(
            base_url=self.base,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=32),
            trust_env=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def wait_ready(self, stopping: asyncio.Event) -> bool:
        """Until the app's port accepts connections (and, with the health check on, its
        health path answers 2xx); False when the sidecar stops first."""
        pause = _FIRST_PAUSE
        told = False
        while not stopping.is_set():
            if await self._ready():
                return True
            if not told and pause >= _LONGEST_PAUSE / 2:
                log.info("waiting for the app", extra={"app": self.base})
                told = True
            await _sleep_unless(stopping, pause)
            pause = min(_LONGEST_PAUSE, pause * 2)
        return False

    async def _ready(self) -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.config.app_host, self.config.app_port), 2.0
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        if not self.config.app_health_check:
            return True
        try:
            answer = await self._client.get(self.config.app_health_path, timeout=5.0)
        except httpx.HTTPError:
            return False
        return 200 <= answer.status_code < 300

    async def subscriptions(self, stopping: asyncio.Event) -> list[Any] | None:
        """The app's ``GET /dapr/subscribe`` answer, a JSON array (empty when the app
        answers 404 or an empty 2xx body: no programmatic subscriptions). Any other
        answer (no answer, another status, a body over 1 MiB, not JSON, not an array)
        is asked again with a growing pause, never taken for "no subscriptions"; None
        when the sidecar stops first."""
        pause = _FIRST_PAUSE
        failures = 0
        while not stopping.is_set():
            problem = await self._subscriptions_once()
            if isinstance(problem, list):
                return problem
            failures += 1
            log.log(
                logging.WARNING if failures == 1 or failures % 10 == 0 else logging.INFO,
                "the app's /dapr/subscribe answer cannot be used; asking again",
                extra={"error": problem, "attempt": failures, "pause": pause},
            )
            await _sleep_unless(stopping, pause)
            pause = min(_LONGEST_DISCOVERY_PAUSE, pause * 2)
        return None

    async def _subscriptions_once(self) -> list[Any] | str:
        """One ask: the answer's array, or what was wrong with it."""
        body = bytearray()
        try:
            async with self._client.stream("GET", "/dapr/subscribe", timeout=10.0) as answer:
                if answer.status_code == 404:
                    return []
                if not 200 <= answer.status_code < 300:
                    return f"the app answered {answer.status_code}"
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_SUBSCRIBE_ANSWER:
                        return f"the answer is longer than {MAX_SUBSCRIBE_ANSWER} bytes"
        except httpx.HTTPError as problem:
            return f"the app did not answer: {type(problem).__name__}"
        if not body.strip():
            return []
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return "the answer is not JSON (or nested too deeply)"
        if not isinstance(parsed, list):
            return "the answer is not a JSON array"
        return parsed

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            answer = await self._client.post(path, content=body, headers=headers)
        except httpx.TimeoutException:
            return Answer(0, error="the app did not answer in time")
        except httpx.HTTPError as problem:
            return Answer(0, error=f"the app cannot be reached: {type(problem).__name__}")
        return Answer(answer.status_code, answer.content)


async def _sleep_unless(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
