"""The dashboard's pages of state machines, event streams, schedules and entities, on
real data made through the app's API: over HTTP in-process (what each page shows, every
bad input a clear 4xx page with its text escaped, the schedule actions with and without
their CSRF token), then in a real browser against a real ``statekeeper serve``: each
page signed in, without console errors or serious accessibility violations, a
screenshot of each kept under tests/output/ui/."""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from markupsafe import escape

from statekeeper import App
from statekeeper.asl.executions import Executions
from statekeeper.asl.machines import StateMachines
from statekeeper.constants import ENV_DATABASE_URL, ENV_NAMESPACE
from statekeeper.schedules import Definition, make_spec
from tests.integration.test_ui import (
    SHOTS,
    TOKEN,
    chromium_page,
    client_of,
    csrf_of,
    serious_violations,
    statekeeper_serve,
)
from tests.integration.ui_blocks_app import declare
from tests.support import drive

SHIP = "<b>\"Ship\" & 'go'</b>"  # a state name that is HTML
CAUSE = "n is over 10 <script>alert(1)</script>"
ORDERS: dict[str, Any] = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.n", "NumericGreaterThan": 10, "Next": "TooBig"}],
            "Default": "Fan",
        },
        "TooBig": {"Type": "Fail", "Error": "TooBig", "Cause": CAUSE},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Price", "States": {"Price": {"Type": "Pass", "End": True}}},
                {"StartAt": "Stock", "States": {"Stock": {"Type": "Fail", "Error": "OutOfStock"}}},
            ],
            "Catch": [{"ErrorEquals": ["OutOfStock"], "ResultPath": "$.problem", "Next": "Each"}],
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "Pack", "States": {"Pack": {"Type": "Pass", "End": True}}},
            "ResultPath": "$.packed",
            "Next": SHIP,
        },
        SHIP: {"Type": "Succeed"},
    },
}
STREAM = 'order-a/b <i>"x"</i>'  # a slash and HTML in a stream name
KEY = 'c/1 <b>"x"</b>'  # and in an entity key
NOTE = "<img src=x onerror=alert(1)>"


async def fill(app: App) -> None:
    """A machine and two executions run to their end (one fails in the Choice's Fail
    branch), one stopped before it ran and one not run yet; order streams and their
    projection one event behind, two schedules (one paused) and an entity with a
    state."""
    machines = StateMachines(app)
    executions = Executions(machines)
    created = await machines.create({"name": "orders", "definition": json.dumps(ORDERS)})
    arn = created["stateMachineArn"]
    for name, given in (("ok-1", {"n": 1, "items": [1, 2]}), ("big-1", {"n": 50})):
        request = {"stateMachineArn": arn, "name": name, "input": json.dumps(given)}
        await executions.start(request)
    await drive(app)
    stopping = {"stateMachineArn": arn, "name": "stopped-1", "input": "{}"}
    stop = {"executionArn": arn.replace(":stateMachine:", ":execution:") + ":stopped-1",
            "error": "Operator", "cause": "stopped <em>by hand</em>"}  # fmt: skip
    await executions.start(stopping)
    await executions.stop(stop)
    await drive(app)  # the worker ends it before it runs a state
    later = {"stateMachineArn": arn, "name": "later-1", "input": '{"n": 2, "items": []}'}
    await executions.start(later)  # no worker runs it: RUNNING, without history
    await app.events.append("order-1", [{"type": "Placed", "data": {"total": 30, "note": NOTE}},
                                        {"type": "Paid", "data": {"amount": 30}}])  # fmt: skip
    await app.events.append(STREAM, [{"type": "Placed", "data": {"total": 5}}])
    await app.projections.catch_up("order_totals")
    await app.projections.subscriptions["audit"].run_until_caught_up()
    await app.events.append("order-2", [{"type": "Placed", "data": {"total": 7}}])
    every = make_spec(every=3600)
    await app.schedules.create(Definition.checked("nightly-report", "nightly", every, input=NOTE))
    weekly = make_spec("0 9 * * 1", timezone="Europe/Paris")
    await app.schedules.create(Definition.checked("weekly.digest", "nightly", weekly), paused=True)
    await app.entities.call("counter", KEY, "add", 5)


