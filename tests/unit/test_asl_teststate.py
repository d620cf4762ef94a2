"""TestState: one state run on its own, answered as Step Functions' TestState API
answers (status, output, nextState, error, cause and, at DEBUG and TRACE, each step of
the state's data processing), with a Task's result or error mocked and Retry and
Catch decided as AWS decides them (RETRIABLE, CAUGHT_ERROR)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from statekeeper.asl import teststate
from statekeeper.asl.resources import Resources
from statekeeper.errors import InvalidDefinition, MalformedJSON, ValidationError

NESTED = {
    "initialData": {"fieldFromInput": "value from input", "otherField": "other"},
    "unrelatedData": {"someOtherField": 1234},
}
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:charge"
MOCKED = ("MockException", "Mock the cause of the error.")


def texts(**values: Any) -> dict[str, str]:
    """Values as the compact JSON text TestState answers with."""
    return {key: json.dumps(value, separators=(",", ":")) for key, value in values.items()}


# --- Pass, at each inspection level --------------------------------------------------


PASS = {
    "Type": "Pass",
    "InputPath": "$.initialData",
    "Parameters": {"staticValue": "some value", "inputValue.$": "$.fieldFromInput"},
    "ResultPath": "$.modifiedData",
    "Next": "Done",
}
PASS_OUTPUT = {
    **NESTED,
    "modifiedData": {"staticValue": "some value", "inputValue": "value from input"},
}


async def test_a_pass_state_at_info_gives_its_output_and_next_state_only() -> None:
    answer = await teststate.test_state(PASS, NESTED)
    assert answer == {
        "status": "SUCCEEDED",
        "output": texts(o=PASS_OUTPUT)["o"],
        "nextState": "Done",
    }


@pytest.mark.parametrize("level", ["DEBUG", "TRACE"])
async def test_a_pass_state_at_debug_and_trace_shows_each_processing_step(level: str) -> None:
    answer = await teststate.test_state(PASS, NESTED, inspection_level=level)
    parameters = {"staticValue": "some value", "inputValue": "value from input"}
    assert answer["status"] == "SUCCEEDED"
    assert answer["nextState"] == "Done"
    assert answer["inspectionData"] == texts(
        input=NESTED,
        afterInputPath=NESTED["initialData"],
        afterParameters=parameters,
        afterResultSelector=parameters,
        afterResultPath=PASS_OUTPUT,
    )


async def test_a_pass_state_with_a_result_shows_the_result_and_no_input_processing() -> None:
    state = {"Type": "Pass", "Result": {"resultKey": "result value"}, "End": True}
    answer = await teststate.test_state(state, {"Value": "HelloWorld"}, inspection_level="DEBUG")
    result = {"resultKey": "result value"}
    assert answer["output"] == texts(o=result)["o"]
    assert "nextState" not in answer
    assert answer["inspectionData"] == texts(
        input={"Value": "HelloWorld"},
        result=result,
        afterResultSelector=result,
        afterResultPath=result,
    )


async def test_an_unknown_inspection_level_is_refused() -> None:
    with pytest.raises(ValidationError, match="inspectionLevel"):
        await teststate.test_state(PASS, NESTED, inspection_level="VERBOSE")


# --- Task: mocked result, real resource ----------------------------------------------


CHARGE = {
    "Type": "Task",
    "Resource": LAMBDA,
    "InputPath": "$.order",
    "Parameters": {"amount.$": "$.total", "currency": "EUR"},
    "ResultSelector": {"id.$": "$.payment.id"},
    "ResultPath": "$.charged",
    "OutputPath": "$.charged",
    "Next": "Ship",
}
ORDER = {"order": {"total": 42, "lines": 3}}


async def test_a_task_with_a_mocked_result_shows_every_step_of_its_data_flow() -> None:
    mocked = {"payment": {"id": "p-1", "status": "ok"}}
    answer = await teststate.test_state(CHARGE, ORDER, inspection_level="DEBUG", mock_result=mocked)
    assert answer == {
        "status": "SUCCEEDED",
        "output": texts(o={"id": "p-1"})["o"],
        "nextState": "Ship",
        "inspectionData": texts(
            input=ORDER,
            afterInputPath={"total": 42, "lines": 3},
            afterParameters={"amount": 42, "currency": "EUR"},
            result=mocked,
            afterResultSelector={"id": "p-1"},
            afterResultPath={**ORDER, "charged": {"id": "p-1"}},
        ),
    }


async def test_without_a_mock_the_task_runs_its_resource() -> None:
    resources = Resources()
    seen: list[Any] = []

    def charge(event: Any) -> Any:
        seen.append(event)
        return {"payment": {"id": "p-2"}}

    resources.function("charge", charge)
    answer = await teststate.test_state(CHARGE, ORDER, invoke=resources.invoke)
    assert seen == [{"amount": 42, "currency": "EUR"}]
    assert answer == {"status": "SUCCEEDED", "output": '{"id":"p-2"}', "nextState": "Ship"}


async def test_a_task_resource_that_raises_fails_the_test_as_lambda_reports_it() -> None:
    resources = Resources()

    def charge(event: Any) -> Any:
        raise KeyError("card")

    resources.function("charge", charge)
    answer = await teststate.test_state(CHARGE, ORDER, invoke=resources.invoke)
    assert answer["status"] == "FAILED"
    assert answer["error"] == "KeyError"
    assert json.loads(answer["cause"])["errorType"] == "KeyError"


async def test_a_wait_for_token_task_is_tested_with_a_mock() -> None:
    task = {**CHARGE, "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken"}
    answer = await teststate.test_state(task, ORDER, mock_result={"payment": {"id": "p-3"}})
    assert answer["output"] == '{"id":"p-3"}'
    with pytest.raises(ValidationError, match="waitForTaskToken"):
        await teststate.test_state(task, ORDER)


# --- a mocked error: Catch, Retry, neither -------------------------------------------


CAUGHT = {
    **CHARGE,
    "Catch": [
        {"ErrorEquals": ["States.Timeout"], "Next": "TimedOut"},
        {"ErrorEquals": ["MockException"], "ResultPath": "$.failure", "Next": "Refund"},
    ],
}


async def test_a_mocked_error_shows_the_catch_taken_at_trace_level() -> None:
    answer = await teststate.test_state(CAUGHT, ORDER, inspection_level="TRACE", mock_error=MOCKED)
    failure = {"Error": "MockException", "Cause": "Mock the cause of the error."}
    assert answer == {
        "status": "CAUGHT_ERROR",
        "error": "MockException",
        "cause": "Mock the cause of the error.",
        "nextState": "Refund",
        "output": texts(o={**ORDER, "failure": failure})["o"],
        "inspectionData": {
            **texts(
                input=ORDER,
                afterInputPath={"total": 42, "lines": 3},
                afterParameters={"amount": 42, "currency": "EUR"},
            ),
            "errorDetails": {"catchIndex": 1},
        },
    }


async def test_a_caught_error_at_info_has_no_inspection_data() -> None:
    answer = await teststate.test_state(CAUGHT, ORDER, mock_error=MOCKED)
    assert answer["status"] == "CAUGHT_ERROR"
    assert answer["nextState"] == "Refund"
    assert "inspectionData" not in answer


RETRIED = {
    **CAUGHT,
    "Retry": [
        {"ErrorEquals": ["States.Timeout"], "MaxAttempts": 1},
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 2},
    ],
}


async def test_a_mocked_error_that_a_retrier_takes_is_retriable() -> None:
    answer = await teststate.test_state(RETRIED, ORDER, inspection_level="DEBUG", mock_error=MOCKED)
    assert answer["status"] == "RETRIABLE"
    assert (answer["error"], answer["cause"]) == MOCKED
    assert "output" not in answer
    assert "nextState" not in answer
    details = answer["inspectionData"]["errorDetails"]
    assert details == {"retryIndex": 1, "retryBackoffIntervalSeconds": 2}


async def test_the_retry_count_so_far_sets_the_backoff_and_the_context() -> None:
    state = {
        **RETRIED,
        "Parameters": {"retry.$": "$$.State.RetryCount"},
        "InputPath": "$",
    }
    answer = await teststate.test_state(
        state, ORDER, inspection_level="DEBUG", mock_error=MOCKED, retrier_retry_count=1
    )
    assert answer["status"] == "RETRIABLE"
    assert answer["inspectionData"]["errorDetails"]["retryBackoffIntervalSeconds"] == 6
    assert answer["inspectionData"]["afterParameters"] == '{"retry":1}'


async def test_a_retrier_out_of_attempts_leaves_the_error_to_the_catchers() -> None:
    answer = await teststate.test_state(
        RETRIED, ORDER, inspection_level="DEBUG", mock_error=MOCKED, retrier_retry_count=2
    )
    assert answer["status"] == "CAUGHT_ERROR"
    assert answer["nextState"] == "Refund"
    assert answer["inspectionData"]["errorDetails"] == {"retryIndex": 1, "catchIndex": 1}


async def test_a_mocked_error_no_handler_takes_fails_with_its_error_and_cause() -> None:
    answer = await teststate.test_state(CHARGE, ORDER, inspection_level="DEBUG", mock_error=MOCKED)
    assert answer == {
        "status": "FAILED",
        "error": "MockException",
        "cause": "Mock the cause of the error.",
        "inspectionData": texts(
            input=ORDER,
            afterInputPath={"total": 42, "lines": 3},
            afterParameters={"amount": 42, "currency": "EUR"},
        ),
    }


async def test_states_runtime_is_never_caught() -> None:
    state = {**CAUGHT, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Refund"}]}
    answer = await teststate.test_state(state, {"no": "order"}, mock_result={})
    assert answer["status"] == "FAILED"
    assert answer["error"] == "States.Runtime"
    assert "'StateName'" in answer["cause"]
    assert "No results for path: $['order']" in answer["cause"]


async def test_a_mock_has_a_result_or_an_error_and_only_a_task_takes_one() -> None:
    with pytest.raises(ValidationError, match="not both"):
        await teststate.test_state(CHARGE, ORDER, mock_result={}, mock_error=MOCKED)
    with pytest.raises(ValidationError, match="Pass"):
        await teststate.test_state(PASS, NESTED, mock_result={})


# --- Choice, Fail, Succeed, Wait ------------------------------------------------------


CHOICE = {
    "Type": "Choice",
    "Choices": [
        {
            "And": [
                {"Variable": "$.value", "NumericGreaterThanEquals": 20},
                {"Variable": "$.value", "NumericLessThan": 30},
            ],
            "Next": "ValueInTwenties",
        }
    ],
    "Default": "Other",
}


async def test_a_choice_state_gives_the_state_it_chose() -> None:
    answer = await teststate.test_state(
        CHOICE, {"type": "Private", "value": 22}, inspection_level="DEBUG"
    )
    given = {"type": "Private", "value": 22}
    assert answer == {
        "status": "SUCCEEDED",
        "output": texts(o=given)["o"],
        "nextState": "ValueInTwenties",
        "inspectionData": texts(input=given, afterInputPath=given),
    }
    other = await teststate.test_state(CHOICE, {"value": 31})
    assert other["nextState"] == "Other"


async def test_a_choice_with_no_rule_matching_and_no_default_fails() -> None:
    state = {key: value for key, value in CHOICE.items() if key != "Default"}
    answer = await teststate.test_state(state, {"value": 31})
    assert answer == {"status": "FAILED", "error": "States.NoChoiceMatched", "cause": "No Matches!"}


async def test_a_fail_state_fails_with_its_error_and_cause() -> None:
    state = {"Type": "Fail", "Error": "SomeFailure", "Cause": "It failed."}
    answer = await teststate.test_state(state, {"Value": 1}, inspection_level="DEBUG")
    assert answer == {
        "status": "FAILED",
        "error": "SomeFailure",
        "cause": "It failed.",
        "inspectionData": texts(input={"Value": 1}, afterInputPath={"Value": 1}),
    }


async def test_a_wait_state_does_not_wait() -> None:
    began = time.monotonic()
    answer = await teststate.test_state({"Type": "Wait", "Seconds": 3600, "Next": "Go"}, {"a": 1})
    assert answer == {"status": "SUCCEEDED", "output": '{"a":1}', "nextState": "Go"}
    assert time.monotonic() - began < 5


# --- JSONata, variables, context ------------------------------------------------------


async def test_a_jsonata_task_shows_its_arguments_result_and_variables() -> None:
    state = {
        "QueryLanguage": "JSONata",
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Arguments": {"FunctionName": "charge", "Payload": "{% $states.input.order %}"},
        "Assign": {"paid": "{% $states.result.Payload.id %}"},
        "Output": "{% {'id': $states.result.Payload.id, 'by': $customer} %}",
        "End": True,
    }
    mocked = {"Payload": {"id": "p-4"}, "StatusCode": 200}
    answer = await teststate.test_state(
        state,
        ORDER,
        inspection_level="DEBUG",
        variables={"customer": "ada"},
        mock_result=mocked,
    )
    assert answer == {
        "status": "SUCCEEDED",
        "output": '{"id":"p-4","by":"ada"}',
        "inspectionData": texts(
            input=ORDER,
            afterArguments={"FunctionName": "charge", "Payload": ORDER["order"]},
            result=mocked,
            variables={"customer": "ada", "paid": "p-4"},
        ),
    }


async def test_a_jsonata_catcher_sees_the_error_output() -> None:
    state = {
        "QueryLanguage": "JSONata",
        "Type": "Task",
        "Resource": LAMBDA,
        "Catch": [
            {
                "ErrorEquals": ["States.TaskFailed"],
                "Output": "{% $states.errorOutput.Error & ' on ' & $states.input.Value %}",
                "Next": "HandleError",
            }
        ],
        "End": True,
    }
    answer = await teststate.test_state(
        state, {"Value": "HelloWorld"}, inspection_level="TRACE", mock_error=MOCKED
    )
    assert answer["status"] == "CAUGHT_ERROR"
    assert answer["output"] == '"MockException on HelloWorld"'
    assert answer["nextState"] == "HandleError"
    assert answer["inspectionData"] == {
        **texts(input={"Value": "HelloWorld"}, afterArguments={"Value": "HelloWorld"}),
        "errorDetails": {"catchIndex": 0},
    }


async def test_a_jsonata_pass_state_shows_only_its_input() -> None:
    state = {"QueryLanguage": "JSONata", "Type": "Pass", "Output": "{% $x + 1 %}", "End": True}
    answer = await teststate.test_state(state, {}, inspection_level="DEBUG", variables={"x": 41})
    assert answer == {
        "status": "SUCCEEDED",
        "output": "42",
        "inspectionData": texts(input={}, variables={"x": 41}),
    }


async def test_the_context_object_is_the_test_states_with_the_given_context_over_it() -> None:
    state = {
        "Type": "Pass",
        "Parameters": {"name.$": "$$.State.Name", "input.$": "$$.Execution.Input", "x.$": "$$.x"},
        "End": True,
    }
    answer = await teststate.test_state(state, {"a": 1}, context={"x": "given"})
    assert json.loads(answer["output"]) == {"name": "StateName", "input": {"a": 1}, "x": "given"}


# --- the definition -------------------------------------------------------------------


async def test_an_invalid_state_is_an_invalid_definition_naming_where_each_problem_is() -> None:
    state = {"Type": "Task", "Next": "Elsewhere", "Retry": [{"ErrorEquals": []}], "Bogus": 1}
    with pytest.raises(InvalidDefinition) as raised:
        await teststate.test_state(state, {})
    problems = raised.value.details["problems"]
    assert [problem["where"] for problem in problems] == [
        "/Bogus",
        "/Resource",
        "/Retry/0/ErrorEquals",
    ]
    assert "/Retry/0/ErrorEquals" in raised.value.message


@pytest.mark.parametrize(
    ("definition", "where"),
    [
        ("Pass", ""),
        ({"Type": "Sleep", "End": True}, "/Type"),
        ({"Type": "Pass"}, ""),
        ({"Type": "Pass", "InputPath": "$.a[", "End": True}, "/InputPath"),
        ({"Type": "Choice", "Choices": []}, "/Choices"),
    ],
)
async def test_each_problem_of_a_single_state_is_located_in_it(definition: Any, where: str) -> None:
    with pytest.raises(InvalidDefinition) as raised:
        await teststate.test_state(definition, {})
    assert where in [problem["where"] for problem in raised.value.details["problems"]]


async def test_a_state_of_a_whole_machine_is_tested_by_its_name() -> None:
    machine = {
        "StartAt": "First",
        "States": {
            "First": {"Type": "Pass", "Result": 1, "ResultPath": "$.n", "Next": "Second"},
            "Second": {"Type": "Fail", "Error": "SomeFailure"},
        },
    }
    answer = await teststate.test_state(machine, {}, state_name="First")
    assert answer == {"status": "SUCCEEDED", "output": '{"n":1}', "nextState": "Second"}
    failed = await teststate.test_state(machine, {}, state_name="Second")
    assert failed == {"status": "FAILED", "error": "SomeFailure"}
    with pytest.raises(ValidationError, match="State not found"):
        await teststate.test_state(machine, {}, state_name="Third")
    broken = {**machine, "StartAt": "Nowhere"}
    with pytest.raises(InvalidDefinition) as raised:
        await teststate.test_state(broken, {}, state_name="First")
    assert raised.value.details["problems"][0]["where"] == "/StartAt"


# --- the request body of the HTTP API -------------------------------------------------


async def test_a_request_body_of_json_texts_is_run() -> None:
    answer = await teststate.run_request(
        {
            "definition": json.dumps(CAUGHT),
            "input": json.dumps(ORDER),
            "inspectionLevel": "TRACE",
            "mock": {"errorOutput": {"error": "MockException", "cause": "Mock the cause."}},
            "roleArn": "arn:aws:iam::123456789012:role/test",
        }
    )
    assert answer["status"] == "CAUGHT_ERROR"
    assert answer["nextState"] == "Refund"
    assert answer["inspectionData"]["errorDetails"] == {"catchIndex": 1}
    mocked = await teststate.run_request(
        {
            "definition": json.dumps(RETRIED),
            "input": json.dumps(ORDER),
            "mock": {"result": '{"payment": {"id": "p-5"}}'},
            "variables": '{"v": 1}',
            "stateConfiguration": {"retrierRetryCount": 1},
        }
    )
    assert mocked == {"status": "SUCCEEDED", "output": '{"id":"p-5"}', "nextState": "Ship"}


async def test_a_request_with_text_that_is_not_json_is_refused() -> None:
    with pytest.raises(InvalidDefinition):
        await teststate.run_request({"definition": "{not json"})
    with pytest.raises(MalformedJSON):
        await teststate.run_request({"definition": json.dumps(PASS), "input": "{"})
    with pytest.raises(ValidationError, match="variables"):
        await teststate.run_request({"definition": json.dumps(PASS), "variables": "[1]"})
    with pytest.raises(ValidationError, match="definition is required"):
        await teststate.run_request({})


async def test_a_parallel_state_runs_its_branches_and_shows_its_own_result() -> None:
    branch = {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": 1, "End": True}}}
    state = {"Type": "Parallel", "Branches": [branch, branch], "ResultPath": "$.r", "End": True}
    answer = await teststate.test_state(state, {"a": 1}, inspection_level="DEBUG")
    assert answer == {
        "status": "SUCCEEDED",
        "output": '{"a":1,"r":[1,1]}',
        "inspectionData": texts(
            input={"a": 1},
            result=[1, 1],
            afterResultSelector=[1, 1],
            afterResultPath={"a": 1, "r": [1, 1]},
        ),
    }
