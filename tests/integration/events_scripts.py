"""Programs the event store's process tests run as separate OS processes.

python tests/integration/events_scripts.py write URL NAMESPACE WRITER OPS TASKS
    Prints ``ready``, waits for a line on stdin, then ``TASKS`` tasks make ``OPS``
    appends each: to shared streams with the exact version read just before (many
    conflict), with EXISTS or ANY, to streams of their own, and racing to create
    streams with NO_STREAM. One JSON line per append, once it is acknowledged or
    refused: what was asked and what came back.
python tests/integration/events_scripts.py read URL NAMESPACE
    Prints ``ready``, then polls ``read_all(after=...)`` in a tight loop, moving past
    whatever it read, until a line on stdin and the log's head; prints how many reads
    it made and the positions it saw, as ranges ``[first, last]`` in the order seen.
python tests/integration/events_scripts.py append URL NAMESPACE TOTAL BATCH SECONDS
    Appends TOTAL events in appends of up to BATCH events to 40 streams, spread over
    about SECONDS; prints ``appended N`` at the end. Each event's data has an amount.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from typing import Any

from statekeeper import App
from statekeeper.errors import WrongExpectedVersion
from statekeeper.events.model import ANY, EXISTS, NO_STREAM, EventData

SHARED = 4  # shared-0 .. shared-3
RACES = 30  # race-0 .. race-29: created with NO_STREAM, by one append each
KINDS = ["exact", "exact", "exact", "exact", "any", "exists", "own", "own", "race"]


def open_app(url: str, namespace: str) -> App:
    return App(
        url, namespace=namespace, purge_interval=None, maintenance_interval=None,
        encryption=None,
    )  # fmt: skip


def report(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


async def write(url: str, namespace: str, writer: int, ops: int, tasks: int) -> None:
    async with open_app(url, namespace) as app:
        report({"ready": writer})
        await asyncio.to_thread(sys.stdin.readline)  # the go: every writer starts at once

        async def task(t: int) -> None:
            rng = random.Random(writer * 1000 + t)
            own, own_version = f"own-w{writer}t{t}", 0
            for op in range(ops):
                kind = rng.choice(KINDS)
                if kind == "own":
                    stream, expected = own, own_version
                elif kind == "race":
                    stream, expected = f"race-{rng.randrange(RACES)}", NO_STREAM
                else:
                    stream = f"shared-{rng.randrange(SHARED)}"
                    if kind == "exact":
                        expected = await app.events.stream_version(stream)
                    else:
                        expected = ANY if kind == "any" else EXISTS
                name = f"w{writer}.t{t}.o{op}"
                events = [
                    EventData("Written", {"append": name, "i": i}, id=f"{name}.e{i}")
                    for i in range(rng.randint(1, 3))
                ]
                asked = {"append": name, "kind": kind, "stream": stream,
                         "expected": expected, "ids": [e.id for e in events]}  # fmt: skip
                try:
                    done = await app.events.append(stream, events, expected_version=expected)
                except WrongExpectedVersion as refused:
                    report({**asked, "ok": False, "actual": refused.actual})
                    continue
                report({**asked, "ok": True, "version": done.version,
                        "first": done.first_position, "last": done.last_position})  # fmt: skip
                if kind == "own":
                    own_version = done.version

        await asyncio.gather(*(task(t) for t in range(tasks)))


async def read(url: str, namespace: str) -> None:
    async with open_app(url, namespace) as app:
        report({"ready": "reader"})
        stop = asyncio.ensure_future(asyncio.to_thread(sys.stdin.readline))
        seen: list[list[int]] = []
        after = reads = 0
        while not (stop.done() and await app.events.head() == after):
            batch = await app.events.read_all(after=after, limit=1000)
            reads += 1
            for event in batch:
                if seen and seen[-1][1] + 1 == event.position:
                    seen[-1][1] = event.position
                else:
                    seen.append([event.position, event.position])
            after = batch[-1].position if batch else after
            await asyncio.sleep(0)  # SQLite reads do not yield: let the stop line in
        report({"reads": reads, "seen": seen})


async def append(url: str, namespace: str, total: int, batch: int, seconds: float) -> None:
    rng = random.Random(total)
    async with open_app(url, namespace) as app:
        started = time.monotonic()
        done = 0
        while done < total:
            count = min(rng.randint(1, batch), total - done)
            events = [EventData("Deposited", {"amount": rng.randrange(-500, 1000)})
                      for _ in range(count)]  # fmt: skip
            await app.events.append(f"acct-{rng.randrange(40)}", events)
            done += count
            # Keep to the schedule: ``done`` events by ``done / total`` of the time.
            ahead = started + seconds * done / total - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        report({"appended": done, "seconds": round(time.monotonic() - started, 2)})


def main(argv: list[str]) -> None:
    command, url, namespace, *rest = argv
    numbers = [int(x) for x in rest]
    if command == "read":
        asyncio.run(read(url, namespace))
    elif command == "write":
        asyncio.run(write(url, namespace, *numbers))
    elif command == "append":
        asyncio.run(append(url, namespace, numbers[0], numbers[1], float(numbers[2])))
    else:
        raise SystemExit(f"unknown command {command!r}")
    # Everything is reported and the app closed: skip the interpreter's teardown, which
    # costs eight processes ending at once seconds of the machine's two cores.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
