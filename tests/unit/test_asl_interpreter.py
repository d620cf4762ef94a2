"""The States Language interpreter in memory: tasks with Lambda's semantics, Retry
and Catch with AWS's rules, task tokens, timeouts and the history it writes. (The
recorded AWS executions are in tests/conformance.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from statekeeper.asl.failure import StatesError
from statekeeper.asl.host import ManualClock, MemoryHost
from statekeeper.asl.interpreter import Execution, Outcome
from statekeeper.asl.resources import Resources


class CardDeclined(Exception):
    pass


def machine(*states: tuple[str, dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {"StartAt": states[0][0], "States": dict(states), **top}


def run(
    definition: dict[str, Any],
    input: Any = None,
    resources: Resources | None = None,
    clock: ManualClock | None = None,
) -> tuple[Outcome, Execution]:
    host = MemoryHost(resources.invoke if resources else None, clock or ManualClock(1_000_000))
    execution = Execution(definition, {} if input is None else input, host)
    return asyncio.run(execution.run()), execution


def test_a_function_resource_by_name_or_lambda_arn_returns_its_value() -> None:
    resources = Resources()
    resources.function("double", lambda event: {"n": event["n"] * 2})
    task = {"Type": "Task", "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:double"}
    outcome, _ = run(
        machine(
            ("A", {**task, "ResultPath": "$.doubled", "Next": "B"}),
            ("B", {"Type": "Task", "Resource": "double", "InputPath": "$.doubled", "End": True}),
        ),
        {"n": 3},
        resources,
    )
    assert outcome == Outcome("SUCCEEDED", {"n": 12})


def test_lambda_invoke_wraps_the_result_as_aws_does() -> None:
    resources = Resources()
    resources.function("hello", lambda event, context: {"hi": event, "by": context.function_name})
    outcome, _ = run(
        machine(
            (
                "A",
                {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "hello", "Payload.$": "$"},
                    "End": True,
                },
            )
        ),
        {"x": 1},
        resources,
    )
    assert outcome.status == "SUCCEEDED"
    assert outcome.output["Payload"] == {"hi": {"x": 1}, "by": "hello"}
    assert outcome.output["StatusCode"] == 200
    assert {"ExecutedVersion", "SdkHttpMetadata", "SdkResponseMetadata"} <= set(outcome.output)


def test_a_raised_exception_is_the_error_and_its_cause_is_lambdas_json() -> None:
    resources = Resources()

    def charge(event: Any) -> Any:
        raise CardDeclined("insufficient funds")

    resources.function("charge", charge)
    outcome, _ = run(
        machine(("A", {"Type": "Task", "Resource": "charge", "End": True})), {}, resources
    )
    assert (outcome.status, outcome.error) == ("FAILED", "CardDeclined")
    cause = json.loads(outcome.cause or "")
    assert cause["errorMessage"] == "insufficient funds"
    assert cause["errorType"] == "CardDeclined"
    assert any("charge" in line for line in cause["stackTrace"])


def test_a_result_over_256_kib_fails_with_data_limit_exceeded() -> None:
    resources = Resources()
    resources.function("big", lambda event: "x" * (256 * 1024 + 1))
    state = {"Type": "Task", "Resource": "big", "End": True}
    outcome, _ = run(machine(("Big", state)), {}, resources)
    assert outcome.error == "States.DataLimitExceeded"
    assert "'Big'" in (outcome.cause or "")
    # Nothing catches it, States.ALL included.
    caught = {**state, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "B"}]}
    del caught["End"]
    outcome, _ = run(machine(("Big", caught), ("B", {"Type": "Succeed"})), {}, resources)
    assert outcome.error == "States.DataLimitExceeded"


def test_an_unknown_function_fails_with_a_message_naming_it() -> None:
    outcome, _ = run(
        machine(("A", {"Type": "Task", "Resource": "nowhere", "End": True})), {}, Resources()
    )
    assert outcome.error == "Lambda.ResourceNotFoundException"
    assert "nowhere" in (outcome.cause or "")


def test_retry_backs_off_as_configured_then_catch_takes_the_error() -> None:
    calls: list[float] = []
    clock = ManualClock(1_000_000)
    resources = Resources()

    def flaky(event: Any) -> Any:
        calls.append(clock())
        raise CardDeclined("no")

    resources.function("flaky", flaky)
    task = {
        "Type": "Task",
        "Resource": "flaky",
        "Retry": [
            {"ErrorEquals": ["Other"], "MaxAttempts": 5},
            {
                "ErrorEquals": ["CardDeclined"],
                "IntervalSeconds": 2,
                "BackoffRate": 3,
                "MaxAttempts": 3,
                "MaxDelaySeconds": 10,
            },
        ],
        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "B"}],
        "Next": "B",
    }
    outcome, execution = run(
        machine(("A", task), ("B", {"Type": "Pass", "End": True})), {"k": 1}, resources, clock
    )
    # Attempts at 0, +2, +6, +10 (18 capped at MaxDelaySeconds).
    assert [t - calls[0] for t in calls] == [0, 2, 8, 18]
    assert outcome.status == "SUCCEEDED"
    assert outcome.output["k"] == 1
    assert outcome.output["error"]["Error"] == "CardDeclined"
    types = [e["type"] for e in execution.history.events]
    assert types.count("TaskFailed") == 4
    assert types.count("TaskStateEntered") == 1


def test_max_attempts_zero_never_retries_and_states_all_catches() -> None:
    resources = Resources()
    attempts: list[int] = []

    def failing(event: Any) -> Any:
        attempts.append(1)
        raise ValueError("bad")

    resources.function("failing", failing)
    task = {
        "Type": "Task",
        "Resource": "failing",
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "B"}],
        "Next": "B",
    }
    outcome, _ = run(machine(("A", task), ("B", {"Type": "Pass", "End": True})), {}, resources)
    assert len(attempts) == 1
    assert outcome.output["Error"] == "ValueError"


def test_a_task_timeout_is_states_timeout_which_task_failed_does_not_catch() -> None:
    resources = Resources()

    async def slow(event: Any) -> Any:
        await asyncio.sleep(5)

    resources.function("slow", slow)
    task = {
        "Type": "Task",
        "Resource": "slow",
        "TimeoutSeconds": 1,
        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "B"}],
        "End": True,
    }
    execution = Execution(
        machine(("A", task), ("B", {"Type": "Succeed"})), {}, MemoryHost(resources.invoke)
    )
    outcome = asyncio.run(execution.run())
    assert (outcome.status, outcome.error) == ("FAILED", "States.Timeout")
    assert "TaskTimedOut" in [e["type"] for e in execution.history.events]


def test_wait_for_task_token_resumes_with_the_output_sent() -> None:
    resources = Resources()
    host = MemoryHost(resources.invoke, ManualClock(1_000_000))
    sent: list[str] = []
    asked = asyncio.Event()

    async def notify(event: Any) -> Any:
        sent.append(event["token"])
        asked.set()
        return "ignored"

    resources.function("notify", notify)
    definition = machine(
        (
            "Ask",
            {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": "notify",
                    "Payload": {"token.$": "$$.Task.Token", "who.$": "$.who"},
                },
                "ResultPath": "$.answer",
                "End": True,
            },
        )
    )

    async def scenario() -> Outcome:
        execution = Execution(definition, {"who": "ana"}, host)
        running = asyncio.ensure_future(execution.run())
        await asyncio.wait_for(asked.wait(), 5)
        assert not running.done()
        assert host.answer(sent[0], {"approved": True})
        assert not host.answer(sent[0], {"approved": False})  # once only
        return await running

    outcome = asyncio.run(scenario())
    assert outcome.output == {"who": "ana", "answer": {"approved": True}}


def test_send_task_failure_fails_the_task_with_its_error_and_cause() -> None:
    resources = Resources()
    asked: asyncio.Queue[str] = asyncio.Queue()

    async def ask(token: str) -> None:
        await asked.put(token)

    resources.function("ask", ask)
    host = MemoryHost(resources.invoke, ManualClock(1_000_000))
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "ask", "Payload.$": "$$.Task.Token"},
        "End": True,
    }

    async def scenario() -> Outcome:
        execution = Execution(machine(("Ask", task)), {}, host)
        running = asyncio.ensure_future(execution.run())
        token = await asyncio.wait_for(asked.get(), 5)
        host.answer(token, error=StatesError("Rejected", "the reviewer said no"))
        return await running

    outcome = asyncio.run(scenario())
    assert (outcome.error, outcome.cause) == ("Rejected", "the reviewer said no")


def test_the_machine_timeout_ends_the_execution_timed_out() -> None:
    definition = machine(
        ("W", {"Type": "Wait", "Seconds": 100, "Next": "P"}),
        ("P", {"Type": "Pass", "End": True}),
        TimeoutSeconds=10,
    )
    outcome, execution = run(definition)
    assert (outcome.status, outcome.error) == ("TIMED_OUT", "States.Timeout")
    assert execution.history.events[-1]["type"] == "ExecutionTimedOut"


def test_history_events_have_ids_previous_ids_and_aws_detail_keys() -> None:
    definition = machine(
        ("P", {"Type": "Pass", "Result": {"a": 1}, "Next": "M"}),
        (
            "M",
            {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}},
                "End": True,
            },
        ),
    )
    definition["States"]["P"]["Result"] = {"items": [1, 2]}
    outcome, execution = run(definition, {})
    assert outcome.output == [1, 2]
    events = execution.history.events
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["previousEventId"] == e["id"] - 1 for e in events)
    types = [e["type"] for e in events]
    assert types[:4] == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "MapStateEntered",
    ]
    assert types.count("MapIterationStarted") == 2 and types.count("MapIterationSucceeded") == 2
    assert types[-3:] == ["MapStateSucceeded", "MapStateExited", "ExecutionSucceeded"]
    assert events[1]["stateEnteredEventDetails"]["name"] == "P"
    assert json.loads(events[2]["stateExitedEventDetails"]["output"]) == {"items": [1, 2]}


def test_stop_aborts_a_running_execution() -> None:
    definition = machine(("W", {"Type": "Wait", "Seconds": 60, "End": True}))

    async def scenario() -> Outcome:
        execution = Execution(definition, {}, MemoryHost())
        running = asyncio.ensure_future(execution.run())
        await asyncio.sleep(0.01)
        return await execution.stop(running, "Stopped", "by a test")

    assert asyncio.run(scenario()) == Outcome("ABORTED", error="Stopped", cause="by a test")


@pytest.mark.parametrize("concurrency", [0, 1, 2])
def test_map_keeps_item_order_and_tolerates_failures_up_to_the_count(concurrency: int) -> None:
    item = {
        "StartAt": "C",
        "States": {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$", "NumericGreaterThan": 2, "Next": "F"}],
                "Default": "P",
            },
            "P": {"Type": "Pass", "End": True},
            "F": {"Type": "Fail", "Error": "TooBig"},
        },
    }
    state = {"Type": "Map", "ItemProcessor": item, "MaxConcurrency": concurrency, "End": True}
    outcome, _ = run(machine(("M", {**state, "ToleratedFailureCount": 2})), [1, 2, 3, 4])
    assert outcome.output == [1, 2, {"Error": "TooBig"}, {"Error": "TooBig"}]
    outcome, _ = run(machine(("M", {**state, "ToleratedFailureCount": 1})), [1, 2, 3, 4])
    assert outcome.error == "States.ExceedToleratedFailureThreshold"
    outcome, _ = run(machine(("M", state)), [1, 2, 3, 4])
    assert outcome.error == "TooBig"


def test_item_batcher_hands_each_iteration_a_batch_and_item_reader_is_refused() -> None:
    distributed = {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    processor = {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}}
    state = {
        "Type": "Map",
        "ItemProcessor": {**processor, "ProcessorConfig": distributed},
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"run.$": "$$.Execution.Name"}},
        "End": True,
    }
    outcome, _ = run(machine(("M", state)), [1, 2, 3, 4, 5])
    assert [batch["Items"] for batch in outcome.output] == [[1, 2], [3, 4], [5]]
    assert outcome.output[0]["BatchInput"] == {"run": "execution"}
    by_size = {**state, "ItemBatcher": {"MaxInputBytesPerBatch": 8}}
    outcome, _ = run(machine(("M", by_size)), ["aaa", "bbb", "c"])
    assert [batch["Items"] for batch in outcome.output] == [["aaa"], ["bbb", "c"]]
    reader = {**state, "ItemReader": {"Resource": "arn:aws:states:::s3:getObject"}}
    outcome, _ = run(machine(("M", reader)), [])
    assert outcome.error == "States.Runtime" and "ItemReader" in (outcome.cause or "")


def test_in_memory_heartbeats_keep_a_token_task_waiting_until_one_is_late() -> None:
    resources = Resources()
    asked: asyncio.Queue[str] = asyncio.Queue()

    async def ask(token: str) -> None:
        await asked.put(token)

    resources.function("ask", ask)
    host = MemoryHost(resources.invoke)
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": "ask", "Payload.$": "$$.Task.Token"},
        "HeartbeatSeconds": 1,
        "End": True,
    }

    async def scenario(beats: int) -> Outcome:
        execution = Execution(machine(("Ask", task)), {}, host)
        running = asyncio.ensure_future(execution.run())
        token = await asyncio.wait_for(asked.get(), 5)
        for _ in range(beats):
            await asyncio.sleep(0.5)
            assert host.beat(token)
        if beats:
            host.answer(token, "answered")
        return await running

    assert asyncio.run(scenario(3)).output == "answered"  # 1.5 s, a beat every 0.5 s
    late = asyncio.run(scenario(0))
    assert late.error == "States.HeartbeatTimeout"
