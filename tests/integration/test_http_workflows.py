"""Workflow and callback routes of the HTTP API, in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from statekeeper import App
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.workflows import WorkflowContext

TOKEN = "workflow-http-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def served(database_url: str, namespace: str) -> AsyncIterator[tuple[App, httpx.AsyncClient]]:
    app = App(database_url, namespace=namespace, purge_interval=None)
    app.workflows.secret = "workflow-callback-secret"

    @app.workflow
    async def approval(ctx: WorkflowContext, request: dict[str, Any]) -> dict[str, Any]:
        callback = await ctx.callback(timeout=3600)
        await ctx.step(publish, callback.url)
        answer = await callback.result()
        note = await ctx.wait_for_event("note", timeout=3600)
        return {"amount": request["amount"], "answer": answer, "note": note}

    async with app:
        worker = app.worker(poll=0.05)
        running = asyncio.create_task(worker.run())
        http = create_http_app(app, HttpConfig(token=TOKEN))
        transport = httpx.ASGITransport(app=http)
        async with httpx.AsyncClient(transport=transport, base_url="http://sk") as client:
            yield app, client
        worker.stop()
        await running


published: list[str] = []


async def publish(url: str) -> None:
    published.append(url)


async def wait_for(client: httpx.AsyncClient, url: str, status: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(300):
        body = (await client.get(url, headers=AUTH)).json()
        if body.get("status") == status:
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"never {status}: {body}")


async def test_start_callback_event_and_result(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    published.clear()
    started = await client.post(
        "/v1/workflows/approval", json={"amount": 30}, headers={**AUTH, "Idempotency-Key": "req-1"}
    )
    assert started.status_code == 202
    location = started.headers["location"]
    assert location == "/v1/workflows/approval/req-1"
    again = await client.post(
        "/v1/workflows/approval", json={"amount": 30}, headers={**AUTH, "Idempotency-Key": "req-1"}
    )
    assert again.json()["id"] == "req-1"
    await wait_for(client, location, "waiting")
    [callback_url] = published
    forged = await client.post(callback_url[:-4] + "0000", json={"status": "success"})
    assert forged.status_code == 401
    early_note = await client.post(f"{location}/events/note", json="looks fine", headers=AUTH)
    assert early_note.status_code == 202  # before the workflow waits for it: kept
    heartbeat = await client.post(callback_url, json={"status": "heartbeat"})
    assert heartbeat.status_code == 202
    answered = await client.post(callback_url, json={"status": "success", "data": {"ok": True}})
    assert answered.status_code == 202
    twice = await client.post(callback_url, json={"status": "success", "data": {"ok": False}})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "duplicate_event"
    done = await wait_for(client, location, "succeeded")
    assert done["output"] == {"amount": 30, "answer": {"ok": True}, "note": "looks fine"}
    finished = await client.post(f"{location}/cancel", headers=AUTH)
    assert finished.status_code == 409


async def test_bad_workflow_requests(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    assert (await client.post("/v1/workflows/nope", json={}, headers=AUTH)).status_code == 404
    assert (await client.post("/v1/workflows/approval", json={})).status_code == 401
    bad = await client.post("/v1/workflows/approval", content=b"{bad", headers=AUTH)
    assert bad.status_code == 400
    missing = await client.get("/v1/workflows/approval/nobody", headers=AUTH)
    assert missing.status_code == 404
    event = await client.post("/v1/workflows/approval/nobody/events/x", json=1, headers=AUTH)
    assert event.status_code == 404
    garbage = await client.post("/v1/callbacks/not-a-token", json={"status": "success"})
    assert garbage.status_code == 401


async def test_expired_callback_and_cancel(served: tuple[App, httpx.AsyncClient]) -> None:
    from statekeeper.workflows.tokens import CallbackTarget, issue

    app, client = served
    expired = issue(
        app.workflows.secret or "", CallbackTarget(app.namespace, "w", "callback:1", 1.0)
    )
    answer = await client.post(f"/v1/callbacks/{expired}", json={"status": "success"})
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "callback_expired"
    started = await client.post("/v1/workflows/approval", json={"amount": 1}, headers=AUTH)
    location = started.headers["location"]
    await wait_for(client, location, "waiting")
    assert (await client.post(f"{location}/cancel", headers=AUTH)).status_code == 202
    await wait_for(client, location, "cancelled")


async def test_pause_and_resume_over_http(served: tuple[App, httpx.AsyncClient]) -> None:
    _, client = served
    published.clear()
    started = await client.post("/v1/workflows/approval", json={"amount": 5}, headers=AUTH)
    location = started.headers["location"]
    await wait_for(client, location, "waiting")
    paused = await client.post(f"{location}/pause", headers=AUTH)
    assert paused.status_code == 202, paused.text
    assert paused.json()["paused"] is True
    [callback_url] = published
    answered = await client.post(callback_url, json={"status": "success", "data": 1})
    assert answered.status_code == 202  # kept for it while it is paused
    await client.post(f"{location}/events/note", json="n", headers=AUTH)
    await asyncio.sleep(0.3)  # the worker polls meanwhile
    held = (await client.get(location, headers=AUTH)).json()
    assert (held["status"], held["paused"]) == ("waiting", True)
    resumed = await client.post(f"{location}/resume", headers=AUTH)
    assert resumed.status_code == 202 and resumed.json()["paused"] is False
    done = await wait_for(client, location, "succeeded")
    assert done["paused"] is False and done["output"]["note"] == "n"
    refused = await client.post(f"{location}/pause", headers=AUTH)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "workflow_finished"
    assert (await client.post(f"{location}/resume", headers=AUTH)).status_code == 202
    other = await client.post("/v1/workflows/approval/nobody/pause", headers=AUTH)
    assert other.status_code == 404


async def test_callbacks_answered_through_a_queue(database_url: str, namespace: str) -> None:
    app = App(database_url, namespace=namespace, purge_interval=None)
    app.workflows.secret = "queue-callback-secret"
    tokens: list[str] = []

    async def hand_out(token: str) -> None:
        tokens.append(token)

    @app.workflow
    async def by_queue(ctx: WorkflowContext, _: Any) -> Any:
        callback = await ctx.callback()
        await ctx.step(hand_out, callback.token)
        return await callback.result()

    app.enable_workflow_callback_queue()
    async with app:
        worker = app.worker(poll=0.05)
        running = asyncio.create_task(worker.run())
        try:
            run = await app.workflows.start("by_queue")
            for _ in range(300):
                if tokens:
                    break
                await asyncio.sleep(0.02)
            answers = app.queue("statekeeper.workflow-callbacks")
            await answers.send({"token": tokens[0], "status": "success", "data": 7})
            assert await app.workflows.result(run, timeout=10) == 7
            await answers.send({"token": tokens[0], "status": "success", "data": 8})  # repeat
            await answers.send({"token": "forged.token", "status": "success"})
            for _ in range(300):
                stats = await answers.stats()
                if stats.dead == 1 and stats.ready + stats.in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            stats = await answers.stats()
            assert stats.dead == 1  # the forged one, not retried; the repeat was acked
            assert stats.ready + stats.in_flight == 0
            assert await app.workflows.result(run) == 7
        finally:
            worker.stop()
            await running


async def test_conflicts_finished_workflows_and_timeouts(
    served: tuple[App, httpx.AsyncClient],
) -> None:
    app, client = served
    published.clear()

    @app.workflow
    async def other(ctx: WorkflowContext, _: Any) -> None:
        return None

    first = await client.post("/v1/workflows/approval?id=c1", json={"amount": 5}, headers=AUTH)
    assert first.status_code == 202
    same = await client.post("/v1/workflows/approval?id=c1", json={"amount": 5.0}, headers=AUTH)
    assert same.status_code == 202 and same.json()["id"] == "c1"
    changed = await client.post("/v1/workflows/approval?id=c1", json={"amount": 6}, headers=AUTH)
    assert changed.status_code == 409
    error = changed.json()["error"]
    assert error["code"] == "workflow_conflict" and "different input" in error["message"]
    renamed = await client.post("/v1/workflows/other?id=c1", json={"amount": 5}, headers=AUTH)
    assert renamed.status_code == 409
    assert "named 'approval', not 'other'" in renamed.json()["error"]["message"]

    # A finished (here: cancelled) workflow takes no event and no callback answer.
    location = first.headers["location"]
    await wait_for(client, location, "waiting")
    [callback_url] = published
    assert (await client.post(f"{location}/cancel", headers=AUTH)).status_code == 202
    await wait_for(client, location, "cancelled")
    event = await client.post(f"{location}/events/note", json="late", headers=AUTH)
    assert event.status_code == 409 and event.json()["error"]["code"] == "workflow_finished"
    for answer in ({"status": "success", "data": 1}, {"status": "heartbeat"}):
        late = await client.post(callback_url, json=answer)
        assert late.status_code == 409 and late.json()["error"]["code"] == "workflow_finished"

    # ?timeout= ends it timed_out, however long its callback's timeout.
    timed = await client.post("/v1/workflows/approval?timeout=0.3", json={}, headers=AUTH)
    assert timed.status_code == 202
    ended = await wait_for(client, timed.headers["location"], "timed_out")
    assert ended["error"]["type"] == "WorkflowTimedOut"
    for bad in ("0", "-1", "nan", "inf", "soon"):
        refused = await client.post(f"/v1/workflows/approval?timeout={bad}", json={}, headers=AUTH)
        assert refused.status_code == 400, bad
        assert "timeout" in refused.json()["error"]["message"]
