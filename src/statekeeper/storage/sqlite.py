"""The SQLite adapter: a WAL file, one writer thread with group commit, inline reads.

Writes go to the writer thread (see ``sqlite_writer``). Point reads run on the
caller's thread on a read-only connection of its own: an indexed read from the
page cache takes a few microseconds, less than a hop to another thread, and WAL
lets it run beside the writer (decision record 0002).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from statekeeper.errors import (
    ConflictError,
    DatabaseUnavailable,
)
from statekeeper.storage import migrations
from statekeeper.storage.base import (
    DeleteOp,
    Maintenance,
    NewMessage,
    PutOp,
    StoredItem,
    WriteOp,
)
from statekeeper.storage.idempotency_ops import IdempotencyOps
from statekeeper.storage.outcomes import (
    check_positional_orders,
    etag_mismatch,
    key_exists,
    list_args,
    transaction_conflict,
)
from statekeeper.storage.queries import Dialect, Query, load
from statekeeper.storage.reseal_ops import ResealOps
from statekeeper.storage.runner import Scripted, Statement, shape
from statekeeper.storage.sqlite_queues import SQLiteQueueOps, send_messages
from statekeeper.storage.sqlite_writer import WriterThread
from statekeeper.storage.translate import sqlite_error
from statekeeper.storage.url import DatabaseURL
from statekeeper.storage.workflow_ops import WorkflowOps

Q = load("sqlite")
_GET = Q["state_get"].sql


class _Abandon(Exception):
    """Rolls back an atomic script's job (its savepoint) when a required row is missing."""


