"""The sidecar's pub/sub, end to end: real sidecar processes, a real subscriber app
(tests/integration/pubsub_app.py) in a process of its own, SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from statekeeper.sidecar.subscriptions import queue_name
from tests.integration.cli_support import ROOT, environment, free_port, statekeeper
from tests.integration.sidecar_support import SidecarProcess, python_env, running_sidecar

# Fast retries: three attempts, a few tens of milliseconds apart.
FAST = (
    "--pubsub-max-attempts", "3", "--pubsub-retry-interval", "0.05",
    "--pubsub-max-retry-delay", "0.1", "--pubsub-delivery-timeout", "5",
)  # fmt: skip
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@contextlib.contextmanager
def subscriber(
    port: int, record: Path, subscriptions: list[dict[str, Any]], first_answers: str = ""
) -> Iterator[None]:
    """The test app on ``port``, recording deliveries in ``record``; ``first_answers``:
    its bad answers to its first ``/dapr/subscribe`` calls (see pubsub_app.py)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.pubsub_app", str(port), str(record),
         json.dumps(subscriptions), first_answers],
        env=environment(python_env()), cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert process.poll() is None, "the subscriber app exited"
            time.sleep(0.05)
        yield
    finally:
        process.kill()
        process.wait()


def deliveries(record: Path, path: str | None = None) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    lines = [json.loads(line) for line in record.read_text().splitlines() if line.strip()]
    return [d for d in lines if path is None or d["path"] == path]


