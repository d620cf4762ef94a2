"""The dashboard's workflow pages: runs filtered and searched, a run's page (timeline,
error with traceback, events, the diagram of its path), the actions (retry, cancel,
pause, resume) behind CSRF, bad input answered with a page that names it; then in
Debian's Chromium against a real ``statekeeper serve`` with workers: a failed run's
traceback, and a running workflow advancing on its page without a reload."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.http.ui.diagrams import Flowchart, label
from statekeeper.http.ui.run_path import path_chart
from tests.integration.test_ui import (
    SHOTS,
    TOKEN,
    chromium_page,
    client_of,
    csrf_of,
    serious_violations,
    statekeeper_serve,
)
from tests.support import drive


class Declined(Exception):
    pass


@pytest.fixture
async def runs(database_url: str, namespace: str) -> AsyncIterator[App]:
    """An app with a succeeded run, a failed one and one waiting for an event."""
    async with App(database_url, namespace=namespace, purge_interval=None, encryption=None) as app:

        async def add(a: int, b: int) -> int:
            return a + b

        async def decline(order: str) -> None:
            raise Declined(f"card declined for {order}")

        @app.workflow(name="adds")
        async def adds(ctx: Any, n: int) -> int:
            return int(await ctx.step(add, await ctx.step(add, n, 1), 1))

        @app.workflow(name="pays")
        async def pays(ctx: Any, order: str) -> None:
            await ctx.set_attributes({"order": order})
            await ctx.step(decline, order, non_retryable=(Declined,))

        @app.workflow(name="waits")
        async def waits(ctx: Any, _: Any) -> Any:
            return await ctx.wait_for_event("approve", timeout=600)

        app.ids = {  # type: ignore[attr-defined]
            "ok": await app.workflows.start("adds", 1),
            "failed": await app.workflows.start("pays", "o-<7>"),
            "waiting": await app.workflows.start("waits"),
        }
        worker = asyncio.create_task(app.worker(poll=0.05).run())
        try:
            for id in app.ids.values():  # type: ignore[attr-defined]
                for _ in range(200):
                    if (await app.workflows.status(id)).status not in ("pending", "running"):
                        break
                    await asyncio.sleep(0.02)
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        yield app


async def signed_in(client: httpx.AsyncClient) -> str:
    """Sign in; the CSRF token of the session."""
    assert (await client.post("/ui/login", data={"token": TOKEN})).status_code == 303
    return csrf_of((await client.get("/ui")).text)


async def test_runs_listed_filtered_and_searched(runs: App) -> None:
    ids = runs.ids  # type: ignore[attr-defined]
    async with client_of(runs) as client:
        await signed_in(client)
        page = await client.get("/ui/workflows")
        assert page.status_code == 200
        assert set(re.findall(r'data-run="([^"]+)"', page.text)) == set(ids.values())
        failed = await client.get("/ui/workflows", params={"status": "failed"})
        assert re.findall(r'data-run="([^"]+)"', failed.text) == [ids["failed"]]
        named = await client.get("/ui/workflows", params={"name": "adds"})
        assert re.findall(r'data-run="([^"]+)"', named.text) == [ids["ok"]]
        found = await client.get("/ui/workflows", params={"attribute": "order=o-<7>"})
        assert re.findall(r'data-run="([^"]+)"', found.text) == [ids["failed"]]
        opened = await client.get("/ui/workflows", params={"id": ids["ok"]})
        assert opened.status_code == 303
        assert opened.headers["location"] == f"/ui/workflows/{ids['ok']}"
        # A path that is no page: the dashboard's own 404 page, not the API's JSON.
        missing = await client.get("/ui/machines/a/b/c/d")
        assert missing.status_code == 404 and "There is no such page." in missing.text
        # Bad input: a page naming it, never a 500.
        for params, status, words in [
            ({"status": "nope"}, 400, "invalid status filter"),
            ({"before": "garbage"}, 400, "cursor"),
            ({"id": "no-such-run"}, 404, "there is no workflow"),
            ({"id": "<script>"}, 400, "invalid workflow id"),
            ({"attribute": "no-equals"}, 400, "key=value"),
            ({"name": "n" * 500}, 400, "longer than"),
        ]:
            answer = await client.get("/ui/workflows", params=params)
            assert answer.status_code == status, (params, answer.text)
            assert words in answer.text and "<script>" not in answer.text


async def test_paging_keeps_the_filters(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, purge_interval=None) as app:

        @app.workflow(name="w")
        async def w(ctx: Any, _: Any) -> None:
            return None

        for n in range(55):
            await app.workflows.start("w", id=f"run-{n:02d}")
        async with client_of(app) as client:
            await signed_in(client)
            first = await client.get("/ui/workflows", params={"name": "w"})
            shown = re.findall(r'data-run="([^"]+)"', first.text)
            found = re.search(r'href="(/ui/workflows\?[^"]+)" rel="next"', first.text)
            assert len(shown) == 50 and found is not None
            second = await client.get(found.group(1).replace("&amp;", "&"))
            rest = re.findall(r'data-run="([^"]+)"', second.text)
            assert len(rest) == 5 and not set(rest) & set(shown)
            assert 'rel="next"' not in second.text


async def test_a_failed_run_shows_its_traceback_path_and_timeline(runs: App) -> None:
    ids = runs.ids  # type: ignore[attr-defined]
    async with client_of(runs) as client:
        await signed_in(client)
        page = await client.get(f"/ui/workflows/{ids['failed']}")
        assert page.status_code == 200
        text = page.text
        assert "data-run-status>failed" in text
        assert "Declined</strong>: step" in text and "card declined for o-&lt;7&gt;" in text
        traceback = re.search(r"<pre data-traceback>(.*?)</pre>", text, re.S)
        assert traceback is not None and "raise Declined" in traceback.group(1)
        assert "o-<7>" not in text  # escaped everywhere
        assert re.search(r'<tr data-entry="2" class="failed">', text)
        chart = re.search(r'<pre class="mermaid" data-chart>(.*?)</pre>', text, re.S)
        assert chart is not None and "class n2,n3 failed" in chart.group(1)
        # Done: no live polling; a waiting run polls, and its wait is listed.
        assert "hx-trigger" not in text
        waiting = await client.get(f"/ui/workflows/{ids['waiting']}")
        assert 'hx-trigger="every 1s"' in waiting.text
        assert "wait <code>approve</code>" in waiting.text
        live = await client.get(f"/ui/workflows/{ids['waiting']}/live")
        assert live.status_code == 200 and live.text.startswith('<div id="run"')


async def test_a_run_page_stays_small_and_says_only_its_own_words(
    database_url: str, namespace: str
) -> None:
    async with App(database_url, namespace=namespace, purge_interval=None) as app:

        async def big(n: int) -> str:
            return "x" * 200_000  # stored inline (under the blob threshold)

        @app.workflow(name="bulky")
        async def bulky(ctx: Any, _: Any) -> int:
            for n in range(20):
                await ctx.step(big, n)
            return 1

        id = await app.workflows.start("bulky", None)
        await drive(app)
        async with client_of(app) as client:
            await signed_in(client)
            page = await client.get(f"/ui/workflows/{id}", params={"done": "sign in at evil"})
            assert page.status_code == 200 and len(page.content) < 200_000  # 4 MB of steps
            assert "more characters not shown" in page.text
            assert "evil" not in page.text and 'role="status"' not in page.text
            said = await client.get(f"/ui/workflows/{id}", params={"done": "retry"})
            assert 'role="status">Done: retry.' in said.text


async def test_actions_need_the_sessions_csrf(runs: App) -> None:
    ids = runs.ids  # type: ignore[attr-defined]
    async with client_of(runs) as client:
        csrf = await signed_in(client)
        waiting = f"/ui/workflows/{ids['waiting']}"
        forged = await client.post(f"{waiting}/cancel", data={"csrf": "0" * 64})
        assert forged.status_code == 403
        assert (await runs.workflows.status(ids["waiting"])).status == "waiting"
        assert (await client.post(f"{waiting}/explode", data={"csrf": csrf})).status_code == 404
        paused = await client.post(f"{waiting}/pause", data={"csrf": csrf})
        assert paused.status_code == 303 and paused.headers["location"].endswith("?done=pause")
        assert (await runs.workflows.status(ids["waiting"])).paused
        await client.post(f"{waiting}/resume", data={"csrf": csrf})
        assert not (await runs.workflows.status(ids["waiting"])).paused
        await client.post(f"{waiting}/cancel", data={"csrf": csrf})
        # Retrying a run that did not fail is a page saying why.
        again = await client.post(f"/ui/workflows/{ids['ok']}/retry", data={"csrf": csrf})
        assert again.status_code == 409 and "only a failed" in again.text
        retried = await client.post(f"/ui/workflows/{ids['failed']}/retry", data={"csrf": csrf})
        assert retried.status_code == 303
        assert (await runs.workflows.status(ids["failed"])).status == "pending"
        # Without a session an action is refused, not redirected.
        client.cookies.clear()
        assert (await client.post(f"{waiting}/pause", data={"csrf": csrf})).status_code == 401


def test_a_long_journal_is_drawn_in_part() -> None:
    entry = {"kind": "step", "name": "m.f", "error": None, "attempts": 1}
    chart = path_chart("running", [dict(entry, position=n) for n in range(1, 201)])
    assert "141 more entries" in chart
    assert chart.count("\n  n") <= 2 * 62  # nodes and edges stay bounded
    hostile = path_chart("succeeded", [dict(entry, name='x"]; click n0 call alert(1)')])
    assert '["step x#34;#93;#59; click n0 call alert#40;1#41;"]' in hostile
    assert "\n  click" not in hostile
    # Letters of any script stay as they are; past Mermaid's limits, a note is drawn.
    assert label("Bestellung prüfen: 注文") == '"Bestellung prüfen: 注文"'
    huge = Flowchart()
    huge.chain([huge.node(f"state {n}") for n in range(600)])
    assert huge.text() == ('flowchart TD\n  n0["Too large to draw here: 600 nodes and 599 edges"]')


@pytest.fixture
async def served(browser_database: str) -> AsyncIterator[tuple[str, str]]:
    """``statekeeper serve`` (with workers) of ui_workflows_app on SQLite: its URL and
    the database's."""
    async with statekeeper_serve("ui_workflows_app:app", {"UI_DB_URL": browser_database}) as url:
        yield url, browser_database


