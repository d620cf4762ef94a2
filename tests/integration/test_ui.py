"""The dashboard at /ui: signing in with the API token (a session cookie that is not the
token: HttpOnly, SameSite=Strict), CSRF on the forms, strict headers, the overview's real
counts; then in a real browser (Debian's Chromium, driven by Playwright) against a real
``statekeeper serve``: sign in, read the counts, no console error, a screenshot kept."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.http.ui.session import COOKIE
from tests.integration.certs import free_port

ROOT = Path(__file__).parents[2]
HERE = Path(__file__).parent
TOKEN = "ui-test-token-0123456789abcdef"
SHOTS = ROOT / "tests" / "output" / "ui"


@pytest.fixture
async def filled(database_url: str, namespace: str) -> AsyncIterator[App]:
    """An app whose queue holds 3 ready and 2 dead-lettered messages, and 2 runs."""
    async with App(database_url, namespace=namespace, purge_interval=None, encryption=None) as app:

        @app.workflow(name="w")
        async def w(ctx: object, n: int) -> int:
            return n

        jobs = app.queue("jobs")
        for n in range(5):
            await jobs.send({"n": n})
        for message in await jobs.receive(2):
            await message.fail("refused", retryable=False)
        for n in range(2):
            await app.workflows.start("w", n)
        yield app


def client_of(app: App) -> httpx.AsyncClient:
    http = create_http_app(app, HttpConfig(token=TOKEN))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=http), base_url="http://sk")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found is not None, html
    return found.group(1)


async def test_sign_in_overview_and_sign_out(filled: App) -> None:
    async with client_of(filled) as client:
        first = await client.get("/ui")
        assert first.status_code == 303 and first.headers["location"] == "/ui/login"
        page = await client.get("/ui/login")
        assert page.status_code == 200 and "Sign in" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        wrong = await client.post("/ui/login", data={"token": "not-the-token-at-all"})
        assert wrong.status_code == 200 and "not the API token" in wrong.text
        assert COOKIE not in wrong.cookies
        signed = await client.post("/ui/login", data={"token": TOKEN})
        assert signed.status_code == 303 and signed.headers["location"] == "/ui"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        assert TOKEN not in cookie  # a session, not the token
        overview = await client.get("/ui")
        assert overview.status_code == 200
        row = re.search(r'<tr data-queue="jobs">(.*?)</tr>', overview.text, re.S)
        assert row is not None
        cells = re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row.group(1))
        assert cells[:6] == ["jobs", "3", "0", "0", "0", "2"]
        assert re.search(r'data-status="pending">.*?<td>2</td>', overview.text, re.S)
        # Signing out needs the form's CSRF token; the session then ends.
        refused = await client.post("/ui/logout", data={"csrf": "0" * 64})
        assert refused.status_code == 403
        left = await client.post("/ui/logout", data={"csrf": csrf_of(overview.text)})
        assert left.status_code == 303
        client.cookies.clear()
        assert (await client.get("/ui")).status_code == 303


async def test_forged_and_foreign_sessions_are_refused(filled: App) -> None:
    async with client_of(filled) as client:
        for value in ("9999999999.forged", TOKEN, "", "1.abc", "x" * 5000):
            client.cookies.set(COOKIE, value, path="/ui")
            assert (await client.get("/ui")).status_code == 303
        client.cookies.clear()
        # A bearer token is not a session: the pages do not take it.
        answer = await client.get("/ui", headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 303
        # Not a form, or too large a form: 400.
        assert (await client.post("/ui/login", json={"token": TOKEN})).status_code == 400
        big = await client.post("/ui/login", data={"token": "t" * 100_000})
        assert big.status_code == 400
        css = await client.get("/ui/static/ui.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        # A cookie or a form field that is not ASCII is refused like any other forgery.
        client.cookies.clear()
        raw = {b"Cookie": f"{COOKIE}=9999999999.abc.\u00e9".encode()}  # UTF-8 bytes, as sent
        assert (await client.get("/ui", headers=raw)).status_code == 303
        assert (await client.get("/ui/login", headers=raw)).status_code == 200
        await client.post("/ui/login", data={"token": TOKEN})
        odd = await client.post("/ui/logout", data={"csrf": "\u00e9" * 64})
        assert odd.status_code == 403
        # The scripts are sent gzipped only to a browser that takes gzip.
        for accepted, encoding in (("gzip, br", "gzip"), ("gzip;q=0", None), ("br", None)):
            script = await client.get("/ui/static/vendor/htmx.min.js",
                                      headers={"Accept-Encoding": accepted})  # fmt: skip
            assert script.status_code == 200 and b"htmx" in script.content
            assert script.headers.get("content-encoding") == encoding, accepted


async def test_signing_out_ends_the_session_and_sessions_differ(filled: App) -> None:
    async with client_of(filled) as client, client_of(filled) as other:
        await client.post("/ui/login", data={"token": TOKEN})
        await other.post("/ui/login", data={"token": TOKEN})
        first, second = client.cookies[COOKIE], other.cookies[COOKIE]
        assert first != second  # signed in the same second: still two sessions
        page = await client.get("/ui")
        assert (
            await client.post("/ui/logout", data={"csrf": csrf_of(page.text)})
        ).status_code == 303
        client.cookies.set(COOKIE, first, path="/ui")  # the old cookie, kept by someone
        assert (await client.get("/ui")).status_code == 303
        assert (await other.get("/ui")).status_code == 200  # the other session goes on


@contextlib.asynccontextmanager
async def statekeeper_serve(app: str, env: Mapping[str, str], *options: str) -> AsyncIterator[str]:
    """``statekeeper serve --app APP`` with this folder on its path, the API token set
    and ``env`` added, once it is ready: its URL (terminated at the end)."""
    port = free_port()
    every = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{HERE}",
             "STATEKEEPER_API_TOKEN": TOKEN, **env}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "statekeeper", "serve", "--app", app, "--port", str(port),
        *options, env=every, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            for _ in range(300):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


@pytest.fixture
async def served(browser_database: str) -> AsyncIterator[str]:
    """``statekeeper serve`` of the metrics test's app, its URL; 3 messages are sent."""
    env = {"METRICS_DB_URL": browser_database}
    async with statekeeper_serve("metrics_app:app", env, "--no-workers") as url:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, timeout=5, headers=bearer) as client:
            for n in range(3):
                sent = await client.post("/v1/queues/jobs/messages", json={"n": n})
                assert sent.status_code == 202
        yield url