class SQLiteBackend(SQLiteQueueOps, IdempotencyOps, WorkflowOps, ResealOps):
    """State on one SQLite file, shared safely by threads and OS processes."""

    _queries = Q
    dialect: Dialect = "sqlite"

    def __init__(self, url: DatabaseURL, *, fresh_schema: bool = True) -> None:
        self.path = url.path
        self._synchronous = url.options.get("synchronous", "full").upper()
        self._busy_timeout_ms = url.option_int("busy_timeout", 30_000)
        self._fresh_schema = fresh_schema
        self._writer = WriterThread(self._connect_writer)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        self._writer.start()  # connects, creates the directory and migrates, in its thread

    async def close(self) -> None:
        await self._writer.stop()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._local = threading.local()

    async def maintain(self) -> Maintenance:
        """SQLite reclaims deleted rows at once; ``PRAGMA optimize`` refreshes the planner's
        statistics of the tables whose queries would gain from it (cheap when none)."""
        await self._writer.run(lambda c: c.execute("PRAGMA optimize"), "cannot optimize")
        return Maintenance([], [])

    def listen(self, callback: Callable[[str, str], None]) -> None:
        """Other processes cannot announce on SQLite: their receivers poll."""

    def announce(self, namespace: str, queue: str) -> None:
        """In-process receivers are woken by the app itself; nothing crosses processes."""

    @property
    def writer(self) -> WriterThread:
        return self._writer

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=256
        )
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        return conn

    def _connect_writer(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        try:
            if directory:
                os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"cannot create directory {directory!r} for the SQLite database: {exc.strerror}"
            ) from exc
        try:
            conn = self._connect()
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._migrate(conn)
            return conn
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"cannot open SQLite database {self.path!r}") from exc

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._connect()
                conn.execute("PRAGMA query_only = 1")
            except sqlite3.Error as exc:
                raise sqlite_error(exc, f"cannot open SQLite database {self.path!r}") from exc
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # the write lock serialises concurrent start-ups
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {migrations.MIGRATIONS_TABLE} ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            applied = {
                row[0] for row in conn.execute(f"SELECT version FROM {migrations.MIGRATIONS_TABLE}")
            }
            scripts, pending = migrations.plan("sqlite", applied, self._fresh_schema)
            for script in scripts:
                for statement in migrations.split_statements(script):
                    conn.execute(statement)
            conn.executemany(
                f"INSERT INTO {migrations.MIGRATIONS_TABLE} VALUES (?, ?, ?)",
                [(m.version, m.name, time.time()) for m in pending],
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # --- the statement primitives of the shared operations (storage/runner.py) ----------

    async def run_write(self, statement: Statement, what: str, mode: str) -> Any:
        """One statement as a writer job; ``mode``: rowcount, found, first or row."""

        def job(conn: sqlite3.Connection) -> Any:
            cursor = conn.execute(*statement)
            if mode == "rowcount":
                return cursor.rowcount
            row = cursor.fetchone()
            return shape(row, mode)

        return await self._writer.run(job, what)

    async def run_atomic(self, script: Sequence[Scripted], what: str) -> list[Any] | None:
        """Statements in one transaction (one writer job); a required statement that
        finds no row rolls the job back, and the answer is None."""

        def job(conn: sqlite3.Connection) -> list[Any] | None:
            results: list[Any] = []
            for statement, mode, required in script:
                cursor = conn.execute(*statement)
                if mode == "rowcount":
                    results.append(cursor.rowcount)
                    continue
                row = cursor.fetchone()
                if required and row is None:
                    raise _Abandon
                results.append(shape(row, mode))
            return results

        try:
            return await self._writer.run(job, what)
        except _Abandon:
            return None

    async def run_many(
        self, statement: Statement, what: str, *, write: bool = False
    ) -> list[tuple[Any, ...]]:
        """Every row of one statement: a reader's, or (``write``) a writer job's."""
        if not write:
            return [tuple(row) for row in self._read_sql(statement, what)]
        return await self._writer.run(
            lambda c: [tuple(row) for row in c.execute(*statement).fetchall()], what
        )

    async def run_read(self, statement: Statement, what: str, mode: str) -> Any:
        """One statement on this thread's reader; ``mode``: found, first or row."""
        rows = self._read_sql(statement, what)
        return shape(rows[0] if rows else None, mode)

    # --- reads ----------------------------------------------------------------------

    def _read(self, query: Query, args: tuple[Any, ...], what: str) -> list[Any]:
        return self._read_sql((query.sql, args), what)

    def _read_sql(self, statement: Statement, what: str) -> list[Any]:
        try:
            return self._reader().execute(*statement).fetchall()
        except sqlite3.Error as exc:
            raise sqlite_error(exc, what) from exc

    async def state_get(self, namespace: str, key: str, now: float) -> StoredItem | None:
        conn = getattr(self._local, "conn", None) or self._reader()
        try:
            rows = conn.execute(_GET, (namespace, key, now)).fetchall()
        except sqlite3.Error as exc:
            raise sqlite_error(exc, f"cannot read key {key!r}") from exc
        if not rows:
            return None
        # fetchall, not fetchone: stepping to the end resets the statement, which ends
        # the read transaction, so the next read sees every later commit.
        row = rows[0]
        return StoredItem(key, row[0], row[1], row[2], row[3])

    async def state_get_many(
        self, namespace: str, keys: Sequence[str], now: float
    ) -> dict[str, StoredItem]:
        query = Q["state_get_many"]
        rows = self._read(
            query,
            query.args(namespace=namespace, keys_json=json.dumps(list(keys)), now=now),
            "cannot read keys",
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
        rows = self._read(query, args, "cannot list keys")
        return [StoredItem(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    # --- writes ---------------------------------------------------------------------

    async def state_put(self, namespace: str, op: PutOp, now: float) -> None:
        await self._writer.run(lambda c: _put(c, namespace, op, now), f"cannot write {op.key!r}")

    async def state_delete(
        self, namespace: str, key: str, if_match: str | None, now: float
    ) -> bool:
        return await self._writer.run(
            lambda c: _delete(c, namespace, key, if_match, now), f"cannot delete {key!r}"
        )

    async def state_apply(
        self,
        namespace: str,
        ops: Sequence[WriteOp],
        now: float,
        messages: Sequence[NewMessage] = (),
    ) -> list[bool]:
        def job(conn: sqlite3.Connection) -> list[bool]:
            results = _apply(conn, namespace, ops, now)
            if messages:
                send_messages(conn, namespace, messages, now)
            return results

        return await self._writer.run(job, "cannot apply the transaction")

    async def state_reseal(
        self, namespace: str, key: str, etag: str, value: bytes, key_id: str | None
    ) -> bool:
        query = Q["state_reseal"]
        args = query.args(namespace=namespace, key=key, etag=etag, value=value, key_id=key_id)
        return await self._writer.run(
            lambda c: c.execute(query.sql, args).fetchone() is not None, f"cannot reseal {key!r}"
        )

    async def state_purge_expired(self, now: float, limit: int) -> int:
        query = Q["state_purge_expired"]
        return await self._writer.run(
            lambda c: c.execute(query.sql, query.args(now=now, limit=limit)).rowcount,
            "cannot purge expired items",
        )


# --- the write jobs, run on the writer thread ------------------------------------------

_PUT = Q["state_put"].sql
_PUT_IF_ABSENT = Q["state_put_if_absent"].sql
_PUT_IF_MATCH = Q["state_put_if_match"].sql
_DELETE = Q["state_delete"].sql
_DELETE_IF_MATCH = Q["state_delete_if_match"].sql
check_positional_orders(Q)


def _put(conn: sqlite3.Connection, namespace: str, op: PutOp, now: float) -> None:
    if op.if_match is not None:
        row = conn.execute(
            _PUT_IF_MATCH,
            (op.value, op.etag, op.expires_at, op.key_id, namespace, op.key, op.if_match, now),
        ).fetchone()
        if row is None:
            raise etag_mismatch(op.key, op.if_match)
    elif op.only_if_absent:
        row = conn.execute(
            _PUT_IF_ABSENT,
            (namespace, op.key, op.value, op.etag, op.expires_at, op.key_id, now),
        ).fetchone()
        if row is None:
            raise key_exists(op.key)
    else:
        conn.execute(_PUT, (namespace, op.key, op.value, op.etag, op.expires_at, op.key_id))


def _delete(
    conn: sqlite3.Connection, namespace: str, key: str, if_match: str | None, now: float
) -> bool:
    if if_match is not None:
        row = conn.execute(_DELETE_IF_MATCH, (namespace, key, if_match, now)).fetchone()
        if row is None:
            raise etag_mismatch(key, if_match)
        return True
    row = conn.execute(_DELETE, (namespace, key)).fetchone()
    return row is not None and (row[0] is None or row[0] > now)


def _apply(
    conn: sqlite3.Connection, namespace: str, ops: Sequence[WriteOp], now: float
) -> list[bool]:
    results: list[bool] = []
    for index, op in enumerate(ops):
        try:
            if isinstance(op, PutOp):
                _put(conn, namespace, op, now)
                results.append(True)
            else:
                assert isinstance(op, DeleteOp)
                results.append(_delete(conn, namespace, op.key, op.if_match, now))
        except ConflictError as exc:
            raise transaction_conflict(index, op, exc) from exc
    return results
