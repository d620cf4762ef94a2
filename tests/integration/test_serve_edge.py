"""``statekeeper serve`` at its edge, as a real process over real sockets: ports, TLS,
slow and vanishing clients, the start line and the exposure warnings."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from statekeeper import App
from statekeeper.queues import StoredMessage
from tests.integration import cli_forkserver
from tests.integration.certs import free_port, self_signed

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
TOKEN = "edge-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def environment(db: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{HERE}",
        "EDGE_DB_URL": db,
        "STATEKEEPER_API_TOKEN": TOKEN,
        **(extra or {}),
    }
    for name in ("STATEKEEPER_CALLBACK_SECRET", "STATEKEEPER_TLS_CERT", "STATEKEEPER_TLS_KEY"):
        if name not in (extra or {}):
            env.pop(name, None)
    return env


class Server:
    """A ``statekeeper serve`` process and the lines of its stderr."""

    def __init__(self, args: list[str], db: str, extra: dict[str, str] | None = None,
                 prefix: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "statekeeper", *args],
            env=environment(db, extra),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._buffer = b""
        self.lines: list[str] = []

    def wait_for(self, marker: str, timeout: float = 30.0) -> str:
        """The first stderr line containing ``marker`` (reading until it comes)."""
        assert self.process.stderr is not None
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if marker in line:
                    return line
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} in {self.lines}"
            ready, _, _ = select.select([self.process.stderr], [], [], left)
            chunk = os.read(self.process.stderr.fileno(), 65536) if ready else b""
            if ready and not chunk:
                raise AssertionError(f"the server ended: {self.lines}")
            self._buffer += chunk
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines += [line.decode() for line in complete]

    def stop(self) -> str:
        """SIGTERM; everything it wrote on stderr."""
        self.process.send_signal(signal.SIGTERM)
        _, rest = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, rest.decode()
        return "\n".join(self.lines) + "\n" + (self._buffer + rest).decode()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait()


def run_cli(args: list[str], db: str, extra: dict[str, str] | None = None) -> tuple[int, str]:
    done = cli_forkserver.run(args, environment(db, extra), None, None, 60)
    return done.returncode, done.stderr


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/edge.db"


@pytest.mark.parametrize("port", ["99999", "0", "-1", "65536"])
def test_ports_out_of_range_are_a_usage_error(sqlite_db: str, port: str) -> None:
    code, stderr = run_cli(["serve", "--app", "edge_app:app", "--port", port], sqlite_db)
    assert code == 2
    assert one_line(stderr) == f"error: invalid_option: --port must be 1 to 65535, got {port}"


def test_a_port_in_use_is_one_line(sqlite_db: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stderr = run_cli(["serve", "--app", "edge_app:app", "--port", str(port)], sqlite_db)
    assert code == 3
    assert one_line(stderr) == f"error: address_in_use: 127.0.0.1:{port} is in use"


def test_tls_file_errors_are_one_line(sqlite_db: str, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, names=["localhost"])
    _, other_key = self_signed(tmp_path, names=["other"], stem="other")
    serve = ["serve", "--app", "edge_app:app", "--port", str(free_port())]
    cases = [
        ([*serve, "--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(key)], 3,
         "error: invalid_tls_files: cannot read the TLS certificate file"),
        ([*serve, "--tls-cert", str(cert), "--tls-key", str(other_key)], 3,
         "error: invalid_tls_files: the TLS key"),
        ([*serve, "--tls-cert", str(key), "--tls-key", str(key)], 3,
         "error: invalid_tls_files: the TLS certificate file"),
        ([*serve, "--tls-cert", str(cert)], 2, "error: invalid_option: TLS needs both"),
    ]  # fmt: skip
    for args, exit_code, start in cases:
        code, stderr = run_cli(args, sqlite_db)
        assert code == exit_code, stderr
        assert one_line(stderr).startswith(start)


def test_https_verifies_and_plain_http_fails(
    sqlite_db: str, tmp_path: Path, servers: list[Server]
) -> None:
    cert, key = self_signed(tmp_path, names=["localhost"], addresses=("127.0.0.1",))
    port = free_port()
    server = Server(
        ["serve", "--app", "edge_app:app", "--port", str(port)],
        sqlite_db,
        {"STATEKEEPER_TLS_CERT": str(cert), "STATEKEEPER_TLS_KEY": str(key)},
    )
    servers.append(server)
    line = server.wait_for("statekeeper serving")
    assert line == (
        f"statekeeper serving https://127.0.0.1:{port}; auth on; consumers: orders; workflows: trip"
        f"; namespace: edge; database: {sqlite_db}"
    )
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(verify=trust, base_url=f"https://localhost:{port}") as client:
        assert client.get("/healthz", headers=AUTH).json() == {"status": "ok"}
        posted = client.post("/v1/queues/orders/messages", json={"n": 1}, headers=AUTH)
        assert posted.status_code == 202
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{port}/healthz")  # the system CAs do not trust it
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", headers=AUTH)
    stderr = server.stop()
    assert "warning" not in stderr  # loopback: nothing to warn about
    assert "Traceback" not in stderr


def received(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


HEAD = (
    b"POST /v1/queues/orders/messages HTTP/1.1\r\nHost: sk\r\n"
    b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Type: application/json\r\n"
)


def test_slow_and_vanishing_clients(
    backend_name: str, sqlite_db: str, fresh_pg_url: str, servers: list[Server]
) -> None:
    """Half a head is cut off after the header timeout, half a body gets 408 after the
    body timeout, a client leaving mid-body is no error; nothing of theirs is stored,
    no traceback is logged, and the server still serves."""
    db = sqlite_db if backend_name == "sqlite" else fresh_pg_url
    port = free_port()
    server = Server(
        ["--log-level", "info", "serve", "--app", "edge_app:app", "--port", str(port),
         "--no-workers", "--header-timeout", "0.6"],
        db,
        {"STATEKEEPER_BODY_TIMEOUT": "0.6"},
    )  # fmt: skip
    servers.append(server)
    server.wait_for("statekeeper serving")

    half_head = connect(port)
    half_head.sendall(HEAD[:40])
    silent = connect(port)
    half_body = connect(port)
    half_body.sendall(HEAD + b'Content-Length: 100\r\n\r\n{"n": ')
    data, waited = received(half_head, 10)
    assert data == b"" and 0.5 < waited < 5
    assert received(silent, 10)[0] == b""
    answer, _ = received(half_body, 10)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b'"code": "request_timeout"' in answer

    leaving = connect(port)
    leaving.sendall(HEAD + b'Content-Length: 100\r\n\r\n{"n": ')
    time.sleep(0.1)
    leaving.close()

    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        good = client.post("/v1/queues/orders/messages", json={"n": 2}, headers=AUTH)
    assert good.status_code == 202
    server.wait_for('"waiting_for": "body"')
    stderr = server.stop()
    assert '"waiting_for": "headers"' in stderr
    for bad in ("Traceback", "unexpected error", "Exception in ASGI"):
        assert bad not in stderr
    assert [m.body for m in asyncio.run(waiting_orders(db))] == [{"n": 2}]


async def waiting_orders(db: str) -> list[StoredMessage]:
    async with App(db, namespace="edge", purge_interval=None) as app:
        return await app.queue("orders").peek(10)


def test_warnings_when_other_hosts_can_reach_it(sqlite_db: str, servers: list[Server]) -> None:
    """``--dev --host 0.0.0.0`` warns on stderr and in the log. It runs in a network
    namespace of its own (only a loopback interface, down), so nothing can reach it."""
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("no unprivileged network namespaces here")
    server = Server(
        ["serve", "--app", "edge_app:app", "--host", "0.0.0.0", "--port", "8000", "--dev"],
        sqlite_db,
        {"STATEKEEPER_API_TOKEN": ""},
        prefix=("unshare", "-rn"),
    )
    servers.append(server)
    line = server.wait_for("statekeeper serving")
    assert line.startswith("statekeeper serving http://0.0.0.0:8000; auth off (dev mode)")
    stderr = server.stop()
    plain = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert len(plain) == 2
    assert "auth is off" in plain[0] and "plain HTTP" in plain[1]
    logged = [line for line in stderr.splitlines() if '"level": "warning"' in line]
    assert len(logged) == 2 and "auth is off" in logged[0]