async def start(url: str, name: str, input: Any) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        answer = await client.post(
            f"/v1/workflows/{name}", json=input,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
        assert answer.status_code in (200, 201, 202), answer.text
        return str(answer.json()["id"])


async def test_in_a_real_browser(served: tuple[str, str]) -> None:
    url, _ = served

    failed = await start(url, "payment", "o-1")
    async with chromium_page(url, width=1200) as (page, errors):
        # The failed run: from the list, filtered, to its traceback.
        await page.click("nav >> text=Workflows")
        await page.select_option("select[name=status]", "failed")
        await page.click("text=Filter")
        await page.click(f"a:text('{failed}')")
        await page.wait_for_selector("pre[data-traceback]")
        assert "card declined for o-1" in await page.inner_text("pre[data-traceback]")
        await page.wait_for_selector("pre.mermaid svg")  # the path, drawn
        await page.screenshot(path=str(SHOTS / "workflow-failed.png"), full_page=True)
        assert await serious_violations(page) == []
        await page.goto(f"{url}/ui/workflows")
        await page.screenshot(path=str(SHOTS / "workflows.png"), full_page=True)
        assert await serious_violations(page) == []
        # A running workflow advances on its page with no reload.
        running = await start(url, "slow", 0.8)
        await page.goto(f"{url}/ui/workflows/{running}")
        marker = await page.evaluate("() => (window.loadedOnce = performance.timeOrigin)")
        rows = page.locator("tr[data-entry]")
        seen = {await rows.count()}
        for _ in range(100):
            seen.add(await rows.count())
            if await page.get_attribute("#run", "data-status") == "succeeded":
                break
            await page.wait_for_timeout(100)
        assert await page.get_attribute("#run", "data-status") == "succeeded"
        assert len(seen) >= 3, seen  # entries appeared one after another
        assert await page.evaluate("() => window.loadedOnce") == marker  # same document
        await page.wait_for_selector("pre.mermaid svg")
        await page.screenshot(path=str(SHOTS / "workflow.png"), full_page=True)
        await page.goto(f"{url}/ui")
        await page.screenshot(path=str(SHOTS / "overview-charts.png"), full_page=True)
        assert await page.locator("svg[data-chart=started] rect.span").count() >= 1
    assert errors == []
