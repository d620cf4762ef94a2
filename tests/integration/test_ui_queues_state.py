"""The dashboard's queue and state pages: browsing a queue's messages and dead letters,
redriving one or all (then consumable again), purging the dead letters only with the
confirmation and the session's CSRF token; the state store's keys by prefix, a page at a
time, and an item's edit with its ETag (a stale one is a 409 that keeps the text typed),
invalid JSON, unknown keys and hostile input, never a 500. Then in a real browser
against a real ``statekeeper serve`` with its worker: a dead letter's error seen, the
message redriven and processed, a state item edited over a conflict."""

from __future__ import annotations

import asyncio
import html
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from tests.integration.test_ui import (
    SHOTS,
    TOKEN,
    chromium_page,
    client_of,
    csrf_of,
    serious_violations,
    statekeeper_serve,
)


@pytest.fixture
async def stocked(database_url: str, namespace: str) -> AsyncIterator[App]:
    """Queue ``jobs``: 3 live messages and 2 dead letters; queue ``many``: 55 live
    messages, one with a long body."""
    async with App(database_url, namespace=namespace, purge_interval=None, encryption=None) as app:
        jobs = app.queue("jobs")
        for n in range(5):
            await jobs.send({"n": n}, attributes={"source": "test"})
        for message in await jobs.receive(2):
            await message.fail("refused <b>html</b> & more", retryable=False)
        many = app.queue("many")
        await many.send_batch([{"n": n} for n in range(54)])
        await many.send({"long": "x" * 20_000}, group="g1")
        yield app


async def signed_in(client: httpx.AsyncClient) -> str:
    """Sign ``client`` in; the session's CSRF token."""
    assert (await client.post("/ui/login", data={"token": TOKEN})).status_code == 303
    return csrf_of((await client.get("/ui/queues")).text)


def dead_rows(page: str) -> list[str]:
    """The ids of the dead letters a queue's page lists."""
    section = page.split('id="dead"', 1)[1]
    return re.findall(r'<tr data-message="([0-9a-f]+)">', section)


async def test_queues_and_a_queue_page(stocked: App) -> None:
    async with client_of(stocked) as client:
        assert (await client.get("/ui/queues")).status_code == 303  # signed out
        await signed_in(client)
        listing = await client.get("/ui/queues")
        assert listing.status_code == 200
        row = re.search(r'<tr data-queue="jobs">(.*?)</tr>', listing.text, re.S)
        assert row is not None and 'href="/ui/queues/jobs"' in row.group(1)
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
        assert cells[:5] == ["3", "0", "0", "0", "2"]
        page = await client.get("/ui/queues/jobs")
        assert page.status_code == 200
        assert 'data-count="ready">3<' in page.text and 'data-count="dead"' in page.text
        dead = dead_rows(page.text)
        assert len(dead) == 2
        # The error that dead-lettered them, escaped; the bodies and attributes as JSON.
        assert "refused &lt;b&gt;html&lt;/b&gt; &amp; more" in page.text
        assert "<b>html</b>" not in page.text
        assert "&#34;n&#34;: 4" in page.text and "&#34;source&#34;: &#34;test&#34;" in page.text
        # Bounded: 50 of 55 shown, the rest said; a long body cut, and said so.
        many = await client.get("/ui/queues/many")
        assert len(re.findall(r'<tr data-message="', many.text)) == 50
        assert "<strong>5 more</strong> are not" in many.text
        assert "No dead letter." in many.text
        # Unknown, invalid and hostile names: clear 4xx pages.
        unknown = await client.get("/ui/queues/nothing-here")
        assert unknown.status_code == 404 and "there is no queue" in unknown.text
        for name in ("bad name!", "<script>x</script>", "a" * 500, "%00"):
            bad = await client.get("/ui/queues/" + urllib.parse.quote(name, safe=""))
            assert bad.status_code in (400, 404), (name, bad.status_code)
            assert "<script>x" not in bad.text
        for done in ("<script>", "redrove", "purged&n=²", "redrove&n=99999999999"):
            odd = await client.get(f"/ui/queues/jobs?done={done}")
            assert odd.status_code == 200 and 'role="status"' not in odd.text


