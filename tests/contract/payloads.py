"""Distinctive markers written through every payload path, and read back through the API.

``write_every_payload`` stores a marker in each place a payload can live: state, queue
bodies (sent, ingress raw bytes, outbox), attributes, reply_to, errors of dead
messages, archived results, replays, reply-queue and callback-queue completions,
idempotency results, workflow inputs, steps, recorded values, callback tokens and
answers, events, children, outputs and a failed workflow's error. ``check_every_payload``
reads each back through the API (so it also proves they still open after a rotation).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx

from statekeeper import App, Retry
from statekeeper.events.aggregates import Aggregate
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.queues.completions import CALLBACK_QUEUE
from statekeeper.queues.requests import request_status
from statekeeper.workflows import StepFailed, WorkflowContext, WorkflowRunner

TOKEN = "payload-test-token-0123456789"
ONCE = Retry(max_attempts=1)


class Ledger(Aggregate):
    def __init__(self) -> None:
        self.memos: list[str] = []

    def when_Noted(self, data: dict[str, str]) -> None:
        self.memos.append(data["memo"])


@dataclass
class Written:
    markers: dict[str, str] = field(default_factory=dict)  # what -> marker
    ids: dict[str, str] = field(default_factory=dict)  # what -> message / workflow id

    def mark(self, what: str) -> str:
        marker = f"MARKER-{what}-{secrets.token_hex(4)}"
        self.markers[what] = marker
        return marker


async def drive(app: App, rounds: int = 30) -> None:
    """Run every runnable workflow until none is left."""
    runner = WorkflowRunner(app.workflows)
    for _ in range(rounds):
        leased = await runner._lease(list(app.workflows.registry), 16)
        if not leased:
            return
        await asyncio.gather(*(runner.execute(w) for w in leased))


def register_workflows(app: App, w: Written, tokens: list[str]) -> None:
    async def echo(text: str) -> dict[str, str]:
        return {"echo": text}

    async def refuse(text: str) -> None:
        raise RuntimeError(text)

    async def publish(token: str) -> None:
        tokens.append(token)

    @app.workflow
    async def child_flow(ctx: WorkflowContext, data: dict[str, str]) -> dict[str, str]:
        return {"child_output": w.markers["child-output"], "got": data["child_input"]}

    @app.workflow
    async def big_flow(ctx: WorkflowContext, data: dict[str, str]) -> dict[str, Any]:
        step = await ctx.step(echo, w.markers["step-argument"])
        now, uuid = await ctx.now(), await ctx.uuid()
        await ctx.sleep(0)
        event = await ctx.wait_for_event("note")
        callback = await ctx.callback(timeout=3600)
        await ctx.step(publish, callback.token)
        answer = await callback.result()
        child = await ctx.child("child_flow", {"child_input": w.markers["child-input"]})
        return {
            "input": data["input"],
            "step": step,
            "event": event,
            "answer": answer,
            "child": child,
            "output": w.markers["workflow-output"],
            "recorded": [now, uuid],
        }

    @app.workflow
    async def failing_flow(ctx: WorkflowContext, data: dict[str, str]) -> None:
        try:
            await ctx.step(refuse, w.markers["step-error"], retry=ONCE)
        except StepFailed:
            raise RuntimeError(w.markers["workflow-error"]) from None


async def write_every_payload(app: App) -> Written:
    """Every payload path, each with its own marker (the app must be open)."""
    w = Written()
    await app.state.put("profile", {"secret": w.mark("state-value")})

    # Queues: a sent body with attributes, a dead letter, an archived result, a replay.
    jobs = app.queue("jobs", retry=ONCE)
    sent = await jobs.send({"job": w.mark("queue-body")}, attributes={"tag": w.mark("attribute")})
    w.ids["queue-body"] = sent.id
    doomed = await jobs.send({"job": "doomed"})
    for message in await jobs.receive(10):
        if message.id == doomed.id:
            await message.fail(w.mark("dead-error"), retryable=False)
        else:
            await message.release()
    w.ids["dead-error"] = doomed.id

    archived = app.queue("archived")
    done = await archived.send({"job": w.mark("replayed-body")})
    [message] = await archived.receive()
    await message.ack({"result": w.mark("archived-result")})
    w.ids["archived-result"] = done.id
    assert await archived.replay() == 1

    # The outbox: a message sent in a state transaction.
    async with app.state.transaction() as tx:
        tx.put("order", {"note": w.mark("transaction-value")})
        tx.send("outbox", {"event": w.mark("outbox-body")})

    # The ingress keeps the raw bytes it received; its reply goes to a reply queue.
    app.queue("inbox")
    http = create_http_app(app, HttpConfig(token=TOKEN))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=http), base_url="http://sk"
    ) as client:
        raw = f'{{"ingress":"{w.mark("ingress-body")}"}}'.encode()
        answer = await client.post(
            "/v1/queues/inbox/messages?reply_queue=replies",
            content=raw,
            headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "ingress-1"},
        )
        assert answer.status_code == 202, answer.text
        w.ids["ingress-body"] = answer.json()["id"]
    inbox = app.queue("inbox")
    hooked = inbox.new_message(
        {"hooked": w.mark("callback-body")},
        reply_to={"url": f"https://hooks.example.com/{w.mark('callback-url')}"},
    )
    await inbox.send_message(hooked)
    w.ids["callback-body"] = hooked.id
    for message in await inbox.receive(10):
        await message.ack({"reply": w.mark(f"reply-{message.id}")})

    # The event store: an event's data.
    await app.events.append(
        "ledger-1", [{"type": "Booked", "data": {"memo": w.mark("stream-event-data")}}]
    )

    # An aggregate's snapshot.
    ledgers = app.events.aggregates(Ledger, category="book", snapshot_every=1)
    book = await ledgers.load("1")
    book.record("Noted", {"memo": w.mark("snapshot-state")})
    await ledgers.save(book)

    # Idempotency.
    result = {"charged": w.mark("idempotency-result")}
    assert await app.idempotency.run("charge-1", lambda: result) == result

    # Workflows: input, steps, recorded values, an event, a callback, a child, an
    # output; and a failed one.
    app.workflows.secret = "payload-callback-secret"
    tokens: list[str] = []
    for what in ("step-argument", "child-input", "child-output", "workflow-output"):
        w.mark(what)
    w.mark("step-error")
    w.mark("workflow-error")
    register_workflows(app, w, tokens)
    run = await app.workflows.start("big_flow", {"input": w.mark("workflow-input")}, id="big-1")
    await app.workflows.send_event(run, "note", {"note": w.mark("event-data")})
    await drive(app)
    [token] = tokens
    w.markers["callback-token"] = token  # a bearer credential: sealed in the journal
    answered = await app.workflows.answer_callback(
        token, {"status": "success", "data": w.mark("callback-answer")}
    )
    assert answered == "success"
    await drive(app)
    w.ids["workflow"] = run
    w.ids["failed-workflow"] = await app.workflows.start(
        "failing_flow", {"input": w.mark("failed-input")}, id="failing-1"
    )
    await drive(app)
    return w


async def check_every_payload(app: App, w: Written) -> None:
    """Every marker reads back through the API, where it was written."""
    m = w.markers
    state = await app.state.get("profile")
    assert state is not None and state.value == {"secret": m["state-value"]}
    order = await app.state.get("order")
    assert order is not None and order.value == {"note": m["transaction-value"]}

    jobs = app.queue("jobs")
    [live] = await jobs.peek(10)
    assert live.id == w.ids["queue-body"] and live.body == {"job": m["queue-body"]}
    assert live.attributes == {"tag": m["attribute"]} and live.body_error is None
    [dead] = await jobs.peek(10, dead=True)
    assert (
        dead.last_error is not None
        and dead.last_error.message == m["dead-error"]
        and dead.body == {"job": "doomed"}
    )
    status = await request_status(app.backend, app.namespace, w.ids["dead-error"], app.sealer)
    assert status is not None and status["error"]["message"] == m["dead-error"]

    status = await request_status(app.backend, app.namespace, w.ids["archived-result"], app.sealer)
    assert status is not None and status["result"] == {"result": m["archived-result"]}
    [replay] = await app.queue("archived").peek(10)
    assert replay.body == {"job": m["replayed-body"]}
    assert replay.attributes == {"replay_of": w.ids["archived-result"]}

    [outbox] = await app.queue("outbox").peek(10)
    assert outbox.body == {"event": m["outbox-body"]}
    snapshot = await app.backend.events.snapshot(app.namespace, "book-1")
    assert snapshot is not None and snapshot.version == 1
    book = await app.events.aggregates(Ledger, category="book", snapshot_every=1).load("1")
    assert book.memos == [m["snapshot-state"]]
    [booked] = await app.events.read_stream("ledger-1")
    assert booked.data == {"memo": m["stream-event-data"]}

    ingress = w.ids["ingress-body"]
    status = await request_status(app.backend, app.namespace, ingress, app.sealer)
    assert status is not None and status["result"] == {"reply": m[f"reply-{ingress}"]}
    [reply] = await app.queue("replies").peek(10)
    assert reply.body["request_id"] == ingress
    assert reply.body["result"] == {"reply": m[f"reply-{ingress}"]}
    [callback] = await app.queue(CALLBACK_QUEUE).peek(10)
    hooked = w.ids["callback-body"]
    assert callback.body["url"].endswith(m["callback-url"])
    assert callback.body["payload"]["result"] == {"reply": m[f"reply-{hooked}"]}

    assert await app.idempotency.run("charge-1", lambda: {}) == {"charged": m["idempotency-result"]}

    done = await app.workflows.status(w.ids["workflow"])
    assert done.status == "succeeded" and done.read_error is None, done
    assert done.output["input"] == m["workflow-input"]
    assert done.output["step"] == {"echo": m["step-argument"]}
    assert done.output["event"] == {"note": m["event-data"]}
    assert done.output["answer"] == m["callback-answer"]
    assert done.output["child"] == {"child_output": m["child-output"], "got": m["child-input"]}
    assert done.output["output"] == m["workflow-output"]
    history = await app.workflows.history(w.ids["workflow"])
    assert all("read_error" not in entry for entry in history)
    assert history[0]["input"] == [[m["step-argument"]], {}]
    [issued] = [entry for entry in history if entry["kind"] == "callback"]
    assert issued["output"] == m["callback-token"]
    kinds = {entry["kind"] for entry in history}
    assert {"step", "now", "uuid", "sleep", "wait", "event", "callback", "child"} <= kinds
    child = await app.workflows.status(f"{w.ids['workflow']}:{_child_position(history)}")
    assert child.output == {"child_output": m["child-output"], "got": m["child-input"]}
    failed = await app.workflows.status(w.ids["failed-workflow"])
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.type, failed.error.message) == ("RuntimeError", m["workflow-error"])
    [step] = await app.workflows.history(w.ids["failed-workflow"])
    assert (step["error"]["type"], step["error"]["message"]) == ("RuntimeError", m["step-error"])


def _child_position(history: list[dict[str, Any]]) -> int:
    return int(next(e["position"] for e in history if e["kind"] == "child"))
