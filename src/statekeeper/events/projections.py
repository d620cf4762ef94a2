"""Projections: read models kept up to date from the event log by a subscription.

    @app.projection("orders", category="order")
    async def orders(event, view):
        if event.type == "Placed":
            view.put(event.stream, {"total": event.data["total"], "status": "placed"})

    await app.projections.read_model("orders").get("order-42")

A projection's read model lives in the state store under a prefix of its own and of
its generation (``projections/<name>/<generation>/``), or in a separate SQL database
(``target=``, see ``events/sql_target.py``). Its subscription commits the handler's
writes with its checkpoint, so each event takes effect once. ``rebuild`` replays the
whole log into the next generation while readers keep the current one; when the new
generation has caught up, readers switch to it in one write, and the old generation
is dropped a grace period later: no downtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from statekeeper.constants import INTERNAL_QUEUE_PREFIX
from statekeeper.errors import (
    ConfigurationError,
    ProjectionBusy,
    StatekeeperError,
    SubscriptionNotFound,
)
from statekeeper.events.store import EventStore
from statekeeper.events.subscriptions import Handler, Options, Subscription
from statekeeper.storage import Storage
from statekeeper.storage.subscription_ops import ProjectionRow, SubscriptionRow

log = logging.getLogger("statekeeper.events")

# How long an old generation's read model stays after readers moved on (readers that
# looked up the generation just before the switch finish on it).
RETIRE_AFTER = 60.0
_GENERATION_TTL = 1.0  # readers look the generation up at most this often
RETIRE_DEPTH = 10  # how many generations back a Projector looks for leftovers


class Runner(Protocol):
    """What runs one generation of a projection: a Subscription, or a SQL target's."""

    position: int

    async def run(self, stopping: asyncio.Event) -> None: ...

    async def run_until_caught_up(self) -> int: ...


class Target(Protocol):
    """A read model's home other than the state store (a SQL database), keeping each
    generation's checkpoint itself."""

    def bind(self, projections: Projections, projection: Projection) -> None:
        """Serve ``projection`` of ``projections`` (called when it is registered)."""

    def runner(self, projection: Projection, generation: int) -> Runner: ...

    async def checkpoint(self, projection: Projection, generation: int) -> SubscriptionRow | None:
        """The generation's checkpoint (position, failures, parked), as status shows it."""

    async def switch(self, projection: Projection, generation: int) -> None: ...

    async def drop(self, projection: Projection, generation: int) -> None: ...

    async def close(self) -> None: ...


@dataclass
class Projection:
    name: str
    handler: Handler
    options: Options
    target: Target | None = None
    runners: dict[int, Runner] = field(default_factory=dict)

    def prefix(self, generation: int) -> str:
        """Where generation ``generation`` of the read model lives in the state store."""
        return f"projections/{self.name}/{generation}/"

    def subscription(self, generation: int) -> str:
        """The subscription that feeds generation ``generation``."""
        return f"{INTERNAL_QUEUE_PREFIX}projection.{self.name}.{generation}"


class ReadModel:
    """A projection's current generation, read from the state store."""

    def __init__(self, projections: Projections, name: str) -> None:
        self._projections = projections
        self.name = name
        self._generation: tuple[int, float] | None = None

    async def _prefix(self) -> str:
        clock = self._projections.clock
        cached = self._generation
        if cached is None or clock() - cached[1] > _GENERATION_TTL:
            row = await self._projections.generations(self.name)
            cached = self._generation = (row.generation, clock())
        return self._projections.get(self.name).prefix(cached[0])

    async def get(self, key: str, default: Any = None) -> Any:
        item = await self._projections.writer().get(await self._prefix() + key)
        return default if item is None else item.value

    async def list(self, prefix: str = "", *, limit: int = 100) -> list[tuple[str, Any]]:
        """Up to ``limit`` (key, value) pairs whose keys start with ``prefix``."""
        base = await self._prefix()
        page = await self._projections.writer().list(base + prefix, limit=limit)
        return [(item.key[len(base) :], item.value) for item in page.items]


