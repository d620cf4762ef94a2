"""The ``statekeeper events`` verbs as real processes, on SQLite and PostgreSQL: appends
with expected versions (one event or a file of them), stream, log and category reads
paged with ``next``, the stream listing, subscriptions, parked events, projections and
their rebuild through ``--app``; each error one line with its exit code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.events.model import RecordedEvent
from tests.integration.cli_support import document, one_line_error, statekeeper

SHOP = """
from statekeeper import App, Retry

app = App(namespace="shop", purge_interval=None)


@app.projection("totals", category="order", retry=Retry(max_attempts=1, jitter=False))
async def totals(event, view):
    if event.type == "Poison":
        raise RuntimeError("cannot digest this")
    view.put(event.stream, event.data)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "shop.py").write_text(SHOP)
    return tmp_path


def register(app: App) -> None:
    """The projection of SHOP, on an app of the test's own process."""

    @app.projection("totals", category="order", retry=Retry(max_attempts=1, jitter=False))
    async def totals(event: RecordedEvent, view: Any) -> None:
        if event.type == "Poison":
            raise RuntimeError("cannot digest this")
        view.put(event.stream, event.data)


# The two long walks through the verbs run on SQLite: the storage under them is the
# contract tests' on both backends, and each verb is a process of its own (~0.7 s).
@pytest.mark.parametrize("backend_name", ["sqlite"])
def test_append_and_read_page_by_page(own_database_url: str, tmp_path: Path) -> None:
    db = ["--database", own_database_url, "--namespace", "shop"]
    first = document(statekeeper(
        *db, "events", "append", "order-1", "--type", "Placed", "--data", '{"total": 3}',
        "--metadata", '{"by": "ada"}', "--id", "placed-1", "--correlation-id", "corr-1",
        "--expected-version", "no_stream",
    ))  # fmt: skip
    assert first == {"stream": "order-1", "version": 1, "ids": ["placed-1"],
                     "first_position": 1, "last_position": 1}  # fmt: skip
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps([{"type": "Paid", "data": 3}, {"type": "Shipped"}]))
    second = statekeeper(*db, "events", "append", "order-1", "--file", str(batch),
                         "--expected-version", "1")  # fmt: skip
    assert document(second)["version"] == 3 and document(second)["first_position"] == 2
    piped = statekeeper(*db, "events", "append", "order-2", "--file", "-",
                        stdin='[{"type": "Placed", "data": {"total": 9}}]')  # fmt: skip
    assert document(piped)["last_position"] == 4
    stale = statekeeper(*db, "events", "append", "order-1", "--type", "Paid",
                        "--expected-version", "1")  # fmt: skip
    line = one_line_error(stale, "wrong_expected_version", 5)
    assert "stream 'order-1' is at version 3, not version 1" in line
    missing = statekeeper(*db, "events", "append", "order-9", "--type", "X",
                          "--expected-version", "exists")  # fmt: skip
    one_line_error(missing, "wrong_expected_version", 5)

    read = document(statekeeper(*db, "events", "read", "order-1", "--limit", "2", "--json"))
    assert [e["version"] for e in read["items"]] == [1, 2] and read["next"] == 3
    assert read["direction"] == "forwards" and read["stream"] == "order-1"
    placed = read["items"][0]
    assert placed["metadata"] == {"by": "ada", "correlation_id": "corr-1"}
    assert placed["recorded_at"].endswith("+00:00") and placed["data"] == {"total": 3}
    rest = document(statekeeper(*db, "events", "read", "order-1", "--start", "3", "--json"))
    assert [e["type"] for e in rest["items"]] == ["Shipped"] and rest["next"] is None
    back = document(statekeeper(*db, "events", "read", "order-1", "--backwards", "--limit", "2",
                                "--json"))  # fmt: skip
    assert [e["version"] for e in back["items"]] == [3, 2] and back["next"] == 1
    table = statekeeper(*db, "events", "read", "order-1", "--limit", "2")
    header, *rows, last = table.stdout.splitlines()
    assert header.split() == ["POSITION", "VERSION", "TYPE", "RECORDED_AT", "DATA"]
    assert rows[0].split()[:3] == ["1", "1", "Placed"] and last == "next page: --start 3"
    nowhere = statekeeper(*db, "events", "read", "order-7")
    assert "'order-7' has no event" in one_line_error(nowhere, "stream_not_found", 6)

    log = document(statekeeper(*db, "events", "log", "--after", "1", "--limit", "2", "--json"))
    assert [e["position"] for e in log["items"]] == [2, 3]
    assert log["head"] == 4 and log["next"] == 3
    newest = document(statekeeper(*db, "events", "log", "--backwards", "--limit", "1", "--json"))
    assert [e["stream"] for e in newest["items"]] == ["order-2"] and newest["next"] == 4
    text = statekeeper(*db, "events", "log", "--limit", "3").stdout.splitlines()
    assert text[0].split()[:3] == ["POSITION", "STREAM", "VERSION"]
    assert text[-1] == "next page: --after 3"
    category = document(statekeeper(*db, "events", "category", "order", "--after", "3", "--json"))
    assert category == {"category": "order", "next": None, "items": category["items"]}
    assert [e["stream"] for e in category["items"]] == ["order-2"]

    streams = document(statekeeper(*db, "events", "streams", "--prefix", "order-", "--limit", "1",
                                   "--json"))  # fmt: skip
    assert [(s["stream"], s["version"]) for s in streams["items"]] == [("order-1", 3)]
    assert streams["next"] == "order-1"
    following = statekeeper(*db, "events", "streams", "--after", "order-1", "--json")
    assert [s["stream"] for s in document(following)["items"]] == ["order-2"]
    listed = statekeeper(*db, "events", "streams", "--limit", "1").stdout.splitlines()
    assert listed[0].split() == ["STREAM", "VERSION", "UPDATED_AT"]
    assert listed[-1] == "next page: --after order-1"


