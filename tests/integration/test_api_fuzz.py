"""Property-based fuzzing of the HTTP API from its own OpenAPI document: no 5xx, ever,
on every route, with and without the bearer token, with valid requests and with
requests that break the documented parameters and bodies; and every answer is one the
document lists (status, content type, headers, body schema).

The server is a real `statekeeper serve` process on loopback; at the end its stderr
must hold no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app

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
        "STATEKEEPER_CALLBACK_SECRET": "fuzzing-callback-secret",
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


def routes_served() -> set[tuple[str, str]]:
    """(method, path) of every route the HTTP app serves."""
    app = App("sqlite:///unused.db", purge_interval=None, encryption=None)
    served = set()
    for route in create_http_app(app, HttpConfig(dev=True)).routes:
        assert isinstance(route, Route)
        served |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    return served


def test_no_server_errors(server_url: str) -> None:
    """Every operation of /openapi.json, which covers every route, fuzzed with generated
    requests, authenticated and not: no 5xx, and answers as documented."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{server_url}/openapi.json", timeout=10).status_code == 401
    spec = httpx.get(f"{server_url}/openapi.json", headers=auth, timeout=10).json()
    documented = {(m.upper(), path) for path, ops in spec["paths"].items() for m in ops}
    assert documented == routes_served()
    api = schemathesis.openapi.from_url(f"{server_url}/openapi.json", headers=auth)
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    # schemathesis leaves out the document's own route, fetched above.
    fuzzed = {(op.method.upper(), op.path) for op in operations}
    assert fuzzed == documented - {("GET", "/openapi.json")}
    for operation in operations:
        described = spec["paths"][operation.path][operation.method.lower()]
        # Negative cases break the declared parameters and body: only where there are some.
        takes = "parameters" in described or "requestBody" in described
        modes = [GenerationMode.POSITIVE, *([GenerationMode.NEGATIVE] if takes else [])]
        for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
            for mode in modes:
                fuzz_operation(operation, headers, mode)


def fuzz_operation(operation: Any, headers: dict[str, str], mode: GenerationMode) -> None:
    examples = 50 if mode is GenerationMode.POSITIVE else 15

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        case.call_and_validate(
            headers=headers,
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_headers_conformance,
                response_schema_conformance,
            ],
        )

    fuzz()
