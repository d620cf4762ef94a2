"""The sidecar's gRPC API through the official Dapr Python SDK (``DaprClient``), against
a ``statekeeper sidecar`` process on SQLite and on PostgreSQL.

One sidecar per backend serves the whole module (each test uses keys of its own),
with a subscriber app (tests/integration/pubsub_app.py) for its publishes; one more,
on SQLite, requires an API token."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from dapr.aio.clients import DaprClient as AsyncDaprClient
from dapr.clients import BulkPublishEntry, DaprClient
from dapr.clients.exceptions import DaprGrpcError, DaprInternalError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, StateOptions
from dapr.conf import settings
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2, pubsub_pb2, state_pb2

from tests.conftest import BACKENDS, pg_url
from tests.integration.cli_support import free_port, one_line_error, statekeeper
from tests.integration.sidecar_support import SidecarProcess, running_sidecar
from tests.integration.test_sidecar_pubsub import (
    FAST,
    TRACEPARENT,
    deliveries,
    sub,
    subscribed,
    subscriber,
    wait_for,
)

STORE = "statestore"
RECORD = "deliveries.jsonl"  # beside the sidecar's log
# The subscriber app of the module's sidecars (tests/integration/pubsub_app.py).
SUBSCRIPTIONS = [
    sub("orders", "/ok/orders"),
    sub("doomed", "/fail/doomed", deadLetterTopic="poison"),
    sub("poison", "/ok/poison"),
]
APP_ID = "sdkapp"
TOKEN = "sdk-secret-token"


@pytest.fixture(scope="module", params=BACKENDS)
def sidecar(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    pg_schema_prefix: str,
) -> Iterator[SidecarProcess]:  # fmt: skip
    """A sidecar process for the module, on a database of its own."""
    directory = tmp_path_factory.mktemp(f"sdk-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{directory}/state.db"
    else:
        url = pg_url(f"{pg_schema_prefix}_{secrets.token_hex(4)}")
    port = free_port()
    with (
        subscriber(port, directory / RECORD, SUBSCRIPTIONS),
        running_sidecar(
            url, directory / "sidecar.log", "--app-id", APP_ID, "--app-port", str(port), *FAST
        ) as process,
    ):
        subscribed(process, len(SUBSCRIPTIONS))
        yield process


@contextlib.contextmanager
def dapr_client(process: SidecarProcess, token: str | None = None) -> Iterator[DaprClient]:
    """A DaprClient of ``process``: the SDK finds the sidecar through its settings (read
    when the client is made), set here for this client alone."""
    chosen = {
        "DAPR_RUNTIME_HOST": "127.0.0.1",
        "DAPR_HTTP_PORT": process.http_port,
        "DAPR_GRPC_PORT": process.grpc_port,
        "DAPR_API_TOKEN": token,
        "DAPR_HEALTH_TIMEOUT": 10,
    }
    for name, value in chosen.items():
        setattr(settings, name, value)
    try:
        with DaprClient() as client:
            yield client
    finally:
        for name in chosen:
            delattr(settings, name)


@pytest.fixture
def client(sidecar: SidecarProcess) -> Iterator[DaprClient]:
    with dapr_client(sidecar) as made:
        yield made


def key(stem: str) -> str:
    return f"{stem}-{secrets.token_hex(4)}"


@dataclass
class Refusal:
    """What an SDK call that failed raised: the status code, its message and the Dapr
    error code the SDK read from the status details."""

    code: grpc.StatusCode
    message: str
    error_code: str


def failure(call: Any, *args: Any, **kwargs: Any) -> Refusal:
    with pytest.raises(DaprGrpcError) as raised:
        call(*args, **kwargs)
    error: Any = raised.value
    return Refusal(error.code(), error.details() or "", error.error_code())


def test_save_and_get_with_etags(client: DaprClient, sidecar: SidecarProcess) -> None:
    k = key("order")
    client.save_state(STORE, k, b'{"n": 1}')
    first = client.get_state(STORE, k)
    assert first.data == b'{"n":1}'  # stored as JSON, read back compact
    assert first.etag

    client.save_state(STORE, k, b'{"n": 2}', etag=first.etag)
    second = client.get_state(STORE, k)
    assert second.data == b'{"n":2}' and second.etag != first.etag

    stale = failure(client.save_state, STORE, k, b'{"n": 3}', etag=first.etag)
    assert stale.code == grpc.StatusCode.ABORTED
    assert stale.error_code == "ERR_STATE_SAVE"
    assert "etag mismatch" in stale.message
    assert client.get_state(STORE, k).data == b'{"n":2}'

    # Bytes that are not JSON read back exactly; JSON bytes are the HTTP API's JSON.
    raw = key("raw")
    client.save_state(STORE, raw, b"\x00\xffnot json")
    assert client.get_state(STORE, raw).data == b"\x00\xffnot json"
    assert httpx.get(f"{sidecar.url}/v1.0/state/{STORE}/{k}").json() == {"n": 2}

    missing = client.get_state(STORE, key("missing"))
    assert missing.data == b"" and missing.etag == ""


def test_first_write_refuses_an_existing_key(client: DaprClient) -> None:
    k = key("first")
    first_write = StateOptions(concurrency=Concurrency.first_write)
    client.save_state(STORE, k, b'"one"', options=first_write)  # absent: written
    refused = failure(client.save_state, STORE, k, b'"two"', options=first_write)
    assert refused.code == grpc.StatusCode.ABORTED
    assert client.get_state(STORE, k).data == b'"one"'
    client.save_state(STORE, k, b'"three"')  # last-write (the default) overwrites
    assert client.get_state(STORE, k).data == b'"three"'


def test_a_transaction_applies_in_order_or_not_at_all(client: DaprClient) -> None:
    a, b = key("a"), key("b")
    client.execute_state_transaction(
        STORE,
        [
            TransactionalStateOperation(key=a, data=b'{"v": "a"}'),
            TransactionalStateOperation(key=b, data=b'{"v": "b"}'),
            TransactionalStateOperation(key=a, operation_type=TransactionOperationType.delete),
        ],
    )
    assert client.get_state(STORE, a).data == b""
    etag = client.get_state(STORE, b).etag
    assert client.get_state(STORE, b).data == b'{"v":"b"}'

    client.save_state(STORE, b, b'{"v": "b2"}')  # etag is now stale
    refused = failure(
        client.execute_state_transaction,
        STORE,
        [
            TransactionalStateOperation(key=a, data=b'{"v": "again"}'),
            TransactionalStateOperation(key=b, data=b'{"v": "b3"}', etag=etag),
        ],
    )
    assert refused.code == grpc.StatusCode.ABORTED
    assert client.get_state(STORE, a).data == b""  # nothing of it applied
    assert client.get_state(STORE, b).data == b'{"v":"b2"}'


def test_bulk_get(client: DaprClient) -> None:
    keys = [key("bulk") for _ in range(3)]
    for i, k in enumerate(keys[:2]):
        client.save_state(STORE, k, f'{{"i": {i}}}')
    found = client.get_bulk_state(STORE, [*keys, keys[0]]).items
    assert [item.key for item in found] == [*keys, keys[0]]
    assert [item.data for item in found] == [b'{"i":0}', b'{"i":1}', b"", b'{"i":0}']
    assert found[0].etag and found[1].etag and not found[2].etag
    assert found[0].etag == client.get_state(STORE, keys[0]).etag


def test_ttl_expiry_and_its_metadata(client: DaprClient, sidecar: SidecarProcess) -> None:
    k = key("ttl")
    lasting = key("lasting")
    client.save_state(STORE, k, b'"soon gone"', state_metadata={"ttlInSeconds": "1"})
    client.save_state(STORE, lasting, b'"stays"', state_metadata={"ttlInSeconds": "-1"})
    # The SDK does not show response metadata: ask with the service's own stub.
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        answer = stub.GetState(state_pb2.GetStateRequest(store_name=STORE, key=k))
        assert answer.data == b'"soon gone"'
        assert answer.metadata["ttlExpireTime"].endswith("Z")
        assert (
            "ttlExpireTime"
            not in stub.GetState(state_pb2.GetStateRequest(store_name=STORE, key=lasting)).metadata
        )
    time.sleep(1.5)
    assert client.get_state(STORE, k).data == b""
    assert client.get_state(STORE, lasting).data == b'"stays"'
    bad = failure(client.save_state, STORE, k, b"1", state_metadata={"ttlInSeconds": "soon"})
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_with_an_etag(client: DaprClient) -> None:
    k = key("del")
    client.save_state(STORE, k, b'"v1"')
    old = client.get_state(STORE, k).etag
    client.save_state(STORE, k, b'"v2"')
    refused = failure(client.delete_state, STORE, k, etag=old)
    assert refused.code == grpc.StatusCode.ABORTED
    assert client.get_state(STORE, k).data == b'"v2"'
    client.delete_state(STORE, k, etag=client.get_state(STORE, k).etag)
    assert client.get_state(STORE, k).data == b""
    client.delete_state(STORE, k)  # a missing key is deleted successfully


def test_bad_requests_are_refused_by_name(client: DaprClient) -> None:
    unknown = failure(client.get_state, "nosuchstore", "k")
    assert unknown.code == grpc.StatusCode.INVALID_ARGUMENT
    assert unknown.error_code == "ERR_STATE_STORE_NOT_FOUND"
    assert failure(client.save_state, STORE, "a||b", b"1").code == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert failure(client.save_state, STORE, "", b"1").code == grpc.StatusCode.INVALID_ARGUMENT
    bad_etag = failure(client.save_state, STORE, key("e"), b"1", etag="not an etag")
    assert bad_etag.code == grpc.StatusCode.INVALID_ARGUMENT
    no_pubsub = failure(client.publish_event, "nosuchpubsub", "orders", b"{}")
    assert no_pubsub.code == grpc.StatusCode.INVALID_ARGUMENT
    assert no_pubsub.error_code == "ERR_PUBSUB_NOT_FOUND"
    with pytest.raises(grpc.RpcError) as raised:  # the SDK does not wrap this one
        client.get_secret("vault", "password")
    unserved: Any = raised.value
    assert unserved.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "GetSecret is not served" in unserved.details()


def test_get_and_set_metadata(client: DaprClient) -> None:
    attribute = key("attribute")
    client.set_metadata(attribute, "blue")
    found = client.get_metadata()
    assert found.extended_metadata[attribute] == "blue"
    assert found.application_id == APP_ID
    components = {c.name: c for c in found.registered_components}
    assert components[STORE].type.startswith("state.")
    assert "ETAG" in components[STORE].capabilities
    assert "TRANSACTIONAL" in components[STORE].capabilities
    assert found.extended_metadata["statekeeper"] == "sidecar"


def test_the_api_token_is_required(tmp_path: Path) -> None:
    with running_sidecar(
        f"sqlite:///{tmp_path}/state.db", tmp_path / "sidecar.log", "--api-token", TOKEN
    ) as guarded:
        with dapr_client(guarded) as anonymous:
            refused = failure(anonymous.get_state, STORE, "k")
            assert refused.code == grpc.StatusCode.UNAUTHENTICATED
            assert refused.message == "missing api token"
        with dapr_client(guarded, token="wrong") as wrong:
            refused = failure(wrong.save_state, STORE, "k", b"1")
            assert refused.code == grpc.StatusCode.UNAUTHENTICATED
            assert refused.message == "invalid api token"
        with dapr_client(guarded, token=TOKEN) as trusted:
            trusted.save_state(STORE, "k", b'{"ok": true}')
            assert trusted.get_state(STORE, "k").data == b'{"ok":true}'
            assert trusted.get_metadata().application_id == "app"
    banner = guarded.output().splitlines()[0]
    assert f"grpc: 127.0.0.1:{guarded.grpc_port}" in banner


def test_a_grpc_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = statekeeper(
            "--database", f"sqlite:///{tmp_path}/db.sqlite", "sidecar",
            "--http-port", str(free_port()), "--grpc-port", str(port), cwd=tmp_path,
        )  # fmt: skip
    line = one_line_error(result, "address_in_use", result.returncode)
    assert f"the gRPC address 127.0.0.1:{port} is in use" in line


def test_hostile_messages_are_invalid_arguments(sidecar: SidecarProcess) -> None:
    """Bytes that are no request message, too many keys, an unknown transaction
    operation: each a 4xx-like status, never UNKNOWN or INTERNAL."""
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        for method, payload in [
            ("GetState", b"\x0a\x02\xff\xfe\x12\x01k"),  # a store name that is not UTF-8
            ("SaveState", b"\xff\xff\xff"),
            ("ExecuteStateTransaction", b"\x12"),
        ]:
            call = channel.unary_unary(
                f"/dapr.proto.runtime.v1.Dapr/{method}",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            with pytest.raises(grpc.RpcError) as raised:
                call(payload, timeout=10)
            error: Any = raised.value
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, error)
            assert "malformed" in error.details()
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        for request, rpc in [
            (state_pb2.GetBulkStateRequest(store_name=STORE, keys=["k"] * 1001), stub.GetBulkState),
            (
                state_pb2.ExecuteStateTransactionRequest(
                    storeName=STORE,
                    operations=[state_pb2.TransactionalStateOperation(operationType="upsert")],
                ),
                stub.ExecuteStateTransaction,
            ),
        ]:
            with pytest.raises(grpc.RpcError) as raised:
                rpc(request, timeout=10)
            error = raised.value
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        with pytest.raises(grpc.RpcError) as raised:
            stub.ExecuteStateTransaction(
                state_pb2.ExecuteStateTransactionRequest(
                    storeName=STORE,
                    operations=[
                        state_pb2.TransactionalStateOperation(
                            operationType="merge", request=common_pb2.StateItem(key="k")
                        )
                    ],
                ),
                timeout=10,
            )
        error = raised.value
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "'merge' is not supported" in error.details()
        too_big = common_pb2.StateItem(key="big", value=b"x" * (4 * 1024 * 1024 + 1))
        with pytest.raises(grpc.RpcError) as raised:  # over --max-body-size (4 MiB)
            stub.SaveState(state_pb2.SaveStateRequest(store_name=STORE, states=[too_big]))
        error = raised.value
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.GetState(state_pb2.GetStateRequest(store_name=STORE, key="big")).data == b""


@pytest.mark.filterwarnings("ignore:The State Store Query API is an Alpha")
def test_query_pages_through_matching_values(client: DaprClient) -> None:
    run = secrets.token_hex(4)
    for n in range(5):
        client.save_state(
            STORE, f"q-{run}-{n}", json.dumps({"run": run, "n": n, "even": n % 2 == 0})
        )
    query = {
        "filter": {"AND": [{"EQ": {"run": run}}, {"EQ": {"even": True}}]},
        "sort": [{"key": "n", "order": "DESC"}],
        "page": {"limit": 2},
    }
    first = client.query_state(STORE, json.dumps(query))
    assert [item.key for item in first.results] == [f"q-{run}-4", f"q-{run}-2"]
    assert json.loads(first.results[0].value) == {"run": run, "n": 4, "even": True}
    assert first.results[0].etag == client.get_state(STORE, f"q-{run}-4").etag
    assert first.token
    query["page"] = {"limit": 2, "token": first.token}
    second = client.query_state(STORE, json.dumps(query))
    assert [item.key for item in second.results] == [f"q-{run}-0"]
    bad = failure(client.query_state, STORE, "{not json")
    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT
    assert bad.error_code == "ERR_STATE_QUERY"
    unsupported = failure(client.query_state, STORE, json.dumps({"filter": {"LIKE": {"a": 1}}}))
    assert unsupported.code == grpc.StatusCode.INVALID_ARGUMENT
    deep = failure(client.query_state, STORE, "[" * 100_000 + "]" * 100_000)
    assert deep.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure(client.query_state, STORE, "[1]").code == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_async_client(sidecar: SidecarProcess) -> None:
    """The SDK's asyncio client (grpc.aio underneath) against the same sidecar."""
    k = key("aio")
    chosen = {"DAPR_HTTP_PORT": sidecar.http_port, "DAPR_HEALTH_TIMEOUT": 10}
    for name, value in chosen.items():
        setattr(settings, name, value)
    try:
        async with AsyncDaprClient(f"127.0.0.1:{sidecar.grpc_port}") as client:
            await client.save_state(STORE, k, b'{"aio": true}')
            found = await client.get_state(STORE, k)
            assert found.data == b'{"aio":true}' and found.etag
            with pytest.raises(DaprInternalError) as raised:  # what this client raises
                await client.save_state(STORE, k, b"1", etag="AAAAAAAAAAAA")
            assert "etag mismatch" in str(raised.value)
            cause: Any = raised.value.__cause__
            assert cause.code() == grpc.StatusCode.ABORTED
            bulk = await client.get_bulk_state(STORE, [k, key("none")])
            assert [item.data for item in bulk.items] == [b'{"aio":true}', b""]
    finally:
        for name in chosen:
            delattr(settings, name)


