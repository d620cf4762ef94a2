"""Fuzzing the sidecar's HTTP API: any path, body, query and header get a Dapr-shaped
answer, never a 5xx (but the one Dapr gives a failed transaction), a traceback or a
hang; and a failed request stores nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statekeeper import App
from statekeeper.sidecar.components import NAMESPACE_METADATA, Component, Resources
from statekeeper.sidecar.context import Sidecar, SidecarConfig
from statekeeper.sidecar.http_app import create_sidecar_http

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)  # fmt: skip
keys = st.sampled_from(["k", "a||b", "", " ", "é", "x/y", "%00", "k" * 2000, "\x00"])
texts = st.text(max_size=30)
item = st.fixed_dictionaries(
    {"key": keys | texts},
    optional={
        "value": json_values,
        "etag": st.sampled_from(["", "AAAAAAAAAAAA", "bad", "x" * 12]) | json_values,
        "metadata": st.dictionaries(
            st.sampled_from(["ttlInSeconds", "contentType", "x"]),
            st.sampled_from(["1", "-1", "0", "-5", "abc", "1e9", "99999999999999"]) | json_values,
        ),
        "options": st.dictionaries(
            st.sampled_from(["concurrency", "consistency"]),
            st.sampled_from(["first-write", "last-write", "strong", "eventual", "?"]) | json_values,
        ),
    },
)
operation = st.fixed_dictionaries(
    {"operation": st.sampled_from(["upsert", "delete", "merge"]) | json_values, "request": item}
)
bodies = st.one_of(
    st.lists(item, max_size=4).map(json.dumps),
    st.fixed_dictionaries({"keys": st.lists(keys | texts, max_size=4) | json_values}).map(
        json.dumps
    ),
    st.fixed_dictionaries({"operations": st.lists(operation, max_size=4)}).map(json.dumps),
    json_values.map(json.dumps),
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
)
paths = st.sampled_from(
    [
        "/v1.0/state/statestore",
        "/v1.0/state/statestore/bulk",
        "/v1.0/state/statestore/transaction",
        "/v1.0/state/statestore/{key}",
        "/v1.0/state/{key}",
        "/v1.0/state/{key}/bulk",
        "/v1.0/metadata",
        "/v1.0/{key}",
    ]
)
methods = st.sampled_from(["GET", "POST", "POST", "POST", "PUT", "DELETE", "GET", "PATCH"])


async def test_no_input_gets_a_server_error(tmp_path: Path) -> None:
    async with App(f"sqlite:///{tmp_path}/db.sqlite", namespace="fuzz", encryption=None) as app:
        component = Component("statestore", "state.x", {NAMESPACE_METADATA: "fuzz"})
        sidecar = Sidecar(app, SidecarConfig(app_id="f", resources=Resources((component,))))
        transport = httpx.ASGITransport(app=create_sidecar_http(sidecar))
        async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
            loop = asyncio.get_running_loop()
            seen: list[tuple[str, str, int]] = []

            @settings(
                max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            )  # fmt: skip
            @given(
                methods, paths, keys | texts, bodies,
                st.dictionaries(st.sampled_from(["metadata.ttlInSeconds", "consistency",
                                                 "concurrency", "metadata.x"]), texts),
                st.sampled_from([None, "", "AAAAAAAAAAAA", "bad etag", "é"]),
            )  # fmt: skip
            def probe(
                method: str, path: str, key: str, body: str, query: dict[str, str],
                if_match: str | None,
            ) -> None:  # fmt: skip
                url = path.replace("{key}", quote(key, safe="|/") or "x")
                headers = {} if if_match is None else {"If-Match": if_match.encode().decode()}
                future = asyncio.run_coroutine_threadsafe(
                    client.request(method, url, content=body.encode("utf-8", "surrogatepass"),
                                   params=query, headers=_latin(headers)),
                    loop,
                )  # fmt: skip
                answer = future.result(timeout=30)
                seen.append((method, path, answer.status_code))
                _check(answer)

            await asyncio.to_thread(probe)
            assert len(seen) >= 100
            assert {status for _, _, status in seen} & {200, 204}
            assert {status for _, _, status in seen} & {400, 404, 405}


def _latin(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if v.isascii()}


def _check(answer: httpx.Response) -> None:
    status = answer.status_code
    if status in (200, 204) or not answer.content:
        assert status < 500, answer
        return
    body: Any = answer.json()
    if status >= 400:
        assert set(body) == {"errorCode", "message"}, body
        assert "Traceback" not in body["message"]
    if status >= 500:
        assert body["errorCode"] == "ERR_STATE_TRANSACTION", body