class Projections:
    """The projections of one namespace: registry, status, rebuilds, and the service
    that runs them (``service()``)."""

    def __init__(
        self,
        backend: Callable[[], Storage],
        events: EventStore,
        writer: Callable[[], Any],
        wake: Callable[[], asyncio.Event],
        outbox: Callable[[str], Any] | None,
        clock: Callable[[], float],
    ) -> None:
        self._backend = backend
        self.events = events
        self.writer = writer
        self.wake = wake
        self._outbox = outbox
        self.clock = clock
        self.registered: dict[str, Projection] = {}
        self.subscriptions: dict[str, Subscription] = {}  # plain ones (``app.subscription``)

    @property
    def namespace(self) -> str:
        return self.events.namespace

    def register(
        self, name: str, handler: Handler, options: Options, target: Target | None
    ) -> Projection:
        if name in self.registered:
            raise ConfigurationError(f"projection {name!r} is already registered")
        projection = Projection(name, handler, options, target)
        if target is not None:
            target.bind(self, projection)
        self.registered[name] = projection
        return projection

    def subscribe(self, name: str, handler: Handler, options: Options) -> Subscription:
        """A plain subscription: its handler's state writes use keys as they are."""
        if name in self.subscriptions:
            raise ConfigurationError(f"subscription {name!r} is already registered")
        made = Subscription(
            name, handler, backend=self._backend, events=self.events, writer=self.writer,
            wake=self.wake, outbox=self._outbox, options=options, clock=self.clock,
        )  # fmt: skip
        self.subscriptions[name] = made
        return made

    def get(self, name: str) -> Projection:
        found = self.registered.get(name)
        if found is None:
            raise SubscriptionNotFound(f"no projection {name!r} is registered", projection=name)
        return found

    def read_model(self, name: str) -> ReadModel:
        self.get(name)
        return ReadModel(self, name)

    async def generations(self, name: str) -> ProjectionRow:
        return await self._backend().subscriptions.projection(self.namespace, name, self.clock())

    def runner(self, projection: Projection, generation: int) -> Runner:
        """The runner of a generation that this process's Projector keeps."""
        found = projection.runners.get(generation)
        if found is None:
            found = projection.runners[generation] = self._runner(projection, generation)
        return found

    def _runner(self, projection: Projection, generation: int) -> Runner:
        """A new runner of a generation: its own lease token, so that a catch-up beside
        the Projector competes for the lease like another process."""
        if projection.target is not None:
            made = projection.target.runner(projection, generation)
        else:
            made = Subscription(
                projection.subscription(generation), projection.handler,
                backend=self._backend, events=self.events, writer=self.writer, wake=self.wake,
                outbox=self._outbox, options=projection.options,
                prefix=projection.prefix(generation), clock=self.clock,
            )  # fmt: skip
        return made

    async def catch_up(self, name: str) -> int:
        """Bring the current generation (and one being built) up to the log's end now;
        the current generation's checkpoint (tests, tools, the CLI)."""
        projection = self.get(name)
        row = await self.generations(name)
        if row.building is not None:
            await self._runner(projection, row.building).run_until_caught_up()
            await self.finish_build(projection, row.building)
            row = await self.generations(name)
        return await self._runner(projection, row.generation).run_until_caught_up()

    async def rebuild(self, name: str) -> int:
        """Start replaying the whole log into the next generation; its number. Readers
        stay on the current one until the new one has caught up."""
        self.get(name)
        row = await self.generations(name)
        if row.building is not None:
            raise ProjectionBusy(
                f"projection {name!r} is already rebuilding generation {row.building}"
            )
        # Generation numbers only grow: nothing of ``building`` exists unless a racing
        # rebuild made it, and then the claim below fails.
        building = row.generation + 1
        storage = self._backend().subscriptions
        if not await storage.start_build(self.namespace, name, building, self.clock()):
            raise ProjectionBusy(f"projection {name!r} is already rebuilding")
        log.info("projection rebuild started", extra={"projection": name, "generation": building})
        return building

    async def finish_build(self, projection: Projection, building: int) -> bool:
        """Switch readers to ``building`` if it has caught up with the log (its stored
        checkpoint: whichever process built it)."""
        if projection.target is not None:
            found = await projection.target.checkpoint(projection, building)
        else:
            found = await self._backend().subscriptions.get(
                self.namespace, projection.subscription(building)
            )
        position = found.position if found else 0
        if position < await self.events.head():
            return False
        if projection.target is not None:
            await projection.target.switch(projection, building)
        storage = self._backend().subscriptions
        if not await storage.switch(self.namespace, projection.name, building, self.clock()):
            return False
        log.info(
            "projection switched to its new generation",
            extra={"projection": projection.name, "generation": building},
        )
        return True

    async def status(self, name: str) -> dict[str, Any]:
        """Generation, checkpoint, lag (events not yet handled), failures and parked
        events of a projection."""
        projection = self.get(name)
        row = await self.generations(name)
        head = await self.events.head()
        storage = self._backend().subscriptions
        out: dict[str, Any] = {"name": name, "generation": row.generation,
                               "building": row.building, "head": head}  # fmt: skip
        for label, generation in (("current", row.generation), ("rebuild", row.building)):
            if generation is None:
                continue
            if projection.target is not None:
                found = await projection.target.checkpoint(projection, generation)
            else:
                found = await storage.get(self.namespace, projection.subscription(generation))
            position = found.position if found else 0
            out[label] = {
                "position": position, "lag": max(0, head - position),
                "holder": found.holder if found else None,
                "failing_position": found.failing_position if found else None,
                "failures": found.failures if found else 0,
                "last_error": found.last_error if found else None,
                "parked": found.parked if found else 0,
            }  # fmt: skip
        return out

    async def retire_older(self, projection: Projection, generation: int) -> None:
        """Retire what is left of the generations before ``generation``."""
        storage = self._backend().subscriptions
        for old in range(generation - 1, max(0, generation - RETIRE_DEPTH), -1):
            if projection.target is not None:
                left = await projection.target.checkpoint(projection, old)
            else:
                left = await storage.get(self.namespace, projection.subscription(old))
            if left is not None:
                await self.retire(projection, old)

    async def retire(self, projection: Projection, generation: int) -> None:
        """Drop an old generation: its read model and its subscription."""
        if projection.target is not None:
            await projection.target.drop(projection, generation)
        else:
            writer = self.writer()
            prefix = projection.prefix(generation)
            while True:
                page = await writer.list(prefix, limit=500)
                if not page.items:
                    break
                async with writer.transaction() as tx:
                    for item in page.items:
                        tx.delete(item.key)
        await self._backend().subscriptions.delete(
            self.namespace, projection.subscription(generation)
        )
        projection.runners.pop(generation, None)

    async def close(self) -> None:
        """Close the projections' targets (their connections), as the app closes."""
        closed: set[int] = set()
        for projection in self.registered.values():
            target = projection.target
            if target is not None and id(target) not in closed:
                closed.add(id(target))
                await target.close()

    def service(self, *, check: float = 2.0) -> Projector:
        return Projector(self, check)