def data_of(delivery: dict[str, Any]) -> dict[str, Any]:
    """The JSON object a delivered CloudEvent carries ({} for anything else)."""
    data = delivery["body"].get("data")
    return data if isinstance(data, dict) else {}


def test_publish_reaches_a_subscriber(client: DaprClient, sidecar: SidecarProcess) -> None:
    record = sidecar.log.parent / RECORD
    order = secrets.token_hex(4)
    client.publish_event(
        "pubsub", "orders", json.dumps({"order": order}), data_content_type="application/json"
    )
    binary = b"\x00\xff" + order.encode()
    client.publish_event("pubsub", "orders", binary, data_content_type="application/octet-stream")
    event = wait_for(lambda: [d for d in deliveries(record, "/ok/orders")
                              if data_of(d) == {"order": order}])[0]["body"]  # fmt: skip
    assert event["topic"] == "orders" and event["pubsubname"] == "pubsub"
    assert event["source"] == APP_ID and event["datacontenttype"] == "application/json"
    wait_for(
        lambda: [
            d
            for d in deliveries(record, "/ok/orders")
            if d["body"].get("data_base64") == base64.b64encode(binary).decode()
        ]
    )

    batch = secrets.token_hex(4)
    answer = client.publish_events(
        "pubsub", "orders", [json.dumps({"batch": batch, "n": n}) for n in range(3)],
        data_content_type="application/json",
    )  # fmt: skip
    assert answer.failed_entries == []
    got = wait_for(
        lambda: len(
            found := [d for d in deliveries(record, "/ok/orders")
                      if data_of(d).get("batch") == batch]
        ) == 3 and found
    )  # fmt: skip
    assert sorted(d["body"]["data"]["n"] for d in got) == [0, 1, 2]

    # An entry refused for its own content is named; the others are published.
    mixed = secrets.token_hex(4)
    answer = client.publish_events(
        "pubsub", "orders",
        [
            BulkPublishEntry(json.dumps({"mixed": mixed}), entry_id="good"),
            BulkPublishEntry("{}", metadata={"ttlInSeconds": "soon"}, entry_id="bad"),
        ],
        data_content_type="application/json",
    )  # fmt: skip
    assert [entry.entry_id for entry in answer.failed_entries] == ["bad"]
    assert "ttlInSeconds" in answer.failed_entries[0].error
    wait_for(
        lambda: [d for d in deliveries(record, "/ok/orders") if data_of(d) == {"mixed": mixed}]
    )
    twice = failure(
        client.publish_events, "pubsub", "orders",
        [BulkPublishEntry("1", entry_id="same"), BulkPublishEntry("2", entry_id="same")],
    )  # fmt: skip
    assert twice.code == grpc.StatusCode.INVALID_ARGUMENT

    # The caller's trace context (call metadata) reaches the subscriber.
    traced = secrets.token_hex(4)
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        stub.PublishEvent(
            pubsub_pb2.PublishEventRequest(
                pubsub_name="pubsub", topic="orders", data=json.dumps({"traced": traced}).encode(),
                data_content_type="application/json",
            ),
            metadata=(("traceparent", TRACEPARENT),),
        )  # fmt: skip
    delivered = wait_for(
        lambda: [d for d in deliveries(record, "/ok/orders") if data_of(d) == {"traced": traced}]
    )[0]
    assert delivered["traceparent"] == TRACEPARENT


