"""The PostgreSQL adapter: an asyncpg pool, one round trip per single operation.

Single puts, gets and deletes are one prepared statement in autocommit (one
round trip); PostgreSQL groups concurrent commits in its own WAL flush. A
multi-operation transaction holds one pooled connection from BEGIN to COMMIT.
The driver was chosen by measurement: docs/decisions/0001-postgres-driver.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from statekeeper.errors import (
    AlreadyExists,
    ConflictError,
    DatabaseUnavailable,
)
from statekeeper.storage import migrations
from statekeeper.storage.base import Maintenance, NewMessage, PutOp, StoredItem, WriteOp
from statekeeper.storage.idempotency_ops import IdempotencyOps
from statekeeper.storage.outcomes import (
    check_positional_orders,
    etag_mismatch,
    key_exists,
    list_args,
    transaction_conflict,
)
from statekeeper.storage.postgres_common import DRIVER_ERRORS, translated
from statekeeper.storage.postgres_maintenance import TableKeeper
from statekeeper.storage.postgres_notify import Notifier
from statekeeper.storage.postgres_queues import PostgresQueueOps
from statekeeper.storage.queries import Dialect, load
from statekeeper.storage.queue_statements import outbox_arrays
from statekeeper.storage.reseal_ops import ResealOps
from statekeeper.storage.runner import Scripted, Statement, shape
from statekeeper.storage.translate import postgres_error
from statekeeper.storage.url import DatabaseURL
from statekeeper.storage.workflow_ops import WorkflowOps

Q = load("postgres")


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


class PostgresBackend(PostgresQueueOps, IdempotencyOps, WorkflowOps, ResealOps):
    """State in a PostgreSQL database (optionally in its own schema)."""

    _queries = Q
    dialect: Dialect = "postgres"

    def __init__(self, url: DatabaseURL, *, fresh_schema: bool = True) -> None:
        self._url = url
        self._dsn = url.dsn
        self.schema = url.options.get("schema")
        self._pool_min = url.option_int("pool_min", 2)
        self._pool_max = url.option_int("pool_max", 16)
        self._timeout = float(url.option_int("connect_timeout", 10))
        self._fresh_schema = fresh_schema
        self._pool: asyncpg.Pool | None = None
        self._notifier = Notifier(self._connect_listener, lambda: self.pool)
        self._keeper = TableKeeper()

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        settings = {"search_path": self.schema} if self.schema else {}
        where = self._url.redacted()
        try:
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
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
            )

    async def _connect_listener(self) -> asyncpg.Connection:
        settings = {"search_path": self.schema} if self.schema else {}
        return await asyncpg.connect(self._dsn, timeout=self._timeout, server_settings=settings)

    async def maintain(self) -> Maintenance:
        return await self._keeper.maintain(self.pool)

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
        if len(script) == 1:  # a single statement is its own transaction
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

    async def run_read(self, statement: Statement, what: str, mode: str) -> Any:
        return await self.run_write(statement, what, mode)

    async def _run(self, method: str, statement: Statement, what: str) -> Any:
        """One statement through the pool: ``method`` is fetch, fetchrow, fetchval or execute."""
        sql, args = statement
        with translated(what):
            return await getattr(self.pool, method)(sql, *args)

    # --- reads ----------------------------------------------------------------------

    async def state_get(self, namespace: str, key: str, now: float) -> StoredItem | None:
        with translated(f"cannot read key {key!r}"):
            row = await self.pool.fetchrow(Q["state_get"].sql, namespace, key, now)
        if row is None:
            return None
        return StoredItem(key, row[0], row[1], row[2], row[3])

    async def state_get_many(
        self, namespace: str, keys: Sequence[str], now: float
    ) -> dict[str, StoredItem]:
        query = Q["state_get_many"]
        with translated("cannot read keys"):
            rows = await self.pool.fetch(
                query.sql, *query.args(namespace=namespace, keys=list(keys), now=now)
            )
        return {r[0]: StoredItem(r[0], r[1], r[2], r[3], r[4]) for r in rows}

    async def state_list(
        self,
        namespace: str,
        *,
        after: str,
        low: str,
        high: str | None,
        limit: int,
        now: float,
    ) -> list[StoredItem]:
        query = Q["state_list"]
        args = list_args(query, namespace, after=after, low=low, high=high, limit=limit, now=now)
        with translated("cannot list keys"):
            rows = await self.pool.fetch(query.sql, *args)
        return [StoredItem(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # --- writes ---------------------------------------------------------------------

    async def state_put(self, namespace: str, op: PutOp, now: float) -> None:
        with translated(f"cannot write key {op.key!r}"):
            await _put(self.pool, namespace, op, now)

    async def state_delete(
        self, namespace: str, key: str, if_match: str | None, now: float
    ) -> bool:
        with translated(f"cannot delete key {key!r}"):
            return await _delete(self.pool, namespace, key, if_match, now)

    async def state_apply(
        self,
        namespace: str,
        ops: Sequence[WriteOp],
        now: float,
        messages: Sequence[NewMessage] = (),
    ) -> list[bool]:
        puts = [op if isinstance(op, PutOp) else None for op in ops]
        values = {
            "namespace": namespace,
            "now": now,
            "kinds": [op.kind for op in ops],
            "keys": [op.key for op in ops],
            "values": [p.value if p else None for p in puts],
            "etags": [p.etag if p else None for p in puts],
            "expires": [p.expires_at if p else None for p in puts],
            "key_ids": [p.key_id if p else None for p in puts],
            "if_match": [op.if_match for op in ops],
            "absent": [bool(p and p.only_if_absent) for p in puts],
        }
        query = Q["state_apply"]
        if messages:
            query = Q["state_apply_outbox"]
            values.update(outbox_arrays(messages))
        args = query.args(**values)
        try:
            with translated("cannot apply the transaction"):
                results = await self.pool.fetchval(query.sql, *args)
        except ConflictError as error:  # AlreadyExists too: raised by sk_state_apply
            index = int(str(error.details.get("detail") or 0))
            op = ops[index]
            cause = (
                key_exists(op.key)
                if isinstance(error, AlreadyExists)
                else etag_mismatch(op.key, op.if_match)
            )
            raise transaction_conflict(index, op, cause) from error
        return list(results)

    async def state_reseal(
        self, namespace: str, key: str, etag: str, value: bytes, key_id: str | None
    ) -> bool:
        query = Q["state_reseal"]
        args = query.args(namespace=namespace, key=key, etag=etag, value=value, key_id=key_id)
        with translated(f"cannot reseal key {key!r}"):
            return await self.pool.fetchrow(query.sql, *args) is not None

    async def state_purge_expired(self, now: float, limit: int) -> int:
        query = Q["state_purge_expired"]
        with translated("cannot purge expired items"):
            status = await self.pool.execute(query.sql, *query.args(now=now, limit=limit))
        return _count(status)


# asyncpg's Pool and Connection share fetchrow/execute; either serves a single statement.
_Executor = Any

_PUT = Q["state_put"].sql
_PUT_IF_ABSENT = Q["state_put_if_absent"].sql
_PUT_IF_MATCH = Q["state_put_if_match"].sql
_DELETE = Q["state_delete"].sql
_DELETE_IF_MATCH = Q["state_delete_if_match"].sql
check_positional_orders(Q)


async def _put(db: _Executor, namespace: str, op: PutOp, now: float) -> None:
    if op.if_match is not None:
        row = await db.fetchrow(
            _PUT_IF_MATCH,
            op.value, op.etag, op.expires_at, op.key_id, namespace, op.key, op.if_match, now,
        )  # fmt: skip
        if row is None:
            raise etag_mismatch(op.key, op.if_match)
    elif op.only_if_absent:
        row = await db.fetchrow(
            _PUT_IF_ABSENT, namespace, op.key, op.value, op.etag, op.expires_at, op.key_id, now
        )
        if row is None:
            raise key_exists(op.key)
    else:
        await db.execute(_PUT, namespace, op.key, op.value, op.etag, op.expires_at, op.key_id)


async def _delete(
    db: _Executor, namespace: str, key: str, if_match: str | None, now: float
) -> bool:
    if if_match is not None:
        row = await db.fetchrow(_DELETE_IF_MATCH, namespace, key, if_match, now)
        if row is None:
            raise etag_mismatch(key, if_match)
        return True
    row = await db.fetchrow(_DELETE, namespace, key)
    return row is not None and (row[0] is None or row[0] > now)