async def test_looking_at_a_queue_does_not_declare_it(database_url: str, namespace: str) -> None:
    """A queue the serving app does not declare, filled by another app: its page shows
    it, and the serving app still neither declares it nor takes messages for it."""
    async with (
        App(database_url, namespace=namespace, purge_interval=None) as served,
        App(database_url, namespace=namespace, purge_interval=None) as other,
    ):
        await other.queue("elsewhere").send({"n": 1})
        async with client_of(served) as client:
            await signed_in(client)
            page = await client.get("/ui/queues/elsewhere")
            assert page.status_code == 200 and 'data-count="ready">1<' in page.text
            assert not served.has_queue("elsewhere")
            sent = await client.post("/v1/queues/elsewhere/messages", json={"n": 2},
                                     headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
            assert sent.status_code == 404


async def test_redrive_one_then_all(stocked: App) -> None:
    jobs = stocked.queue("jobs")
    async with client_of(stocked) as client:
        csrf = await signed_in(client)
        first, second = dead_rows((await client.get("/ui/queues/jobs")).text)
        one = await client.post("/ui/queues/jobs/redrive", data={"csrf": csrf, "id": first})
        assert one.status_code == 303
        assert one.headers["location"] == "/ui/queues/jobs?done=redrove&n=1"
        after = await client.get(one.headers["location"])
        assert "Redrove 1 dead-lettered message(s)" in after.text
        assert dead_rows(after.text) == [second]
        assert (await jobs.stats()).dead == 1
        # Neither an id nor "all": refused, nothing moved.
        vague = await client.post("/ui/queues/jobs/redrive", data={"csrf": csrf})
        assert vague.status_code == 400 and (await jobs.stats()).dead == 1
        bad_id = await client.post("/ui/queues/jobs/redrive", data={"csrf": csrf, "id": "<x>"})
        assert bad_id.status_code == 400
        every = await client.post("/ui/queues/jobs/redrive", data={"csrf": csrf, "all": "yes"})
        assert every.headers["location"] == "/ui/queues/jobs?done=redrove&n=1"
        stats = await jobs.stats()
        assert (stats.dead, stats.ready) == (0, 5)
    # Back in the queue with fresh attempts: consumable.
    received = await jobs.receive(10)
    assert sorted(m.body["n"] for m in received) == [0, 1, 2, 3, 4]
    assert {m.attempt for m in received if m.id in (first, second)} == {1}
    for message in received:
        await message.ack()
    assert (await jobs.stats()).ready == 0


async def test_purge_needs_confirmation_and_csrf(stocked: App) -> None:
    jobs = stocked.queue("jobs")
    async with client_of(stocked) as client:
        csrf = await signed_in(client)
        path = "/ui/queues/jobs/purge-dead"
        unconfirmed = await client.post(path, data={"csrf": csrf})
        assert unconfirmed.status_code == 400 and "tick the confirmation box" in unconfirmed.text
        forged = await client.post(path, data={"csrf": "0" * 64, "confirm": "yes"})
        assert forged.status_code == 403
        missing = await client.post(path, data={"confirm": "yes"})
        assert missing.status_code == 403
        assert (await client.post(path, json={"confirm": "yes"})).status_code == 400
        stats = await jobs.stats()
        assert (stats.dead, stats.ready) == (2, 3)  # nothing changed
        done = await client.post(path, data={"csrf": csrf, "confirm": "yes"})
        assert done.headers["location"] == "/ui/queues/jobs?done=purged&n=2"
        assert "Purged 2 dead-lettered" in (await client.get(done.headers["location"])).text
        stats = await jobs.stats()
        assert (stats.dead, stats.ready) == (0, 3)  # only the dead letters went
        client.cookies.clear()  # signed out: refused before anything is read
        assert (await client.post(path, data={"csrf": csrf, "confirm": "yes"})).status_code == 401


def keys_of(page: str) -> list[str]:
    return [html.unescape(k) for k in re.findall(r'<tr data-key="([^"]*)">', page)]


def next_of(page: str) -> str | None:
    found = re.search(r'<a href="([^"]*)" rel="next">', page)
    return None if found is None else html.unescape(found.group(1))


async def test_state_prefix_search_and_pages(stocked: App) -> None:
    store = stocked.state
    await store.put_many({f"orders/{n:03d}": {"n": n} for n in range(120)})
    await store.put("other/1", 1, ttl=3600)
    async with client_of(stocked) as client:
        await signed_in(client)
        everything = await client.get("/ui/state")
        assert everything.status_code == 200
        assert keys_of(everything.text)[:2] == ["orders/000", "orders/001"]
        seen: list[str] = []
        path: str | None = "/ui/state?prefix=orders/"
        while path is not None:
            page = await client.get(path)
            assert page.status_code == 200
            seen += keys_of(page.text)
            path = next_of(page.text)
        assert seen == [f"orders/{n:03d}" for n in range(120)]
        other = await client.get("/ui/state", params={"prefix": "other/"})
        assert keys_of(other.text) == ["other/1"] and "60.0 min" in other.text
        none = await client.get("/ui/state", params={"prefix": "nothing/"})
        assert none.status_code == 200 and "No key starts with" in none.text


async def test_edit_with_etags(stocked: App) -> None:
    store = stocked.state
    key = "carts/42"
    await store.put(key, {"items": [1, 2]})
    async with client_of(stocked) as client:
        await signed_in(client)
        page = await client.get("/ui/state/item", params={"key": key})
        assert page.status_code == 200
        etag = re.search(r'name="etag" value="([^"]*)"', page.text)
        assert etag is not None and etag.group(1) == (await store.get(key)).etag  # type: ignore[union-attr]
        csrf = csrf_of(page.text)
        form = {"csrf": csrf, "key": key, "etag": etag.group(1), "ttl": ""}
        # Saved with the ETag the page showed; a TTL given.
        saved = await client.post("/ui/state/save", data={**form, "value": '{"items": [3]}',
                                                          "ttl": "120"})  # fmt: skip
        assert saved.status_code == 303
        assert saved.headers["location"] == "/ui/state/item?key=carts%2F42&done=saved"
        item = await store.get(key)
        assert item is not None and item.value == {"items": [3]} and item.expires_at is not None
        assert "Saved." in (await client.get(saved.headers["location"])).text
        # The old ETag is stale now: 409, nothing saved, the text typed kept in the form.
        typed = '{"items": ["<mine>"]}'
        stale = await client.post("/ui/state/save", data={**form, "value": typed})
        assert stale.status_code == 409
        assert "changed since this page loaded it" in stale.text
        assert html.escape(typed, quote=False) in stale.text.replace("&#34;", '"')
        assert f'name="etag" value="{item.etag}"' in stale.text  # the current one
        assert (await store.get(key)).value == {"items": [3]}  # type: ignore[union-attr]
        # Invalid JSON and TTL: 400 naming the problem, the text kept.
        current = {**form, "etag": item.etag}
        broken = await client.post("/ui/state/save", data={**current, "value": '{"a": '})
        assert broken.status_code == 400 and "the value is not JSON" in broken.text
        assert "{&#34;a&#34;: </textarea>" in broken.text
        for ttl in ("soon", "-1", "nan", "1e999"):
            bad = await client.post("/ui/state/save", data={**current, "value": "1", "ttl": ttl})
            assert bad.status_code == 400 and "ttl" in bad.text.lower(), ttl
        assert (await store.get(key)).etag == item.etag  # type: ignore[union-attr]
        # Delete: the box must be ticked and the ETag current.
        delete = {"csrf": csrf, "key": key, "etag": etag.group(1), "confirm": "yes"}
        assert (
            await client.post("/ui/state/delete", data={**delete, "confirm": ""})
        ).status_code == 400
        refused = await client.post("/ui/state/delete", data=delete)
        assert refused.status_code == 409 and "nothing was deleted" in refused.text
        gone = await client.post("/ui/state/delete", data={**delete, "etag": item.etag})
        assert (
            gone.status_code == 303
            and gone.headers["location"] == "/ui/state?prefix=carts%2F&done=deleted"
        )
        assert await store.get(key) is None
        # Unknown keys: 404; saving over a deleted key: 409 that says so.
        assert (await client.get("/ui/state/item", params={"key": key})).status_code == 404
        again = await client.post("/ui/state/save", data={**current, "value": "5"})
        assert again.status_code == 409 and "deleted (or expired)" in again.text
        assert 'name="etag" value=""' in again.text
        recreated = await client.post("/ui/state/save", data={**current, "etag": "", "value": "5"})
        assert recreated.status_code == 303 and (await store.get(key)).value == 5  # type: ignore[union-attr]


async def test_large_values_are_described(stocked: App) -> None:
    store = stocked.state
    await store.put("big/out-of-line", "y" * 300_000)  # above the blob threshold
    await store.put("big/medium", ["z" * 1000] * 80)  # shown, but too large for a form
    async with client_of(stocked) as client:
        await signed_in(client)
        big = await client.get("/ui/state/item", params={"key": "big/out-of-line"})
        assert big.status_code == 200 and "too large to show here" in big.text
        assert "yyyyyyyy" not in big.text and "<textarea" not in big.text
        assert "The value is stored out of line: too large to show here" in big.text
        medium = await client.get("/ui/state/item", params={"key": "big/medium"})
        assert "zzzz" in medium.text and "too large to edit in the browser" in medium.text
        assert "78.4 KiB (80,241 bytes) as JSON" in medium.text
        listing = await client.get("/ui/state", params={"prefix": "big/"})
        assert keys_of(listing.text) == ["big/medium", "big/out-of-line"]
        # The listing reads no value: its sizes are what the rows hold.
        assert "<td>out of line</td>" in listing.text and "78.4 KiB" in listing.text


async def test_hostile_input(stocked: App) -> None:
    store = stocked.state
    odd = "a/<b>\"q'&amp;/c d "
    await store.put(odd, {"<script>": "</textarea><b>"})
    async with client_of(stocked) as client:
        csrf = await signed_in(client)
        listing = await client.get("/ui/state", params={"prefix": "a/<b>"})
        assert listing.status_code == 200 and keys_of(listing.text) == [odd]
        assert "<b>" not in listing.text.split("<main>", 1)[1]
        link = re.search(r'href="(/ui/state/item\?key=[^"]*)"', listing.text)
        assert link is not None
        item = await client.get(html.unescape(link.group(1)))
        assert item.status_code == 200 and "</textarea><b>" not in item.text
        assert "&lt;/textarea&gt;&lt;b&gt;" in item.text
        for params in (
            {"prefix": "p" * 60_000},  # far too long
            {"prefix": "é" * 600},  # more bytes than any key
            {"prefix": "a\x00b"},
            {"cursor": "not a cursor!"},
            {"cursor": "b3RoZXIvMQ", "prefix": "orders/"},  # another prefix's
        ):
            answer = await client.get("/ui/state", params=params)
            assert answer.status_code == 400, params
            assert "Not possible" in answer.text
        for params in ({}, {"key": ""}, {"key": "k" * 2000}, {"key": "x\x01y"}):
            answer = await client.get("/ui/state/item", params=params)
            assert answer.status_code == 400, params
        assert (await client.get("/ui/state/item", params={"key": "no/such"})).status_code == 404
        for form in (
            {"csrf": csrf, "value": "1"},  # no key
            {"csrf": csrf, "key": odd, "etag": "e" * 5000, "value": "1"},
            {"csrf": csrf, "key": odd, "etag": "x", "value": "1" * 200_000},  # too large a form
        ):
            answer = await client.post("/ui/state/save", data=form)
            assert 400 <= answer.status_code < 500, form
        assert (await client.post("/ui/state/save", content=b"\xff\xfe")).status_code == 400
        assert (await client.get("/ui/state?done=<script>")).text.count("<script>") == 0
    assert (await store.get(odd)).value == {"<script>": "</textarea><b>"}  # type: ignore[union-attr]


@pytest.fixture
async def serving(browser_database: str, namespace: str) -> AsyncIterator[tuple[str, App]]:
    """``statekeeper serve`` of ui_app.py, with its worker, and an app of the same
    namespace for the test to change things behind the browser's back."""
    env = {"UI_DB_URL": browser_database, "UI_NAMESPACE": namespace}
    async with (
        App(browser_database, namespace=namespace, purge_interval=None) as app,
        statekeeper_serve("ui_app:app", env, "--grace", "2") as url,
    ):
        yield url, app


async def eventually(check: Any, seconds: float = 10.0) -> None:
    """Wait until ``await check()`` is true."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def test_in_a_real_browser(serving: tuple[str, App]) -> None:
    url, app = serving

    # A message the worker dead-letters, and items to find.
    await app.state.put("switches/refuse", True)
    await app.state.put_many({f"orders/{n}": {"n": n, "status": "new"} for n in range(1, 4)})
    jobs = app.queue("jobs")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=5, headers=bearer) as api:
        assert (await api.post("/v1/queues/jobs/messages", json={"n": 7})).status_code == 202

    async def dead_lettered() -> bool:
        return (await jobs.stats()).dead == 1

    await eventually(dead_lettered)
    async with chromium_page(url) as (page, errors):
        # The queues, then the queue: its dead letter's error.
        await page.click("nav >> text=Queues")
        await page.wait_for_url(f"{url}/ui/queues")
        assert await page.locator('tr[data-queue="jobs"] td').nth(4).inner_text() == "1"
        await page.screenshot(path=str(SHOTS / "queues.png"), full_page=True)
        assert await serious_violations(page) == []
        await page.click('tr[data-queue="jobs"] a')
        await page.wait_for_url(f"{url}/ui/queues/jobs")
        error = page.locator("#dead ~ table td.last-error").first
        assert "message 7 refused: switches/refuse is on" in await error.inner_text()
        await page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)
        assert await serious_violations(page) == []

        # Redriven once the consumer takes it: the dead count drops and it is processed.
        await app.state.put("switches/refuse", False)
        await page.click("#dead ~ table button:text('Redrive')")
        await page.wait_for_url(re.compile(r".*/ui/queues/jobs\?done=redrove&n=1$"))
        assert "Redrove 1" in await page.get_by_role("status").inner_text()

        async def processed() -> bool:
            return await app.state.get("processed/7") is not None

        await eventually(processed)
        await page.reload()
        assert await page.locator('dd[data-count="dead"]').inner_text() == "0"
        assert await page.locator('dd[data-count="ready"]').inner_text() == "0"

        # The state: a prefix searched, an item opened.
        await page.click("nav >> text=State")
        await page.wait_for_url(f"{url}/ui/state")
        assert await page.locator('tr[data-key="processed/7"]').count() == 1
        await page.fill("input[name=prefix]", "orders/")
        await page.click("form[role=search] button")
        await page.wait_for_url(f"{url}/ui/state?prefix=orders%2F")
        assert await page.locator("tr[data-key]").count() == 3
        await page.screenshot(path=str(SHOTS / "state.png"), full_page=True)
        assert await serious_violations(page) == []
        await page.click("text=orders/2")
        await page.wait_for_url(re.compile(r".*/ui/state/item\?key=orders%2F2$"))

        # Changed behind the page's back: the save is a conflict that keeps the text.
        await app.state.put("orders/2", {"n": 2, "status": "shipped"})
        mine = '{"n": 2, "status": "paid"}'
        await page.fill("#value", mine)
        await page.click("form.edit button")
        await page.wait_for_load_state()
        assert "changed since this page loaded it" in await page.get_by_role("alert").inner_text()
        assert "shipped" in await page.locator("pre[data-value]").inner_text()
        assert await page.input_value("#value") == mine
        await page.screenshot(path=str(SHOTS / "state-conflict.png"), full_page=True)
        assert await serious_violations(page) == []
        await page.click("form.edit button")  # saved over the current ETag this time
        await page.wait_for_url(re.compile(r".*done=saved$"))
        assert await page.get_by_role("status").inner_text() == "Saved."
        assert "paid" in await page.locator("pre[data-value]").inner_text()
    stored = await app.state.get("orders/2")
    assert stored is not None and stored.value == {"n": 2, "status": "paid"}
    # The browser reports the conflict page's status (once); nothing else went wrong.
    assert errors == [
        "Failed to load resource: the server responded with a status of 409 (Conflict)"
    ]
