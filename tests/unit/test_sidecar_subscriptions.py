"""Reading subscriptions (the app's answer, Subscription documents), naming their
queues, and reading the app's answers to deliveries."""

from __future__ import annotations

import logging

import pytest

from statekeeper.identifiers import check_queue_name
from statekeeper.sidecar.app_channel import Answer
from statekeeper.sidecar.cloudevents import Publication, stored_event
from statekeeper.sidecar.delivery import outcome_of
from statekeeper.sidecar.errors import DaprError
from statekeeper.sidecar.state import OUTBOX_RETRY, outbox_queue
from statekeeper.sidecar.subscriptions import (
    DECLARATIVE,
    InvalidTopic,
    check_topic,
    declarative,
    from_record,
    programmatic,
    queue_name,
)


def test_programmatic_routes_and_bad_entries(caplog: pytest.LogCaptureFixture) -> None:
    answer = [
        {"pubsubname": "pubsub", "topic": "a", "route": "a-route"},
        {"pubsubname": "pubsub", "topic": "b", "route": "/ignored",
         "routes": {"default": "/b", "rules": [{"match": 'event.type == "x"', "path": "/bx"}]}},
        {"pubsubname": "pubsub", "topic": "c",
         "routes": {"rules": [{"match": "event.x", "path": "/first"}, {"path": "/catch"}]}},
        {"pubsubname": "pubsub", "topic": "d", "routes": {"rules": [{"match": "x", "path": "/d"}]}},
        {"pubsubname": "", "topic": "e", "route": "/e"},
        {"pubsubname": "pubsub", "topic": "bad||topic", "route": "/f"},
        {"pubsubname": "pubsub", "topic": "g"},
        "not an object",
        {"pubsubname": "pubsub", "topic": "h", "route": "/h", "deadLetterTopic": "dead",
         "metadata": {"rawPayload": "true"}},
    ]  # fmt: skip
    with caplog.at_level(logging.WARNING):
        found = {s.topic: s for s in programmatic(answer, "app")}
    assert sorted(found) == ["a", "b", "c", "d", "h"]
    assert found["a"].route == "/a-route"
    assert found["b"].route == "/b" and found["b"].rules[0].path == "/bx"
    assert found["b"].described()["rules"] == [
        {"match": 'event.type == "x"', "path": "/bx"},
        {"path": "/b"},
    ]
    assert found["c"].route == "/catch"
    assert found["d"].route == "/d"
    assert found["h"].raw_payload and found["h"].dead_letter_topic == "dead"
    assert "match expressions are not evaluated" in caplog.text
    assert programmatic({"not": "a list"}, "app") == []
    again = from_record(found["h"].record())
    assert again is not None and again.queue == found["h"].queue and again.raw_payload


def test_declarative_documents_both_versions_and_scopes() -> None:
    documents = [
        {"apiVersion": "dapr.io/v2alpha1", "kind": "Subscription", "metadata": {"name": "one"},
         "spec": {"pubsubname": "pubsub", "topic": "t1", "routes": {"default": "/one"}},
         "scopes": ["app"]},
        {"apiVersion": "dapr.io/v1alpha1", "kind": "Subscription", "metadata": {"name": "two"},
         "spec": {"pubsubname": "pubsub", "topic": "t2", "route": "/two",
                  "metadata": [{"name": "rawPayload", "value": "true"}]}},
        {"kind": "Subscription", "metadata": {"name": "other"},
         "spec": {"pubsubname": "pubsub", "topic": "t3", "route": "/x"}, "scopes": ["else"]},
    ]  # fmt: skip
    found = declarative(documents, "app")
    assert [(s.topic, s.route, s.kind) for s in found] == [
        ("t1", "/one", DECLARATIVE),
        ("t2", "/two", DECLARATIVE),
    ]
    assert found[1].raw_payload


def test_queue_names_are_valid_stable_and_apart() -> None:
    long = queue_name("pubsub", "ü/" * 120, "app id with spaces " * 5)
    assert check_queue_name(long) == long and len(long) <= 80
    assert queue_name("p", "a.b", "c") != queue_name("p", "a", "b.c")
    assert queue_name("p", "t", "a") == queue_name("p", "t", "a")
    assert queue_name("p", "t", "a") != queue_name("q", "t", "a")


