"""State machines as durable workflows (kind ``asl``), on SQLite and PostgreSQL: an
execution checkpoints every transition, keeps the definition it started with, runs
each task once however often it is replayed, waits on durable timers and task
tokens, and fails with the States error and cause kept apart."""

from __future__ import annotations

import json
from typing import Any

from statekeeper import App
from tests.conftest import FakeClock
from tests.support import drive

ORDER: dict[str, Any] = {
    "StartAt": "Price",
    "States": {
        "Price": {"Type": "Task", "Resource": "price", "ResultPath": "$.total", "Next": "Big?"},
        "Big?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.total", "NumericGreaterThan": 100, "Next": "Review"}],
            "Default": "Ship",
        },
        "Review": {"Type": "Wait", "Seconds": 3600, "Next": "Ship"},
        "Ship": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "StartAt": "Pack",
                "States": {"Pack": {"Type": "Task", "Resource": "pack", "End": True}},
            },
            "ResultPath": "$.packed",
            "Catch": [{"ErrorEquals": ["OutOfStock"], "ResultPath": "$.problem", "Next": "Sorry"}],
            "Next": "Done",
        },
        "Sorry": {"Type": "Pass", "Result": "backordered", "ResultPath": "$.state", "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}


class OutOfStock(Exception):
    pass


def register(app: App, calls: dict[str, int]) -> None:
    @app.task_function
    def price(order: dict[str, Any]) -> int:
        calls["price"] = calls.get("price", 0) + 1
        return sum(item["cost"] for item in order["items"])

    @app.task_function(name="pack")
    async def pack_item(item: dict[str, Any]) -> str:
        calls["pack"] = calls.get("pack", 0) + 1
        if item["name"] == "unobtainium":
            raise OutOfStock(f"no {item['name']} left")
        return f"packed {item['name']}"


# A task that hands its token to the function ``ask`` and waits for the answer.
ASK: dict[str, Any] = {
    "Type": "Task",
    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
    "Parameters": {"FunctionName": "ask", "Payload": {"token.$": "$$.Task.Token"}},
}


def asking(app: App) -> list[str]:
    """Callbacks enabled, and the task function ``ask``: the tokens it was given."""
    app.workflows.secret = "a-test-secret-of-enough-length-000000"
    tokens: list[str] = []

    @app.task_function
    def ask(event: dict[str, Any]) -> None:
        tokens.append(event["token"])

    return tokens


async def test_an_execution_waits_durably_and_runs_each_task_once(
    app: App, clock: FakeClock
) -> None:
    calls: dict[str, int] = {}
    register(app, calls)
    await app.workflows.define("order", "asl", ORDER)
    items = [{"name": "lamp", "cost": 80}, {"name": "desk", "cost": 300}]
    run = await app.workflows.start("order", {"items": items}, id="order-1")
    await drive(app)
    assert (await app.workflows.status(run)).status == "sleeping"  # in Review, for an hour
    assert calls == {"price": 1}
    await drive(app)  # nothing is due: the tasks do not run again
    clock.advance(3600)
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "succeeded"
    assert status.output == {"items": items, "total": 380, "packed": ["packed lamp", "packed desk"]}
    assert calls == {"price": 1, "pack": 2}  # the resumed run replayed price, did not re-run it


async def test_a_caught_error_and_a_failure_keep_the_states_error_apart(app: App) -> None:
    calls: dict[str, int] = {}
    register(app, calls)
    await app.workflows.define("order", "asl", ORDER)
    items = [{"name": "unobtainium", "cost": 5}]
    run = await app.workflows.start("order", {"items": items})
    await drive(app)
    output = (await app.workflows.status(run)).output
    assert output["state"] == "backordered"
    assert output["problem"]["Error"] == "OutOfStock"
    assert json.loads(output["problem"]["Cause"])["errorMessage"] == "no unobtainium left"

    await app.workflows.define(
        "refuse",
        "asl",
        {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Nope", "Cause": "why"}}},
    )
    failed = await app.workflows.start("refuse", {})
    await drive(app)
    status = await app.workflows.status(failed)
    assert status.status == "failed"
    assert status.error is not None
    assert (status.error.type, status.error.message) == ("Nope", "why")


async def test_a_running_execution_keeps_the_definition_it_started_with(
    app: App, clock: FakeClock
) -> None:
    def machine(result: str) -> dict[str, Any]:
        return {
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": 60, "Next": "P"},
                "P": {"Type": "Pass", "Result": result, "End": True},
            },
        }

    await app.workflows.define("versioned", "asl", machine("first"))
    old = await app.workflows.start("versioned", {})
    await drive(app)
    assert await app.workflows.define("versioned", "asl", machine("second")) == 2
    new = await app.workflows.start("versioned", {})
    await drive(app)
    clock.advance(60)
    await drive(app)
    assert (await app.workflows.status(old)).output == "first"
    assert (await app.workflows.status(new)).output == "second"


async def test_wait_for_task_token_resumes_when_the_token_is_answered(app: App) -> None:
    tokens = asking(app)

    await app.workflows.define(
        "approval",
        "asl",
        {
            "StartAt": "Ask",
            "States": {"Ask": {**ASK, "End": True}},
        },
    )
    run = await app.workflows.start("approval", {})
    await drive(app)
    assert (await app.workflows.status(run)).status == "waiting"
    assert len(tokens) == 1
    await app.workflows.answer_callback(tokens[0], {"status": "success", "data": {"ok": True}})
    await drive(app)
    assert (await app.workflows.status(run)).output == {"ok": True}
    assert len(tokens) == 1  # the task ran once

    second = await app.workflows.start("approval", {})
    await drive(app)
    answer = {"status": "failure", "error": "Rejected", "cause": "no budget"}
    await app.workflows.answer_callback(tokens[1], answer)
    await drive(app)
    status = await app.workflows.status(second)
    assert status.error is not None
    assert (status.status, status.error.type, status.error.message) == (
        "failed",
        "Rejected",
        "no budget",
    )


async def test_an_invalid_definition_is_refused_with_every_problem(app: App) -> None:
    from statekeeper.errors import InvalidDefinition

    try:
        await app.workflows.define("bad", "asl", {"StartAt": "X", "States": {}})
    except InvalidDefinition as refused:
        assert refused.details["problems"]
    else:
        raise AssertionError("an invalid definition was stored")


async def test_a_late_heartbeat_times_the_task_out_and_a_timely_one_keeps_it_waiting(
    app: App, clock: FakeClock
) -> None:
    tokens = asking(app)

    await app.workflows.define(
        "beating",
        "asl",
        {
            "StartAt": "Ask",
            "States": {
                "Ask": {
                    **ASK,
                    "HeartbeatSeconds": 10,
                    "TimeoutSeconds": 100,
                    "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "Late"}],
                    "End": True,
                },
                "Late": {"Type": "Pass", "Result": "late", "End": True},
            },
        },
    )
    kept = await app.workflows.start("beating", {})
    await drive(app)
    for _ in range(3):  # a heartbeat every 6 s keeps it waiting past 10 s
        clock.advance(6)
        await app.workflows.answer_callback(tokens[0], {"status": "heartbeat"})
        await drive(app)
        assert (await app.workflows.status(kept)).status == "waiting"
    await app.workflows.answer_callback(tokens[0], {"status": "success", "data": "done"})
    await drive(app)
    assert (await app.workflows.status(kept)).output == "done"

    late = await app.workflows.start("beating", {})
    await drive(app)
    clock.advance(6)
    await app.workflows.answer_callback(tokens[1], {"status": "heartbeat"})
    await drive(app)
    clock.advance(11)  # 11 s since the last heartbeat
    await drive(app)
    assert (await app.workflows.status(late)).output == "late"


async def test_large_payloads_run_whole_and_the_history_says_what_it_cut(app: App) -> None:
    from statekeeper.asl.workflow import execution_events

    @app.task_function
    def grow(event: dict[str, Any]) -> dict[str, Any]:
        return {"text": event["text"] + "!", "quoted": event["quoted"]}

    await app.workflows.define(
        "big",
        "asl",
        {"StartAt": "Grow", "States": {"Grow": {"Type": "Task", "Resource": "grow", "End": True}}},
    )
    given = {"text": "x" * 100_000, "quoted": ['"'] * 10_000}  # about 150 KiB, quote-heavy
    run = await app.workflows.start("big", given)
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "succeeded", status.error
    assert status.output == {"text": "x" * 100_000 + "!", "quoted": ['"'] * 10_000}
    events = await execution_events(app.workflows, run)
    assert [e["type"] for e in events][-1] == "ExecutionSucceeded"
    started = events[0]["executionStartedEventDetails"]
    assert started["inputDetails"] == {"truncated": True} and len(started["input"]) < 20_000
