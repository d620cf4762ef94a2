"""The sidecar's connection to its app: waiting for it to listen (and be healthy),
asking it for its subscriptions, and posting events to its routes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass

import httpx

from statekeeper.sidecar.context import SidecarConfig

log = logging.getLogger("statekeeper.sidecar.pubsub")

_FIRST_PAUSE = 0.05
_LONGEST_PAUSE = 1.0


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

    async def subscriptions(self, stopping: asyncio.Event) -> object:
        """The app's ``GET /dapr/subscribe`` answer as JSON (an empty list when the app
        has no such route or answers something else), asked until the app answers;
        None when the sidecar stops first."""
        pause = _FIRST_PAUSE
        while not stopping.is_set():
            try:
                answer = await self._client.get("/dapr/subscribe", timeout=10.0)
            except httpx.HTTPError as problem:
                log.info(
                    "the app did not answer /dapr/subscribe; asking again",
                    extra={"error": type(problem).__name__},
                )
                await _sleep_unless(stopping, pause)
                pause = min(_LONGEST_PAUSE, pause * 2)
                continue
            if answer.status_code == 404:
                return []
            if not 200 <= answer.status_code < 300:
                log.warning(
                    "the app answered /dapr/subscribe with %d; no programmatic subscriptions",
                    answer.status_code,
                )
                return []
            try:
                return json.loads(answer.content or b"[]")
            except ValueError:
                log.warning("the app's /dapr/subscribe answer is not JSON; ignored")
                return []
        return None

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
