"""Running the ``statekeeper`` command as a real process, for the CLI tests."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.integration import cli_forkserver

ROOT = Path(__file__).parents[2]
# Variables of the developer's shell that would change what a command does.
UNSET = ("STATEKEEPER_DATABASE_URL", "STATEKEEPER_NAMESPACE", "STATEKEEPER_APP",
         "STATEKEEPER_LOG_FORMAT", "STATEKEEPER_LOG_LEVEL", "STATEKEEPER_ENCRYPTION_KEYS",
         "STATEKEEPER_CALLBACK_SECRET", "STATEKEEPER_CACHE_URL")  # fmt: skip


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    return {**env, "PYTHONPATH": str(ROOT / "src"), **(extra or {})}


def statekeeper(
    *args: str,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python -m statekeeper ARGS``, its output captured as text (a process of its own,
    forked from one that has the CLI imported: see cli_forkserver)."""
    return cli_forkserver.run(args, environment(env), cwd, stdin, timeout)


def one_line_error(result: subprocess.CompletedProcess[str], code: str, exit_code: int) -> str:
    """The single ``error: CODE: ...`` line of a command that exited with ``exit_code``."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {code}: "), lines[0]
    return lines[0]


def document(result: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document a command printed (it fails on anything else)."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Running:
    """A long-running command (``worker``, ``serve``) and the lines of its stderr."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.process = cli_forkserver.Forked(
            args, environment(env), cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
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
                raise AssertionError(f"the process ended: {self.lines}")
            self._buffer += chunk
            *complete, self._buffer = self._buffer.split(b"\n")
            self.lines += [line.decode() for line in complete]

    def stop(self) -> list[str]:
        """SIGTERM; every line it wrote on stderr."""
        self.process.send_signal(signal.SIGTERM)
        _, rest = self.process.communicate(timeout=30)
        assert self.process.returncode == 0, rest.decode()
        return [*self.lines, *(self._buffer + rest).decode().splitlines()]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(target: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """``statekeeper serve --app TARGET`` (an app of tests/integration) on a free
    loopback port, its output in ``log``; yields its URL once /healthz answers. Ends it
    with SIGTERM, then checks that its log holds no traceback."""
    port = free_port()
    paths = f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}"
    with log.open("wb") as sink:
        process = cli_forkserver.Forked(
            ["serve", "--app", target, "--port", str(port), "--grace", "2"],
            {**os.environ, **env, "PYTHONPATH": paths}, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
