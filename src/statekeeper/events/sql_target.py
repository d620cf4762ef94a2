"""Projections into another PostgreSQL database: CQRS with the writes on the event store
and the queries on a read database of their own.

    orders = SqlTarget(
        "postgresql://app@reports/readdb",
        tables={"orders": "CREATE TABLE {table} (id text PRIMARY KEY, total numeric)"},
    )

    @app.projection("orders", category="order", target=orders)
    async def project(event, sql):
        await sql.execute(
            f"INSERT INTO {sql.table('orders')} VALUES ($1, $2) "
            "ON CONFLICT (id) DO UPDATE SET total = EXCLUDED.total",
            event.stream, event.data["total"],
        )

Readers query the view ``orders``. Each generation of the projection has tables of its
own (``orders__g1``, ``orders__g2`` after a rebuild) and ``orders`` is a view of the
current one, switched in one transaction when a rebuild has caught up.

A generation's checkpoint is a row of ``statekeeper_projections`` in the read database.
A runner handles events in that database's transaction: it locks the row (``FOR
UPDATE SKIP LOCKED``: while another process holds it, this one handles nothing and
reads the committed position instead), reads the events after it from the event store,
calls the handler for each with ``sql`` bound to the transaction, moves the row on and
commits. The read model and its checkpoint commit together: each event takes effect
once, whatever process is killed when. A batch runs without savepoints; a handler that
fails rolls the batch back, and the events before the failing one are handled again and
committed with the failure recorded (failures in a row counted in the row). After
``retry.max_attempts`` failures the event is parked (``statekeeper_parked_events``) and
the projection moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from statekeeper.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidDatabaseURL,
    StatekeeperError,
    ValidationError,
)
from statekeeper.events.model import RecordedEvent
from statekeeper.events.subscriptions import describe, takes_context, wait_any
from statekeeper.queues.policy import Retry
from statekeeper.storage.postgres_common import translated
from statekeeper.storage.queries import load_text
from statekeeper.storage.subscription_ops import SubscriptionRow
from statekeeper.storage.url import parse

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    from statekeeper.events.projections import Projection, Projections

log = logging.getLogger("statekeeper.events")

# The read database's statements (sql_target.sql beside this module).
Q = load_text(Path(__file__).with_name("sql_target.sql").read_text(encoding="utf-8"), "postgres")
_SETUP_LOCK = 0x736B_7461_7267_6574  # "sktarget": setting up the tables, one at a time
_TABLE = re.compile(r"^[a-z_][a-z0-9_]{0,47}\Z")
# A transaction left idle this long is ended by the read database: a process that
# hangs or is cut off while holding a checkpoint lets the others take over.
IDLE_IN_TRANSACTION = 60.0
# How an unreachable read database is retried (the projection's own ``retry`` is for
# failing handlers).
UNREACHABLE = Retry(max_attempts=1_000_000, initial_interval=0.5, backoff_rate=2.0, max_delay=30.0)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class SqlContext:
    """What a SQL target's handler gets besides its event: the read database's open
    transaction (``execute``, ``executemany``, ``fetch``, ``fetchrow``, ``fetchval``,
    with ``$1``-style arguments) and ``table(name)``, the quoted name of the table this
    generation writes. Everything it does commits with the projection's checkpoint, or
    none of it does; never COMMIT or ROLLBACK here."""

    def __init__(self, conn: PoolConnectionProxy[Any], tables: Mapping[str, str], generation: int):
        self._conn = conn
        self._tables = tables
        self.generation = generation

    def table(self, name: str) -> str:
        """The physical table ``name`` of this generation (``"orders__g2"``), quoted."""
        found = self._tables.get(name)
        if found is None:
            known = ", ".join(sorted(self._tables)) or "none"
            raise ValidationError(f"no table {name!r} in this SQL target (its tables: {known})")
        return found

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        return await self._conn.execute(query, *args, timeout=timeout)

    async def executemany(self, query: str, args: Any, *, timeout: float | None = None) -> None:
        await self._conn.executemany(query, args, timeout=timeout)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]:
        return list(await self._conn.fetch(query, *args, timeout=timeout))

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._conn.fetchrow(query, *args, timeout=timeout)

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        return await self._conn.fetchval(query, *args, timeout=timeout)


class SqlTarget:
    """A projection's read model in a PostgreSQL database of its own (``target=`` of
    ``@app.projection``). ``tables``: logical name -> ``CREATE TABLE {table} (...)``
    (more statements may follow, ``;``-separated; leave indexes unnamed). One target
    serves one projection. The URL takes the options of a database URL (``schema``,
    ``pool_max``, ``connect_timeout``, TLS); a small pool is opened on first use and
    closed with the app."""

    def __init__(self, url: str, *, tables: Mapping[str, str] | None = None) -> None:
        parsed = parse(url)
        if parsed.scheme != "postgres":
            raise InvalidDatabaseURL(
                f"a SQL target is a PostgreSQL database, not {parsed.redacted()!r}"
            )
        self.url = parsed
        self.where = parsed.described()
        self.schema = parsed.options.get("schema")
        self.tables: dict[str, str] = {}
        for name, ddl in (tables or {}).items():
            if not isinstance(name, str) or not _TABLE.match(name):
                raise ConfigurationError(
                    f"SQL target table name {name!r}: a lowercase SQL identifier of at most "
                    "48 characters"
                )
            if not isinstance(ddl, str) or "{table}" not in ddl:
                raise ConfigurationError(
                    f"the statement of SQL target table {name!r} must create {{table}}"
                )
            self.tables[name] = ddl
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._projections: Projections | None = None
        self._bound = ("", "")  # (namespace, projection)

    def __repr__(self) -> str:
        return f"SqlTarget({self.where!r}, tables={sorted(self.tables)!r})"

    def relation(self, name: str) -> str:
        """``name`` quoted, in the target's schema if it has one."""
        return f"{quote(self.schema)}.{quote(name)}" if self.schema else quote(name)

    def physical(self, generation: int) -> dict[str, str]:
        """Each table of generation ``generation``: logical name -> quoted relation."""
        return {name: self.relation(f"{name}__g{generation}") for name in self.tables}

    async def pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                settings = {
                    "idle_in_transaction_session_timeout": str(int(IDLE_IN_TRANSACTION * 1000))
                }
                if self.schema:
                    settings["search_path"] = self.schema
                with translated(f"cannot connect to the projection target {self.where}"):
                    self._pool = await asyncpg.create_pool(
                        self.url.dsn,
                        min_size=1,
                        max_size=self.url.option_int("pool_max", 4),
                        timeout=float(self.url.option_int("connect_timeout", 10)),
                        server_settings=settings,
                    )
        return self._pool

    # --- the Target protocol of projections.py --------------------------------------

    def bind(self, projections: Projections, projection: Projection) -> None:
        """Serve ``projection`` (at its registration): one projection per target."""
        bound = (projections.namespace, projection.name)
        if self._projections is not None and self._bound != bound:
            raise ConfigurationError(
                f"SQL target {self.where} already serves projection {self._bound[1]!r} of "
                f"namespace {self._bound[0]!r}; give each projection a SqlTarget of its own"
            )
        self._projections = projections
        self._bound = bound

    def runner(self, projection: Projection, generation: int) -> SqlRunner:
        return SqlRunner(self, self._bound_projections(), projection, generation)

    def _bound_projections(self) -> Projections:
        if self._projections is None:
            raise ConfigurationError(f"SQL target {self.where} serves no projection")
        return self._projections

    async def switch(self, projection: Projection, generation: int) -> None:
        """Readers' views move to generation ``generation``, all in one transaction."""
        pool = await self.pool()
        with translated(f"cannot switch projection {projection.name!r} in {self.where}"):
            async with pool.acquire() as conn, conn.transaction():
                for name, table in self.physical(generation).items():
                    await self._view(conn, name, table)

    async def _view(self, conn: PoolConnectionProxy[Any], name: str, table: str) -> None:
        view = self.relation(name)
        try:
            async with conn.transaction():  # a savepoint
                await conn.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {table}")
        except asyncpg.PostgresError:  # the new generation's columns differ
            await conn.execute(f"DROP VIEW IF EXISTS {view}")
            await conn.execute(f"CREATE VIEW {view} AS SELECT * FROM {table}")

    async def drop(self, projection: Projection, generation: int) -> None:
        """Drop generation ``generation``: its tables, checkpoint and parked events (a
        table a view still reads is refused: readers never lose theirs)."""
        pool = await self.pool()
        keys = self._keys(projection, generation)
        with translated(f"cannot drop projection {projection.name!r} from {self.where}"):
            async with pool.acquire() as conn, conn.transaction():
                if await _exists(conn, "statekeeper_projections"):
                    await conn.execute(*_bind("target_forget", **keys))
                    await conn.execute(*_bind("target_forget_parked", **keys))
                for table in self.physical(generation).values():
                    await conn.execute(f"DROP TABLE IF EXISTS {table}")

    async def checkpoint(self, projection: Projection, generation: int) -> SubscriptionRow | None:
        """The generation's checkpoint as ``status`` shows it; ``holder`` is the process
        that last moved it."""
        pool = await self.pool()
        with translated(f"cannot read projection {projection.name!r} in {self.where}"):
            async with pool.acquire() as conn:
                if not await _exists(conn, "statekeeper_projections"):
                    return None
                row = await conn.fetchrow(
                    *_bind("target_get", **self._keys(projection, generation))
                )
        if row is None:
            return None
        return SubscriptionRow(
            projection.name, int(row[0]), row[1], None, row[2], int(row[3]), row[4],
            int(row[5]), float(row[6]), float(row[7]),
        )  # fmt: skip

    async def parked(
        self, projection: Projection, generation: int, *, after: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The parked events of a generation, in log order."""
        pool = await self.pool()
        with translated(f"cannot read projection {projection.name!r} in {self.where}"):
            async with pool.acquire() as conn:
                rows = await conn.fetch(
                    *_bind("target_parked", **self._keys(projection, generation), after=after,
                           limit=limit)
                )  # fmt: skip
        return [dict(row) for row in rows]

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10.0)
            except (TimeoutError, OSError, asyncpg.InterfaceError):
                pool.terminate()

    def _keys(self, projection: Projection, generation: int) -> dict[str, Any]:
        namespace = self._bound_projections().namespace
        return {"namespace": namespace, "name": projection.name, "generation": generation}


def _bind(query_name: str, /, **values: Any) -> tuple[Any, ...]:
    """A named query's SQL and its arguments, for ``conn.execute(*_bind(...))``."""
    query = Q[query_name]
    return (query.sql, *query.args(**values))


@dataclass(frozen=True, slots=True)
class _Done:
    """The transaction committed: the checkpoint, and whether more may follow."""

    position: int
    busy: bool


@dataclass(frozen=True, slots=True)
class _Failure:
    """A handler failed on ``event``; the transaction was rolled back."""

    event: RecordedEvent
    error: BaseException


@dataclass(frozen=True, slots=True)
class _Failing:
    """The failure was recorded with the events before it: retry after a pause."""

    position: int
    attempts: int


class _Locked:
    """Another process's transaction holds the checkpoint; rolled back."""


_LOCKED = _Locked()
_Outcome = _Done | _Failure | _Failing | _Locked


class SqlRunner:
    """One generation of a projection into a SQL target (the ``Runner`` protocol)."""

    def __init__(
        self, target: SqlTarget, projections: Projections, projection: Projection, generation: int
    ) -> None:
        self.target = target
        self.projections = projections
        self.projection = projection
        self.generation = generation
        self.options = projection.options
        self.position = 0  # the checkpoint, as this process last knew it
        self._with_context = takes_context(projection.handler)
        self._tables = target.physical(generation)
        self._keys = {"namespace": projections.namespace, "name": projection.name,
                      "generation": generation}  # fmt: skip
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._ready = False
        self._rng = random.Random()

    def _extra(self, **more: Any) -> dict[str, Any]:
        return {"projection": self.projection.name, "generation": self.generation,
                "target": self.target.where, **more}  # fmt: skip

    async def run(self, stopping: asyncio.Event) -> None:
        """Follow the log until ``stopping``; an unreachable target is retried with
        backoff, never fatal."""
        log.info("SQL projection started", extra=self._extra(holder=self.holder))
        unreachable = 0
        while not stopping.is_set():
            wake = self.projections.wake()  # before reading: an append after the read sets it
            try:
                busy = await self.step(stopping)
                unreachable = 0
            except StatekeeperError as error:
                unreachable += 1
                self._ready = False
                delay = UNREACHABLE.delay(unreachable, self._rng)
                log.warning(
                    "SQL projection paused; retrying", exc_info=error,
                    extra=self._extra(attempt=unreachable, retry_in=round(delay, 3)),
                )  # fmt: skip
                await _wait(stopping, delay)
                continue
            if not busy:
                await wait_any(stopping, wake, self.options.poll)

    async def run_until_caught_up(self) -> int:
        """Handle what is in the log now (tests, tools): the checkpoint reached (where
        another process got, while that one holds the checkpoint)."""
        while await self.step():
            pass
        return self.position

    async def step(self, stopping: asyncio.Event | None = None) -> bool:
        """Handle one batch in one transaction; True if there may be more."""
        if not self._ready:
            self._ready = await self._prepare()
            if not self._ready:
                return False
        if await self.projections.events.head() <= self.position:
            return False  # nothing new (the checkpoint only grows)
        known: _Failure | None = None
        while True:
            outcome = await self._attempt(known)
            if isinstance(outcome, _Failure):
                known = outcome  # again, up to it; then record it (it moves back each time)
            elif isinstance(outcome, _Failing):
                self.position = outcome.position
                await _wait(stopping, self.options.retry.delay(outcome.attempts, self._rng))
                return False
            elif isinstance(outcome, _Done):
                self.position = outcome.position
                return outcome.busy
            else:
                return False

    async def _prepare(self) -> bool:
        """Create the checkpoint tables, this generation's tables and checkpoint, and
        the views if this is the current generation; False for a generation already
        replaced (it is being retired: nothing is made again)."""
        row = await self.projections.generations(self.projection.name)
        if self.generation < row.generation:
            return False
        target = self.target
        pool = await target.pool()
        now = self.projections.clock()
        with translated(f"cannot set up projection {self.projection.name!r} in {target.where}"):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(*_bind("target_setup_lock", key=_SETUP_LOCK))
                if target.schema:
                    await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(target.schema)}")
                await conn.execute(Q["target_schema"].sql)
                fresh = await conn.fetchrow(*_bind("target_create", **self._keys, now=now))
                for name, table in self._tables.items():
                    if fresh is not None:  # tables without a checkpoint are leftovers
                        await conn.execute(f"DROP TABLE IF EXISTS {table}")
                    if fresh is not None or not await _exists(conn, table):
                        await conn.execute(target.tables[name].replace("{table}", table))
                    view = target.relation(name)
                    if self.generation == row.generation and not await _exists(conn, view):
                        await conn.execute(f"CREATE VIEW {view} AS SELECT * FROM {table}")
                position = await conn.fetchval(*_bind("target_position", **self._keys))
        self.position = int(position)
        return True

    async def _attempt(self, known: _Failure | None) -> _Outcome:
        """One transaction on the read database (committed unless a handler failed or
        another process holds the checkpoint)."""
        pool = await self.target.pool()
        with translated(f"cannot project {self.projection.name!r} into {self.target.where}"):
            async with pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                try:
                    outcome = await self._batch(conn, known)
                except BaseException:
                    if not _gone(conn):
                        with contextlib.suppress(Exception):
                            await transaction.rollback()
                    raise
                if isinstance(outcome, _Failure | _Locked):
                    await transaction.rollback()
                else:
                    await transaction.commit()
                if isinstance(outcome, _Locked):  # what the other process committed so far
                    found = await conn.fetchval(*_bind("target_position", **self._keys))
                    if found is None:
                        self._ready = False  # dropped meanwhile
                    else:
                        self.position = max(self.position, int(found))
        return outcome

    async def _batch(self, conn: PoolConnectionProxy[Any], known: _Failure | None) -> _Outcome:
        """Lock the checkpoint, handle the events after it (up to ``known``, whose
        failure is then recorded), move the checkpoint on."""
        row = await conn.fetchrow(*_bind("target_lock", **self._keys))
        if row is None:
            return _LOCKED
        position, failing, failures = int(row[0]), row[1], int(row[2])
        if known is not None and known.event.position <= position:
            known = None  # another process got past it meanwhile
        options = self.options
        # As Subscription.step: every position up to the head has committed, so when
        # the category has no more events the checkpoint may move up to it.
        category = options.category is not None and known is None
        head = await self.projections.events.head() if category else 0
        events = await self._read(position)
        handled = position
        sql = SqlContext(conn, self._tables, self.generation)
        for event in events:
            if known is not None and event.position == known.event.position:
                return await self._record(conn, known, handled, failing, failures)
            if options.types is not None and event.type not in options.types:
                handled = event.position
                continue
            try:
                result = self.projection.handler(
                    *((event, sql) if self._with_context else (event,))
                )
                if inspect.isawaitable(result):
                    await result
            except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
                raise
            except BaseException as error:
                if _gone(conn):  # the database went away: not the event's fault
                    raise DatabaseUnavailable(
                        f"lost the connection to {self.target.where}"
                    ) from error
                return _Failure(event, error)
            handled = event.position
        full = len(events) == options.batch
        if not full and head > handled:
            handled = head
        if handled != position:
            now = self.projections.clock()
            await conn.execute(
                *_bind(
                    "target_advance", **self._keys, position=handled, holder=self.holder, now=now
                )
            )
        return _Done(handled, full)

    async def _record(
        self,
        conn: PoolConnectionProxy[Any],
        known: _Failure,
        handled: int,
        failing: int | None,
        failures: int,
    ) -> _Outcome:
        """``known`` failed once more (after the events before it, handled up to
        ``handled``): record it, or park it when its attempts are spent."""
        event, error = known.event, known.error
        attempts = failures + 1 if failing == event.position else 1
        text = describe(error)
        now = self.projections.clock()
        log.error(
            "SQL projection handler failed", exc_info=error,
            extra=self._extra(position=event.position, event_type=event.type, attempt=attempts),
        )  # fmt: skip
        if attempts < self.options.retry.max_attempts:
            await conn.execute(*_bind("target_fail", **self._keys, position=handled,
                                      holder=self.holder, now=now, failing=event.position,
                                      failures=attempts, error=text))  # fmt: skip
            return _Failing(handled, attempts)
        await conn.execute(*_bind("target_park", **self._keys, position=event.position,
                                  event_id=event.id, event_type=event.type, stream=event.stream,
                                  error=text, attempts=attempts, now=now))  # fmt: skip
        await conn.execute(*_bind("target_parked_advance", **self._keys, position=event.position,
                                  holder=self.holder, now=now, error=text))  # fmt: skip
        log.error("event parked", extra=self._extra(position=event.position, attempts=attempts))
        return _Done(event.position, True)

    async def _read(self, after: int) -> list[RecordedEvent]:
        events, options = self.projections.events, self.options
        if options.category is not None:
            return await events.read_category(options.category, after=after, limit=options.batch)
        return await events.read_all(after=after, limit=options.batch)


def _gone(conn: PoolConnectionProxy[Any]) -> bool:
    """Whether the connection was lost (the pool takes a lost one back at once)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


async def _exists(conn: PoolConnectionProxy[Any], relation: str) -> bool:
    return bool(await conn.fetchval(*_bind("target_exists", relation=relation)))


async def _wait(stopping: asyncio.Event | None, delay: float) -> None:
    """Sleep ``delay`` seconds, or less if ``stopping`` is set."""
    if stopping is None:
        await asyncio.sleep(delay)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), delay)
