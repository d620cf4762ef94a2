"""Uploads while the server is SIGKILLed and restarted every half second (eight times):
every upload a client completes (201, or 409 after a retry whose first try was cut) has
its file whole and its workflow started exactly once; nothing refers to the files of
cut uploads."""

from __future__ import annotations

import asyncio
import hashlib
import random
import signal
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from tests.conftest import pg_dsn
from tests.integration.cli_forkserver import Process
from tests.integration.crash_support import TOKEN, start
from tests.servers import free_port

pytestmark = pytest.mark.crash
MiB = 1 << 20
UPLOADS = 16
KILLS = 8


@pytest.fixture
async def prepared(schema: str) -> AsyncIterator[App]:
    url = f"{pg_dsn()}?schema={schema}"
    async with App(url, namespace="uploads", purge_interval=None) as app:  # the schema

        @app.workflow(name="ingest")
        async def ingest(ctx: Any, data: Any) -> bool:  # known here, run by the server
            raise AssertionError("runs in the server")

        yield app


async def slowly(data: bytes) -> AsyncIterator[bytes]:
    """The file in 64 KiB pieces, a little apart (chunked, no length): an upload lasts
    long enough for kills to land inside it."""
    for offset in range(0, len(data), 64 * 1024):
        yield data[offset : offset + 64 * 1024]
        await asyncio.sleep(0.004)


async def test_uploads_survive_a_server_killed_every_half_second(
    prepared: App, schema: str, processes: list[Process]
) -> None:
    app = prepared
    port = free_port()
    serve = ["serve", "--app", "upload_crash_app:app", "--port", str(port), "--grace", "1"]
    server = start(serve, schema)
    processes.append(server)
    files = [random.Random(n).randbytes(2 * MiB) for n in range(UPLOADS)]
    done: dict[int, str] = {}  # file -> upload id, once the client saw it complete
    retries = 0

    async def send(client: httpx.AsyncClient, n: int) -> None:
        nonlocal retries
        digest = hashlib.sha256(files[n]).hexdigest()
        while True:
            try:
                created = await client.post("/v1/uploads", json={"workflow": "ingest",
                                                                 "sha256": digest})  # fmt: skip
                break
            except httpx.TransportError:
                retries += 1
                await asyncio.sleep(0.05)
        assert created.status_code == 201, created.text
        url = created.json()["upload_url"]
        tried = False
        while True:
            try:
                answer = await client.put(url, content=slowly(files[n]))
            except httpx.TransportError:  # cut by a kill: the same URL again
                retries += 1
                tried = True
                await asyncio.sleep(0.05)
                continue
            if answer.status_code == 409 and tried:  # the cut try had completed it
                assert answer.json()["error"]["code"] == "upload_finished"
            else:
                assert answer.status_code == 201, answer.text
            done[n] = created.json()["id"]
            return

    kills = 0

    async def killer() -> None:
        nonlocal server, kills
        rng = random.Random(11)
        while len(done) < UPLOADS and kills < KILLS:
            await asyncio.sleep(rng.uniform(0.25, 0.6))
            server.send_signal(signal.SIGKILL)
            server.wait()
            kills += 1
            server = start(serve, schema)
            processes.append(server)

    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10
    ) as client:
        for _ in range(200):
            try:
                await client.get("/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        killing = asyncio.create_task(killer())
        semaphore = asyncio.Semaphore(2)

        async def bounded(n: int) -> None:
            async with semaphore:
                await send(client, n)

        await asyncio.wait_for(asyncio.gather(*(bounded(n) for n in range(UPLOADS))), 120)
        await killing
    assert kills >= 3, "too few kills to prove anything"
    # The last server runs on: what a killed one stored but did not start, its upkeep
    # starts; every workflow reads its file back whole.
    for n, id in done.items():
        for _ in range(300):
            upload = await app.uploads.get(id)
            if upload.started is not None:
                break
            await asyncio.sleep(0.1)
        assert upload.state == "complete" and upload.size == len(files[n])
        assert upload.digest == hashlib.sha256(files[n]).hexdigest()
        assert upload.started == f"upload-{id}"
        assert await app.workflows.result(upload.started, timeout=60) is True
        assert await app.uploads.read(id) == files[n]
    runs = await app.workflows.list(name="ingest", limit=100)
    assert sorted(run["id"] for run in runs) == sorted(f"upload-{id}" for id in done.values())
    backend: Any = app.backend
    async with backend.pool.acquire() as conn:
        referenced = await conn.fetchval("SELECT count(*) FROM sk_blobs WHERE refs > 0")
        odd = await conn.fetchval("SELECT count(*) FROM sk_blobs WHERE refs < 0 OR refs > 1")
    assert referenced == UPLOADS and odd == 0  # cut uploads' files: unreferenced, swept later
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
