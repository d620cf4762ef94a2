"""Property-based fuzzing of the HTTP API from its own OpenAPI document: no 5xx, ever.

The server is a real `statekeeper serve` process on loopback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

ROOT = Path(__file__).parents[2]
TOKEN = "fuzzing-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    db = tmp_path_factory.mktemp("fuzz") / "api.db"
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}",
        "SCHEMA_DB_URL": f"sqlite:///{db}",
        "STATEKEEPER_API_TOKEN": TOKEN,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "statekeeper", "serve", "--app", "schema_app:app",
         "--port", str(port), "--grace", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url
    process.terminate()
    _, stderr = process.communicate(timeout=30)
    assert b"Traceback" not in stderr, stderr.decode()


def test_no_server_errors(server_url: str) -> None:
    """Every operation of /openapi.json, fuzzed with generated requests: no 5xx."""
    api = schemathesis.openapi.from_url(f"{server_url}/openapi.json")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    tested = 0
    for result in api.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # a broken schema fails here

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(headers=auth, checks=[not_a_server_error])

        fuzz()
        tested += 1
    assert tested == 3  # post message, request status, healthz
