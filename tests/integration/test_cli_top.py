"""``statekeeper top``: the view of a namespace's queues and workflow runs, once as JSON
and once as text, read from a database holding known work (SQLite, as a user's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from statekeeper import App
from tests.integration.cli_support import document, statekeeper


async def test_top_shows_queues_and_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'top.db'}"
    async with App(url, namespace="shop", purge_interval=None, encryption=None) as app:

        @app.workflow(name="w")
        async def w(ctx: Any, x: int) -> int:
            return x

        orders = app.queue("orders")
        for n in range(5):
            await orders.send({"n": n})
        for message in await orders.receive(2):
            await message.fail("refused", retryable=False)
        [held] = await orders.receive(1)  # in flight
        await app.queue("emails").send({"to": "a"}, delay=3600)
        for n in range(3):
            await app.workflows.start("w", n)
        assert held.id
    view = document(statekeeper("--database", url, "--namespace", "shop", "top", "--json"))
    queues = {q["queue"]: q for q in view["queues"]}
    assert {k: queues["orders"][k] for k in ("ready", "in_flight", "dead", "delayed")} == {
        "ready": 2, "in_flight": 1, "dead": 2, "delayed": 0,
    }  # fmt: skip
    assert queues["emails"]["delayed"] == 1 and queues["orders"]["oldest_age"] >= 0
    assert view["workflows"]["active"] == {"pending": 3}
    assert view["workflows"]["last_hour"] == {"pending": 3} and view["workflows"]["due"] == 3
    text = statekeeper("--database", url, "--namespace", "shop", "top", "--once")
    assert text.returncode == 0, text.stderr
    assert "orders" in text.stdout and "emails" in text.stdout and "pending" in text.stdout
    other = document(statekeeper("--database", url, "--namespace", "empty", "top", "--json"))
    assert other["queues"] == [] and other["workflows"]["active"] == {}
