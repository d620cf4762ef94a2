"""The event store under concurrent OS processes, on SQLite and PostgreSQL.

Eight writer processes (three tasks each) append at once: to four shared streams with
the exact version read just before (many conflict), with EXISTS and with ANY; to
streams of their own; and racing to create streams with NO_STREAM. Meanwhile a live
subscription and a reader polling ``read_all(after=...)`` in a tight loop record every
position they see. Then:

- the log is positions 1..N, and every event in it is one an append acknowledged, at
  the positions and stream versions it reported (nothing lost, nothing twice);
- an append refused with WrongExpectedVersion left nothing, and its stream really was
  at another version (``expected < actual <= the stream's last version``);
- no two acknowledged appends share a (stream, version): per stream, the acknowledged
  appends chain 1..V, each exact one starting right after the version it expected (the
  store never took an append whose expected version was stale);
- the subscription saw 1..N once each, in order, and so did the reader: a lower
  position never became visible after a higher one (a gap it had seen never filled).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from statekeeper import App
from statekeeper.events.model import EXISTS, EventData, RecordedEvent
from statekeeper.events.subscriptions import Options, Subscription
from tests.conftest import pg_dsn
from tests.integration.crash_support import ROOT

SCRIPT = Path(__file__).with_name("events_scripts.py")
WRITERS = 8
TASKS = 3
OPS = 50  # appends per task: 8 x 3 x 50 = 1200 appends, about 2400 events
NAMESPACE = "evrace"


Process = asyncio.subprocess.Process


@asynccontextmanager
async def started(url: str, logs: Path) -> AsyncIterator[tuple[list[Process], Process]]:
    """The writer processes and the reader process, each ready (its app open); the
    writers wait for the go."""
    running: dict[str, Process] = {}
    try:
        for name, args in [
            *((f"writer{w}", ["write", str(w), str(OPS), str(TASKS)]) for w in range(WRITERS)),
            ("reader", ["read"]),
        ]:
            with (logs / f"{name}.err").open("wb") as errors:
                running[name] = await asyncio.create_subprocess_exec(
                    sys.executable, str(SCRIPT), args[0], url, NAMESPACE, *args[1:],
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    stderr=errors, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                )  # fmt: skip
        for name, process in running.items():
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            assert json.loads(line or b"null")["ready"] is not None, failure(logs, name)
        *writers, reader = running.values()
        yield writers, reader
    finally:
        for process in running.values():
            if process.returncode is None:
                process.kill()
                await process.wait()


def failure(logs: Path, name: str) -> str:
    return (logs / f"{name}.err").read_text()


async def finish(process: Process, name: str, logs: Path, line: bytes = b"") -> bytes:
    """Write ``line`` to the process, wait for it to exit (well); what it printed."""
    out, _ = await asyncio.wait_for(process.communicate(line), timeout=240)
    assert process.returncode == 0, failure(logs, name)
    return out


async def run_writers(writers: list[Process], logs: Path) -> list[dict[str, Any]]:
    """Let every writer go at once; what each reported, once all have exited."""
    outputs = await asyncio.gather(
        *(finish(p, f"writer{w}", logs, b"go\n") for w, p in enumerate(writers))
    )
    records = [json.loads(line) for out in outputs for line in out.splitlines()]
    assert len(records) == WRITERS * TASKS * OPS
    return records


async def whole_log(app: App) -> list[RecordedEvent]:
    found: list[RecordedEvent] = []
    while batch := await app.events.read_all(after=len(found), limit=5000):
        found.extend(batch)
    return found


def live_subscription(app: App, seen: list[tuple[int, str]]) -> Subscription:
    async def record(event: RecordedEvent) -> None:
        seen.append((event.position, event.id))

    return Subscription(
        "recorder", record, backend=lambda: app.backend, events=app.events,
        writer=lambda: app.state, wake=app.events_wake, options=Options(poll=0.05, batch=500),
        clock=app.clock,
    )  # fmt: skip


def check_acknowledged(records: list[dict[str, Any]], log: list[RecordedEvent]) -> None:
    """Every acknowledged append is in the log once, where it was reported; every
    refused one is absent, and was refused by a stream at another version."""
    by_id = {e.id: e for e in log}
    assert len(by_id) == len(log), "an event id twice in the log"
    last_version: dict[str, int] = defaultdict(int)
    for event in log:
        last_version[event.stream] = max(last_version[event.stream], event.version)
    acknowledged: set[str] = set()
    for record in records:
        ids = record["ids"]
        if not record["ok"]:
            assert not any(i in by_id for i in ids), f"refused append stored: {record}"
            assert record["kind"] not in ("own", "any"), f"wrongly refused: {record}"
            actual, expected = record["actual"], record["expected"]
            if expected == EXISTS:
                assert actual == 0, f"refused EXISTS on an existing stream: {record}"
            else:
                # Versions expected+1..actual were taken by others (each stream's log
                # is 1..V, checked below): the refusal was true.
                assert expected < actual <= last_version[record["stream"]], record
            continue
        acknowledged.update(ids)
        stored = [by_id.get(i) for i in ids]
        assert all(stored), f"acknowledged append lost: {record}"
        count = len(ids)
        assert [e.position for e in stored if e] == list(
            range(record["first"], record["last"] + 1)
        ), record
        assert record["last"] - record["first"] + 1 == count
        versions = range(record["version"] - count + 1, record["version"] + 1)
        assert [(e.stream, e.version) for e in stored if e] == [
            (record["stream"], v) for v in versions
        ], record
        if record["expected"] >= 0:
            assert record["version"] - count == record["expected"], f"stale expected: {record}"
        elif record["expected"] == EXISTS:
            assert record["version"] - count >= 1, record
    assert acknowledged == set(by_id), "events in the log that no append acknowledged"


def check_chains(records: list[dict[str, Any]], log: list[RecordedEvent]) -> None:
    """Per stream: versions 1..V in position order, the acknowledged appends chaining
    them without overlap; each race stream created by exactly one append."""
    versions: dict[str, list[int]] = defaultdict(list)
    for event in log:  # in position order
        versions[event.stream].append(event.version)
    for stream, found in versions.items():
        assert found == list(range(1, len(found) + 1)), f"{stream}: versions {found[:20]}..."
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for record in records:
        if record["ok"]:
            spans[record["stream"]].append(
                (record["version"] - len(record["ids"]), record["version"])
            )
    for stream, chain in spans.items():
        chain.sort()
        ends = [0] + [end for _, end in chain]
        assert [start for start, _ in chain] == ends[:-1], f"{stream}: appends overlap"
        assert ends[-1] == len(versions[stream])
    races = Counter(r["stream"] for r in records if r["kind"] == "race" and r["ok"])
    attempted = {r["stream"] for r in records if r["kind"] == "race"}
    assert races == dict.fromkeys(attempted, 1), "a stream created twice with NO_STREAM"


async def test_eight_writer_processes_append_concurrently(
    backend_name: str, tmp_path: Path, fresh_pg_url: str
) -> None:
    url = f"sqlite:///{tmp_path}/events.db" if backend_name == "sqlite" else fresh_pg_url
    async with App(
        url, namespace=NAMESPACE, purge_interval=None, maintenance_interval=None,
        encryption=None,
    ) as app, started(url, tmp_path) as (writers, reader):  # fmt: skip
        seen: list[tuple[int, str]] = []
        stopping = asyncio.Event()
        subscribed = asyncio.create_task(live_subscription(app, seen).run(stopping))
        try:
            records = await run_writers(writers, tmp_path)
            head = await app.events.head()
            read = json.loads(await finish(reader, "reader", tmp_path, b"stop\n"))
            for _ in range(2400):  # the subscription catches up (120 s at most)
                if len(seen) >= head:
                    break
                await asyncio.sleep(0.05)
        finally:
            stopping.set()
            await subscribed
        log = await whole_log(app)

    assert head == len(log) and [e.position for e in log] == list(range(1, head + 1))
    check_acknowledged(records, log)
    check_chains(records, log)
    exact = [r for r in records if r["kind"] == "exact"]
    conflicts = sum(not r["ok"] for r in exact)
    assert conflicts >= len(exact) // 10, "too little contention to prove anything"
    assert [p for p, _ in seen] == list(range(1, head + 1)), "the subscription missed or repeated"
    assert [i for _, i in seen] == [e.id for e in log]
    # One range 1..N: the reader never moved past a position that committed later.
    assert read["seen"] == [[1, head]], "the reader saw a gap that filled later"
    print(
        f"{backend_name}: {len(records)} appends, {head} events, "
        f"{sum(not r['ok'] for r in records)} refused ({conflicts} of {len(exact)} with "
        f"an exact version), {read['reads']} reads by the reader",
        file=sys.stderr,
    )


async def blocked_by(conn: asyncpg.Connection, pid: int) -> int:
    """The backend waiting for a lock that backend ``pid`` holds (waits up to 30 s)."""
    for _ in range(600):
        found = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))", pid
        )
        if found is not None:
            return int(found)
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing waits for backend {pid}")


@pytest.mark.postgres
async def test_units_appending_to_two_streams_in_opposite_orders(fresh_pg_url: str) -> None:
    """Unit one appends to a, c, b; unit two to b, a. A third connection holds c's row,
    so one waits for c, and two waits for what one holds. Had each unit taken its
    streams in its own order, two would hold b, which one needs once c is let go: a
    deadlock. Appends take their streams in name order, so both units commit."""
    schema = fresh_pg_url.partition("?schema=")[2]
    async with App(fresh_pg_url, namespace=NAMESPACE, purge_interval=None,
                   maintenance_interval=None, encryption=None) as app:  # fmt: skip
        events = app.events
        for stream in ("acct-a", "acct-b", "acct-c"):
            await events.append(stream, [EventData("Opened")])
        conn = await asyncpg.connect(pg_dsn(), server_settings={"search_path": schema})
        try:
            holder = await conn.fetchval("SELECT pg_backend_pid()")
            lock = conn.transaction()
            await lock.start()
            await conn.execute(
                "SELECT 1 FROM sk_event_streams WHERE namespace = $1 AND stream = 'acct-c' "
                "FOR UPDATE", NAMESPACE,
            )  # fmt: skip

            def unit(*streams: str) -> Awaitable[Any]:
                return events.commit([events.intent(s, [EventData("Moved")]) for s in streams])

            one = asyncio.ensure_future(unit("acct-a", "acct-c", "acct-b"))
            first = await blocked_by(conn, holder)  # one holds a, waits for c
            two = asyncio.ensure_future(unit("acct-b", "acct-a"))
            await blocked_by(conn, first)  # two waits for a (holding b, as it is)
            await lock.rollback()
            outcomes = await asyncio.gather(one, two, return_exceptions=True)
        finally:
            await conn.close()
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert failed == [], f"a unit failed: {failed[0]!r}"
        assert await events.head() == 8