def test_a_failing_subscriber_sends_events_to_the_dead_letter_topic(
    client: DaprClient, sidecar: SidecarProcess
) -> None:
    record = sidecar.log.parent / RECORD
    marker = secrets.token_hex(4)
    client.publish_event("pubsub", "doomed", json.dumps({"marker": marker}),
                         data_content_type="application/json")  # fmt: skip

    def dead() -> list[dict[str, Any]]:
        return [
            d for d in deliveries(record, "/ok/poison")
            if data_of(d).get("marker") == marker
        ]  # fmt: skip

    letter = wait_for(dead)[0]["body"]
    assert letter["topic"] == "doomed"
    attempts = [
        d for d in deliveries(record, "/fail/doomed")
        if data_of(d).get("marker") == marker
    ]  # fmt: skip
    assert len(attempts) == 3  # FAST: three attempts, then the dead-letter topic


def test_metadata_lists_the_subscriptions(sidecar: SidecarProcess) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        found = stub.GetMetadata(metadata_pb2.GetMetadataRequest())
    subscriptions = {s.topic: s for s in found.subscriptions}
    assert set(subscriptions) == {"orders", "doomed", "poison"}
    orders = subscriptions["orders"]
    assert orders.pubsub_name == "pubsub" and orders.type == metadata_pb2.PROGRAMMATIC
    assert [(r.match, r.path) for r in orders.rules.rules] == [("", "/ok/orders")]
    assert subscriptions["doomed"].dead_letter_topic == "poison"
    assert found.app_connection_properties.port > 0
