"""The SQLite writer thread: one connection, whole transactions, group commit.

Callers hand in a job (a function of the connection) and await its result. The
thread takes every job waiting, runs each inside its own savepoint of one
transaction, and commits once: the jobs that arrive while one batch fsyncs are
committed together in the next. Each job stays atomic (its savepoint rolls back
alone when it raises) and isolated (jobs run one after another).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from statekeeper.errors import ClosedError, StorageError
from statekeeper.observability import metrics
from statekeeper.storage.translate import sqlite_error

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], T]


@dataclass(slots=True)
class _Pending(Generic[T]):
    job: Job[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    what: str


_STOP = object()


class WriterThread:
    """Runs write jobs for one database file in one thread, committing in batches."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], max_batch: int = 512) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0  # how many commits; with jobs, shows the grouping
        self.jobs = 0

    def start(self) -> None:
        ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="statekeeper-sqlite-writer", daemon=True
        )
        self._thread.start()
        failure = ready.get()
        if failure is not None:
            self._thread.join()
            raise failure

    async def run(self, job: Job[T], what: str) -> T:
        """Run ``job`` in its own savepoint of the next batch; return its result."""
        if self._closed:
            raise ClosedError()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(job, future, loop, what))
        if self._closed:  # the thread stopped meanwhile: nobody will take the job
            self._fail_rest()
        return await future

    async def stop(self) -> None:
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # --- the thread --------------------------------------------------------------------

    def _run(self, ready: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            ready.put(exc)
            return
        ready.put(None)
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    break
                batch: list[_Pending[Any]] = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                self._commit(conn, batch)
                if stop:
                    break
        finally:
            self._closed = True  # also when the thread dies: later jobs fail at once
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._fail_rest()

    def _commit(self, conn: sqlite3.Connection, batch: list[_Pending[Any]]) -> None:
        """Run one batch and settle every one of its futures, whatever fails."""
        began = time.perf_counter()
        try:
            outcomes = self._run_batch(conn, batch)
        except BaseException as exc:  # the writer's own statements failed
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            error: BaseException = (
                sqlite_error(exc, "the write transaction failed")
                if isinstance(exc, sqlite3.Error)
                else StorageError(f"the write transaction failed: {exc!r}")
            )
            outcomes = [(False, error)] * len(batch)
        self._deliver(batch, outcomes)
        with contextlib.suppress(Exception):  # counting never holds up a batch's answers
            metrics.round_trip("sqlite", "commit", time.perf_counter() - began)
            metrics.writer_batch(len(batch))

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Pending[Any]]
    ) -> list[tuple[bool, Any]]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(False, sqlite_error(exc, "could not start a write transaction"))] * len(batch)
        outcomes: list[tuple[bool, Any]] = []
        single = len(batch) == 1
        for pending in batch:
            if not single:
                conn.execute("SAVEPOINT job")
            try:
                outcomes.append((True, pending.job(conn)))
                if not single:
                    conn.execute("RELEASE job")
            except Exception as exc:
                error: BaseException = (
                    sqlite_error(exc, pending.what) if isinstance(exc, sqlite3.Error) else exc
                )
                outcomes.append((False, error))
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back itself (disk full, I/O
                    # error): every job of the batch is lost, so every job fails.
                    return [(False, error)] * len(batch)
                if single:
                    conn.execute("ROLLBACK")
                    return outcomes
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(False, sqlite_error(exc, "could not commit"))] * len(batch)
        self.batches += 1
        self.jobs += len(batch)
        return outcomes

    @staticmethod
    def _deliver(batch: list[_Pending[Any]], outcomes: list[tuple[bool, Any]]) -> None:
        # One wake-up per event loop for the whole batch, not one per job.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(pending.loop, []).append((pending.future, ok, value))
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop closed: nobody waits
                loop.call_soon_threadsafe(_settle, results)

    def _fail_rest(self) -> None:
        rest: list[_Pending[Any]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                rest.append(item)
        if rest:
            self._deliver(rest, [(False, ClosedError())] * len(rest))


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in results:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
