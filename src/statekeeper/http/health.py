"""Probes: ``/healthz`` (the process is up) and ``/readyz`` (send it work).

``/healthz`` answers 200 while the process can answer at all: a liveness probe that
fails means "restart it". ``/readyz`` answers 200 only when the app is open, its
database answers within ``Readiness.timeout`` and the process is not shutting down,
else 503 with the reason; a readiness probe that fails means "send it no work for
now", which a database outage or a graceful shutdown should cause, not a restart.
Both are open (no token; see ``http/auth.py``) and say nothing secret: the reason's
details (which may name hosts or users) go to the log, once per change.

``serve`` has both routes beside the API; ``statekeeper worker --health-port N``
serves them alone on a small HTTP server of its own (``worker_health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.constants import ENV_API_TOKEN
from statekeeper.errors import ClosedError, StatekeeperError
from statekeeper.http.application import build, uvicorn_server
from statekeeper.http.edge import bound_address, listen, shown
from statekeeper.http.metrics import metrics_operation
from statekeeper.http.models import Health, Ready
from statekeeper.http.operations import Answer, Operation
from statekeeper.http.responses import error_response, model_response

if TYPE_CHECKING:
    from statekeeper.app import App

log = logging.getLogger("statekeeper.http")

DEFAULT_TIMEOUT = 2.0


class Readiness:
    """Whether the process should be sent work: its app is open, its database answers
    a read within ``timeout`` seconds, and ``stopping()`` is false."""

    def __init__(
        self,
        app: App,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.stopping = stopping
        self._said: str | None = None  # the last problem found
        self._logged: str | None = None  # the last database error logged
        self._probing: asyncio.Task[None] | None = None

    async def problem(self) -> tuple[str, str] | None:
        """None when ready, else the code and the message of the 503."""
        found = await self._check()
        if found is None and self._said is not None:
            log.info("ready again")
            self._logged = None
        self._said = None if found is None else found[0]
        return found

    async def _check(self) -> tuple[str, str] | None:
        if self.stopping():
            return "stopping", "the process is shutting down"
        try:
            self.app.backend  # noqa: B018 (raises ClosedError when the app is not open)
        except ClosedError:
            return "closed", "the app is not open"
        return await self._probe()

    async def _probe(self) -> tuple[str, str] | None:
        """Read from the database, waiting at most ``timeout``. A read that does not
        answer is left to finish (or fail) on its own, never awaited, and no second
        one starts while it runs: a hung database cannot hang the probe or pile up
        reads."""
        probing = self._probing
        if probing is None or probing.done():
            probing = self._probing = asyncio.create_task(self._read())
            probing.add_done_callback(_consume)
        done, _ = await asyncio.wait({probing}, timeout=self.timeout)
        if not done:
            reason = f"the database did not answer within {self.timeout:g} s"
            self._log("database_unavailable", reason)
            return "database_unavailable", reason
        error = probing.exception()
        if error is None:
            return None
        code = error.code if isinstance(error, StatekeeperError) else "internal"
        self._log(code, str(error) or type(error).__name__)
        return code, f"the database does not answer ({code}); see the log"

    async def _read(self) -> None:
        await self.app.workflows.list(limit=1)  # one indexed row, through the read path

    def _log(self, code: str, details: str) -> None:
        """Log why the database does not answer, once per change of reason."""
        if details != self._logged:
            self._logged = details
            log.warning(
                "not ready: the database does not answer", extra={"code": code, "error": details}
            )


def _consume(future: asyncio.Task[None]) -> None:
    """Retrieve a finished probe's outcome, so an abandoned one is not reported."""
    if not future.cancelled():
        future.exception()


def health_operations(readiness: Readiness) -> list[Operation]:
    async def healthz(request: Request) -> Response:
        return model_response(Health(status="ok"))

    async def readyz(request: Request) -> Response:
        found = await readiness.problem()
        if found is not None:
            return error_response(503, *found)
        return model_response(Ready(status="ready"))

    return [
        Operation(
            "GET",
            "/healthz",
            healthz,
            "Liveness: the process is up (it checks nothing else)",
            {200: Answer("Up", Health)},
        ),
        Operation(
            "GET",
            "/readyz",
            readyz,
            "Readiness: the app is open, its database answers, it is not shutting down",
            {
                200: Answer("Ready", Ready),
                503: Answer(
                    "Not ready: the code says why (stopping, closed, database_unavailable, "
                    "or the database's error code)"
                ),
            },
        ),
    ]


@contextlib.asynccontextmanager
async def worker_health(
    app: App,
    host: str,
    port: int | None,
    *,
    stopping: Callable[[], bool],
    announce: Callable[[str], None] | None = None,
) -> AsyncIterator[list[tuple[str, int]]]:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` while the block
    runs (nothing when ``port`` is None); yields the addresses served. ``/metrics``
    needs ``STATEKEEPER_API_TOKEN`` when one is set. The port is bound at once, so one in
    use is an AddressInUse error before any work starts."""
    if port is None:
        yield []
        return
    sockets = listen(host, port)
    try:
        readiness = Readiness(app, stopping=stopping)
        operations = [*health_operations(readiness), metrics_operation(app.with_views)]
        server = uvicorn_server(build(operations, token=os.environ.get(ENV_API_TOKEN) or None))
        addresses = [bound_address(sock) for sock in sockets]
        line = "health probes at " + ", ".join(
            f"http://{shown(*address)}/healthz and /readyz (metrics at /metrics)"
            for address in addresses
        )
        log.info(line)
        if announce is not None:
            announce(line)
        serving = asyncio.create_task(server.serve(sockets=sockets))
        try:
            yield addresses
        finally:
            server.should_exit = True
            await serving
    finally:
        for sock in sockets:
            sock.close()