def wait_for(what: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def subscribed(sidecar: SidecarProcess, count: int) -> list[dict[str, Any]]:
    """The sidecar's subscriptions, once it has registered ``count`` of them."""

    def listed() -> list[dict[str, Any]]:
        document = httpx.get(f"{sidecar.url}/v1.0/metadata").json()
        found: list[dict[str, Any]] = document["subscriptions"]
        return found if len(found) >= count else []

    return wait_for(listed)  # type: ignore[no-any-return]


def publish(
    sidecar: SidecarProcess,
    topic: str,
    body: bytes,
    content_type: str = "application/json",
    pubsub: str = "pubsub",
    headers: dict[str, str] | None = None,
    **metadata: str,
) -> httpx.Response:
    return httpx.post(
        f"{sidecar.url}/v1.0/publish/{pubsub}/{topic}",
        content=body,
        headers={"content-type": content_type, **(headers or {})},
        params={f"metadata.{k}": v for k, v in metadata.items()},
    )


def sub(topic: str, route: str, **extra: Any) -> dict[str, Any]:
    return {"pubsubname": "pubsub", "topic": topic, "route": route, **extra}


def test_published_events_reach_the_app_as_cloudevents(
    own_database_url: str, tmp_path: Path
) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    subscriptions = [
        sub("orders", "/ok/orders"),
        sub("text", "success/text"),  # a route without its slash
        {"pubsubname": "pubsub", "topic": "bin", "routes": {"default": "/ok/bin"}},
        sub("raw", "/ok/raw", metadata={"rawPayload": "true"}),
        sub("rawjson", "/ok/rawjson"),
        sub("given", "/ok/given"),
        sub("nested/topic", "/ok/nested"),
        sub("elsewhere", "/ok/elsewhere", pubsubname="nosuchpubsub"),
    ]
    with (
        subscriber(port, record, subscriptions),
        running_sidecar(
            own_database_url, tmp_path / "sidecar.log", "--app-id", "shop",
            "--app-port", str(port), *FAST, grpc=False,
        ) as sidecar,
    ):  # fmt: skip
        listed = subscribed(sidecar, 7)
        assert {s["topic"] for s in listed} == {
            "orders", "text", "bin", "raw", "rawjson", "given", "nested/topic",
        }  # fmt: skip
        orders = next(s for s in listed if s["topic"] == "orders")
        assert orders["type"] == "PROGRAMMATIC"
        assert orders["rules"] == [{"path": "/ok/orders"}]

        answer = publish(
            sidecar, "orders", b'{"order": 7, "big": 12345678901234567890}',
            headers={"traceparent": TRACEPARENT},
        )  # fmt: skip
        assert answer.status_code == 204, answer.text
        assert publish(sidecar, "text", b"hello", "text/plain").status_code == 204
        assert (
            publish(sidecar, "bin", b"\x00\xff\x01", "application/octet-stream").status_code == 204
        )
        raw = publish(sidecar, "raw", b"\x00raw", "application/octet-stream", rawPayload="true")
        assert raw.status_code == 204
        assert publish(sidecar, "rawjson", b'{"plain": true}', rawPayload="true").status_code == 204
        given = {"id": "my-id", "specversion": "1.0", "type": "custom.type", "source": "elsewhere",
                 "datacontenttype": "application/json", "data": {"a": 1}}  # fmt: skip
        assert (
            publish(sidecar, "given", json.dumps(given).encode(), "application/cloudevents+json")
            .status_code == 204
        )  # fmt: skip
        assert publish(sidecar, "nested/topic", b"[1,2]").status_code == 204
        assert publish(sidecar, "nobody-listens", b"{}").status_code == 204

        wait_for(lambda: len(deliveries(record)) >= 7)
        by_path = {d["path"]: d for d in deliveries(record)}
        event = by_path["/ok/orders"]
        assert event["content_type"] == "application/cloudevents+json"
        assert event["traceparent"] == TRACEPARENT
        assert event["pubsubname"] == "pubsub"
        ce = event["body"]
        assert ce["data"] == {"order": 7, "big": 12345678901234567890}
        assert ce["datacontenttype"] == "application/json"
        assert ce["specversion"] == "1.0" and ce["type"] == "com.dapr.event.sent"
        assert ce["source"] == "shop" and ce["topic"] == "orders" and ce["pubsubname"] == "pubsub"
        assert ce["traceparent"] == ce["traceid"] == TRACEPARENT
        assert ce["id"] and ce["time"].endswith("Z")

        text = by_path["/success/text"]["body"]
        assert text["data"] == "hello" and text["datacontenttype"] == "text/plain"
        binary = by_path["/ok/bin"]["body"]
        assert "data" not in binary
        assert base64.b64decode(binary["data_base64"]) == b"\x00\xff\x01"
        wrapped = by_path["/ok/raw"]["body"]
        assert wrapped["datacontenttype"] == "application/octet-stream"
        assert base64.b64decode(wrapped["data_base64"]) == b"\x00raw"
        assert by_path["/ok/rawjson"]["body"] == {"plain": True}  # as published
        kept = by_path["/ok/given"]["body"]
        assert kept["id"] == "my-id" and kept["type"] == "custom.type"
        assert kept["source"] == "elsewhere" and kept["data"] == {"a": 1}
        assert kept["topic"] == "given" and kept["pubsubname"] == "pubsub"
        assert by_path["/ok/nested"]["body"]["data"] == [1, 2]
        time.sleep(0.3)
        assert len(deliveries(record)) == 7  # each once; the unsubscribed topic dropped


def test_bulk_publish(own_database_url: str, tmp_path: Path) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    with (
        subscriber(port, record, [sub("bulk", "/ok/bulk")]),
        running_sidecar(
            own_database_url, tmp_path / "sidecar.log", "--app-id", "bulk",
            "--app-port", str(port), *FAST, grpc=False,
        ) as sidecar,
    ):  # fmt: skip
        subscribed(sidecar, 1)
        entries = [
            {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
            {"entryId": "2", "event": "two", "contentType": "text/plain"},
            {"entryId": "3", "event": base64.b64encode(b"\x03").decode(),
             "contentType": "application/octet-stream"},
            {"entryId": "4", "event": {"n": 4}, "contentType": "application/json",
             "metadata": {"ttlInSeconds": "soon"}},
        ]  # fmt: skip
        answer = httpx.post(f"{sidecar.url}/v1.0-alpha1/publish/bulk/pubsub/bulk", json=entries)
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["errorCode"] == "ERR_PUBSUB_PUBLISH_MESSAGE"
        assert [e["entryId"] for e in body["failedEntries"]] == ["4"]
        assert "ttlInSeconds" in body["failedEntries"][0]["error"]
        wait_for(lambda: len(deliveries(record)) >= 3)
        bodies = [d["body"] for d in deliveries(record)]
        assert sorted(json.dumps(b.get("data")) for b in bodies if "data" in b) == [
            '"two"',
            '{"n": 1}',
        ]
        assert [base64.b64decode(b["data_base64"]) for b in bodies if "data_base64" in b] == [
            b"\x03"
        ]
        ok = httpx.post(
            f"{sidecar.url}/v1.0/publish/bulk/pubsub/bulk",
            json=[{"entryId": "a", "event": "five", "contentType": "text/plain"}],
        )
        assert ok.status_code == 204, ok.text
        wait_for(lambda: len(deliveries(record)) == 4)


def test_retries_drops_and_dead_letters(own_database_url: str, tmp_path: Path) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    subscriptions = [
        sub("flaky", "/retry-once/flaky"),
        sub("dropped", "/drop/dropped", deadLetterTopic="poison"),
        sub("quiet", "/drop/quiet"),
        sub("doomed", "/fail/doomed", deadLetterTopic="poison"),
        sub("poison", "/ok/poison"),
        sub("lost", "/fail/lost"),
        sub("unrouted", "/nowhere"),
    ]
    with (
        subscriber(port, record, subscriptions),
        running_sidecar(
            own_database_url, tmp_path / "sidecar.log", "--app-id", "rules",
            "--app-port", str(port), *FAST, grpc=False,
        ) as sidecar,
    ):  # fmt: skip
        subscribed(sidecar, 7)
        for topic in ("flaky", "dropped", "quiet", "doomed", "lost", "unrouted"):
            assert publish(sidecar, topic, json.dumps({"topic": topic}).encode()).status_code == 204
        # RETRY, then SUCCESS: delivered twice, the same event.
        flaky = wait_for(lambda: [d for d in deliveries(record, "/retry-once/flaky")][1:] and
                         deliveries(record, "/retry-once/flaky"))  # fmt: skip
        assert flaky[0]["body"]["id"] == flaky[1]["body"]["id"]
        # DROP and 3 failed attempts both end on the dead-letter topic, unwrapped.
        poison = wait_for(lambda: len(deliveries(record, "/ok/poison")) >= 2
                          and deliveries(record, "/ok/poison"))  # fmt: skip
        assert sorted(p["body"]["topic"] for p in poison) == ["doomed", "dropped"]
        assert sorted(p["body"]["data"]["topic"] for p in poison) == ["doomed", "dropped"]
        assert len(deliveries(record, "/fail/doomed")) == 3
        assert len(deliveries(record, "/drop/dropped")) == 1
        # Without a dead-letter topic: the queue dead-letters it after 3 attempts.
        wait_for(lambda: len(deliveries(record, "/fail/lost")) == 3)
        lost = queue_name("pubsub", "lost", "rules")

        def dead() -> list[dict[str, Any]]:
            shown = statekeeper(
                "--database", own_database_url, "--namespace", "dapr.pubsub",
                "queue", "peek", "--dead", "--json", lost,
            )  # fmt: skip
            assert shown.returncode == 0, shown.stderr
            found: list[dict[str, Any]] = json.loads(shown.stdout)["items"]
            return found

        letters = wait_for(dead)
        assert letters[0]["attempts"] == 3
        assert letters[0]["body"]["event"]["data"] == {"topic": "lost"}
        assert "500" in letters[0]["last_error"]["message"]
        time.sleep(0.5)
        assert len(deliveries(record, "/drop/quiet")) == 1  # DROP without a DLQ: gone
        assert len(deliveries(record, "/nowhere")) == 1  # 404: dropped at once
        assert len(deliveries(record, "/ok/poison")) == 2


def test_every_app_id_gets_every_message_and_waits_while_down(
    own_database_url: str, tmp_path: Path
) -> None:
    billing_port, shipping_port = free_port(), free_port()
    billing, shipping = tmp_path / "billing.jsonl", tmp_path / "shipping.jsonl"
    subscriptions = [sub("orders", "/ok/orders")]

    def sidecar_of(app_id: str, port: int, log: str) -> Any:
        return running_sidecar(
            own_database_url, tmp_path / log, "--app-id", app_id, "--app-port", str(port),
            *FAST, grpc=False,
        )  # fmt: skip

    with (
        running_sidecar(own_database_url, tmp_path / "pub.log", "--app-id", "front",
                        grpc=False) as publisher,
        subscriber(billing_port, billing, subscriptions),
        sidecar_of("billing", billing_port, "billing.log") as billing_sidecar,
    ):  # fmt: skip
        subscribed(billing_sidecar, 1)
        with (
            subscriber(shipping_port, shipping, subscriptions),
            sidecar_of("shipping", shipping_port, "shipping-1.log") as shipping_sidecar,
        ):
            subscribed(shipping_sidecar, 1)
            assert publish(publisher, "orders", b'{"n": 1}').status_code == 204
            wait_for(lambda: deliveries(shipping) and deliveries(billing))
        # shipping and its sidecar are down: what is published waits for them
        assert publish(publisher, "orders", b'{"n": 2}').status_code == 204
        assert publish(publisher, "orders", b'{"n": 3}', ttlInSeconds="1").status_code == 204
        wait_for(lambda: len(deliveries(billing)) == 3)
        time.sleep(1.2)  # the third expires before shipping comes back
        with (
            subscriber(shipping_port, shipping, subscriptions),
            sidecar_of("shipping", shipping_port, "shipping-2.log"),
        ):
            wait_for(lambda: len(deliveries(shipping)) >= 2)
            time.sleep(0.3)
        assert [d["body"]["data"]["n"] for d in deliveries(shipping)] == [1, 2]
        assert sorted(d["body"]["data"]["n"] for d in deliveries(billing)) == [1, 2, 3]
        expiring = next(d for d in deliveries(billing) if d["body"]["data"]["n"] == 3)
        assert expiring["body"]["expiration"].endswith("Z")


def test_replicas_of_one_app_id_share_its_messages(own_database_url: str, tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    records = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    subscriptions = [sub("jobs", "/ok/jobs")]
    with contextlib.ExitStack() as stack:
        replicas = []
        for index, (port, record) in enumerate(zip(ports, records, strict=True)):
            stack.enter_context(subscriber(port, record, subscriptions))
            args = ("--app-id", "workers", "--app-port", str(port), *FAST)
            log = tmp_path / f"replica-{index}.log"
            starting = running_sidecar(own_database_url, log, *args, grpc=False)
            replicas.append(stack.enter_context(starting))
        for replica in replicas:
            subscribed(replica, 1)
        entries = [{"entryId": str(n), "event": {"n": n}} for n in range(40)]
        bulk = httpx.post(f"{replicas[0].url}/v1.0/publish/bulk/pubsub/jobs", json=entries)
        assert bulk.status_code == 204, bulk.text

        def received() -> list[int]:
            return [d["body"]["data"]["n"] for r in records for d in deliveries(r)]

        wait_for(lambda: len(received()) >= 40)
        time.sleep(0.3)
        assert sorted(received()) == list(range(40))  # each once: one queue, two consumers


OUTBOX_COMPONENTS = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orderstore
spec:
  type: state.postgresql
  version: v1
  metadata:
  - name: outboxPublishPubsub
    value: events
  - name: outboxPublishTopic
    value: changes
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: events
spec:
  type: pubsub.redis
  version: v1
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: changes
spec:
  pubsubname: events
  topic: changes
  routes:
    default: /ok/changes
scopes: [ledger]
"""


def test_outbox_publishes_the_upserts_of_committed_transactions(
    own_database_url: str, tmp_path: Path
) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "components.yaml").write_text(OUTBOX_COMPONENTS)
    with (
        subscriber(port, record, []),
        running_sidecar(
            own_database_url, tmp_path / "sidecar.log", "--app-id", "ledger",
            "--app-port", str(port), "--resources-path", str(resources), *FAST, grpc=False,
        ) as sidecar,
    ):  # fmt: skip
        listed = subscribed(sidecar, 1)
        assert listed[0]["type"] == "DECLARATIVE" and listed[0]["pubsubname"] == "events"
        url = f"{sidecar.url}/v1.0/state/orderstore/transaction"
        ops = {"operations": [
            {"operation": "upsert", "request": {"key": "o1", "value": {"total": 5}}},
            {"operation": "upsert", "request": {"key": "o2", "value": "two"}},
            {"operation": "delete", "request": {"key": "o3"}},
        ]}  # fmt: skip
        assert httpx.post(url, json=ops).status_code == 204
        failing = {"operations": [
            {"operation": "upsert", "request": {"key": "o4", "value": {"never": True}}},
            {"operation": "upsert", "request": {"key": "o1", "value": 0, "etag": "AAAAAAAAAAAA"}},
        ]}  # fmt: skip
        assert httpx.post(url, json=failing).status_code >= 400
        after = {"operations": [{"operation": "upsert", "request": {"key": "o5", "value": 5}}]}
        assert httpx.post(url, json=after).status_code == 204
        wait_for(lambda: len(deliveries(record)) >= 3)
        time.sleep(0.3)
        events = [d["body"] for d in deliveries(record)]
        assert [e["data"] for e in events] == [{"total": 5}, "two", 5]
        assert all(e["topic"] == "changes" and e["pubsubname"] == "events" for e in events)
        assert all(e["id"].startswith("outbox-") for e in events)
        assert len({e["id"] for e in events}) == 3


def outbox_components(app_id: str, pubsub: str, routes: dict[str, str]) -> str:
    """Components of one app: the store ``orderstore`` whose outbox publishes to
    ``pubsub``/changes, the pub/subs of ``routes``, and its subscriptions to their topic
    ``changes`` (pub/sub -> route)."""
    documents = [f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: orderstore}}
spec:
  type: state.postgresql
  version: v1
  metadata:
  - {{name: outboxPublishPubsub, value: {pubsub}}}
  - {{name: outboxPublishTopic, value: changes}}
"""]  # fmt: skip
    for name, route in routes.items():
        documents.append(f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: {name}}}
spec: {{type: pubsub.redis, version: v1}}
---
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {{name: {name}-changes}}
spec: {{pubsubname: {name}, topic: changes, routes: {{default: {route}}}}}
scopes: [{app_id}]
""")  # fmt: skip
    return "---".join(documents)


def test_each_apps_outbox_is_relayed_by_its_own_sidecar(
    own_database_url: str, tmp_path: Path
) -> None:
    # One store name (one namespace, dapr.orderstore) for both apps; ledger's outbox
    # publishes to events, billing's to audit; billing also subscribes to events.
    apps = {
        "ledger": ("events", {"events": "/ok/ledger-events"}),
        "billing": ("audit", {"audit": "/ok/billing-audit", "events": "/ok/billing-events"}),
    }
    ports = {app_id: free_port() for app_id in apps}
    records = {app_id: tmp_path / f"{app_id}.jsonl" for app_id in apps}
    with contextlib.ExitStack() as stack:
        sidecars = {}
        for app_id, (pubsub, routes) in apps.items():
            resources = tmp_path / f"resources-{app_id}"
            resources.mkdir()
            (resources / "components.yaml").write_text(outbox_components(app_id, pubsub, routes))
            stack.enter_context(subscriber(ports[app_id], records[app_id], []))
            sidecars[app_id] = stack.enter_context(running_sidecar(
                own_database_url, tmp_path / f"{app_id}.log", "--app-id", app_id,
                "--app-port", str(ports[app_id]), "--resources-path", str(resources),
                *FAST, grpc=False,
            ))  # fmt: skip
            subscribed(sidecars[app_id], len(routes))
        # Transactions of many upserts: while one relay works through its app's values,
        # the other polls (a shared queue would hand it some of them).
        count = 80
        for batch in range(2):
            for app_id, sidecar in sidecars.items():
                numbers = range(batch * count // 2, (batch + 1) * count // 2)
                ops = {"operations": [
                    {"operation": "upsert", "request": {"key": f"k{n}", "value": [app_id, n]}}
                    for n in numbers
                ]}  # fmt: skip
                url = f"{sidecar.url}/v1.0/state/orderstore/transaction"
                assert httpx.post(url, json=ops).status_code == 204

        def received(app_id: str, path: str) -> list[dict[str, Any]]:
            return [d["body"] for d in deliveries(records[app_id], path)]

        wait_for(lambda: len(received("ledger", "/ok/ledger-events")) >= count)
        wait_for(lambda: len(received("billing", "/ok/billing-audit")) >= count)
        wait_for(lambda: len(received("billing", "/ok/billing-events")) >= count)
        time.sleep(0.5)
        ledger_values = [["ledger", n] for n in range(count)]
        billing_values = [["billing", n] for n in range(count)]
        expected = {
            ("ledger", "/ok/ledger-events"): ("ledger", "events", ledger_values),
            ("billing", "/ok/billing-events"): ("ledger", "events", ledger_values),
            ("billing", "/ok/billing-audit"): ("billing", "audit", billing_values),
        }
        for (app_id, path), (source, pubsub, values) in expected.items():
            events = received(app_id, path)
            # each once (deliveries run concurrently: their order is not kept)
            assert sorted(e["data"] for e in events) == values, path
            assert all(e["source"] == source and e["pubsubname"] == pubsub for e in events)
    # Nothing left, nothing dead-lettered, in either app's outbox queue.
    env = {"STATEKEEPER_DATABASE_URL": own_database_url, "STATEKEEPER_NAMESPACE": "dapr.orderstore"}
    for queue in ("dapr-outbox.ledger", "dapr-outbox.billing"):
        for dead in ((), ("--dead",)):
            peeked = statekeeper("queue", "peek", queue, *dead, "--json", env=env)
            assert peeked.returncode == 0, peeked.stderr
            assert json.loads(peeked.stdout)["items"] == [], (queue, dead, peeked.stdout)


def test_the_sidecar_waits_for_a_healthy_app(tmp_path: Path) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    sick = record.with_suffix(".unhealthy")
    sick.touch()
    with (
        subscriber(port, record, [sub("checked", "/ok/checked")]),
        running_sidecar(
            f"sqlite:///{tmp_path}/state.db", tmp_path / "sidecar.log", "--app-id", "careful",
            "--app-port", str(port), "--enable-app-health-check", *FAST, grpc=False,
        ) as sidecar,
    ):  # fmt: skip
        time.sleep(1.0)  # the app listens, but is not healthy: nothing subscribed yet
        assert httpx.get(f"{sidecar.url}/v1.0/metadata").json()["subscriptions"] == []
        sick.unlink()
        subscribed(sidecar, 1)
        assert publish(sidecar, "checked", b'{"ok": 1}').status_code == 204
        wait_for(lambda: deliveries(record, "/ok/checked"))


def subscribe_calls(record: Path) -> int:
    calls = record.with_suffix(".subscribe")
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_failed_subscription_answers_are_asked_again(tmp_path: Path) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    bad_answers = "503,503,503,notjson,object,deep,huge"
    with (
        subscriber(port, record, [sub("later", "/ok/later")], bad_answers),
        running_sidecar(
            f"sqlite:///{tmp_path}/state.db", tmp_path / "sidecar.log", "--app-id", "patient",
            "--app-port", str(port), *FAST, grpc=False,
        ) as sidecar,
    ):  # fmt: skip
        assert subscribed(sidecar, 1)[0]["topic"] == "later"
        assert subscribe_calls(record) == 8  # seven unusable answers, then the list
        assert publish(sidecar, "later", b'{"n": 1}').status_code == 204
        wait_for(lambda: deliveries(record, "/ok/later"))
        assert httpx.get(f"{sidecar.url}/v1.0/healthz").status_code == 204
    log = (tmp_path / "sidecar.log").read_text()
    assert "Traceback" not in log and "RecursionError" not in log


def test_registrations_survive_a_start_while_the_app_fails(
    own_database_url: str, tmp_path: Path
) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    subscriptions = [sub("kept", "/ok/kept")]

    def sidecar_of(log: str) -> Any:
        return running_sidecar(
            own_database_url, tmp_path / log, "--app-id", "steady", "--app-port", str(port),
            *FAST, grpc=False,
        )  # fmt: skip

    with (
        running_sidecar(own_database_url, tmp_path / "pub.log", "--app-id", "front",
                        grpc=False) as publisher,
    ):  # fmt: skip
        with subscriber(port, record, subscriptions), sidecar_of("first.log") as first:
            subscribed(first, 1)
        record.with_suffix(".subscribe").unlink()
        # The app answers 500 to its first five calls (about 1.5 s of asking again):
        # what is published meanwhile still reaches its registered queue.
        with (
            subscriber(port, record, subscriptions, "500,500,500,500,500"),
            sidecar_of("second.log") as second,
        ):
            wait_for(lambda: subscribe_calls(record) >= 1)
            assert publish(publisher, "kept", b'{"n": 1}').status_code == 204
            assert subscribe_calls(record) < 6, "published after discovery; test too slow"
            subscribed(second, 1)
            assert publish(publisher, "kept", b'{"n": 2}').status_code == 204
            wait_for(lambda: len(deliveries(record, "/ok/kept")) >= 2)
        assert sorted(d["body"]["data"]["n"] for d in deliveries(record, "/ok/kept")) == [1, 2]


def test_hostile_publishes_get_dapr_errors(tmp_path: Path) -> None:
    with running_sidecar(f"sqlite:///{tmp_path}/state.db", tmp_path / "sidecar.log",
                         grpc=False) as sidecar:  # fmt: skip
        base = sidecar.url

        def error(answer: httpx.Response, status: int, code: str) -> None:
            assert answer.status_code == status, answer.text
            assert answer.json()["errorCode"] == code, answer.text

        error(publish(sidecar, "t", b"{}", pubsub="nope"), 404, "ERR_PUBSUB_NOT_FOUND")
        error(httpx.post(f"{base}/v1.0-alpha1/publish/bulk/nope/t", json=[]), 404,
              "ERR_PUBSUB_NOT_FOUND")  # fmt: skip
        error(publish(sidecar, "t", b"{}", rawPayload="maybe"), 400, "ERR_PUBSUB_REQUEST_METADATA")
        error(publish(sidecar, "t", b"{}", ttlInSeconds="-5"), 400, "ERR_PUBSUB_REQUEST_METADATA")
        error(publish(sidecar, "t", b"{not json", "application/cloudevents+json"), 400,
              "ERR_PUBSUB_CLOUD_EVENTS_SER")  # fmt: skip
        error(publish(sidecar, "t%01x", b"{}"), 400, "ERR_MALFORMED_REQUEST")
        error(publish(sidecar, "a||b", b"{}"), 400, "ERR_MALFORMED_REQUEST")
        error(publish(sidecar, "x" * 300, b"{}"), 400, "ERR_MALFORMED_REQUEST")
        bulk = f"{base}/v1.0-alpha1/publish/bulk/pubsub/t"
        for body in (b"{not json", b'{"entries": []}', b"[1]", b'[{"event": 1}]',
                     b'[{"entryId": "a", "event": 1}, {"entryId": "a", "event": 2}]',
                     b'[{"entryId": "a", "event": 1, "contentType": "text/plain"}]',
                     b'[{"entryId": "a", "event": "!", "contentType": "application/octet-stream"}]',
                     b'[{"entryId": "a", "event": 1, "contentType": "image/png"}]',
                     b'[{"entryId": "a", "event": 1, "metadata": {"k": 1}}]'):  # fmt: skip
            error(httpx.post(bulk, content=body), 400, "ERR_PUBSUB_EVENTS_SER")
        too_big = publish(sidecar, "t", b"x" * (5 * 1024 * 1024))
        assert too_big.status_code == 413
        assert httpx.get(f"{base}/v1.0/publish/pubsub/t").status_code == 405
        assert httpx.get(f"{base}/v1.0/healthz").status_code == 204


def test_sigterm_lets_deliveries_in_flight_finish(own_database_url: str, tmp_path: Path) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    args = ("--app-id", "patient", "--app-port", str(port), *FAST)
    with subscriber(port, record, [sub("slow", "/slow/it")]):
        with running_sidecar(own_database_url, tmp_path / "one.log", *args, grpc=False) as first:
            subscribed(first, 1)
            entries = [{"entryId": str(n), "event": {"n": n}} for n in range(3)]
            bulk = httpx.post(f"{first.url}/v1.0/publish/bulk/pubsub/slow", json=entries)
            assert bulk.status_code == 204, bulk.text
            wait_for(lambda: len(deliveries(record)) == 3)  # in the app's hands for 2 s
            started = time.monotonic()
            assert first.terminate() == 0
            assert time.monotonic() - started >= 1.0  # it waited for them
        assert sorted(d["body"]["data"]["n"] for d in deliveries(record)) == [0, 1, 2]
        with running_sidecar(own_database_url, tmp_path / "two.log", *args, grpc=False) as again:
            subscribed(again, 1)
            time.sleep(1.0)
        assert len(deliveries(record)) == 3  # acknowledged: never delivered again


@pytest.mark.crash
def test_a_killed_sidecar_loses_no_message(own_database_url: str, tmp_path: Path) -> None:
    port, record = free_port(), tmp_path / "deliveries.jsonl"
    args = ("--app-id", "sturdy", "--app-port", str(port), *FAST, "--pubsub-lease", "1")
    with subscriber(port, record, [sub("work", "/slow/work")]):
        with running_sidecar(
            own_database_url, tmp_path / "one.log", *args, grpc=False, check_log=False
        ) as first:
            subscribed(first, 1)
            entries = [{"entryId": str(n), "event": {"n": n}} for n in range(10)]
            bulk = httpx.post(f"{first.url}/v1.0/publish/bulk/pubsub/work", json=entries)
            assert bulk.status_code == 204, bulk.text
            # all ten in the app's hands at once (it answers each after 2 s): none acked
            wait_for(lambda: len(deliveries(record)) == 10)
            first.kill()
            killed_at = time.time()
        with running_sidecar(own_database_url, tmp_path / "two.log", *args, grpc=False):

            def delivered_again() -> bool:
                again = [d for d in deliveries(record) if d["at"] > killed_at]
                return {d["body"]["data"]["n"] for d in again} == set(range(10))

            wait_for(delivered_again, timeout=30)


def test_publishing_without_any_pubsub(tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "store.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: store}\n"
        "spec: {type: state.sqlite, version: v1}\n"
    )
    with running_sidecar(
        f"sqlite:///{tmp_path}/state.db", tmp_path / "sidecar.log",
        "--resources-path", str(resources), grpc=False,
    ) as sidecar:  # fmt: skip
        answer = publish(sidecar, "t", b"{}")
        assert answer.status_code == 400
        assert answer.json()["errorCode"] == "ERR_PUBSUB_NOT_CONFIGURED"