def test_topics() -> None:
    assert check_topic("orders/eu") == "orders/eu"
    for bad in ("", "a||b", "a\x00", "é" * 200, "\ud800"):
        with pytest.raises(InvalidTopic):
            check_topic(bad)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (Answer(200), "success"),
        (Answer(204, b"  "), "success"),
        (Answer(200, b"not json"), "success"),
        (Answer(200, b'{"status": "SUCCESS"}'), "success"),
        (Answer(200, b'{"Status": ""}'), "success"),
        (Answer(200, b'{"status": "RETRY"}'), "retry"),
        (Answer(200, b'{"status": "drop"}'), "retry"),  # case matters, as in Dapr
        (Answer(200, b'{"status": "DROP"}'), "drop"),
        (Answer(404), "drop"),
        (Answer(500), "retry"),
        (Answer(429), "retry"),
        (Answer(0, error="unreachable"), "retry"),
    ],
)
def test_answers(answer: Answer, kind: str) -> None:
    assert outcome_of(answer).kind == kind


def test_envelopes() -> None:
    where = Publication("pubsub", "t", "app", 1_800_000_000.0)
    text = stored_event(b"{}", "application/json; charset=utf-8", {}, where).envelope
    assert text is not None and text["data"] == {}
    plus = stored_event(b'{"a": 1}', "application/vnd+json", {}, where).envelope
    assert plus is not None and plus["data"] == '{"a": 1}'  # only application/json parses
    broken = stored_event(b"{oops", "application/json", {}, where).envelope
    assert broken is not None and broken["data"] == "{oops"
    timed = stored_event(b"x", None, {"ttlInSeconds": "10"}, where)
    assert timed.expires_at == 1_800_000_010.0 and timed.envelope is not None
    assert timed.envelope["expiration"] == "2027-01-15T08:00:10.000Z"
    assert timed.envelope["datacontenttype"] == "text/plain"
    named = stored_event(b"x", None, {"cloudevent.id": "mine", "cloudevent.type": "t"}, where)
    assert named.envelope is not None
    assert named.envelope["id"] == "mine" and named.envelope["type"] == "t"
    for bad in ({"rawPayload": "yes please"}, {"ttlInSeconds": "0"}, {"ttlInSeconds": "1e3"}):
        with pytest.raises(DaprError) as caught:
            stored_event(b"x", None, bad, where)
        assert caught.value.code == "ERR_PUBSUB_REQUEST_METADATA"


def test_json_data_is_read_strictly() -> None:
    where = Publication("pubsub", "t", "app", 1_800_000_000.0)
    for odd in (b"NaN", b"[" * 300 + b"]" * 300, b"\xff"):
        envelope = stored_event(odd, "application/json", {}, where).envelope
        assert envelope is not None and isinstance(envelope["data"], str)
    for bad in (b"NaN", b"[1]", b"{"):
        with pytest.raises(DaprError) as caught:
            stored_event(bad, "application/cloudevents+json", {}, where)
        assert caught.value.code == "ERR_PUBSUB_CLOUD_EVENTS_SER"


def test_each_app_id_has_an_outbox_queue_of_its_own() -> None:
    assert outbox_queue("ledger") == "dapr-outbox.ledger"
    assert outbox_queue("billing") != outbox_queue("ledger")
    fits = "a" * (80 - len("dapr-outbox."))
    assert outbox_queue(fits) == f"dapr-outbox.{fits}"
    # app ids that are no queue name are hashed: still valid, still one per app id
    odd = ["my app", "a" * 69, "émile", "x/y", "x|y"]
    names = [outbox_queue(app_id) for app_id in odd]
    for name in names:
        assert check_queue_name(name) == name and name.startswith("dapr-outbox-h.")
    assert len(set(names)) == len(odd)
    assert outbox_queue("my app") == outbox_queue("my app")


def test_the_outbox_retries_for_long() -> None:
    waited = sum(OUTBOX_RETRY.ceiling(n) for n in range(1, OUTBOX_RETRY.max_attempts))
    assert waited > 3 * 24 * 3600  # days of a database or pub/sub outage
    assert OUTBOX_RETRY.max_delay <= 60  # and noticed within a minute once it is back


def test_an_entry_nested_too_deeply_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    answer = [
        {"pubsubname": "pubsub", "topic": "deep", "route": "/d", "metadata": {"x": deep}},
        {"pubsubname": "pubsub", "topic": "fine", "route": "/f"},
    ]
    with caplog.at_level(logging.WARNING):
        found = programmatic(answer, "app")
    assert [s.topic for s in found] == ["fine"]
    assert "nested too deeply" in caplog.text
