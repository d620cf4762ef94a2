"""Live status streams over real HTTP: on PostgreSQL a `statekeeper serve` process
serving the API alone and a `statekeeper worker` process doing the work, so every event
reaches the stream from another process (LISTEN/NOTIFY); on SQLite one `serve` that
runs the workers too (its wake-ups are in-process).
A stream opened after a 202 sees accepted -> processing -> succeeded; a reconnect with
Last-Event-ID misses nothing and repeats nothing; 500 streams stay under a memory
bound; past the limit a stream is 503."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import cli_forkserver
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "stream-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Served:
    def __init__(self, url: str, pid: int) -> None:
        self.url = url
        self.pid = pid


def _env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    paths = f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}"
    return {
        **os.environ, "PYTHONPATH": paths, "STREAM_DB_URL": database_url,
        "STATEKEEPER_API_TOKEN": TOKEN, **(extra or {}),
    }  # fmt: skip


def _start(args: list[str], env: dict[str, str], log: Path) -> cli_forkserver.Forked:
    with log.open("wb") as sink:
        return cli_forkserver.Forked(args, env, stdout=sink, stderr=subprocess.STDOUT)


def _stop(process: cli_forkserver.Forked, log: Path) -> None:
    process.terminate()
    process.wait(timeout=30)
    lines = log.read_text(errors="replace").splitlines()
    # The worker logs the failures the tests ask for, with their tracebacks.
    unexpected = [line for line in lines if "Traceback" in line and "first attempt" not in line]
    assert not unexpected, "\n".join(lines)[-3000:]


@pytest.fixture
def served(own_database_url: str, tmp_path: Path) -> Iterator[Served]:
    with serving(own_database_url, tmp_path) as server:
        yield server


@contextlib.contextmanager
def serving(
    database_url: str, where: Path, extra: dict[str, str] | None = None
) -> Iterator[Served]:
    env = _env(database_url, extra)
    port = free_port()
    worker_log, serve_log = where / "worker.log", where / "serve.log"
    # On PostgreSQL the work runs in a worker process of its own, so that every event
    # reaches the stream by LISTEN/NOTIFY; SQLite's wake-ups are within one process,
    # where `serve` runs the workers itself.
    apart = not database_url.startswith("sqlite")
    worker = _start(["worker", "--app", "stream_app:app"], env, worker_log) if apart else None
    only_http = ["--no-workers"] if apart else []
    server = _start(
        ["serve", "--app", "stream_app:app", *only_http, "--port", str(port), "--grace", "2"],
        env, serve_log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield Served(url, server.pid)
    finally:
        _stop(server, serve_log)
        if worker is not None:
            _stop(worker, worker_log)


async def events_of(
    client: httpx.AsyncClient, path: str, last: str | None = None, count: int | None = None
) -> list[dict[str, Any]]:
    """The events of the stream at ``path`` (after ``last``): all of them, until it
    ends, or the first ``count`` (then the connection is dropped)."""
    headers = dict(AUTH) if last is None else {**AUTH, "Last-Event-ID": last}
    found: list[dict[str, Any]] = []
    async with client.stream("GET", path, headers=headers) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        async for line in answer.aiter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if event:
                    found.append(event)
                    event = {}
                    if count is not None and len(found) == count:
                        return found
                continue
            field, _, value = line.partition(": ")
            event[field] = json.loads(value) if field == "data" else value
    return found


async def test_a_request_stream_follows_it_to_its_end(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        posted = await client.post(
            "/v1/queues/jobs/messages", json={"n": 1, "fail_first": True}, headers=AUTH
        )
        assert posted.status_code == 202
        started = time.monotonic()
        path = f"{posted.headers['location']}/events"
        events = await events_of(client, path)
        took = time.monotonic() - started
    kinds = [e["event"] for e in events]
    assert kinds == ["accepted", "processing", "failed", "processing", "succeeded"], kinds
    assert [e["id"] for e in events] == ["1", "2", "3", "4", "5"]
    assert [e["data"].get("attempt") for e in events[:4]] == [0, 1, 1, 2]
    assert events[-1]["data"]["result"] == {"done": 1}
    # Two attempts of 0.5 s and a 0.2 s backoff: the stream heard each change when it
    # happened, not at its 15 s safety reads.
    assert took < 8, took


async def test_a_reconnect_with_last_event_id_misses_nothing(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        posted = await client.post(
            "/v1/queues/jobs/messages", json={"n": 2, "fail_first": True, "seconds": 0.3},
            headers=AUTH,
        )  # fmt: skip
        path = f"{posted.headers['location']}/events"
        first = await events_of(client, path, count=2)
        await asyncio.sleep(0.5)  # events happen while disconnected
        rest = await events_of(client, path, last=first[-1]["id"])
        whole = await events_of(client, path)
        # After the last event: 204, which tells an SSE client to stop reconnecting.
        after_end = await client.get(path, headers={**AUTH, "Last-Event-ID": whole[-1]["id"]})
    assert [e["id"] for e in first + rest] == [e["id"] for e in whole]
    assert [e["event"] for e in first + rest] == [e["event"] for e in whole]
    assert after_end.status_code == 204 and after_end.content == b""


async def test_a_workflow_stream_shows_steps_values_and_the_end(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        started = await client.post("/v1/workflows/pipeline?id=p-1", json=3, headers=AUTH)
        assert started.status_code == 202, started.text
        path = "/v1/workflows/pipeline/p-1/events"
        first = await events_of(client, path, count=2)
        rest = await events_of(client, path, last=first[-1]["id"])
        whole = await events_of(client, path)
    seen = first + rest

    def positions(events: list[dict[str, Any]]) -> list[int]:
        return [e["data"]["position"] for e in events if e["event"] == "entry"]

    # Every journal entry once, in order, across the reconnect; statuses are the ones
    # each connection saw change (a stream opened late starts from the current one).
    assert positions(seen) == positions(whole) == list(range(1, len(positions(whole)) + 1))
    assert seen[-1]["event"] == "end" and seen[-1]["data"] == whole[-1]["data"]
    live = [e["data"]["status"] for e in seen if e["event"] == "status"]
    assert live[-1] == "succeeded" and set(live) <= {"pending", "running", "sleeping", "succeeded"}
    entries = [(e["data"]["kind"], e["data"]["name"]) for e in whole if e["event"] == "entry"]
    assert entries[0] == ("step", "double") and entries[-1] == ("step", "double")
    assert ("publish", "progress") in entries
    values = [e["data"]["output"] for e in whole if e["event"] == "entry"]
    assert {"first": 6} in values or any(v == 6 for v in values)
    statuses = [e["data"]["status"] for e in whole if e["event"] == "status"]
    assert statuses[-1] == "succeeded"
    assert whole[-1]["event"] == "end" and whole[-1]["data"]["output"] == {"result": 12}


async def test_durable_stream_readers_late_and_resumed_see_every_value_once(
    served: Served,
) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        started = await client.post("/v1/workflows/feed?id=f-1", json=20, headers=AUTH)
        assert started.status_code == 202, started.text
        path = "/v1/workflows/feed/f-1/streams/numbers"
        first = await events_of(client, path, count=5)  # live, then dropped
        rest = await events_of(client, path, last=first[-1]["id"])
        late = await events_of(client, path)  # after the close
        middle = await events_of(client, f"{path}?offset=12")
    wanted = [{"offset": i, "value": {"i": i}} for i in range(20)]
    assert [e["data"] for e in first + rest if e["event"] == "value"] == wanted
    assert [e["data"] for e in late if e["event"] == "value"] == wanted
    assert [e["data"] for e in middle if e["event"] == "value"] == wanted[12:]
    for events in (rest, late, middle):
        assert events[-1]["event"] == "end" and events[-1]["data"]["closed"] is True


async def test_bad_streams_are_refused(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
        missing = await client.get("/v1/requests/nope/events", headers=AUTH)
        assert missing.status_code == 404
        anonymous = await client.get("/v1/requests/nope/events")
        assert anonymous.status_code == 401
        posted = await client.post("/v1/queues/parked/messages", json=1, headers=AUTH)
        path = f"{posted.headers['location']}/events"
        bad = await client.get(path, headers={**AUTH, "Last-Event-ID": "x"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]["message"]
        started = await client.post("/v1/workflows/pipeline?id=p-2", json=1, headers=AUTH)
        assert started.status_code == 202
        other = await client.get("/v1/workflows/other/p-2/events", headers=AUTH)
        assert other.status_code == 404
        wrong = await client.get(
            "/v1/workflows/pipeline/p-2/events", headers={**AUTH, "Last-Event-ID": "1.x y"}
        )
        assert wrong.status_code == 400


async def hold(
    client: httpx.AsyncClient, id: str, opened: list[int], ready: asyncio.Semaphore
) -> None:
    """Keep the stream of request ``id`` open; ``ready`` once its first event came."""
    async with client.stream("GET", f"/v1/requests/{id}/events", headers=AUTH) as answer:
        opened.append(answer.status_code)
        async for line in answer.aiter_lines():
            if line.startswith("event: accepted"):
                ready.release()
        await asyncio.Event().wait()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


STREAMS = 500
BOUND_KIB_PER_STREAM = 64  # measured about 20-30 KiB per open stream (see the test)


async def test_500_open_streams_stay_under_a_memory_bound(
    fresh_pg_url: str, tmp_path: Path
) -> None:
    """On PostgreSQL (a stream's memory is the same on SQLite), with the server's limit
    at 500: the 501st is 503 at once."""
    limited = {"STATEKEEPER_MAX_STREAMS": str(STREAMS)}
    with serving(fresh_pg_url, tmp_path, limited) as server:
        limits = httpx.Limits(max_connections=STREAMS + 20, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
            ids = []
            for _ in range(STREAMS):  # requests no one works on: their streams stay open
                posted = await client.post("/v1/queues/parked/messages", json=1, headers=AUTH)
                ids.append(posted.json()["id"])
            # Warm up the server's paths once, so the figure is the streams' own.
            await events_of(client, f"/v1/requests/{ids[0]}/events", count=1)
            before = rss_kib(server.pid)
            opened: list[int] = []
            ready = asyncio.Semaphore(0)
            tasks = [asyncio.create_task(hold(client, id, opened, ready)) for id in ids]
            for _ in ids:
                await asyncio.wait_for(ready.acquire(), 60)
            after = rss_kib(server.pid)
            assert opened == [200] * STREAMS
            # One more is refused with 503 while the 500 are open, at once.
            busy = await client.get(f"/v1/requests/{ids[0]}/events", headers=AUTH)
            assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
            assert busy.json()["error"]["code"] == "too_many_streams"
            health = await client.get("/healthz")
            assert health.status_code == 200
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        grown = after - before
        print(f"{STREAMS} streams: RSS {before} -> {after} KiB, {grown / STREAMS:.1f} KiB each")
        assert grown < STREAMS * BOUND_KIB_PER_STREAM, (before, after)
