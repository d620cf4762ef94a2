"""The PostgreSQL adapter: an asyncpg pool, one round trip per operation.

Single puts, gets and deletes are one prepared statement in autocommit (one round
trip); PostgreSQL groups concurrent commits in its own WAL flush. A unit of work is one
statement too (``sk_commit``). The driver was chosen by measurement:
docs/decisions/0001-postgres-driver.md. The operations are written once over these
primitives (``state_ops``, ``queue_ops``, ...).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import asyncpg

from statekeeper.errors import AlreadyTracked, ConflictError, DatabaseUnavailable, LeaseLost
from statekeeper.observability import metrics
from statekeeper.storage import migrations
from statekeeper.storage.blocks import Blocks
from statekeeper.storage.postgres_common import (
    DRIVER_ERRORS,
    TCP_USER_TIMEOUT,
    connect_waiting,
    translated,
)
from statekeeper.storage.postgres_maintenance import TableKeeper
from statekeeper.storage.postgres_notify import Notifier
from statekeeper.storage.queries import Dialect, load
from statekeeper.storage.rows import (
    Duplicate,
    Maintenance,
    NewMessage,
    PreparedBlob,
    UnitOfWork,
    UnitResult,
)
from statekeeper.storage.runner import (
    IN_ORDER,
    SCAN_TIMEOUT,
    Scripted,
    Statement,
    scan_too_slow,
    shape,
)
from statekeeper.storage.translate import postgres_error
from statekeeper.storage.unit import (
    ack_statement,
    already_tracked,
    append_statement,
    blob_rows,
    check_outbox,
    commit_statement,
    entity_statement,
    events_statement,
    has_events,
    is_empty,
    only_a_step,
    only_an_ack,
    only_an_entity,
    only_appends,
    postgres_conflict,
    start_statement,
    step_statement,
    unit_blobs,
    version_conflict,
)
from statekeeper.storage.url import DatabaseURL

Q = load("postgres")


class _NotApplied(Exception):
    """A lease or fence lost inside a transaction: roll all of it back."""


def _count(status: str) -> int:
    """The row count of a command status such as ``DELETE 3``."""
    return int(status.split()[-1])


async def _skip_reset(conn: asyncpg.Connection) -> None:
    """Pooled connections are handed back as they are.

    asyncpg's default reset costs a round trip on every release (unlock advisory
    locks, close cursors, UNLISTEN, RESET ALL). Pooled connections here never
    take session locks, LISTEN, SET or hold cursors (LISTEN and migration locks
    use connections of their own), and asyncpg still rolls back a transaction
    left open. Measured in docs/decisions/0001-postgres-driver.md.
    """


class PostgresBackend(Blocks):
    """Storage in a PostgreSQL database (optionally in its own schema)."""

    dialect: Dialect = "postgres"
    queries = Q
    scan_timeout = SCAN_TIMEOUT  # seconds a state query may read (``run_scan``)

    def __init__(
        self, url: DatabaseURL, *, fresh_schema: bool = True, read_only: bool = False
    ) -> None:
        self._url = url
        self._read_only = read_only  # a standby (storage/replica.py): no migration
        self._dsn = url.dsn
        self.schema = url.options.get("schema")
        self._pool_min = url.option_int("pool_min", 2)
        self._pool_max = url.option_int("pool_max", 16)
        self._timeout = float(url.option_int("connect_timeout", 10))
        self._connect = partial(
            connect_waiting,
            tcp_user_timeout=int(url.options.get("tcp_user_timeout", TCP_USER_TIMEOUT)),
        )
        self._fresh_schema = fresh_schema
        self._pool: asyncpg.Pool | None = None
        self._notifier = Notifier(self._connect_listener, lambda: self.pool)
        self._keeper = TableKeeper()
        self._attach_blocks(self, self)

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else {}
        where = self._url.redacted()
        if not self._read_only:
            try:
                conn = await self._connect(self._dsn, timeout=self._timeout)
            except DRIVER_ERRORS as exc:
                error = postgres_error(exc, f"cannot connect to PostgreSQL at {where}")
                raise error from exc
            try:
                with translated(f"cannot migrate the schema of {where}"):
                    await self._migrate(conn)
            finally:
                await conn.close()
        with translated(f"cannot connect to PostgreSQL at {where}"):
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._pool_min,
                max_size=self._pool_max,
                timeout=self._timeout,
                server_settings=settings,
                reset=_skip_reset,
                connect=self._connect,
            )

    async def _connect_listener(self) -> asyncpg.Connection:
        settings = {"search_path": self.schema} if self.schema else {}
        conn: asyncpg.Connection = await self._connect(
            self._dsn, timeout=self._timeout, server_settings=settings
        )
        return conn

    async def maintain(self) -> Maintenance:
        done: Maintenance = await self._keeper.maintain(self.pool)
        return done

    def listen(self, callback: Callable[[str, str], None]) -> None:
        self._notifier.listen(callback)

    def announce(self, namespace: str, queue: str) -> None:
        self._notifier.announce(namespace, queue)

    async def wait_listening(self) -> None:
        """Until this process hears other processes' announcements (tests, tools);
        callers bound it with asyncio.timeout."""
        await self._notifier.listening.wait()

    async def close(self) -> None:
        await self._notifier.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseUnavailable("the PostgreSQL backend is not open")
        return self._pool

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            # Held until COMMIT: concurrent start-ups migrate one after another.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", migrations.POSTGRES_LOCK_ID)
            if self.schema:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {migrations.MIGRATIONS_TABLE} ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at DOUBLE PRECISION NOT NULL)"
            )
            rows = await conn.fetch(f"SELECT version FROM {migrations.MIGRATIONS_TABLE}")
            scripts, pending = migrations.plan(
                "postgres", {row[0] for row in rows}, self._fresh_schema
            )
            for script in scripts:
                await conn.execute(script)
            await conn.executemany(
                f"INSERT INTO {migrations.MIGRATIONS_TABLE} VALUES ($1, $2, $3)",
                [(m.version, m.name, time.time()) for m in pending],
            )

    # --- the statement primitives of the shared operations (storage/runner.py) ----------

    async def run_write(self, statement: Statement, what: str, mode: str) -> Any:
        """One statement through the pool; ``mode``: rowcount, found, first or row."""
        if mode == "rowcount":
            return _count(await self._run("execute", statement, what))
        return shape(await self._run("fetchrow", statement, what), mode)

    async def run_atomic(self, script: Sequence[Scripted], what: str) -> list[Any] | None:
        """Statements in one transaction on one connection; a required statement that
        finds no row rolls it back, and the answer is None."""
        if len(script) == 1 and script[0][1] != "many":  # a statement: its own transaction
            ((statement, mode, required),) = script
            result = await self.run_write(statement, what, mode)
            return None if required and result in (None, False) else [result]
        with translated(what):
            async with self.pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()
                results: list[Any] = []
                try:
                    for (sql, args), mode, required in script:
                        if mode == "many":  # one statement over many argument tuples
                            await conn.executemany(sql, args)
                            results.append(len(args))
                            continue
                        if mode == "rowcount":
                            results.append(_count(await conn.execute(sql, *args)))
                            continue
                        row = await conn.fetchrow(sql, *args)
                        if required and row is None:
                            await transaction.rollback()
                            return None
                        results.append(shape(row, mode))
                except BaseException:
                    await transaction.rollback()
                    raise
                await transaction.commit()
                return results

    async def run_many(
        self, statement: Statement, what: str, *, write: bool = False
    ) -> list[tuple[Any, ...]]:
        rows = await self._run("fetch", statement, what)
        return [tuple(row) for row in rows]

    async def run_scan(self, statement: Statement, what: str) -> list[tuple[Any, ...]]:
        sql, args = statement
        with translated(what):
            try:  # on timeout asyncpg cancels the statement in the server
                rows = await self.pool.fetch(sql, *args, timeout=self.scan_timeout)
            except TimeoutError:
                raise scan_too_slow(self.scan_timeout) from None
        return [tuple(row) for row in rows]

    async def run_in_order(self, statement: Statement, what: str) -> list[tuple[Any, ...]]:
        sql, args = statement
        with translated(what):
            async with self.pool.acquire() as conn, conn.transaction(readonly=True):
                await conn.execute(IN_ORDER)  # for this transaction only
                rows = await conn.fetch(sql, *args)
        return [tuple(row) for row in rows]

    async def run_read(self, statement: Statement, what: str, mode: str) -> Any:
        return await self.run_write(statement, what, mode)

    async def _run(self, method: str, statement: Statement, what: str) -> Any:
        """One statement through the pool: ``method`` is fetch, fetchrow, fetchval or execute."""
        sql, args = statement
        began = time.perf_counter()
        try:
            with translated(what):
                try:
                    return await getattr(self.pool, method)(sql, *args)
                except asyncpg.exceptions.InternalClientError:
                    # A connection its server's crash left in a broken state: open
                    # new ones rather than meet it again.
                    await self.pool.expire_connections()
                    raise
        finally:
            metrics.round_trip("postgres", "statement", time.perf_counter() - began)

    async def read_row(self, statement: Statement, what: str) -> Any:
        return await self._run("fetchrow", statement, what)

    # --- what differs: sending, and the unit of work -------------------------------------

    async def send_messages(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]:
        with translated("cannot enqueue"):
            if any(m.blob is not None for m in messages):  # bodies out of line: their blobs too
                async with self.pool.acquire() as conn, conn.transaction():
                    blobs = [m.blob for m in messages if m.blob is not None]
                    await self._insert_blobs(conn, blobs, now)
                    return [await self._send_one(conn, namespace, m, now) for m in messages]
            if len(messages) == 1:
                return [await self._send_one(self.pool, namespace, messages[0], now)]
            if all(m.dedup_id is None for m in messages):  # one statement for them all
                await self.pool.execute(*self._send_many(namespace, messages, now))
                return [None] * len(messages)
            async with self.pool.acquire() as conn, conn.transaction():
                return [await self._send_one(conn, namespace, m, now) for m in messages]

    def _send_many(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> tuple[Any, ...]:
        query = Q["queue_send_many"]
        args = query.args(
            namespace=namespace, now=now, m_ids=[m.id for m in messages],
            m_queues=[m.queue for m in messages], m_bodies=[m.body for m in messages],
            m_attributes=[m.attributes for m in messages],
            m_correlation_ids=[m.correlation_id for m in messages],
            m_groups=[m.group_id for m in messages],
            m_available=[m.available_at for m in messages],
            m_reply_to=[m.reply_to for m in messages],
        )  # fmt: skip
        return (query.sql, *args)

    async def _send_one(
        self, db: Any, namespace: str, m: NewMessage, now: float
    ) -> Duplicate | None:
        """One message, on a pool or a connection; the message it duplicates, if it does."""
        values = {
            "id": m.id, "namespace": namespace, "queue": m.queue, "body": m.body,
            "attributes": m.attributes, "correlation_id": m.correlation_id,
            "group_id": m.group_id, "available_at": m.available_at, "now": now,
            "reply_to": m.reply_to,
        }  # fmt: skip
        if m.dedup_id is None:
            await db.execute(Q["queue_send"].sql, *Q["queue_send"].args(**values))
            return None
        query = Q["queue_send_dedup"]
        row = await db.fetchrow(query.sql, *query.args(
            dedup_id=m.dedup_id, dedup_expires_at=m.dedup_expires_at,
            fingerprint=m.fingerprint, **values,
        ))  # fmt: skip
        if row[0] is not None:
            return None
        if row[1] is None:  # the winning claim committed after this statement's snapshot
            holder = Q["queue_dedup_holder"]
            found = await db.fetchrow(holder.sql, *holder.args(
                namespace=namespace, queue=m.queue, dedup_id=m.dedup_id
            ))  # fmt: skip
            return Duplicate(str(found[0]), found[1])
        return Duplicate(str(row[1]), row[2])

    async def _insert_blobs(self, conn: Any, blobs: Sequence[PreparedBlob], now: float) -> None:
        """In a transaction: payloads stored out of line, before the rows referring to
        them."""
        for blob in blobs:
            row, (sql, chunks) = blob_rows(Q, blob, now)
            await conn.execute(row[0], *row[1])
            await conn.executemany(sql, chunks)

    async def commit(self, unit: UnitOfWork) -> UnitResult:
        began = time.perf_counter()
        try:
            if unit.entity is not None:
                return await self._commit_entity(unit)
            if unit.starts or unit_blobs(unit):
                return await self._commit_with_starts(unit)
            return await self._commit_on(self.pool, unit)
        finally:
            metrics.round_trip("postgres", "commit", time.perf_counter() - began)

    async def _commit_with_starts(self, unit: UnitOfWork) -> UnitResult:
        """A unit that starts workflows: their rows and the rest in one transaction."""
        try:
            with translated("cannot commit"):
                async with self.pool.acquire() as conn, conn.transaction():
                    done = await self._starts_then_rest(conn, unit)
        except _NotApplied:
            return UnitResult(False)
        return done

    async def _starts_then_rest(self, conn: Any, unit: UnitOfWork) -> UnitResult:
        """In a transaction: the blobs of its payloads stored out of line, the unit's
        workflow starts, then the rest of it (without an entity); _NotApplied (rolling
        it back) when a lease or fence was lost."""
        await self._insert_blobs(conn, unit_blobs(unit), unit.now)
        started: list[bool] = []
        for start in unit.starts:
            sql, args = start_statement(Q, unit.namespace, unit.now, start)
            started.append(await conn.fetchval(sql, *args) is not None)  # (created)
        rest = replace(unit, starts=())
        if is_empty(rest):
            return UnitResult(True, started=started)
        done = await self._commit_on(conn, rest)
        if not done.applied:
            raise _NotApplied
        return replace(done, started=started)

    async def _commit_entity(self, unit: UnitOfWork) -> UnitResult:
        """A unit with an entity commit: alone, one statement; with more (messages, a
        step...), the entity's statement first and then the rest, in one transaction."""
        sql, args = entity_statement(Q, unit)
        if only_an_entity(unit):
            with translated("cannot commit"):
                row = await self.pool.fetchrow(sql, *args)
            if row is None:
                return UnitResult(False)
            return UnitResult(True, entity_version=row[0], entity_token=row[1])
        rest = replace(unit, entity=None)
        try:
            with translated("cannot commit"):
                async with self.pool.acquire() as conn, conn.transaction():
                    row = await conn.fetchrow(sql, *args)
                    if row is None:
                        raise _NotApplied
                    done = await self._starts_then_rest(conn, rest)
        except _NotApplied:
            return UnitResult(False)
        return replace(done, entity_version=row[0], entity_token=row[1])

    async def _commit_on(self, db: Any, unit: UnitOfWork) -> UnitResult:
        """The unit (without an entity) on ``db``: the pool, or a connection in a
        transaction."""
        step = only_a_step(unit)
        if step is not None:  # a checkpoint: the common case, in a plain statement
            sql, args = step_statement(Q, unit.namespace, unit.now, step)
            with translated("cannot commit"):
                row = await db.fetchrow(sql, *args)
            assert row is not None  # one row, NULL when the lease is lost
            request = row[0]  # the workflow's request (a cancel, a pause); NULL: lease lost
            return UnitResult(False) if request is None else UnitResult.of_step(request)
        ack = only_an_ack(unit)
        if ack is not None:  # an acknowledgement: the common case, in a plain statement
            sql, args = ack_statement(Q, unit.now, ack)
            with translated("cannot commit"):
                acked = await db.fetchval(sql, *args)
            return UnitResult(bool(acked))
        check_outbox(unit)
        try:
            if only_appends(unit):  # appends alone: sk_events_append in a plain statement
                sql, args = append_statement(Q, unit)
                with translated("cannot append"):
                    found = await db.fetchrow(sql, *args)
                assert found is not None
                return UnitResult(True, [], False, found[0], list(found[1]))
            events = has_events(unit)
            sql, args = events_statement(Q, unit) if events else commit_statement(Q, unit)
            with translated("cannot commit"):
                row = await db.fetchrow(sql, *args)
        except LeaseLost:  # SK410: the lease or fence is no longer held; nothing applied
            return UnitResult(False)
        except AlreadyTracked as error:  # SK413: a tracking position not moving up
            assert unit.checkpoint is not None
            raise already_tracked(unit.checkpoint) from error
        except ConflictError as error:
            code = error.details.get("driver_code")
            if code == "SK411":  # sk_events_append: a wrong expected version
                raise version_conflict(unit, error) from error
            if code in ("SK409", "SK412"):  # from sk_state_apply
                raise postgres_conflict(unit, error) from error
            raise
        assert row is not None  # the function returns one row
        asked = UnitResult.of_step(row[0] or 0, list(row[1] or []))
        if not events:
            return asked
        return UnitResult(
            True, asked.writes, asked.cancel_requested, row[2], list(row[3] or []), asked.paused
        )