class Projector:
    """The service that runs every projection of a namespace (``statekeeper worker`` and
    ``serve``): each current generation, each generation being rebuilt, the switch when
    a rebuild catches up, and the old generation's removal after RETIRE_AFTER."""

    def __init__(self, projections: Projections, check: float) -> None:
        self.projections = projections
        self.check = check
        self.name = f"projector:{projections.namespace}"
        self._retire_check = 0.0  # when to look for old generations to retire next

    async def run(self, stopping: asyncio.Event) -> None:
        running: dict[tuple[str, int], asyncio.Task[None]] = {}
        try:
            while not stopping.is_set():
                try:
                    await self._tend(stopping, running)
                except StatekeeperError as error:  # the database is away: try again later
                    log.warning("projector paused", exc_info=error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.check)
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def _tend(
        self, stopping: asyncio.Event, running: dict[tuple[str, int], asyncio.Task[None]]
    ) -> None:
        """Start what should run, switch rebuilt generations, retire old ones."""
        projections = self.projections
        retire_now = projections.clock() >= self._retire_check
        if retire_now:
            self._retire_check = projections.clock() + RETIRE_AFTER / 4
        for name, subscription in projections.subscriptions.items():
            key = (f"subscription:{name}", 0)
            task = running.get(key)
            if task is not None and task.done() and not task.cancelled():
                failure = task.exception()
                if failure is not None:
                    log.error("subscription failed; restarting", exc_info=failure,
                              extra={"subscription": name})  # fmt: skip
            if task is None or task.done():
                running[key] = asyncio.create_task(subscription.run(stopping))
        for projection in projections.registered.values():
            row = await projections.generations(projection.name)
            wanted = {row.generation} | ({row.building} if row.building else set())
            for generation in wanted:
                key = (projection.name, generation)
                task = running.get(key)
                if task is not None and task.done() and not task.cancelled():
                    failure = task.exception()
                    if failure is not None:
                        log.error("projection runner failed; restarting", exc_info=failure,
                                  extra={"projection": projection.name})  # fmt: skip
                if task is None or task.done():
                    runner = projections.runner(projection, generation)
                    running[key] = asyncio.create_task(runner.run(stopping))
            if row.building is not None:
                await projections.finish_build(projection, row.building)
            for (name, generation), task in list(running.items()):
                if name == projection.name and generation not in wanted:
                    task.cancel()
                    del running[(name, generation)]
            # Readers moved to this generation at updated_at (the switch): older ones go
            # RETIRE_AFTER later, retired by whichever Projector sees it first.
            settled = projections.clock() - row.updated_at >= RETIRE_AFTER
            if row.building is None and row.generation > 1 and retire_now and settled:
                await projections.retire_older(projection, row.generation)
