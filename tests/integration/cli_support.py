"""Running the ``statekeeper`` command as a real process, for the CLI tests."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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
    """``python -m statekeeper ARGS``, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "statekeeper", *args],
        env=environment(env),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
        self.process = subprocess.Popen(
            [sys.executable, "-m", "statekeeper", *args],
            env=environment(env),
            cwd=cwd,
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
