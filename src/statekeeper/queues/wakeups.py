"""Wake-ups for receivers waiting on an empty queue.

A receiver takes the queue's current event *before* it looks for messages, then
waits on it; a send that commits sets and retires that event, so a message sent
between the look and the wait is never missed. Within one process senders call
``notify`` directly; across processes a listener (PostgreSQL LISTEN/NOTIFY)
calls it for them.

Watching (live status streams): a stream that follows a request or a workflow
watches its subject (``start_watching``), announced to every process; work that
changes a subject calls ``changed``, which wakes the subject's watchers here and, when
a process announced it watches, there too. Nothing is announced for subjects no one
watches.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

# Receivers look again at least this often, whatever they hear: notifications are hints.
POLL_INTERVAL = 1.0
WATCH = "statekeeper.watch:"  # announced: a process watches the subject that follows
CHANGED = "statekeeper.changed:"  # announced: the subject that follows changed
WATCH_TTL = 60.0  # a watch announced elsewhere counts this long (watchers renew it)
_MAX_WATCHED = 100_000  # past it, expired watches are dropped at the next announcement


def request_subject(id: str) -> str:
    """The subject of a request (its message) for ``start_watching`` and ``changed``."""
    return f"r:{id}"


def workflow_subject(id: str) -> str:
    """The subject of a workflow for ``start_watching`` and ``changed``."""
    return f"w:{id}"


class Wakeups:
    def __init__(
        self,
        announce: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}
        self._announce = announce
        self._clock = clock
        self._watching: Counter[tuple[str, str]] = Counter()  # watchers in this process
        self._watched: dict[tuple[str, str], float] = {}  # announced watches: until when

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
        """Wake local receivers of the queue (``"*"``: of every queue); a watch
        announced by a process is noted."""
        if queue.startswith(WATCH):
            self._heard_watch(namespace, queue[len(WATCH) :])
            return
        if namespace == "*":
            events = list(self._events.values())
            self._events.clear()
        else:
            event = self._events.pop((namespace, queue), None)
            events = [] if event is None else [event]
        for event in events:
            event.set()

    # --- watching -------------------------------------------------------------------------

    def start_watching(self, namespace: str, subject: str) -> None:
        """A watcher of ``subject`` starts here: its changes are announced to this
        process from now on (the watcher renews the watch at least every WATCH_TTL / 2,
        and ends it with ``stop_watching``)."""
        self._watching[(namespace, subject)] += 1
        self.renew(namespace, subject)

    def renew(self, namespace: str, subject: str) -> None:
        """Announce again that this process watches ``subject``."""
        if self._announce is not None:
            self._announce(namespace, WATCH + subject)

    def stop_watching(self, namespace: str, subject: str) -> None:
        key = (namespace, subject)
        self._watching[key] -= 1
        if self._watching[key] <= 0:
            del self._watching[key]
            self._events.pop((namespace, CHANGED + subject), None)  # no one waits on it

    def change_event(self, namespace: str, subject: str) -> asyncio.Event:
        """The event the next change to ``subject`` sets (take it before reading)."""
        return self.event(namespace, CHANGED + subject)

    def changed(self, namespace: str, subject: str) -> None:
        """``subject`` changed here: wake its watchers, here and wherever one watches."""
        key = (namespace, subject)
        if key in self._watching:
            self.heard(namespace, CHANGED + subject)
        until = self._watched.get(key)
        if until is None:
            return
        if until < self._clock():
            del self._watched[key]
        elif self._announce is not None:
            self._announce(namespace, CHANGED + subject)

    def _heard_watch(self, namespace: str, subject: str) -> None:
        now = self._clock()
        if len(self._watched) >= _MAX_WATCHED:
            self._watched = {k: t for k, t in self._watched.items() if t >= now}
        self._watched[(namespace, subject)] = now + WATCH_TTL
