"""The SQLite adapter: a WAL file, one writer thread with group commit, inline reads.

Writes go to the writer thread (see ``sqlite_writer``): every write is one job, and a
unit of work is one job too, so it shares the group commit. Point reads run on the
caller's thread on a read-only connection of its own: an indexed read from the page
cache takes a few microseconds, less than a hop to another thread, and WAL lets it run
beside the writer (decision record 0002). The operations are written once over these
primitives (``state_ops``, ``queue_ops``, ...).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from statekeeper.errors import DatabaseUnavailable
from statekeeper.storage import migrations
from statekeeper.storage.blocks import Blocks
from statekeeper.storage.queries import Dialect, load
from statekeeper.storage.rows import Duplicate, Maintenance, NewMessage, UnitOfWork, UnitResult
from statekeeper.storage.runner import SCAN_TIMEOUT, Scripted, Statement, scan_too_slow, shape
from statekeeper.storage.sqlite_writer import WriterThread
from statekeeper.storage.translate import sqlite_error
from statekeeper.storage.unit import LeaseGone, check_outbox, commit_job, send_messages
from statekeeper.storage.url import DatabaseURL

Q = load("sqlite")


class _Abandon(Exception):
    """Rolls back an atomic script's job (its savepoint) when a required row is missing."""


class SQLiteBackend(Blocks):
    """Storage on one SQLite file, shared safely by threads and OS processes."""

    dialect: Dialect = "sqlite"
    queries = Q
    scan_timeout = SCAN_TIMEOUT  # seconds a state query may read (``run_scan``)

    def __init__(self, url: DatabaseURL, *, fresh_schema: bool = True) -> None:
        self.path = url.path
        self._synchronous = url.options.get("synchronous", "full").upper()
        self._busy_timeout_ms = url.option_int("busy_timeout", 30_000)
        self._fresh_schema = fresh_schema
        self._writer = WriterThread(self._connect_writer)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._attach_blocks(self, self)

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
                if mode == "many":  # one statement over many argument tuples
                    results.append(conn.executemany(*statement).rowcount)
                    continue
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

    async def run_scan(self, statement: Statement, what: str) -> list[tuple[Any, ...]]:
        """A long read on a worker thread's own reader, so the event loop serves others;
        interrupted past ``scan_timeout`` seconds."""
        return await asyncio.to_thread(self._scan, statement, what)

    def _scan(self, statement: Statement, what: str) -> list[tuple[Any, ...]]:
        conn = self._reader()
        deadline = time.monotonic() + self.scan_timeout
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 10_000)
        try:
            return [tuple(row) for row in conn.execute(*statement).fetchall()]
        except sqlite3.OperationalError as exc:
            if time.monotonic() > deadline and "interrupt" in str(exc):
                raise scan_too_slow(self.scan_timeout) from None
            raise sqlite_error(exc, what) from exc
        except sqlite3.Error as exc:
            raise sqlite_error(exc, what) from exc
        finally:
            conn.set_progress_handler(None, 0)

    async def run_in_order(self, statement: Statement, what: str) -> list[tuple[Any, ...]]:
        """On this thread's reader: SQLite walks an index that gives the ORDER BY (with an
        equality on its first columns) rather than sort, with or without statistics."""
        return [tuple(row) for row in self._read_sql(statement, what)]

    async def run_read(self, statement: Statement, what: str, mode: str) -> Any:
        """One statement on this thread's reader; ``mode``: found, first or row."""
        rows = self._read_sql(statement, what)
        return shape(rows[0] if rows else None, mode)

    async def read_row(self, statement: Statement, what: str) -> Any:
        """The first row of a point read on this thread's reader (fetchall: stepping to
        the end resets the statement, which ends the read transaction, so the next read
        sees every later commit)."""
        conn = getattr(self._local, "conn", None) or self._reader()
        try:
            rows = conn.execute(*statement).fetchall()
        except sqlite3.Error as exc:
            raise sqlite_error(exc, what) from exc
        return rows[0] if rows else None

    def _read_sql(self, statement: Statement, what: str) -> list[Any]:
        try:
            return self._reader().execute(*statement).fetchall()
        except sqlite3.Error as exc:
            raise sqlite_error(exc, what) from exc

    # --- what differs: sending, and the unit of work -------------------------------------

    async def send_messages(
        self, namespace: str, messages: Sequence[NewMessage], now: float
    ) -> list[Duplicate | None]:
        return await self._writer.run(
            lambda c: send_messages(c, Q, namespace, messages, now), "cannot enqueue"
        )

    async def commit(self, unit: UnitOfWork) -> UnitResult:
        check_outbox(unit)
        try:
            return await self._writer.run(lambda c: commit_job(c, Q, unit), "cannot commit")
        except LeaseGone:
            return UnitResult(False)
