"""Property-based fuzzing of the HTTP API from its own OpenAPI document: no 5xx, ever,
on every route, with and without the bearer token, with valid requests and with
requests that break the documented parameters and bodies; and every answer is one the
document lists (status, content type, headers, body schema).

The server is a real `statekeeper serve` process on loopback; at the end its stderr
must hold no traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from tests.integration.cli_support import serving

TOKEN = "fuzzing-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("fuzz")
    env = {
        "SCHEMA_DB_URL": f"sqlite:///{where / 'api.db'}",
        "STATEKEEPER_API_TOKEN": TOKEN,
        "STATEKEEPER_CALLBACK_SECRET": "fuzzing-callback-secret",
    }
    with serving("schema_app:app", env, where / "serve.log") as url:
        yield url


def routes_served() -> set[tuple[str, str]]:
    """(method, path) of every route the HTTP app serves."""
    app = App("sqlite:///unused.db", purge_interval=None, encryption=None)
    served = set()
    for route in create_http_app(app, HttpConfig(dev=True)).routes:
        assert isinstance(route, Route)
        if route.path.startswith("/ui"):  # the dashboard's pages: not API (test_ui.py)
            continue
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
    # Per operation (there are over sixty): the suite's largest test, kept within its
    # share of the ten-minute run.
    examples = 20 if mode is GenerationMode.POSITIVE else 7
    if not headers:  # unauthenticated: every request meets the same 401, before parsing
        examples = 5 if mode is GenerationMode.POSITIVE else 3

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