@pytest.fixture
async def blocks(database_url: str, namespace: str) -> AsyncIterator[App]:
    async with App(database_url, namespace=namespace, purge_interval=None, encryption=None) as app:
        declare(app)
        await fill(app)
        yield app


@contextlib.asynccontextmanager
async def signed_in(app: App) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(app) as client:
        assert (await client.post("/ui/login", data={"token": TOKEN})).status_code == 303
        yield client


def chart_of(page: str) -> str:
    """The Mermaid text of a page's diagram."""
    found = re.search(r'<pre class="mermaid[^"]*"[^>]*>(.*?)</pre>', page, re.S)
    assert found is not None
    return html.unescape(found.group(1))


def _decoded(text: str) -> str:
    return re.sub(r"#(\d+);", lambda code: chr(int(code.group(1))), text)


def _labels(chart: str) -> dict[str, str]:
    """Each node's text (entity codes decoded), by its id."""
    found = re.findall(r'^  (n\d+)[\[{(]+"(.*)"[\]})]+$', chart, re.M)
    return {id: _decoded(text) for id, text in found}


def node_classes(chart: str) -> dict[str, str]:
    """The class of each node, by its text."""
    ids = _labels(chart)
    classed = re.findall(r"^  class ([n0-9,]+) (\w+)$", chart, re.M)
    kinds = {id: kind for members, kind in classed for id in members.split(",")}
    return {text: kinds.get(id, "") for id, text in ids.items()}


def edges(chart: str) -> dict[tuple[str, str, str], str]:
    """The arrow of each edge, by (source's text, target's text, its label)."""
    texts = _labels(chart)
    found = re.findall(r'^  (n\d+) (-->|-\.->)(?:\|"(.*)"\|)? (n\d+)$', chart, re.M)
    return {(texts[s], texts[d], _decoded(t)): a for s, a, t, d in found}


def row(page: str, attribute: str, value: str) -> list[str]:
    """The cells' text of the table row whose ``data-<attribute>`` is ``value``."""
    found = re.search(rf'<tr data-{attribute}="{re.escape(str(escape(value)))}">(.*?)</tr>',
                      page, re.S)  # fmt: skip
    assert found is not None, f"no row {attribute}={value}"
    cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", found.group(1), re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells]


def assert_escaped(page: str) -> None:
    """Nothing users wrote reaches the page as markup."""
    for raw in ("<script>alert", "<img src=x", '<b>"', '<i>"'):
        assert raw not in page


