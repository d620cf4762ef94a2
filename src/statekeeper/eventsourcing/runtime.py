"""The bridge from the library's synchronous recorders to statekeeper's async storage.

One ``Runtime`` per database URL per process: the opened backend on an asyncio loop in
a daemon thread; recorders hand it coroutines (``run``) from any thread and wait. The
factories that use a URL share its runtime, and the last one to close closes it.

It also wakes live subscriptions: after each commit of events by this process (every
backend), when another process announces events (PostgreSQL: LISTEN/NOTIFY, as the
queues do, on the event store's channel), and every ``POLL_INTERVAL`` seconds whatever is
heard (SQLite has no announcements between processes: other processes' events arrive
by this poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterator
from concurrent import futures
from typing import Any, TypeVar

from eventsourcing import persistence as es

from statekeeper import errors
from statekeeper.constants import EVENTS_CHANNEL
from statekeeper.eventsourcing.store import Store
from statekeeper.keyring import Keyring
from statekeeper.sealing import Sealer
from statekeeper.storage import Storage, create_backend, parse
from statekeeper.storage.url import DatabaseURL

T = TypeVar("T")

EVENTS = EVENTS_CHANNEL  # announced after events commit, as the event store does
POLL_INTERVAL = 1.0  # live subscriptions look at least this often
_WAIT_STEP = 1.0  # how often a waiting caller checks that the loop still runs


@contextlib.contextmanager
def library_errors() -> Iterator[None]:
    """Raise statekeeper's errors as the library's (PEP 249 names), the original kept
    as ``__cause__``."""
    try:
        yield
    except errors.StatekeeperError as error:
        raise _library_error(error) from error


def _library_error(error: errors.StatekeeperError) -> es.PersistenceError:
    kind: type[es.PersistenceError]
    if isinstance(error, errors.ConflictError):  # a taken version, a unique key
        kind = es.IntegrityError
    elif isinstance(error, errors.SchemaError):
        kind = es.ProgrammingError
    elif isinstance(error, errors.DatabaseUnavailable | errors.DatabaseBusy | errors.StorageFull):
        kind = es.OperationalError
    elif isinstance(error, errors.ValidationError):  # a value the database cannot hold
        kind = es.DataError
    elif isinstance(error, errors.ClosedError):
        kind = es.InterfaceError
    elif isinstance(error, errors.StorageError):  # corrupt, I/O, cancelled
        kind = es.DatabaseError
    else:
        kind = es.PersistenceError
    return kind(str(error))


class Runtime:
    """An opened backend on an event loop of its own, and the subscriptions to wake."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.users = 0  # factories using it (guarded by the registry's lock)
        self.closed = False
        parsed = parse(url)
        # statekeeper's own encryption keys (STATEKEEPER_ENCRYPTION_KEYS), if configured.
        self.sealer = Sealer(Keyring.from_env())
        self._listeners: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()
        self._poller: asyncio.Task[None] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve, name="statekeeper-eventsourcing", daemon=True
        )
        self._thread.start()
        try:
            self.backend: Storage = self.run(self._open(parsed))
        except BaseException:
            self.closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            raise
        self.store = Store(self.backend)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
            # Whatever was handed in during the close is cancelled, not left waiting.
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        finally:
            self._loop.close()

    async def _open(self, url: DatabaseURL) -> Storage:
        backend = create_backend(url)
        await backend.open()
        backend.listen(self._heard)
        self._poller = asyncio.create_task(self._poll())
        return backend

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result; statekeeper's errors
        come out as the library's."""
        if self.closed:
            coroutine.close()
            raise es.InterfaceError("the statekeeper persistence module is closed")
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # the loop closed meanwhile
            coroutine.close()
            raise es.InterfaceError("the statekeeper persistence module is closed") from None
        while not futures.wait((future,), _WAIT_STEP).done:
            if not self._thread.is_alive():  # stopped before running it
                future.cancel()
                raise es.InterfaceError("the statekeeper persistence module is closed")
        with library_errors():
            return future.result()

    def close(self) -> None:
        """Close the backend and stop the loop (subscriptions then fail and stop)."""
        if self.closed:
            return
        self.closed = True
        if threading.current_thread() is self._thread:
            # An application collected by the garbage collector on the loop's own thread:
            # waiting here would wait for ever, so the loop closes itself.
            self._loop.create_task(self._shutdown(stop=True))
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(stop=False), self._loop)
        except RuntimeError:  # the loop is closed already
            return
        try:
            with library_errors():
                future.result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self.wake(None)

    async def _shutdown(self, *, stop: bool) -> None:
        try:
            if self._poller is not None:
                self._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poller
            await self.backend.close()
        finally:
            if stop:
                self._loop.stop()

    # --- waking live subscriptions ----------------------------------------------------

    def listen(self, namespace: str, event: threading.Event) -> None:
        """Set ``event`` whenever events of ``namespace`` may have been committed."""
        with self._lock:
            self._listeners.setdefault(namespace, set()).add(event)

    def unlisten(self, namespace: str, event: threading.Event) -> None:
        with self._lock:
            events = self._listeners.get(namespace)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._listeners[namespace]

    def wake(self, namespace: str | None) -> None:
        """Set the events listening to ``namespace`` (None: to every namespace)."""
        with self._lock:
            if namespace is None:
                events = [e for group in self._listeners.values() for e in group]
            else:
                events = list(self._listeners.get(namespace, ()))
        for event in events:
            event.set()

    def committed(self, namespace: str) -> None:
        """Events of ``namespace`` committed here (on the loop): wake this process's
        subscriptions, and tell the others."""
        self.wake(namespace)
        self.backend.announce(namespace, EVENTS)

    def _heard(self, namespace: str, queue: str) -> None:
        if namespace == "*":  # the listener (re)connected: anything may have been missed
            self.wake(None)
        elif queue == EVENTS:
            self.wake(namespace)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            self.wake(None)


_RUNTIMES: dict[str, Runtime] = {}
_REGISTRY = threading.RLock()  # re-entered when a collected application closes its factory


def acquire(url: str) -> Runtime:
    """The runtime of ``url`` in this process, opened on first use."""
    with _REGISTRY:
        runtime = _RUNTIMES.get(url)
        if runtime is None:
            runtime = _RUNTIMES[url] = Runtime(url)
        runtime.users += 1
        return runtime


def release(runtime: Runtime) -> None:
    """One user less; the last one closes it."""
    with _REGISTRY:
        runtime.users -= 1
        if runtime.users > 0:
            return
        if _RUNTIMES.get(runtime.url) is runtime:
            del _RUNTIMES[runtime.url]
    runtime.close()
