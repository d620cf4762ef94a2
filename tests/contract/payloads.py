"""Distinctive markers written through every payload path, and read back through the API.

``write_every_payload`` stores a marker in each place a payload can live: state, queue
bodies (sent, ingress raw bytes, outbox), attributes, reply_to, errors of dead
messages, archived results, replays, reply-queue and callback-queue completions,
idempotency results, workflow inputs, steps, recorded values, callback tokens and
answers, events, children, outputs and a failed workflow's error; messages to a
workflow (one it took, one waiting), updates (accepted, rejected, and one still asked),
a published value and a schedule's input; an entity's state and the answers (a result,
an error) of its calls made with ids. ``check_every_payload`` reads each back
through the API (so it also proves they still open after a rotation).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from statekeeper import App, Retry
from statekeeper.entities import EntityContext
from statekeeper.errors import EntityCallFailed, UpdateNotFinished, UpdateRejected
from statekeeper.events.aggregates import Aggregate
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.queues.completions import CALLBACK_QUEUE
from statekeeper.queues.requests import request_status
from statekeeper.schedules import Definition, make_spec
from statekeeper.workflows import StepFailed, WorkflowContext, WorkflowRunner
from statekeeper.workflows.messaging import Messaging

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
        # Past the blob threshold (256 KiB): argument and result stored out of line.
        big = await ctx.step(echo, w.markers["big-step"] + "." * 300_000)
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
            "big": big["echo"].split(".", 1)[0],
        }

    @app.workflow
    async def failing_flow(ctx: WorkflowContext, data: dict[str, str]) -> None:
        try:
            await ctx.step(refuse, w.markers["step-error"], retry=ONCE)
        except StepFailed:
            raise RuntimeError(w.markers["workflow-error"]) from None


def register_control_workflows(app: App, w: Written) -> None:
    """The workflows that messages, updates, values and schedules go to (registered again
    by the app that checks them)."""
    if "mailbox_flow" in app.workflows.registry:
        return

    @app.workflow
    async def mailbox_flow(ctx: WorkflowContext, _: None) -> dict[str, Any]:
        bumps: list[Any] = []

        def bump(data: Any) -> dict[str, Any]:
            bumps.append(data)
            return {"result": w.markers["update-result"], "got": data}

        def refuse(data: Any) -> None:
            raise ValueError(w.markers["update-error"])

        ctx.on_update("bump", bump)
        ctx.on_update("refuse", refuse)
        await ctx.publish("status", {"published": w.markers["published-value"]})
        await ctx.write_stream("feed", {"streamed": w.markers["stream-value"]})
        first = await ctx.receive("mail")
        await ctx.wait_condition(lambda: len(bumps) >= 2)
        second = await ctx.receive("mail")
        return {"first": first, "second": second, "bumps": bumps}

    @app.workflow
    async def scheduled_flow(ctx: WorkflowContext, data: Any) -> Any:
        return data


async def answered(app: App, run: str, name: str, data: Any) -> Any:
    """Update ``name`` asked as a caller would, while the workflows are driven."""
    asked = asyncio.create_task(app.workflows.update(run, name, data, timeout=10))
    while not asked.done():
        await drive(app)
        await asyncio.sleep(0.01)
    return await asked


async def write_control_payloads(app: App, w: Written) -> None:
    """Messages to a workflow, its updates, a published value and a schedule's input."""
    for what in ("update-result", "update-error", "published-value", "stream-value"):
        w.mark(what)
    register_control_workflows(app, w)
    run = await app.workflows.start("mailbox_flow", None, id="mailbox-1")
    w.ids["mailbox"] = run
    await app.workflows.send_message(run, "mail", {"mail": w.mark("message-taken")})
    await drive(app)  # publishes, takes the first message, waits for two updates
    data = {"bump": w.mark("update-data")}
    assert await answered(app, run, "bump", data) == {
        "result": w.markers["update-result"], "got": data
    }  # fmt: skip
    try:
        await answered(app, run, "refuse", {"refuse": w.mark("refused-data")})
        raise AssertionError("the update was not rejected")
    except UpdateRejected as rejected:
        assert rejected.details["error"]["message"] == w.markers["update-error"]
    try:  # asked, not applied: its data waits in its row
        await app.workflows.update(run, "bump", {"bump": w.mark("asked-data")}, timeout=0.05)
        raise AssertionError("the update was applied with no runner")
    except UpdateNotFinished:
        pass
    await app.workflows.send_message(run, "mail", {"mail": w.mark("message-waiting")})
    definition = Definition.checked(
        "payload-schedule", "scheduled_flow", make_spec(every=3600),
        input={"input": w.mark("schedule-input")},
    )  # fmt: skip
    await app.schedules.create(definition)