@pytest.mark.parametrize("backend_name", ["sqlite"])
async def test_projections_subscriptions_and_rebuild(own_database_url: str, project: Path) -> None:
    db = ["--database", own_database_url, "--namespace", "shop"]
    for stream, kind in (("order-1", "Placed"), ("order-2", "Poison"), ("user-1", "Joined")):
        appended = statekeeper(*db, "events", "append", stream, "--type", kind, "--data", "1")
        assert appended.returncode == 0, appended.stderr
    status = document(statekeeper(*db, "events", "projections", "--app", "shop:app", "--json",
                                  cwd=project))  # fmt: skip
    [totals] = status["items"]
    assert (totals["name"], totals["generation"], totals["building"]) == ("totals", 1, None)
    assert totals["current"]["lag"] == 3
    async with App(own_database_url, namespace="shop", purge_interval=None) as app:
        register(app)
        await app.projections.catch_up("totals")

    subscriptions = document(statekeeper(*db, "events", "subscriptions", "--json"))
    [row] = subscriptions["items"]
    assert subscriptions["head"] == 3 and subscriptions["next"] is None
    assert row["name"] == "statekeeper.projection.totals.1"
    assert (row["position"], row["lag"], row["parked"]) == (3, 0, 1)
    assert row["updated_at"].endswith("+00:00")
    table = statekeeper(*db, "events", "subscriptions").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "POSITION", "LAG"]
    parked = document(statekeeper(*db, "events", "parked", row["name"], "--json"))
    [event] = parked["items"]
    assert event["position"] == 2 and "RuntimeError: cannot digest this" in event["error"]
    assert parked["subscription"] == row["name"] and parked["next"] is None
    assert "cannot digest this" in statekeeper(*db, "events", "parked", row["name"]).stdout
    unknown = statekeeper(*db, "events", "parked", "nope")
    one_line_error(unknown, "subscription_not_found", 6)

    started = statekeeper(*db, "events", "rebuild", "totals", "--app", "shop:app", cwd=project)
    assert document(started) == {"name": "totals", "building": 2}
    busy = statekeeper(*db, "events", "rebuild", "totals", "--app", "shop:app", cwd=project)
    assert "already rebuilding generation 2" in one_line_error(busy, "projection_busy", 5)
    text = statekeeper(*db, "events", "projections", "--app", "shop:app", cwd=project)
    lines = text.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "GENERATION"]
    assert any("2 (rebuild)" in line for line in lines) and any(
        "1 (current)" in line for line in lines
    )
    async with App(own_database_url, namespace="shop", purge_interval=None) as app:
        register(app)
        await app.projections.catch_up("totals")  # the worker's part: replay, then switch
    caught_up = statekeeper(*db, "events", "rebuild", "totals", "--app", "shop:app",
                            "--catch-up", cwd=project)  # fmt: skip
    assert document(caught_up) == {"name": "totals", "building": 3, "generation": 3}
    nope = statekeeper(*db, "events", "rebuild", "nope", "--app", "shop:app", cwd=project)
    one_line_error(nope, "subscription_not_found", 6)


