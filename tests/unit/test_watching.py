"""Watching subjects (queues/wakeups.py): a change wakes the watchers of this process,
and is announced to other processes only while one of them announced a watch."""

from __future__ import annotations

import asyncio

from statekeeper.queues.wakeups import CHANGED, WATCH, WATCH_TTL, Wakeups


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def wakeups() -> tuple[Wakeups, list[tuple[str, str]], Clock]:
    announced: list[tuple[str, str]] = []
    clock = Clock()
    return Wakeups(lambda ns, what: announced.append((ns, what)), clock), announced, clock


async def test_a_change_no_one_watches_is_not_announced() -> None:
    hub, announced, _ = wakeups()
    hub.changed("ns", "r:1")
    assert announced == []


async def test_a_local_watcher_is_woken_and_its_watch_announced() -> None:
    hub, announced, _ = wakeups()
    hub.start_watching("ns", "r:1")
    assert announced == [("ns", f"{WATCH}r:1")]
    event = hub.change_event("ns", "r:1")
    other = hub.change_event("ns", "r:2")
    hub.changed("ns", "r:1")
    assert event.is_set() and not other.is_set()
    assert hub.change_event("ns", "r:1") is not event  # a new one for the next change
    hub.stop_watching("ns", "r:1")
    later = hub.change_event("ns", "r:1")
    hub.changed("ns", "r:1")
    assert not later.is_set()  # no watcher left here


async def test_a_watch_heard_from_elsewhere_is_announced_to_until_it_expires() -> None:
    hub, announced, clock = wakeups()
    hub.heard("ns", f"{WATCH}w:9")  # another process watches w:9
    hub.changed("ns", "w:9")
    assert announced == [("ns", f"{CHANGED}w:9")]
    clock.now += WATCH_TTL + 1  # its watcher stopped renewing
    hub.changed("ns", "w:9")
    assert announced == [("ns", f"{CHANGED}w:9")]


async def test_a_change_heard_from_elsewhere_wakes_the_watchers_here() -> None:
    hub, _, _ = wakeups()
    hub.start_watching("ns", "w:1")
    event = hub.change_event("ns", "w:1")
    hub.heard("ns", f"{CHANGED}w:1")
    await asyncio.wait_for(event.wait(), 1)
    everything = hub.change_event("ns", "w:1")
    hub.heard("*", "*")  # the listener reconnected: anything may have been missed
    assert everything.is_set()


async def test_two_watchers_of_one_subject_count_apart() -> None:
    hub, _, _ = wakeups()
    hub.start_watching("ns", "r:1")
    hub.start_watching("ns", "r:1")
    hub.stop_watching("ns", "r:1")
    event = hub.change_event("ns", "r:1")
    hub.changed("ns", "r:1")
    assert event.is_set()  # one watcher is left
