"""Flow control over HTTP and the command line: starting into a workflow queue with a key
and a priority, the queues' state, and the errors (4xx / one line, never a traceback)."""

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
from tests.integration.cli_support import document, one_line_error, statekeeper

TOKEN = "flow-http-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

QUEUED = """
from statekeeper import App
app = App(namespace="flows", purge_interval=None)
app.workflow_queue("mail", concurrency=1, singleton="reject")

@app.workflow
async def send(ctx, to):
    return to
"""


@pytest.fixture
async def served(database_url: str, namespace: str) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = App(database_url, namespace=namespace, purge_interval=None)

    @app.workflow
    async def send(ctx: WorkflowContext, to: Any) -> Any:
        return to

    app.workflow_queue("mail", concurrency=1, singleton="reject")
    async with app:
        http = create_http_app(app, HttpConfig(token=TOKEN))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client


async def test_http_starts_into_a_queue_and_shows_its_state(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    app, client = served
    params = {"queue": "mail", "key": "ann", "priority": "3", "id": "m1"}
    started = await client.post("/v1/workflows/send", params=params, json="ann", headers=AUTH)
    assert started.status_code == 202, started.text
    run = await app.workflows.flow.run_state("m1")
    assert run is not None and (run["key"], run["priority"], run["state"]) == ("ann", 3, "admitted")
    params = {"queue": "mail", "key": "ann", "id": "m2"}
    busy = await client.post("/v1/workflows/send", params=params, json="ann", headers=AUTH)
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "flow_key_busy"
    params = {"queue": "mail", "key": "bob", "id": "m3"}
    queued = await client.post("/v1/workflows/send", params=params, json="bob", headers=AUTH)
    assert queued.status_code == 202
    state = await client.get("/v1/workflow-queues", headers=AUTH)
    assert state.status_code == 200
    [mail] = state.json()["queues"]
    assert (mail["name"], mail["concurrency"], mail["waiting"], mail["running"]) == (
        "mail", 1, 1, 1,
    )  # fmt: skip
    for bad, code, status in (
        ({"queue": "nowhere"}, "unknown_flow_queue", 404),
        ({"queue": "mail", "key": "x", "priority": "high"}, "invalid_input", 400),
        ({"queue": "mail", "key": "x", "priority": "10000000"}, "invalid_input", 400),
        ({"queue": "mail"}, "invalid_input", 400),
    ):
        refused = await client.post("/v1/workflows/send", params=bad, json=1, headers=AUTH)
        assert refused.status_code == status, (bad, refused.text)
        assert refused.json()["error"]["code"] == code, (bad, refused.text)


def test_cli_starts_into_a_queue_and_lists_the_queues(tmp_path: Path) -> None:
    (tmp_path / "queued.py").write_text(QUEUED)
    db = ["--database", f"sqlite:///{tmp_path}/flow.db", "--namespace", "flows"]
    app = ["--app", "queued:app"]
    args = ("workflows", "start", "send", "--input", '"ann"', "--queue", "mail", "--key", "ann")
    started = statekeeper(*db, *args, "--priority", "2", *app, cwd=tmp_path)
    assert document(started)["status"] == "pending"
    busy = statekeeper(*db, *args, *app, cwd=tmp_path)
    assert "'ann'" in one_line_error(busy, "flow_key_busy", 5)
    unknown = statekeeper(*db, "workflows", "start", "send", "--queue", "nope", *app, cwd=tmp_path)
    assert "'nope'" in one_line_error(unknown, "unknown_flow_queue", 6)
    listed = document(statekeeper(*db, "workflows", "queues", "--json", cwd=tmp_path))
    assert [(q["name"], q["running"], q["waiting"]) for q in listed] == [("mail", 1, 0)]
    table = statekeeper(*db, "workflows", "queues", cwd=tmp_path).stdout
    assert "mail" in table and "WAITING" in table
