"""Probes: ``/healthz`` says the process is up, ``/readyz`` whether to send it work.

In process over the API (both backends), and with real ``statekeeper worker``
processes serving them on ``--health-port``; a database that stops answering is a
real PostgreSQL server behind a TCP proxy that the test stalls or cuts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.health import Readiness
from statekeeper.http.server import create_http_app
from tests.conftest import pg_dsn
from tests.integration.certs import free_port
from tests.integration.tcp_proxy import TcpProxy

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
TOKEN = "health-test-token-0123456789abcdef"


def client_of(app: App, readiness: Readiness | None = None) -> httpx.AsyncClient:
    http = create_http_app(app, HttpConfig(token=TOKEN), readiness)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=http), base_url="http://sk")


def error_code(answer: httpx.Response) -> str:
    assert answer.status_code == 503, answer.text
    return str(answer.json()["error"]["code"])


async def test_ready_only_while_open_and_not_stopping(database_url: str, namespace: str) -> None:
    app = App(database_url, namespace=namespace, purge_interval=None, encryption=None)
    stopping = False
    async with client_of(app, Readiness(app, stopping=lambda: stopping)) as client:
        assert error_code(await client.get("/readyz")) == "closed"
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        async with app:
            ready = await client.get("/readyz")  # no token: probes are open
            assert ready.status_code == 200 and ready.json() == {"status": "ready"}
            stopping = True
            assert error_code(await client.get("/readyz")) == "stopping"
            assert (await client.get("/healthz")).status_code == 200
        stopping = False
        assert error_code(await client.get("/readyz")) == "closed"


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    target = urlsplit(pg_dsn())
    forwarding = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await forwarding.start()
    yield forwarding
    await forwarding.cut()


def through(proxy: TcpProxy, schema: str) -> str:
    """The test database's URL, by way of ``proxy``."""
    target = urlsplit(pg_dsn())
    user, at, _ = target.netloc.rpartition("@")
    netloc = f"{user}{at}127.0.0.1:{proxy.port}"
    return target._replace(netloc=netloc).geturl() + f"?schema={schema}"