async def check_control_payloads(app: App, w: Written) -> None:
    m, run = w.markers, w.ids["mailbox"]
    register_control_workflows(app, w)
    assert await app.workflows.get(run, "status") == {"published": m["published-value"]}
    page = await app.workflows.streams.page(run, "feed", 0)
    assert [e.value for e in page.entries] == [{"streamed": m["stream-value"]}]
    outcome = Messaging(app.workflows).outcome
    accepted = {"result": m["update-result"], "got": {"bump": m["update-data"]}}
    assert await outcome(run, "bump", 1, timeout=1) == accepted
    try:
        await outcome(run, "refuse", 2, timeout=1)
        raise AssertionError("the rejection was not read back")
    except UpdateRejected as rejected:
        assert rejected.details["error"]["message"] == m["update-error"]
    await drive(app)  # applies the update asked earlier, then takes the waiting message
    later = {"result": m["update-result"], "got": {"bump": m["asked-data"]}}
    assert await outcome(run, "bump", 3, timeout=1) == later
    done = await app.workflows.status(run)
    assert done.status == "succeeded" and done.read_error is None, done
    assert done.output == {
        "first": {"mail": m["message-taken"]},
        "second": {"mail": m["message-waiting"]},
        "bumps": [{"bump": m["update-data"]}, {"bump": m["asked-data"]}],
    }
    schedule = await app.schedules.get("payload-schedule")
    assert schedule.input == {"input": m["schedule-input"]}
    fired = await app.schedules.trigger("payload-schedule")
    assert fired is not None
    await drive(app)
    started = await app.workflows.status(fired)
    assert started.status == "succeeded" and started.output == {"input": m["schedule-input"]}


async def write_every_payload(app: App) -> Written:
    """Every payload path, each with its own marker (the app must be open)."""
    w = Written()
    await app.state.put("profile", {"secret": w.mark("state-value")})
    # A value out of line: its row holds a reference, its blob's chunks are sealed.
    await app.state.put("album", {"secret": w.mark("big-state-value"), "pad": "." * 300_000})

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
    done = await archived.send(
        {"job": w.mark("replayed-body")}, attributes={"tag": w.mark("archived-attribute")}
    )
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
    hooks = app.queue("hooks")  # a message whose callback URL waits with it
    url = f"https://hooks.example.com/{w.mark('waiting-callback-url')}"
    await hooks.send_message(hooks.new_message({"hook": 1}, reply_to={"url": url}))

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
    for what in ("step-argument", "child-input", "child-output", "workflow-output", "big-step"):
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
    await write_entity_payloads(app, w)
    await write_control_payloads(app, w)  # last: no drive may apply its asked update
    return w


def register_entities(app: App, w: Written) -> None:
    """The entity type whose state and answers hold markers (registered again by the app
    that checks them)."""
    if app.entity_types.get("vault") is not None:
        return
    vault = app.entity("vault", initial=dict)

    @vault.handler
    def deposit(ctx: EntityContext, note: str) -> dict[str, str]:
        ctx.state = {"note": note, "deposits": ctx.state.get("deposits", 0) + 1}
        return {"receipt": w.markers["entity-result"]}

    @vault.handler
    def refuse(ctx: EntityContext) -> None:
        raise ValueError(w.markers["entity-error"])


async def write_entity_payloads(app: App, w: Written) -> None:
    w.mark("entity-result")
    w.mark("entity-error")
    register_entities(app, w)
    note = w.mark("entity-state")
    await app.entities.call("vault", "v1", "deposit", note, call_id="deposit-1")
    with pytest.raises(EntityCallFailed):
        await app.entities.call("vault", "v1", "refuse", call_id="refuse-1")


async def check_entity_payloads(app: App, w: Written) -> None:
    m = w.markers
    register_entities(app, w)
    vault = await app.entities.get("vault", "v1")
    assert vault is not None and vault.state == {"note": m["entity-state"], "deposits": 1}
    again = await app.entities.call("vault", "v1", "deposit", "other", call_id="deposit-1")
    assert again == {"receipt": m["entity-result"]}  # the recorded answer, not a new run
    try:
        await app.entities.call("vault", "v1", "refuse", call_id="refuse-1")
    except EntityCallFailed as failed:
        assert failed.error is not None and failed.error.message == m["entity-error"]
    else:
        raise AssertionError("the recorded error was not raised again")
    vault = await app.entities.get("vault", "v1")
    assert vault is not None and vault.state["deposits"] == 1


async def check_every_payload(app: App, w: Written) -> None:
    """Every marker reads back through the API, where it was written."""
    m = w.markers
    state = await app.state.get("profile")
    assert state is not None and state.value == {"secret": m["state-value"]}
    album = await app.state.get("album")
    assert album is not None and album.value["secret"] == m["big-state-value"]
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
    tag = {"tag": m["archived-attribute"]}
    assert replay.attributes == {**tag, "replay_of": w.ids["archived-result"]}
    assert await app.queue("archived").replay(attributes=tag) == 1  # the archive's, opened
    [waiting] = await app.queue("hooks").receive(10)  # delivered with its reply_to, opened
    assert waiting.reply_to == {"url": f"https://hooks.example.com/{m['waiting-callback-url']}"}
    await waiting.release()

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
    assert done.output["big"] == m["big-step"]  # read back from its blob on replay
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
    await check_entity_payloads(app, w)
    await check_control_payloads(app, w)


def _child_position(history: list[dict[str, Any]]) -> int:
    return int(next(e["position"] for e in history if e["kind"] == "child"))