@contextlib.asynccontextmanager
async def chromium_page(
    url: str, width: int = 1280, height: int = 900, *, sign_in: bool = True
) -> AsyncIterator[tuple[Any, list[str]]]:
    """A page of Debian's Chromium (headless, driven by Playwright), signed in to the
    dashboard at ``url`` unless ``sign_in`` is false, and the console and page errors it
    logs (screenshots go to SHOTS)."""
    chromium = shutil.which("chromium")
    assert chromium is not None, "Debian's chromium is installed by `make tools`"
    from playwright.async_api import async_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            if sign_in:
                await page.goto(f"{url}/ui/login")
                await page.fill("#token", TOKEN)
                await page.click("button[type=submit]")
                await page.wait_for_url(f"{url}/ui")
            yield page, errors
        finally:
            await browser.close()


async def serious_violations(page: Any) -> list[str]:
    """The axe-core accessibility rules the page breaks with a serious or critical
    impact (axe-playwright-python injects axe-core through the browser's driver)."""
    from axe_playwright_python.async_playwright import Axe  # type: ignore[import-untyped]

    response = (await Axe().run(page)).response
    assert response["passes"], "axe-core did not run in the page"
    found = response["violations"]
    return [v["id"] for v in found if v.get("impact") in ("serious", "critical")]


async def test_in_a_real_browser(served: str) -> None:
    async with chromium_page(served, height=720, sign_in=False) as (page, errors):
        await page.goto(f"{served}/ui")
        assert page.url.endswith("/ui/login")
        await page.screenshot(path=str(SHOTS / "login.png"))
        assert await serious_violations(page) == []
        await page.fill("#token", "wrong-token-value-here")
        await page.click("button[type=submit]")
        assert await page.get_by_role("alert").inner_text() == "That token is not the API token."
        await page.fill("#token", TOKEN)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{served}/ui")
        ready = page.locator('tr[data-queue="jobs"] td').first
        assert await ready.inner_text() == "3"
        await page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
        assert await serious_violations(page) == []
        cookies = await page.context.cookies()
        [session] = [c for c in cookies if c["name"] == COOKIE]
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        await page.click("text=Sign out")
        await page.wait_for_url(f"{served}/ui/login")
    assert errors == []


async def test_a_dev_server_needs_no_sign_in(filled: App) -> None:
    http = create_http_app(filled, HttpConfig(dev=True))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=http), base_url="http://sk"
    ) as c:
        page = await c.get("/ui")
        assert page.status_code == 200 and "Overview" in page.text
        assert "Sign out" not in page.text
        assert (await c.get("/ui/login")).headers["location"] == "/ui"
