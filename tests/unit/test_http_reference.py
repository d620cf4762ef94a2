"""docs/http.md is the HTTP API reference generated from the OpenAPI document, and
the committed file is the one the code generates now."""

from __future__ import annotations

from statekeeper.http.reference import DOCS, current, main


def test_the_committed_reference_is_up_to_date() -> None:
    assert DOCS.read_text(encoding="utf-8") == current(), (
        "docs/http.md is stale: run python -m statekeeper.http.reference --write"
    )
    assert main(["--check"]) == 0


def test_the_reference_has_every_route_and_model() -> None:
    from statekeeper import App
    from statekeeper.http.config import HttpConfig
    from statekeeper.http.openapi import document
    from statekeeper.http.server import api_operations

    app = App("sqlite:///unused.db", encryption=None, purge_interval=None)
    spec = document(api_operations(app, HttpConfig(dev=True)))
    text = current()
    for path, operations in spec["paths"].items():
        for method in operations:
            assert f"### `{method.upper()} {path}`" in text
    for name in spec["components"]["schemas"]:
        assert f"### {name}\n" in text
    # /healthz, /readyz, callback answers, an upload's file (PUT and GET: signed URLs)
    assert text.count("Auth: open (no token).") == 5