async def test_machine_pages_show_the_graph_and_the_path(blocks: App) -> None:
    async with signed_in(blocks) as client:
        listing = await client.get("/ui/machines")
        assert listing.status_code == 200
        cells = row(listing.text, "machine", "orders")
        assert cells[:2] == ["orders", "STANDARD"] and cells[3:] == ["4", "1"]
        machine = await client.get("/ui/machines/orders")
        assert machine.status_code == 200
        assert_escaped(machine.text)
        shown = node_classes(chart_of(machine.text))
        assert set(shown) == {"Start", "End", "Check (Choice)", "TooBig (Fail)", "Fan (Parallel)",
                              "Price (Pass)", "Stock (Fail)", "Each (Map)", "Pack (Pass)",
                              f"{SHIP} (Succeed)"}  # fmt: skip
        assert row(machine.text, "execution", "ok-1")[1] == "SUCCEEDED"
        assert row(machine.text, "execution", "big-1")[1] == "FAILED"
        counts = re.search(r"<tr data-counts>(.*?)</tr>", machine.text, re.S)
        assert counts is not None  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
        assert re.findall(r">(\d+)</td>", counts.group(1)) == ["1", "1", "1", "0", "1"]

        ok = await client.get("/ui/machines/orders/executions/ok-1")
        assert ok.status_code == 200
        assert_escaped(ok.text)
        assert re.search(r"<dd data-status[^>]*>SUCCEEDED</dd>", ok.text)
        marked = node_classes(chart_of(ok.text))
        assert marked["Check (Choice)"] == marked["Fan (Parallel)"] == "done"
        assert marked[f"{SHIP} (Succeed)"] == marked["Pack (Pass)"] == "done"
        assert marked["Stock (Fail)"] == "failed"  # failed in its branch; the Catch took it
        assert marked["TooBig (Fail)"] == "unvisited"
        arrows = edges(chart_of(ok.text))  # Fan went on to Each by its Catch, not its Next
        assert arrows[("Fan (Parallel)", "Each (Map)", "catch OutOfStock")] == "-->"
        assert arrows[("Fan (Parallel)", "Each (Map)", "")] == "-.->"
        assert arrows[("Check (Choice)", "TooBig (Fail)", "$.n > 10")] == "-.->"
        assert "ExecutionSucceeded" in ok.text and "MapIterationStarted" in ok.text
        assert '"packed"' in html.unescape(ok.text)

        big = await client.get("/ui/machines/orders/executions/big-1")
        assert big.status_code == 200
        assert_escaped(big.text)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in big.text
        assert re.search(r"<dd data-error[^>]*>TooBig</dd>", big.text)
        marked = node_classes(chart_of(big.text))
        assert marked["TooBig (Fail)"] == "failed" and marked["Check (Choice)"] == "done"
        assert marked["Fan (Parallel)"] == "unvisited"

        later = await client.get("/ui/machines/orders/executions/later-1")
        assert later.status_code == 200 and "No event yet" in later.text
        assert re.search(r"<dd data-status[^>]*>RUNNING</dd>", later.text)
        assert set(node_classes(chart_of(later.text)).values()) == {"", "unvisited"}
        stopped = await client.get("/ui/machines/orders/executions/stopped-1")
        assert_escaped(stopped.text)
        assert re.search(r"<dd data-status[^>]*>ABORTED</dd>", stopped.text)
        assert "stopped &lt;em&gt;by hand&lt;/em&gt;" in stopped.text
        assert row(stopped.text, "event", "ExecutionAborted")[:2] == ["1", "ExecutionAborted"]


async def test_event_pages_show_streams_projections_and_events(blocks: App) -> None:
    async with signed_in(blocks) as client:
        page = await client.get("/ui/events")
        assert page.status_code == 200
        assert_escaped(page.text)
        assert re.search(r"<strong data-head>4</strong>", page.text)
        assert row(page.text, "stream", "order-1")[:3] == ["order-1", "order", "2"]
        assert row(page.text, "stream", STREAM)[:3] == [STREAM, "order", "1"]
        projection = row(page.text, "projection", "order_totals")
        assert projection[:5] == ["order_totals", "1", "catching up", "3", "1"]
        subscription = row(page.text, "subscription", "statekeeper.projection.order_totals.1")
        assert subscription[1:3] == ["3", "1"] and subscription[5] == "0"
        audit = row(page.text, "subscription", "audit")
        assert audit[1:3] == ["3", "1"] and audit[4:6] == ["0", "1"]
        parked = await client.get("/ui/events/subscriptions/audit")
        assert parked.status_code == 200
        assert_escaped(parked.text)
        assert row(parked.text, "parked-position", "1")[:2] == ["1", "1"]
        assert "refused &lt;img src=x" in parked.text
        narrowed = await client.get("/ui/events", params={"prefix": "order-2"})
        assert 'data-stream="order-2"' in narrowed.text and "order-1" not in narrowed.text

        link = f"/ui/events/streams/{quote(STREAM, safe='')}"
        assert f'href="{link}"' in page.text
        stream = await client.get(link)
        assert stream.status_code == 200 and "Placed" in stream.text
        one = await client.get("/ui/events/streams/order-1")
        assert_escaped(one.text)
        assert str(escape(json.dumps(NOTE)[1:-1])) in one.text
        assert row(one.text, "version", "2")[:3] == ["2", "2", "Paid"]
        later = await client.get("/ui/events/streams/order-1", params={"start": "2"})
        assert 'data-version="1"' not in later.text and 'data-version="2"' in later.text


