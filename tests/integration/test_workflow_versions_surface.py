"""Forks and version moves over HTTP (in process, runs driven by hand) and the CLI (real
processes), on SQLite and PostgreSQL: what they answer, and their errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.workflows import WorkflowContext
from tests.conftest import FakeClock
from tests.integration.cli_support import document, one_line_error, statekeeper
from tests.support import drive

TOKEN = "workflow-versions-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def double(n: int) -> int:
    return n * 2


async def steps(ctx: WorkflowContext, n: int) -> list[int]:
    first = await ctx.step(double, n)
    await ctx.sleep(60)
    return [first, await ctx.step(double, first)]


@pytest.fixture
async def served(
    database_url: str, namespace: str, clock: FakeClock
) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = App(database_url, namespace=namespace, clock=clock, purge_interval=None, version="v1")
    app.workflow(steps)
    async with app:
        http = create_http_app(app, HttpConfig(token=TOKEN))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client


async def test_fork_over_http(served: tuple[App, httpx.AsyncClient], clock: FakeClock) -> None:
    app, client = served
    run = await app.workflows.start(steps, 3, id="orig")
    await drive(app)
    clock.advance(61)
    await drive(app)
    assert await app.workflows.result(run) == [6, 12]
    forked = await client.post(
        "/v1/workflows/steps/orig/fork", json={"from_position": 3, "new_id": "copy"}, headers=AUTH
    )
    assert forked.status_code == 202, forked.text
    body = forked.json()
    assert (body["id"], body["status"], body["version"]) == ("copy", "pending", "v1")
    assert forked.headers["location"] == "/v1/workflows/steps/copy"
    await drive(app)
    described = (await client.get("/v1/workflows/steps/copy", headers=AUTH)).json()
    assert (described["status"], described["output"]) == ("succeeded", [6, 12])
    bad: list[tuple[str, Any, int, str]] = [
        ("/v1/workflows/steps/orig/fork", {"from_position": 0}, 400, "invalid_input"),
        ("/v1/workflows/steps/orig/fork", {"from_position": "2"}, 400, "invalid_input"),
        ("/v1/workflows/steps/orig/fork", {"from_position": 9}, 400, "invalid_input"),
        ("/v1/workflows/steps/orig/fork", {"from_position": 1, "x": 1}, 400, "invalid_input"),
        ("/v1/workflows/steps/orig/fork", {"from_position": 1, "new_id": "copy"}, 409, ""),
        ("/v1/workflows/other/orig/fork", {"from_position": 1}, 404, "workflow_not_found"),
        ("/v1/workflows/steps/ghost/fork", {"from_position": 1}, 404, "workflow_not_found"),
    ]
    for path, payload, status, code in bad:
        answer = await client.post(path, json=payload, headers=AUTH)
        assert answer.status_code == status, (payload, answer.text)
        assert not code or answer.json()["error"]["code"] == code
    empty = await client.post("/v1/workflows/steps/orig/fork", headers=AUTH)
    assert empty.status_code == 400


async def test_move_versions_over_http(served: tuple[App, httpx.AsyncClient]) -> None:
    app, client = served
    for n in range(3):
        await app.workflows.start(steps, n, id=f"r{n}")
    await drive(app)  # all sleep
    moved = await client.post(
        "/v1/workflow-versions/move",
        json={"from_version": "v1", "to_version": "v2", "name": "steps"},
        headers=AUTH,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json() == {"moved": 3, "to_version": "v2"}
    one = await client.post(
        "/v1/workflow-versions/move", json={"to_version": "v3", "id": "r0"}, headers=AUTH
    )
    assert one.json()["moved"] == 1
    listed = {w["id"]: w["version"] for w in await app.workflows.list()}
    assert listed == {"r0": "v3", "r1": "v2", "r2": "v2"}
    bad: list[tuple[Any, int]] = [
        ({"to_version": "v2"}, 400),  # neither from_version nor id
        ({"from_version": "v1"}, 400),  # no to_version
        ({"from_version": "v1", "to_version": "bad version"}, 400),
        ({"from_version": "v1", "to_version": "v2", "extra": 1}, 400),
        ({"to_version": "v2", "id": "ghost"}, 404),
        ([1, 2], 400),
    ]
    for payload, status in bad:
        answer = await client.post("/v1/workflow-versions/move", json=payload, headers=AUTH)
        assert answer.status_code == status, (payload, answer.text)
    unauthorized = await client.post("/v1/workflow-versions/move", json={"to_version": "x"})
    assert unauthorized.status_code == 401


FLOWS = """
from statekeeper import App

app = App(namespace="flows", purge_interval=None, version="v9")


async def double(n):
    return n * 2


@app.workflow
async def twice(ctx, n):
    first = await ctx.step(double, n)
    return [first, await ctx.step(double, first)]
"""


def test_version_move_and_fork_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "flows.py").write_text(FLOWS)
    db = ["--database", f"sqlite:///{tmp_path}/v.db", "--namespace", "flows"]
    shown = document(statekeeper(*db, "workflows", "version", "--app", "flows", cwd=tmp_path))
    assert shown == {"version": "v9", "policy": "pinned", "workflows": {"twice": "v9"}}
    started = statekeeper(
        *db, "workflows", "start", "twice", "--input", "2", "--id", "t1", "--app", "flows",
        cwd=tmp_path,
    )  # fmt: skip
    assert document(started)["version"] == "v9"
    moved = statekeeper(*db, "workflows", "move-version", "--from", "v9", "--to", "v10")
    assert document(moved) == {"moved": 1, "to_version": "v10"}
    listed = statekeeper(*db, "workflows", "list")
    assert listed.stdout.splitlines()[1].split()[-1] == "v10"
    described = document(statekeeper(*db, "workflows", "describe", "t1", "--json"))
    assert described["version"] == "v10"
    history = statekeeper(*db, "workflows", "history", "t1", "--json")
    assert document(history) == {"id": "t1", "version": "v10", "items": []}
    forked = statekeeper(*db, "workflows", "fork", "t1", "--from-position", "1", "--new-id", "t2")
    # No version here to give it: the worker that first leases it pins it to its code.
    assert (document(forked)["id"], document(forked)["version"]) == ("t2", None)
    one_line_error(
        statekeeper(*db, "workflows", "fork", "t1", "--from-position", "5"), "invalid_input", 4
    )
    one_line_error(
        statekeeper(*db, "workflows", "fork", "ghost", "--from-position", "1"),
        "workflow_not_found",
        6,
    )
    one_line_error(statekeeper(*db, "workflows", "move-version", "--to", "v2"), "invalid_input", 4)
    refused = statekeeper(*db, "workflows", "move-version", "--from", "v9", "--to", "a b")
    one_line_error(refused, "invalid_input", 4)