class Recorder(logging.Handler):
    """Keeps the records it gets (whatever the logging set-up of the test process)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def ready_within(client: httpx.AsyncClient, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (answer := await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, answer.text
        await asyncio.sleep(0.1)


@pytest.mark.postgres
async def test_readyz_follows_the_database(proxy: TcpProxy, pg_schema_prefix: str) -> None:
    """A stalled database is 503 after the probe's timeout (not a hung probe); a gone
    one is 503 at once; the reason's details (host, port) go to the log, not the
    answer; ready again when the database is back."""
    url = through(proxy, f"{pg_schema_prefix}_ready")
    handler = Recorder()
    logging.getLogger("statekeeper.http").addHandler(handler)
    async with (
        App(url, namespace="ready", purge_interval=None, encryption=None) as app,
        client_of(app, Readiness(app, timeout=0.5)) as client,
    ):
        await ready_within(client, 5)
        proxy.stall()
        for _ in range(3):  # the stalled read is not awaited again, nor piled up
            started = time.monotonic()
            answer = await client.get("/readyz")
            assert error_code(answer) == "database_unavailable"
            assert "did not answer within 0.5 s" in answer.json()["error"]["message"]
            assert time.monotonic() - started < 1.5
        assert (await client.get("/healthz")).status_code == 200
        await proxy.cut()
        cut = await client.get("/readyz")
        assert error_code(cut) == "database_unavailable"
        assert "see the log" in cut.json()["error"]["message"]
        assert (await client.get("/healthz")).status_code == 200
        await proxy.start()
        await ready_within(client, 10)
    logging.getLogger("statekeeper.http").removeHandler(handler)
    said = handler.records
    reasons = [r.__dict__.get("error", "") for r in said if "not ready" in r.getMessage()]
    assert len(reasons) == 2, reasons  # once stalled, once cut: once per change
    assert reasons[1].startswith("cannot list workflows:")  # the driver's words: logged,
    assert reasons[1] not in cut.text  # not answered


class WorkerProcess:
    """A ``statekeeper worker`` process, and the lines of its stderr."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, db: str, *args: str) -> WorkerProcess:
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{HERE}",
            "HEALTH_DB_URL": db,
        }
        env.pop("STATEKEEPER_CALLBACK_SECRET", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "statekeeper", "--log-level", "info",
            "worker", "--app", "health_app:app", *args,
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(process)

    async def wait_for(self, marker: str, timeout: float = 30.0) -> str:
        assert self.process.stderr is not None
        async with asyncio.timeout(timeout):
            while not any(marker in line for line in self.lines):
                line = await self.process.stderr.readline()
                assert line, f"the worker ended: {self.lines}"
                self.lines.append(line.decode())
        return next(line for line in self.lines if marker in line)

    async def stop(self) -> str:
        """SIGTERM; waits for a clean exit; everything it wrote on stderr."""
        self.process.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(self.process.communicate(), 30)
        everything = "".join(self.lines) + rest.decode()
        assert self.process.returncode == 0, everything
        # Tracebacks only inside log records (the driver's own warnings included),
        # never printed bare.
        for line in everything.splitlines():
            if line.startswith("{"):
                json.loads(line)
            else:
                assert "Traceback" not in line and not line.startswith("  File"), everything
        return everything

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@pytest.fixture
async def workers() -> AsyncIterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()
        await worker.process.wait()


async def test_worker_serves_probes_until_it_has_stopped(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    """Ready while it works; on SIGTERM, not ready (stopping) but alive while the
    message in hand finishes within the grace; then the port closes."""
    db = f"sqlite:///{tmp_path}/health.db"
    port = free_port()
    worker = await WorkerProcess.start(db, "--health-port", str(port))
    workers.append(worker)
    line = await worker.wait_for("health probes at")
    assert f"http://127.0.0.1:{port}/healthz" in line
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        await ready_within(client, 5)
        async with App(db, namespace="health", purge_interval=None) as app:
            slow = app.queue("slow")
            await slow.send({"seconds": 1.5})
            for _ in range(500):
                if (await slow.stats()).in_flight:
                    break
                await asyncio.sleep(0.02)
            worker.process.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert error_code(await client.get("/readyz")) == "stopping"
            assert (await client.get("/healthz")).status_code == 200
            await worker.stop()
            stats = await slow.stats()
            assert stats.ready + stats.in_flight == 0  # finished within the grace
        with pytest.raises(httpx.ConnectError):
            await client.get("/healthz")


@pytest.mark.postgres
async def test_worker_readiness_follows_the_database(
    proxy: TcpProxy, pg_schema_prefix: str, workers: list[WorkerProcess]
) -> None:
    url = through(proxy, f"{pg_schema_prefix}_worker_ready")
    port = free_port()
    worker = await WorkerProcess.start(url, "--health-port", str(port))
    workers.append(worker)
    await worker.wait_for("health probes at")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        await ready_within(client, 5)
        await proxy.cut()
        assert error_code(await client.get("/readyz")) == "database_unavailable"
        assert (await client.get("/healthz")).status_code == 200
        await proxy.start()
        await ready_within(client, 10)
    await worker.stop()


async def test_worker_health_port_errors_are_one_line(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    db = f"sqlite:///{tmp_path}/health.db"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = await WorkerProcess.start(db, "--health-port", str(port))
        workers.append(worker)
        _, stderr = await asyncio.wait_for(worker.process.communicate(), 30)
    assert worker.process.returncode == 3
    lines = [line for line in stderr.decode().splitlines() if not line.startswith("{")]
    assert lines == [f"error: address_in_use: 127.0.0.1:{port} is in use"]
    worker = await WorkerProcess.start(db, "--health-port", "0")
    workers.append(worker)
    _, stderr = await asyncio.wait_for(worker.process.communicate(), 30)
    assert worker.process.returncode == 2
    assert "--health-port" in stderr.decode() and "Traceback" not in stderr.decode()