async def test_schedule_pages_and_their_actions(blocks: App) -> None:
    async with signed_in(blocks) as client:
        page = await client.get("/ui/schedules")
        assert page.status_code == 200
        nightly = row(page.text, "schedule", "nightly-report")
        assert nightly[:4] == ["nightly-report", "every 1 h", "nightly", "active"]
        weekly = row(page.text, "schedule", "weekly.digest")
        assert weekly[1:4] == ["cron 0 9 * * 1 (Europe/Paris)", "nightly", "paused"]
        one = await client.get("/ui/schedules/nightly-report")
        assert one.status_code == 200
        assert_escaped(one.text)
        fires = re.search(r"<ol data-fires>(.*?)</ol>", one.text, re.S)
        assert fires is not None and fires.group(1).count("<li>") == 10
        csrf = csrf_of(one.text)

        # Without the session's CSRF token, nothing is done.
        for form in ({"other": "field"}, {"csrf": "0" * 64}):
            refused = await client.post("/ui/schedules/nightly-report/pause", data=form)
            assert refused.status_code == 403
        assert not (await blocks.schedules.get("nightly-report")).paused
        not_a_form = await client.post("/ui/schedules/nightly-report/pause", json={"csrf": csrf})
        assert not_a_form.status_code == 400
        paused = await client.post("/ui/schedules/nightly-report/pause", data={"csrf": csrf})
        assert paused.status_code == 303
        assert paused.headers["location"] == "/ui/schedules/nightly-report?done=paused"
        assert (await blocks.schedules.get("nightly-report")).paused
        shown = await client.get(paused.headers["location"])
        assert "Paused: it fires nothing" in shown.text and ">Resume</button>" in shown.text
        resumed = await client.post("/ui/schedules/nightly-report/resume", data={"csrf": csrf})
        assert resumed.headers["location"].endswith("?done=resumed")
        assert not (await blocks.schedules.get("nightly-report")).paused
        fired = await client.post("/ui/schedules/nightly-report/trigger", data={"csrf": csrf})
        assert fired.headers["location"].endswith("?done=triggered")
        last = (await blocks.schedules.get("nightly-report")).last_run_id
        assert last is not None and last.startswith("nightly-report@manual-")
        after = await client.get("/ui/schedules/nightly-report")
        assert re.search(r"<span data-last-status>pending</span>", after.text)
        # An action on a schedule that does not exist, with a genuine form: a 404 page.
        missing = await client.post("/ui/schedules/nosuch/trigger", data={"csrf": csrf})
        assert missing.status_code == 404 and "nosuch" in missing.text
        # ?done= says only what the page itself says.
        forged = await client.get("/ui/schedules/nightly-report", params={"done": NOTE})
        assert forged.status_code == 200 and 'role="status"' not in forged.text
    client.cookies.clear()
    async with client_of(blocks) as anonymous:
        gone = await anonymous.post("/ui/schedules/nightly-report/pause", data={"csrf": csrf})
        assert gone.status_code == 401
        assert (await anonymous.get("/ui/schedules")).status_code == 303


async def test_entity_pages_show_types_keys_and_state(blocks: App) -> None:
    async with signed_in(blocks) as client:
        page = await client.get("/ui/entities")
        assert page.status_code == 200
        assert_escaped(page.text)
        assert row(page.text, "type", "counter") == ["counter", "add, value (read-only)"]
        cells = row(page.text, "key", KEY)
        assert cells[0] == KEY and cells[1] == "1" and cells[4] == "5"
        link = f"/ui/entities/counter/{quote(KEY, safe='')}"
        assert f'href="{link}"' in page.text
        one = await client.get(link)
        assert one.status_code == 200
        assert_escaped(one.text)
        assert re.search(r"<pre data-state>5</pre>", one.text)
        assert re.search(r"<dd data-version>1 ", one.text)
        typed = await client.get("/ui/entities/counter")
        assert typed.status_code == 303 and typed.headers["location"] == "/ui/entities?type=counter"


