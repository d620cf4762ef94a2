"""Running ``statekeeper sidecar`` as a real process on free loopback ports, for the
sidecar tests (HTTP, gRPC through the official Dapr SDK, pub/sub deliveries)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.integration.cli_forkserver import Forked, Process
from tests.integration.cli_support import ROOT, environment, free_port


@dataclass
class SidecarProcess:
    process: Process
    http_port: int
    grpc_port: int | None
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def sdk_env(self) -> dict[str, str]:
        """The variables a Dapr SDK reads to find this sidecar."""
        env = {"DAPR_HTTP_PORT": str(self.http_port), "DAPR_RUNTIME_HOST": "127.0.0.1"}
        if self.grpc_port is not None:
            env["DAPR_GRPC_PORT"] = str(self.grpc_port)
        return env

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit code once it ended."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@contextlib.contextmanager
def running_sidecar(
    database_url: str,
    log: Path,
    *args: str,
    grpc: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    check_log: bool = True,
) -> Iterator[SidecarProcess]:
    """``statekeeper --database URL sidecar ARGS`` on free ports, its output in ``log``;
    yields once ``/v1.0/healthz`` answers 204. Ends it with SIGTERM and (with
    ``check_log``) checks that it exited 0 and logged no traceback."""
    http_port = free_port()
    grpc_port = free_port() if grpc else None
    command = [
        "--database", database_url, "sidecar",
        "--http-port", str(http_port), "--grpc-port", str(grpc_port or 0), "--grace", "3",
        *args,
    ]  # fmt: skip
    clean = {k: v for k, v in environment(env).items() if k not in ("DAPR_API_TOKEN", "APP_ID")}
    with log.open("wb") as sink:
        process = Forked(
            command, {**clean, **(env or {})}, cwd or log.parent,
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        sidecar = SidecarProcess(process, http_port, grpc_port, log)
        try:
            wait_healthy(sidecar)
            yield sidecar
            if check_log:
                code = sidecar.terminate()
                text = sidecar.output()
                assert code == 0, text
                assert "Traceback" not in text, text
        finally:
            sidecar.kill()


def wait_healthy(sidecar: SidecarProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sidecar.process.poll() is not None:
            raise AssertionError(f"the sidecar exited: {sidecar.output()}")
        try:
            if httpx.get(f"{sidecar.url}/v1.0/healthz", timeout=1).status_code == 204:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the sidecar never became healthy: {sidecar.output()}")


def python_env() -> dict[str, str]:
    """PYTHONPATH for processes that import both statekeeper and the tests."""
    return {"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