@pytest.mark.parametrize(
    ("args", "code", "exit_code", "fragment"),
    [
        (["append", "", "--type", "E"], "invalid_stream_name", 4, "invalid stream name ''"),
        (["append", "o\x1b1", "--type", "E"], "invalid_stream_name", 4, "control character"),
        (["append", "o-1", "--type", ""], "invalid_event", 4, "invalid event type"),
        (["append", "o-1", "--type", "E", "--data", "{bad"], "malformed_json", 4, "--data"),
        (["append", "o-1", "--type", "E", "--metadata", "[1]"], "invalid_event", 4, "metadata"),
        (["append", "o-1", "--type", "E", "--correlation-id", "c" * 129], "invalid_identifier", 4,
         "correlation id"),
        (["append", "o-1", "--file", "-"], "invalid_event", 4, "has an object: events are"),
        (["append", "o-1"], "usage", 2, "give the event's --type"),
        (["append", "o-1", "--file", "-", "--type", "E"], "usage", 2, "--type is for one"),
        (["append", "o-1", "--file", "missing.json"], "usage", 2, "missing.json"),
        (["append", "o-1", "--type", "E", "--expected-version", "-1"], "usage", 2,
         "'-1' is not \"any\""),
        (["append", "o-1", "--type", "E", "--expected-version", "ANY"], "usage", 2, "'ANY'"),
        (["read", "o-1", "--limit", "0"], "usage", 2, "--limit"),
        (["log", "--limit", "1001"], "usage", 2, "--limit"),
        (["log", "--after", "-1"], "usage", 2, "--after"),
        (["read", "o-1", "--start", "x"], "usage", 2, "--start"),
        (["category", "order-1"], "invalid_filter", 4, "has no '-'"),
        (["category", "a\nb"], "invalid_stream_name", 4, "invalid category"),
        (["streams", "--prefix", "a\x01"], "invalid_filter", 4, "invalid prefix"),
        (["subscriptions", "--after", "\x7f"], "invalid_identifier", 4, "invalid after"),
        (["parked", "a\tb"], "invalid_identifier", 4, "invalid subscription name"),
        (["projections"], "configuration_error", 3, "--app module:app"),
        (["rebuild", "bad name"], "invalid_identifier", 4, "invalid projection name"),
    ],
)  # fmt: skip
async def test_errors_are_one_line_with_their_exit_code(
    tmp_path: Path, args: list[str], code: str, exit_code: int, fragment: str
) -> None:
    url = f"sqlite:///{tmp_path}/errors.db"
    result = statekeeper("--database", url, "events", *args, cwd=tmp_path, stdin='{"type": "E"}')
    assert fragment in one_line_error(result, code, exit_code)
    async with App(url, purge_interval=None) as app:
        assert await app.events.head() == 0 and await app.events.streams() == []


def test_stored_text_is_escaped_in_tables(tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path}/escape.db"]
    stream = "order-\u202e1"
    appended = statekeeper(*db, "events", "append", stream, "--type", "E\u009b",
                           "--data", '"\\u001b[2J"')  # fmt: skip
    assert appended.returncode == 0, appended.stderr
    for args in (["log"], ["streams"], ["read", stream]):
        shown = statekeeper(*db, "events", *args).stdout
        assert "\u202e" not in shown and "\x1b" not in shown and "\u009b" not in shown, args
    assert "order-\\u202e1" in statekeeper(*db, "events", "streams").stdout
    assert document(statekeeper(*db, "events", "streams", "--json"))["items"][0]["stream"] == stream
