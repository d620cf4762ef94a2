"""The supervisor: owns a process's background services, starts them in order and
stops them together under one grace period.

A service is anything with ``name`` and ``async run(stopping)``: it works until the
``stopping`` event is set, then finishes (or gives back) what it has in hand and
returns. The app's upkeep, the worker (consumers and workflow runner) and the HTTP
server are services; so will be the scheduler, projectors and the gRPC server.

    supervisor = Supervisor(grace=30)
    supervisor.start(upkeep)
    supervisor.start(worker)
    supervisor.stop()          # on SIGTERM: every service stops taking work
    await supervisor.wait()    # ... and has finished, or was cancelled after the grace

A service that fails (its ``run`` raises) is logged with its traceback and stops the
others, as does one that returns before it was stopped: a process that lost a part
of itself says so and exits rather than limping on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger("statekeeper.runtime")

# Beyond the grace: how long a service may take to give back what it cancelled. The
# services' own drains wait the grace and then SETTLE: the supervisor waits twice that.
SETTLE = 5.0


class Service(Protocol):
    @property
    def name(self) -> str: ...

    async def run(self, stopping: asyncio.Event) -> None: ...


class Supervisor:
    def __init__(self, *, grace: float = 30.0) -> None:
        self.grace = grace
        self._stopping = asyncio.Event()
        self._running: list[tuple[Service, asyncio.Task[None]]] = []
        self.failure: BaseException | None = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stopping_event(self) -> asyncio.Event:
        """The event ``stop`` sets (what waits for the stop, as a live stream, awaits it)."""
        return self._stopping

    @property
    def services(self) -> list[str]:
        return [service.name for service, _ in self._running]

    def start(self, service: Service) -> None:
        """Run ``service`` until the supervisor stops (nothing, once it is stopping: a
        SIGTERM during start-up ends the process cleanly)."""
        if self.stopping:
            log.info("not started: stopping", extra={"service": service.name})
            return
        task = asyncio.create_task(self._supervise(service), name=f"statekeeper:{service.name}")
        self._running.append((service, task))

    async def _supervise(self, service: Service) -> None:
        log.debug("service started", extra={"service": service.name})
        try:
            await service.run(self._stopping)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.error(
                "service failed; stopping the others", exc_info=error,
                extra={"service": service.name},
            )  # fmt: skip
            self._failed(error)
            return
        finally:
            if not self.stopping:  # ended, failed or was cancelled on its own
                self._failed(RuntimeError(f"service {service.name!r} ended unexpectedly"))
                log.error(
                    "service ended before it was stopped; stopping the others",
                    extra={"service": service.name},
                )
        log.debug("service stopped", extra={"service": service.name})

    def _failed(self, error: BaseException) -> None:
        if self.failure is None:
            self.failure = error
        self.stop()

    def stop(self) -> None:
        """Every service stops taking work (idempotent; safe from a signal handler)."""
        self._stopping.set()

    async def wait(self) -> None:
        """Until the supervisor is stopped (``stop``, or a service ending), then until
        every service has returned (see ``close``)."""
        await self._stopping.wait()
        await self.close()

    async def close(self) -> None:
        """Stop every service and wait for them, the last started first, within the grace
        (and twice SETTLE seconds more for what is cancelled to be given back)."""
        self.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace + 2 * SETTLE
        for service, task in reversed(self._running):
            if task.done():
                continue
            _, late = await asyncio.wait([task], timeout=max(0.0, deadline - loop.time()))
            if late:
                log.warning(
                    "service did not stop within the grace; cancelled",
                    extra={"service": service.name, "grace": self.grace},
                )
                task.cancel()
                await asyncio.wait([task], timeout=SETTLE)
        self._running = [(s, t) for s, t in self._running if not t.done()]
