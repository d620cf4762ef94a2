"""The sidecar's state semantics, a checklist after Dapr's state store conformance
behaviour, through Dapr's HTTP API on SQLite and on PostgreSQL (real servers).

Each test drives the sidecar's ASGI app in process (the same routes `statekeeper
sidecar` serves) over an app on a fake clock, so TTLs expire when the test says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.sidecar.components import NAMESPACE_METADATA, Component, Resources
from statekeeper.sidecar.context import Sidecar, SidecarConfig
from statekeeper.sidecar.http_app import create_sidecar_http
from statekeeper.sidecar.state import SaveItem
from statekeeper.sidecar.values import stored_bytes, value_bytes
from tests.conftest import FakeClock

STORE = "/v1.0/state/statestore"


def sidecar_of(app: App, app_id: str = "checkout", **metadata: str) -> Sidecar:
    component = Component(
        "statestore", "state.postgresql", {NAMESPACE_METADATA: app.namespace, **metadata}
    )
    return Sidecar(app, SidecarConfig(app_id=app_id, resources=Resources((component,))))


def client_of(sidecar: Sidecar) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_sidecar_http(sidecar))
    return httpx.AsyncClient(transport=transport, base_url="http://sidecar")


@pytest.fixture
async def dapr(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(sidecar_of(app)) as client:
        yield client


async def save(client: httpx.AsyncClient, *items: dict[str, Any], **params: str) -> httpx.Response:
    return await client.post(STORE, json=list(items), params=params)


async def read(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.get(f"{STORE}/{key}")


def error_of(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errorCode", "message"}, body
    assert body["errorCode"] == code, body
    return str(body["message"])


# --- values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [0, -7, 3.25, 1e300, True, False, None, "", "text", "ünïcødé ✓", [1, "a", None],
     {"a": {"b": [1, 2, {"c": True}]}}, {"$bytes": "not really"}, {"$json": 1}],
    ids=["zero", "negative", "float", "huge", "true", "false", "null", "empty-string",
         "string", "unicode", "array", "object", "bytes-lookalike", "json-lookalike"],
)  # fmt: skip
async def test_json_values_round_trip(dapr: httpx.AsyncClient, value: Any) -> None:
    assert (await save(dapr, {"key": "v", "value": value})).status_code == 204
    got = await read(dapr, "v")
    assert got.status_code == 200
    assert got.json() == value
    bulk = await dapr.post(f"{STORE}/bulk", json={"keys": ["v"]})
    assert bulk.json() == [{"key": "v", "etag": got.headers["etag"], "data": value}]


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\xff\xfe binary", b"plain text, not JSON", "ünï".encode(), b'{"a": 1}', b"12"],
    ids=["empty", "binary", "text", "utf8", "json-object", "json-number"],
)
async def test_byte_values_round_trip(app: App, data: bytes) -> None:
    """What the gRPC API saves: bytes; JSON bytes are kept as JSON (same meaning,
    compact), any other bytes exactly."""
    sidecar = sidecar_of(app)
    await sidecar.state.save("statestore", [SaveItem("b", stored_bytes(data))])
    entry = await sidecar.state.get("statestore", "b")
    back = value_bytes(entry.value)
    if data in (b'{"a": 1}', b"12"):
        assert back == data.replace(b" ", b"")
    else:
        assert back == data
    async with client_of(sidecar) as client:  # HTTP reads the same bytes
        got = await read(client, "b")
        assert got.content == back
        assert got.headers["content-type"].startswith(
            "application/json" if data in (b'{"a": 1}', b"12") else "application/octet-stream"
        )


# --- ETags and concurrency ------------------------------------------------------------


async def test_every_write_changes_the_etag(dapr: httpx.AsyncClient) -> None:
    etags = set()
    for n in range(10):
        assert (await save(dapr, {"key": "k", "value": n})).status_code == 204
        etags.add((await read(dapr, "k")).headers["etag"])
    assert len(etags) == 10


async def test_a_write_with_the_current_etag_succeeds_and_a_stale_one_is_409(
    dapr: httpx.AsyncClient,
) -> None:
    await save(dapr, {"key": "k", "value": 1})
    first = (await read(dapr, "k")).headers["etag"]
    assert (await save(dapr, {"key": "k", "value": 2, "etag": first})).status_code == 204
    stale = await save(dapr, {"key": "k", "value": 3, "etag": first})
    assert "etag mismatch" in error_of(stale, 409, "ERR_STATE_SAVE")
    assert (await read(dapr, "k")).json() == 2
    missing = await save(dapr, {"key": "never", "value": 1, "etag": first})
    error_of(missing, 409, "ERR_STATE_SAVE")
    assert (await read(dapr, "never")).status_code == 204


async def test_first_write_inserts_only_and_last_write_overwrites(
    dapr: httpx.AsyncClient,
) -> None:
    first = {"concurrency": "first-write"}
    assert (await save(dapr, {"key": "f", "value": 1, "options": first})).status_code == 204
    again = await save(dapr, {"key": "f", "value": 2, "options": first})
    error_of(again, 409, "ERR_STATE_SAVE")
    etag = (await read(dapr, "f")).headers["etag"]
    with_etag = await save(dapr, {"key": "f", "value": 3, "etag": etag, "options": first})
    assert with_etag.status_code == 204
    last = {"concurrency": "last-write", "consistency": "strong"}
    assert (await save(dapr, {"key": "f", "value": 4, "options": last})).status_code == 204
    assert (await read(dapr, "f")).json() == 4


async def test_bulk_writes_succeed_or_fail_per_key(dapr: httpx.AsyncClient) -> None:
    await save(dapr, {"key": "a", "value": 1}, {"key": "b", "value": 1})
    a_etag = (await read(dapr, "a")).headers["etag"]
    stale = (await read(dapr, "b")).headers["etag"]
    await save(dapr, {"key": "b", "value": 2})
    mixed = await save(
        dapr,
        {"key": "a", "value": 10, "etag": a_etag},
        {"key": "b", "value": 20, "etag": stale},
        {"key": "c", "value": 30},
    )
    message = error_of(mixed, 409, "ERR_STATE_SAVE")
    assert "key b" in message and "key a" not in message
    assert (await read(dapr, "a")).json() == 10
    assert (await read(dapr, "b")).json() == 2
    assert (await read(dapr, "c")).json() == 30


async def test_delete_with_etag_and_of_a_missing_key(dapr: httpx.AsyncClient) -> None:
    assert (await dapr.delete(f"{STORE}/nothing")).status_code == 204
    await save(dapr, {"key": "d", "value": 1})
    etag = (await read(dapr, "d")).headers["etag"]
    await save(dapr, {"key": "d", "value": 2})
    stale = await dapr.delete(f"{STORE}/d", headers={"If-Match": etag})
    error_of(stale, 409, "ERR_STATE_DELETE")
    current = (await read(dapr, "d")).headers["etag"]
    assert (await dapr.delete(f"{STORE}/d", headers={"If-Match": current})).status_code == 204
    assert (await read(dapr, "d")).status_code == 204


# --- TTL ------------------------------------------------------------------------------


async def test_ttl_expires_and_minus_one_never_expires(app: App, clock: FakeClock) -> None:
    async with client_of(sidecar_of(app)) as dapr:
        await save(dapr, {"key": "t", "value": 1, "metadata": {"ttlInSeconds": "10"}})
        got = await read(dapr, "t")
        assert got.status_code == 200
        expires = got.headers["metadata.ttlExpireTime"]
        assert expires.endswith("Z") and expires.startswith("20")
        await save(dapr, {"key": "u", "value": 1}, **{"metadata.ttlInSeconds": "10"})
        await save(dapr, {"key": "forever", "value": 1, "metadata": {"ttlInSeconds": "-1"}})
        await save(dapr, {"key": "zero", "value": 1, "metadata": {"ttlInSeconds": "0"}})
        assert "metadata.ttlExpireTime" not in (await read(dapr, "forever")).headers
        clock.advance(11)
        assert (await read(dapr, "t")).status_code == 204
        assert (await read(dapr, "u")).status_code == 204
        assert (await read(dapr, "forever")).status_code == 200
        assert (await read(dapr, "zero")).status_code == 200
        # A later write without a TTL (or with -1) clears an expiry.
        await save(dapr, {"key": "t", "value": 2, "metadata": {"ttlInSeconds": "5"}})
        await save(dapr, {"key": "t", "value": 3, "metadata": {"ttlInSeconds": "-1"}})
        clock.advance(6)
        assert (await read(dapr, "t")).json() == 3


# --- transactions ---------------------------------------------------------------------


def upsert(key: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"operation": "upsert", "request": {"key": key, "value": value, **extra}}


def remove(key: str, **extra: Any) -> dict[str, Any]:
    return {"operation": "delete", "request": {"key": key, **extra}}


async def test_url_metadata_reaches_every_item_and_wins(
    dapr: httpx.AsyncClient, clock: FakeClock
) -> None:
    ttl = {"metadata.ttlInSeconds": "10"}
    await save(dapr, {"key": "s", "value": 1, "metadata": {"ttlInSeconds": "-1"}}, **ttl)
    ops = [upsert("t", 1, metadata={"ttlInSeconds": "-1"}), upsert("u", 1)]
    answer = await dapr.post(f"{STORE}/transaction", json={"operations": ops}, params=ttl)
    assert answer.status_code == 204, answer.text
    clock.advance(11)
    for key in ("s", "t", "u"):
        assert (await read(dapr, key)).status_code == 204, key


async def test_transaction_operations_apply_in_order(dapr: httpx.AsyncClient) -> None:
    await save(dapr, {"key": "gone", "value": 1})
    ops = [upsert("x", 1), remove("x"), upsert("y", 1), upsert("y", 2), remove("gone")]
    answer = await dapr.post(f"{STORE}/transaction", json={"operations": ops})
    assert answer.status_code == 204, answer.text
    assert (await read(dapr, "x")).status_code == 204
    assert (await read(dapr, "y")).json() == 2
    assert (await read(dapr, "gone")).status_code == 204


async def test_a_failed_transaction_applies_nothing(dapr: httpx.AsyncClient) -> None:
    await save(dapr, {"key": "acct", "value": 100})
    etag = (await read(dapr, "acct")).headers["etag"]
    await save(dapr, {"key": "acct", "value": 90})
    ops = [upsert("other", 1), upsert("acct", 0, etag=etag)]
    answer = await dapr.post(f"{STORE}/transaction", json={"operations": ops})
    error_of(answer, 500, "ERR_STATE_TRANSACTION")
    assert (await read(dapr, "other")).status_code == 204
    assert (await read(dapr, "acct")).json() == 90


# --- key scheme -----------------------------------------------------------------------


async def test_keys_are_scoped_by_app_id(app: App) -> None:
    async with (
        client_of(sidecar_of(app, "alpha")) as alpha,
        client_of(sidecar_of(app, "beta")) as beta,
    ):
        await save(alpha, {"key": "k", "value": "a"})
        await save(beta, {"key": "k", "value": "b"})
        assert (await read(alpha, "k")).json() == "a"
        assert (await read(beta, "k")).json() == "b"
    stored = await app.state.get("alpha||k")
    assert stored is not None and stored.value == "a"


async def test_key_prefix_none_shares_keys_between_apps(app: App) -> None:
    async with (
        client_of(sidecar_of(app, "alpha", keyPrefix="none")) as alpha,
        client_of(sidecar_of(app, "beta", keyPrefix="none")) as beta,
    ):
        await save(alpha, {"key": "shared", "value": 1})
        assert (await read(beta, "shared")).json() == 1
    assert (await app.state.get("shared")) is not None


# --- bad input: a Dapr-shaped 4xx each, nothing stored --------------------------------


@pytest.mark.parametrize(
    ("body", "params", "code", "fragment"),
    [
        (b'[{"key": "a", ', {}, "ERR_MALFORMED_REQUEST", "not JSON"),
        (b"", {}, "ERR_MALFORMED_REQUEST", "empty"),
        (b'{"key": "a"}', {}, "ERR_MALFORMED_REQUEST", "array"),
        (b'[{"value": 1}]', {}, "ERR_MALFORMED_REQUEST", "key"),
        (b'[{"key": "a||b", "value": 1}]', {}, "ERR_MALFORMED_REQUEST", "can't contain '||'"),
        (b'[{"key": "a", "value": 1, "etag": "not-an-etag"}]', {}, "ERR_STATE_SAVE", "etag"),
        (b'[{"key": "a", "value": 1, "etag": 7}]', {}, "ERR_MALFORMED_REQUEST", "etag"),
        (b'[{"key": "a", "value": 1, "metadata": {"ttlInSeconds": "soon"}}]', {},
         "ERR_MALFORMED_REQUEST", "ttlInSeconds"),
        (b'[{"key": "a", "value": 1}]', {"metadata.ttlInSeconds": "1.5"},
         "ERR_MALFORMED_REQUEST", "ttlInSeconds"),
        (b'[{"key": "a", "value": 1, "metadata": {"ttlInSeconds": "-2"}}]', {},
         "ERR_MALFORMED_REQUEST", "ttlInSeconds"),
        (b'[{"key": "a", "value": 1, "options": {"concurrency": "most-write"}}]', {},
         "ERR_MALFORMED_REQUEST", "concurrency"),
        (b'[{"key": "a", "value": NaN}]', {}, "ERR_MALFORMED_REQUEST", "JSON"),
    ],
    ids=["malformed-json", "empty-body", "not-an-array", "no-key", "separator-in-key",
         "bad-etag", "etag-not-a-string", "ttl-not-a-number", "ttl-fraction", "ttl-below-minus-one",
         "bad-concurrency", "nan"],
)  # fmt: skip
async def test_bad_saves_are_dapr_errors_and_store_nothing(
    dapr: httpx.AsyncClient, app: App, body: bytes, params: dict[str, str], code: str,
    fragment: str,
) -> None:  # fmt: skip
    answer = await dapr.post(STORE, content=body, params=params)
    assert fragment in error_of(answer, 400, code)
    page = await app.state.list("")
    assert page.items == []


async def test_unknown_store_and_bad_keys_everywhere(dapr: httpx.AsyncClient) -> None:
    for answer in (
        await dapr.post("/v1.0/state/nostore", json=[{"key": "a", "value": 1}]),
        await dapr.get("/v1.0/state/nostore/a"),
        await dapr.delete("/v1.0/state/nostore/a"),
        await dapr.post("/v1.0/state/nostore/bulk", json={"keys": ["a"]}),
        await dapr.post("/v1.0/state/nostore/transaction", json={"operations": []}),
    ):
        assert "nostore" in error_of(answer, 400, "ERR_STATE_STORE_NOT_FOUND")
    error_of(await dapr.get(f"{STORE}/a||b"), 400, "ERR_MALFORMED_REQUEST")
    error_of(await dapr.delete(f"{STORE}/a||b"), 400, "ERR_MALFORMED_REQUEST")
    bad_etag = await dapr.delete(f"{STORE}/a", headers={"If-Match": "zzz"})
    error_of(bad_etag, 400, "ERR_STATE_DELETE")
    error_of(await dapr.post(f"{STORE}/bulk", json={"keys": "a"}), 400, "ERR_MALFORMED_REQUEST")
    error_of(
        await dapr.post(f"{STORE}/bulk", json={"keys": ["ok", "a||b"]}), 400,
        "ERR_MALFORMED_REQUEST",
    )  # fmt: skip
    bad_op = await dapr.post(
        f"{STORE}/transaction", json={"operations": [{"operation": "merge", "request": {}}]}
    )
    assert "merge" in error_of(bad_op, 400, "ERR_NOT_SUPPORTED_STATE_OPERATION")
    items = [{"key": f"k{n}", "value": n} for n in range(1001)]
    error_of(await dapr.post(STORE, json=items), 400, "ERR_MALFORMED_REQUEST")
    many = [upsert(f"k{n}", n) for n in range(1001)]
    too_many = await dapr.post(f"{STORE}/transaction", json={"operations": many})
    error_of(too_many, 400, "ERR_STATE_STORE_TOO_MANY_TRANSACTIONS")
    error_of(await dapr.get("/v1.0/nothing/here"), 404, "ERR_NOT_FOUND")


async def test_an_api_token_guards_every_route_but_health(app: App) -> None:
    sidecar = sidecar_of(app)
    sidecar.config.api_token = "s3cret-token-value"
    async with client_of(sidecar) as dapr:
        assert (await dapr.get("/v1.0/healthz")).status_code == 204
        assert (await dapr.get("/v1.0/healthz/outbound")).status_code == 204
        error_of(await read(dapr, "k"), 401, "ERR_API_UNAUTHORIZED")
        wrong = await dapr.get(f"{STORE}/k", headers={"dapr-api-token": "wrong"})
        assert "s3cret" not in error_of(wrong, 401, "ERR_API_UNAUTHORIZED")
        right = await dapr.get(f"{STORE}/k", headers={"dapr-api-token": "s3cret-token-value"})
        assert right.status_code == 204
        meta = await dapr.get("/v1.0/metadata", headers={"dapr-api-token": "s3cret-token-value"})
        assert meta.json()["id"] == "checkout"


async def test_metadata_health_and_attributes(dapr: httpx.AsyncClient) -> None:
    meta = (await dapr.get("/v1.0/metadata")).json()
    assert meta["id"] == "checkout"
    assert meta["components"][0]["name"] == "statestore"
    assert "ETAG" in meta["components"][0]["capabilities"]
    assert meta["extended"]["daprRuntimeVersion"]
    assert (await dapr.put("/v1.0/metadata/team", content=b"payments")).status_code == 204
    assert (await dapr.get("/v1.0/metadata")).json()["extended"]["team"] == "payments"
    assert (await dapr.get("/v1.0/healthz", params={"appid": "checkout"})).status_code == 204
    other = await dapr.get("/v1.0/healthz", params={"appid": "billing"})
    error_of(other, 500, "ERR_HEALTH_APPID_NOT_MATCH")
