"""The schedule routes of the HTTP API: every operation, auth, the OpenAPI document,
and hostile input answered 4xx naming what is wrong (nothing stored)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.schedules import Scheduler
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock

TOKEN = "t0ken-for-the-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def served(
    database_url: str, namespace: str, clock: FakeClock
) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    clock.now = 1_800_000_000.0 - 1_800_000_000.0 % 60
    app = App(database_url, namespace=namespace, purge_interval=None, clock=clock,
              encryption=None)  # fmt: skip

    @app.workflow
    async def job(ctx: WorkflowContext, input: Any) -> Any:
        return input

    async with app:
        http = create_http_app(app, HttpConfig(token=TOKEN, max_body_bytes=2048))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client


async def test_schedule_routes(served: tuple[App, httpx.AsyncClient], clock: FakeClock) -> None:
    app, client = served
    start = clock.now
    body = {"id": "tick", "workflow": "job", "every": 60, "anchor": start, "input": {"a": 1},
            "overlap": "allow_all"}  # fmt: skip
    made = await client.post("/v1/schedules", json=body, headers=AUTH)
    assert made.status_code == 201, made.text
    assert made.json()["next_fire_at"] == start + 60 and made.headers["location"].endswith("/tick")
    again = await client.post("/v1/schedules", json=body, headers=AUTH)
    assert again.status_code == 409 and again.json()["error"]["code"] == "schedule_exists"
    listed = (await client.get("/v1/schedules", headers=AUTH)).json()
    assert [s["id"] for s in listed["schedules"]] == ["tick"]
    got = (await client.get("/v1/schedules/tick", headers=AUTH)).json()
    assert got["spec"] == {"every": 60.0, "anchor": start} and got["input"] == {"a": 1}
    nxt = (await client.get("/v1/schedules/tick/next?count=3", headers=AUTH)).json()
    assert nxt["fire_times"] == [start + 60, start + 120, start + 180]
    paused = (await client.post("/v1/schedules/tick/pause", headers=AUTH)).json()
    assert paused["paused"] is True
    resumed = (await client.post("/v1/schedules/tick/resume", headers=AUTH)).json()
    assert resumed["paused"] is False
    triggered = await client.post("/v1/schedules/tick/trigger", headers=AUTH)
    assert triggered.status_code == 202 and triggered.json()["run_id"].startswith("tick@manual-")
    clock.advance(30)
    filled = await client.post("/v1/schedules/tick/backfill", headers=AUTH,
                               json={"start": start - 120, "end": start})  # fmt: skip
    assert filled.status_code == 202 and len(filled.json()["run_ids"]) == 2
    changed = await client.put("/v1/schedules/tick", headers=AUTH,
                               json={"workflow": "job", "cron": "0 * * * *"})  # fmt: skip
    assert changed.status_code == 200 and changed.json()["spec"]["cron"] == "0 * * * *"
    await WorkflowRunner(app.workflows).run_due()  # the runs so far end (overlap is skip now)
    clock.now = start + 3600
    await Scheduler(app.schedules).run_due()
    await WorkflowRunner(app.workflows).run_due()
    assert len(await app.workflows.list()) == 4  # trigger, two backfilled, the hour's fire
    deleted = await client.delete("/v1/schedules/tick", headers=AUTH)
    assert deleted.json() == {"id": "tick", "deleted": True}
    gone = await client.get("/v1/schedules/tick", headers=AUTH)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "schedule_not_found"


async def test_schedule_routes_need_the_token(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    assert (await client.get("/v1/schedules")).status_code == 401
    assert (await client.post("/v1/schedules", json={})).status_code == 401


@pytest.mark.parametrize("body,field", [
    ({"id": "a", "workflow": "job"}, "exactly one"),
    ({"id": "a", "workflow": "job", "cron": "* *"}, "cron"),
    ({"id": "a", "workflow": "job", "cron": "* * * * *", "timezone": "Nowhere/X"}, "zone"),
    ({"id": "a", "workflow": "job", "every": 0.5}, "every"),
    ({"id": "a", "workflow": "job", "every": 10, "overlap": "maybe"}, "overlap"),
    ({"id": "a", "workflow": "job", "every": 10, "jitter": -1}, "jitter"),
    ({"id": "a/b", "workflow": "job", "every": 10}, "schedule id"),
    ({"id": "a", "workflow": "job", "every": 10, "extra": 1}, "extra"),
    ({"id": "a", "workflow": "job", "at": 5}, "future"),
    ({"id": "a", "workflow": "nope", "every": 10}, "nope"),
    ([1, 2], "body"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": "a b"}, "queue name"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": "nowhere"}, "nowhere"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": 7}, "queue"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": "reports", "key": ""}, "key"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": "reports", "key": "k\n"}, "key"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": "reports", "priority": 1.5},
     "priority"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": "reports", "priority": "3"},
     "priority"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": "reports", "priority": True},
     "priority"),
    ({"id": "a", "workflow": "job", "every": 10, "queue": "reports", "priority": 10**7},
     "priority"),
    ({"id": "a", "workflow": "job", "every": 10, "key": "k"}, "queue"),
])  # fmt: skip
async def test_hostile_bodies_are_4xx_and_store_nothing(
    served: tuple[App, httpx.AsyncClient], body: Any, field: str
) -> None:
    app, client = served
    app.workflow_queue("reports", concurrency=1)
    answer = await client.post("/v1/schedules", json=body, headers=AUTH)
    assert 400 <= answer.status_code < 500, answer.text
    assert field in answer.json()["error"]["message"]
    assert await app.schedules.list() == []


async def test_a_schedule_into_a_workflow_queue(
    served: tuple[App, httpx.AsyncClient], clock: FakeClock
) -> None:
    app, client = served
    app.workflow_queue("reports", concurrency=1)
    start = clock.now
    body = {"id": "q", "workflow": "job", "every": 60, "anchor": start, "input": 1,
            "overlap": "allow_all", "queue": "reports", "key": "t-1", "priority": 7}  # fmt: skip
    made = await client.post("/v1/schedules", json=body, headers=AUTH)
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("queue", "key", "priority")} == {
        "queue": "reports", "key": "t-1", "priority": 7,
    }  # fmt: skip
    changed = await client.put("/v1/schedules/q", headers=AUTH, json={
        "workflow": "job", "every": 60, "anchor": start, "overlap": "allow_all",
        "queue": "reports", "priority": -2,
    })  # fmt: skip
    assert changed.status_code == 200, changed.text
    got = (await client.get("/v1/schedules/q", headers=AUTH)).json()
    assert (got["queue"], got["key"], got["priority"]) == ("reports", None, -2)
    clock.now = start + 120  # two fires: one admitted, one waits for the slot
    await Scheduler(app.schedules).run_due()
    states = [await app.workflows.flow.run_state(w["id"]) for w in await app.workflows.list()]
    assert sorted(s["state"] for s in states if s) == ["admitted", "waiting"]
    bad = await client.put("/v1/schedules/q", headers=AUTH, json={
        "workflow": "job", "every": 60, "queue": "reports", "priority": 2_000_000,
    })  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_schedule"
    unknown = await client.put("/v1/schedules/q", headers=AUTH,
                               json={"workflow": "job", "every": 60, "queue": "other"})  # fmt: skip
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_flow_queue"
    kept = (await client.get("/v1/schedules/q", headers=AUTH)).json()
    assert (kept["queue"], kept["priority"]) == ("reports", -2)
    none = await client.put("/v1/schedules/q", headers=AUTH,
                            json={"workflow": "job", "every": 60})  # fmt: skip
    assert (none.json()["queue"], none.json()["key"], none.json()["priority"]) == (None, None, 0)


async def test_hostile_requests(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    await client.post("/v1/schedules", headers=AUTH,
                      json={"id": "s", "workflow": "job", "every": 10})  # fmt: skip
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/schedules", {"content": b"{not json"}),
        ("POST", "/v1/schedules", {"content": b"x" * 5000}),
        ("GET", "/v1/schedules?limit=0", {}),
        ("GET", "/v1/schedules?limit=abc", {}),
        ("GET", "/v1/schedules?after=%00", {}),
        ("GET", "/v1/schedules?after=s%0A", {}),
        ("GET", "/v1/schedules/s/next?count=100000", {}),
        ("POST", "/v1/schedules/s/backfill", {"json": {"start": 10}}),
        ("POST", "/v1/schedules/s/backfill", {"json": {"start": 10, "end": 1e300}}),
        ("POST", "/v1/schedules/s/backfill", {"content": b'{"start": 1, "end": NaN}'}),
        ("PUT", "/v1/schedules/s", {"json": {"workflow": "job"}}),
        ("GET", "/v1/schedules/" + "x" * 300, {}),
        ("POST", "/v1/schedules/missing/trigger", {}),
    ]
    for method, path, kwargs in requests:
        answer = await client.request(method, path, headers=AUTH, **kwargs)
        assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)
        assert answer.json()["error"]["message"]


async def test_the_openapi_document_covers_the_schedule_routes(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    _, client = served
    paths = (await client.get("/openapi.json", headers=AUTH)).json()["paths"]
    for path in ("/v1/schedules", "/v1/schedules/{id}", "/v1/schedules/{id}/pause",
                 "/v1/schedules/{id}/resume", "/v1/schedules/{id}/trigger",
                 "/v1/schedules/{id}/backfill", "/v1/schedules/{id}/next"):  # fmt: skip
        assert path in paths
    assert set(paths["/v1/schedules/{id}"]) >= {"get", "put", "delete"}
