"""Wake-ups for receivers waiting on an empty queue.

A receiver takes the queue's current event *before* it looks for messages, then
waits on it; a send that commits sets and retires that event, so a message sent
between the look and the wait is never missed. Within one process senders call
``notify`` directly; across processes a listener (PostgreSQL LISTEN/NOTIFY)
calls it for them.
"""

from __future__ import annotations

import asyncio


class Wakeups:
    def __init__(self) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def event(self, namespace: str, queue: str) -> asyncio.Event:
        """The event the next send to this queue will set."""
        key = (namespace, queue)
        current = self._events.get(key)
        if current is None:
            current = self._events[key] = asyncio.Event()
        return current

    def notify(self, namespace: str, queue: str) -> None:
        """Wake every receiver waiting on this queue."""
        event = self._events.pop((namespace, queue), None)
        if event is not None:
            event.set()
