"""Cross-process wake-ups on PostgreSQL: LISTEN/NOTIFY on one channel.

After a send commits, the sender announces the queue; announcements made within
one event-loop turn go out together in one ``pg_notify`` statement, off the
sender's path. A listener connection per process hears them and wakes local
receivers. Notifications are a hint, never the truth: receivers still poll at a
slow pace, so a lost notification (listener reconnecting) costs latency only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from statekeeper.storage.postgres_common import DRIVER_ERRORS

log = logging.getLogger("statekeeper.postgres")

CHANNEL = "statekeeper_queues"
_RECONNECT_DELAY = 1.0
_COALESCE = 0.002

Callback = Callable[[str, str], None]  # (namespace, queue)


class Notifier:
    def __init__(self, connect: Callable[[], Any], pool: Callable[[], asyncpg.Pool]) -> None:
        self._connect = connect
        self._pool = pool
        self._callbacks: list[Callback] = []
        self._pending: set[tuple[str, str]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()  # set while the listener connection is up

    def listen(self, callback: Callback) -> None:
        """Call ``callback(namespace, queue)`` whenever any process announces a queue."""
        self._callbacks.append(callback)
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen_forever())

    def announce(self, namespace: str, queue: str) -> None:
        self._pending.add((namespace, queue))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def close(self) -> None:
        for task in [self._listener, self._flusher]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._listener = self._flusher = None

    async def _flush(self) -> None:
        # Let the sends of the next couple of milliseconds join in: one pg_notify
        # statement for a burst, at the cost of that much wake-up latency.
        await asyncio.sleep(_COALESCE)
        while self._pending:
            payloads = [json.dumps(list(item)) for item in self._pending]
            self._pending.clear()
            try:
                await self._pool().execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", CHANNEL, payloads
                )
            except DRIVER_ERRORS as exc:
                log.debug("queue notification not sent", extra={"error": str(exc)})
                return

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            namespace, queue = json.loads(payload)
        except (ValueError, TypeError):
            return
        for callback in self._callbacks:
            callback(namespace, queue)

    async def _listen_forever(self) -> None:
        while True:
            conn = None
            try:
                conn = await self._connect()
                closed = asyncio.Event()
                conn.add_termination_listener(_setter(closed))
                await conn.add_listener(CHANNEL, self._heard)
                self.listening.set()
                for callback in self._callbacks:
                    callback("*", "*")  # anything may have been missed while not listening
                await closed.wait()
                self.listening.clear()
            except asyncio.CancelledError:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close())
                raise
            except DRIVER_ERRORS as exc:  # a connect that timed out too: try again
                self.listening.clear()
                log.debug("queue listener reconnecting", extra={"error": str(exc)})
            await asyncio.sleep(_RECONNECT_DELAY)


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    def set_event(_conn: object) -> None:
        event.set()

    return set_event