def next_link(page: str, rel: str = "next", text: str = "") -> str | None:
    """The address of the page's link ``rel`` (whose text starts with ``text``)."""
    found = re.search(rf'<a href="([^"]+)" rel="{rel}">{re.escape(text)}', page)
    return None if found is None else html.unescape(found.group(1))


async def test_every_listing_pages_through_its_rows(
    blocks: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    from statekeeper.http.ui import entities, events, machines, schedules

    for module, name in ((machines, "EXECUTIONS_PAGE"), (events, "STREAMS_PAGE"),
                         (events, "EVENTS_PAGE"), (events, "SUBSCRIPTIONS_PAGE"),
                         (schedules, "SCHEDULES_PAGE"), (entities, "ENTITIES_PAGE")):  # fmt: skip
        monkeypatch.setattr(module, name, 1)
    monkeypatch.setattr(machines, "EVENTS_PAGE", 10)
    await blocks.entities.call("counter", "a-first", "add", 1)
    async with signed_in(blocks) as client:

        async def walk(path: str | None, attribute: str, link: str = "") -> list[str]:
            """The rows of every page, following the next links (those saying ``link``)."""
            seen: list[str] = []
            while path is not None:
                page = await client.get(path)
                assert page.status_code == 200, page.text
                found = re.findall(rf'<tr data-{attribute}="([^"]*)"', page.text)
                seen += [html.unescape(value) for value in found]
                path = next_link(page.text, text=link)
            return seen

        assert await walk("/ui/machines/orders", "execution") == [
            "later-1", "stopped-1", "big-1", "ok-1"]  # fmt: skip
        assert await walk("/ui/events", "stream", "More streams") == [
            "order-1", "order-2", STREAM]  # fmt: skip
        assert await walk("/ui/events/streams/order-1", "version") == ["1", "2"]
        assert await walk("/ui/events", "subscription", "More subscriptions") == [
            "audit", "statekeeper.projection.order_totals.1"]  # fmt: skip
        assert await walk("/ui/schedules", "schedule") == ["nightly-report", "weekly.digest"]
        assert await walk("/ui/entities", "key") == ["a-first", KEY]
        events_seen = await walk("/ui/machines/orders/executions/ok-1", "event")
        assert len(events_seen) == 25 and events_seen[-1] == "ExecutionSucceeded"
        last = await client.get("/ui/machines/orders/executions/ok-1", params={"from": "20"})
        back = await client.get(str(next_link(last.text, "prev")))
        assert len(re.findall(r"<tr data-event", back.text)) == 10


HOSTILE = [
    # (path, query, status)
    ("/ui/machines/nosuch", {}, 404),
    ("/ui/machines/" + quote('<b onmouseover="alert(1)">', safe=""), {}, 400),
    ("/ui/machines/" + "x" * 5000, {}, 400),
    ("/ui/machines", {"after": "<b>not a token</b>"}, 400),
    ("/ui/machines", {"after": "x" * 1000}, 400),
    ("/ui/machines/orders", {"after": "not-base64-!!"}, 400),
    ("/ui/machines/orders/executions/nosuch", {}, 404),
    ("/ui/machines/orders/executions/" + quote("a'b\"c", safe=""), {}, 400),
    ("/ui/machines/nosuch/executions/ok-1", {}, 404),
    ("/ui/machines/orders/executions/ok-1", {"from": "-1"}, 400),
    ("/ui/machines/orders/executions/ok-1", {"from": "1e9"}, 400),
    ("/ui/events", {"prefix": "x" * 500}, 400),
    ("/ui/events", {"after": "a\x01b"}, 400),
    ("/ui/events", {"subscriptions_after": "<\x7f>"}, 400),
    ("/ui/events/streams/nosuch-stream", {}, 404),
    ("/ui/events/streams/" + quote("a\x01b<script>", safe=""), {}, 400),
    ("/ui/events/streams/" + "s" * 300, {}, 400),
    ("/ui/events/streams/order-1", {"start": "0"}, 400),
    ("/ui/events/streams/order-1", {"start": "<b>"}, 400),
    ("/ui/events/subscriptions/nosuch", {}, 404),
    ("/ui/events/subscriptions/audit", {"after": "x"}, 400),
    ("/ui/events/subscriptions/" + quote("a\x02", safe=""), {}, 400),
    ("/ui/schedules/nosuch", {}, 404),
    ("/ui/schedules/" + quote('<b id="x">', safe=""), {}, 400),
    ("/ui/schedules", {"after": "a\x00"}, 400),
    ("/ui/entities/nosuch/k", {}, 404),
    ("/ui/entities/counter/never-called", {}, 404),
    ("/ui/entities/" + quote('"><img src=x>', safe="") + "/k", {}, 400),
    ("/ui/entities/counter/" + "k" * 300, {}, 400),
    ("/ui/entities/counter/" + quote("a\x00b", safe=""), {}, 400),
    ("/ui/entities", {"type": "<script>"}, 400),
    ("/ui/entities", {"type": "nosuch"}, 404),
    ("/ui/entities", {"type": "counter", "after": "k" * 300}, 400),
]


async def test_bad_input_is_a_clear_page_never_a_500(blocks: App) -> None:
    async with signed_in(blocks) as client:
        for path, query, status in HOSTILE:
            answer = await client.get(path, params=query)
            assert answer.status_code == status, (path, query, answer.text[-400:])
            assert 'class="error" role="alert"' in answer.text, path
            assert_escaped(answer.text)
            assert "<script>" not in answer.text and "Traceback" not in answer.text


@pytest.fixture
async def served_blocks(browser_database: str, namespace: str) -> AsyncIterator[str]:
    """``statekeeper serve`` (no workers: the pages show what ``fill`` made) of
    ui_blocks_app over the filled database; its URL."""
    async with App(browser_database, namespace=namespace, purge_interval=None) as app:
        declare(app)
        await fill(app)
    env = {ENV_DATABASE_URL: browser_database, ENV_NAMESPACE: namespace}
    async with statekeeper_serve("ui_blocks_app:app", env, "--no-workers") as url:
        yield url


async def test_the_block_pages_in_a_real_browser(served_blocks: str) -> None:

    async with chromium_page(served_blocks) as (page, errors):

        async def visit(path: str, shot: str | None, diagram: bool = False) -> None:
            await page.goto(f"{served_blocks}{path}")
            if diagram:  # drawn by Mermaid (ui.js) as an SVG
                await page.wait_for_selector("pre.mermaid svg", timeout=10_000)
            if shot is not None:
                await page.screenshot(path=str(SHOTS / shot), full_page=True)
            assert await serious_violations(page) == [], path

        await visit("/ui/machines", "machines.png")
        await page.click("text=orders")
        await page.wait_for_url(f"{served_blocks}/ui/machines/orders")
        await visit("/ui/machines/orders", "machine.png", diagram=True)
        await visit("/ui/machines/orders/executions/ok-1", "machine-execution.png", diagram=True)
        drawn = page.locator("pre.mermaid svg g.node")
        assert await drawn.count() == 10  # Start, End and the 8 states
        assert await page.locator("pre.mermaid svg g.node.failed").count() == 1  # Stock
        assert await page.locator("pre.mermaid svg g.node.unvisited").count() == 1  # TooBig
        await visit("/ui/events", "events.png")
        await visit("/ui/events/streams/order-1", "events-stream.png")
        await visit("/ui/events/subscriptions/audit", "events-subscription.png")
        await visit("/ui/schedules/nightly-report", None)
        await page.click("button:has-text('Pause')")
        await page.wait_for_url("**/ui/schedules/nightly-report?done=paused")
        assert "Paused" in await page.get_by_role("status").inner_text()
        await page.screenshot(path=str(SHOTS / "schedule.png"), full_page=True)
        assert await serious_violations(page) == []
        await visit("/ui/schedules", "schedules.png")
        await visit("/ui/entities", "entities.png")
        await visit(f"/ui/entities/counter/{quote(KEY, safe='')}", "entity.png")
        assert await page.locator("pre[data-state]").inner_text() == "5"
    assert errors == []
