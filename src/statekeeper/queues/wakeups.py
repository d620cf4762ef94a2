"""Wake-ups for receivers waiting on an empty queue.

A receiver takes the queue's current event *before* it looks for messages, then
waits on it; a send that commits sets and retires that event, so a message sent
between the look and the wait is never missed. Within one process senders call
``notify`` directly; across processes a listener (PostgreSQL LISTEN/NOTIFY)
calls it for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# Receivers look again at least this often, whatever they hear: notifications are hints.
POLL_INTERVAL = 1.0


class Wakeups:
    def __init__(self, announce: Callable[[str, str], None] | None = None) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self._announce = announce

    def event(self, namespace: str, queue: str) -> asyncio.Event:
        """The event the next send to this queue will set."""
        key = (namespace, queue)
        current = self._events.get(key)
        if current is None:
            current = self._events[key] = asyncio.Event()
        return current

    def notify(self, namespace: str, queue: str) -> None:
        """A send to this queue committed here: wake its receivers, here and elsewhere."""
        self.heard(namespace, queue)
        if self._announce is not None:
            self._announce(namespace, queue)

    def heard(self, namespace: str, queue: str) -> None:
        """Wake local receivers of the queue (``"*"``: of every queue)."""
        if namespace == "*":
            events = list(self._events.values())
            self._events.clear()
        else:
            event = self._events.pop((namespace, queue), None)
            events = [] if event is None else [event]
        for event in events:
            event.set()
