"""The Step Functions API of a running ``statekeeper serve``, through boto3 with only
its endpoint changed: machines, executions on a task token, history, versions and
aliases, AWS-shaped errors, and signatures checked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.integration.cli_support import serving

TOKEN = "sfn-api-token-0123456789abcdef"
KEY, SECRET = "AKIASTATEKEEPERTEST", "a-secret-access-key-for-tests"
ROLE = "arn:aws:iam::000000000000:role/test"
APPROVAL = {
    "StartAt": "Double",
    "States": {
        "Double": {
            "Type": "Task",
            "Resource": "arn:aws:lambda:us-east-1:000000000000:function:double",
            "ResultPath": "$.doubled",
            "Catch": [{"ErrorEquals": ["ValueError"], "ResultPath": "$.error", "Next": "Ask"}],
            "Next": "Ask",
        },
        "Ask": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "ask", "Payload": {"token.$": "$$.Task.Token"}},
            "ResultPath": "$.approval",
            "End": True,
        },
    },
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("sfn")
    env = {
        "SFN_DB_URL": f"sqlite:///{where / 'sfn.db'}",
        "STATEKEEPER_API_TOKEN": TOKEN,
        "STATEKEEPER_CALLBACK_SECRET": "sfn-callback-secret-0123456789",
        "STATEKEEPER_AWS_CREDENTIALS": f"{KEY}:{SECRET}",
    }
    with serving("sfn_app:app", env, where / "serve.log") as url:
        yield url


def client(endpoint: str, key: str = KEY, secret: str = SECRET) -> Any:
    return boto3.client(
        "stepfunctions", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=False),
    )  # fmt: skip


def wait_status(sfn: Any, arn: str, wanted: str) -> dict[str, Any]:
    described: dict[str, Any] = {}
    for _ in range(400):
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] == wanted:
            return described
        time.sleep(0.025)
    raise AssertionError(f"never {wanted}: {described}")


def token_of(sfn: Any, arn: str) -> str:
    for _ in range(400):
        events = sfn.get_execution_history(executionArn=arn)["events"]
        for event in events:
            if (
                event["type"] == "TaskScheduled"
                and "Token" in event["taskScheduledEventDetails"]["parameters"]
            ):
                pass
        submitted = [e for e in events if e["type"] == "TaskSubmitted"]
        if submitted:
            scheduled = [e for e in events if e["type"] == "TaskScheduled"][-1]
            parameters = json.loads(scheduled["taskScheduledEventDetails"]["parameters"])
            return str(parameters["Payload"]["token"])
        time.sleep(0.025)
    raise AssertionError("the task never waited for its token")


def test_a_machine_runs_an_execution_that_waits_on_a_task_token(endpoint: str) -> None:
    sfn = client(endpoint)
    created = sfn.create_state_machine(
        name="approval", definition=json.dumps(APPROVAL), roleArn=ROLE,
        tags=[{"key": "team", "value": "billing"}],
    )  # fmt: skip
    arn = created["stateMachineArn"]
    assert arn == "arn:aws:states:us-east-1:000000000000:stateMachine:approval"
    described = sfn.describe_state_machine(stateMachineArn=arn)
    assert json.loads(described["definition"]) == APPROVAL
    assert described["status"] == "ACTIVE" and described["type"] == "STANDARD"
    assert arn in [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
    assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"key": "team", "value": "billing"}
    ]

    started = sfn.start_execution(stateMachineArn=arn, name="order-1", input='{"n": 21}')
    execution = started["executionArn"]
    assert execution.endswith(":execution:approval:order-1")
    # The name is the idempotency key: the same start returns the same execution.
    again = sfn.start_execution(stateMachineArn=arn, name="order-1", input='{"n": 21}')
    assert again["executionArn"] == execution
    with pytest.raises(ClientError) as exists:
        sfn.start_execution(stateMachineArn=arn, name="order-1", input='{"n": 22}')
    assert exists.value.response["Error"]["Code"] == "ExecutionAlreadyExists"

    token = token_of(sfn, execution)
    assert sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_success(taskToken=token, output='{"approved": true}')
    done = wait_status(sfn, execution, "SUCCEEDED")
    assert json.loads(done["output"]) == {
        "n": 21,
        "doubled": {"n": 42},
        "approval": {"approved": True},
    }
    assert json.loads(done["input"]) == {"n": 21}
    with pytest.raises(ClientError) as late:
        sfn.send_task_success(taskToken=token, output="{}")
    assert late.value.response["Error"]["Code"] == "TaskTimedOut"

    events = sfn.get_execution_history(executionArn=execution)["events"]
    types = [event["type"] for event in events]
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert {"TaskStateEntered", "TaskScheduled", "TaskSucceeded", "TaskSubmitted"} <= set(types)
    assert [event["id"] for event in events] == list(range(1, len(events) + 1))
    assert all(event["previousEventId"] == event["id"] - 1 for event in events)
    listed = sfn.list_executions(stateMachineArn=arn, statusFilter="SUCCEEDED")["executions"]
    assert [e["executionArn"] for e in listed] == [execution]


def test_send_task_failure_fails_the_execution_with_its_error(endpoint: str) -> None:
    sfn = client(endpoint)
    arn = sfn.create_state_machine(name="refusal", definition=json.dumps(APPROVAL), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=arn, input='{"n": 13}')["executionArn"]
    token = token_of(sfn, execution)
    sfn.send_task_failure(taskToken=token, error="Rejected", cause="no budget")
    failed = wait_status(sfn, execution, "FAILED")
    assert (failed["error"], failed["cause"]) == ("Rejected", "no budget")
    history = sfn.get_execution_history(executionArn=execution, reverseOrder=True)["events"]
    assert history[0]["type"] == "ExecutionFailed"
    assert history[0]["executionFailedEventDetails"] == {"error": "Rejected", "cause": "no budget"}


def test_errors_are_shaped_as_aws_shapes_them(endpoint: str) -> None:
    sfn = client(endpoint)
    bad = {"StartAt": "Missing", "States": {"A": {"Type": "Pass", "End": True}}}
    with pytest.raises(ClientError) as invalid:
        sfn.create_state_machine(name="bad", definition=json.dumps(bad), roleArn=ROLE)
    assert invalid.value.response["Error"]["Code"] == "InvalidDefinition"
    assert "/StartAt" in invalid.value.response["Error"]["Message"]
    unknown = "arn:aws:states:us-east-1:000000000000:execution:approval:nope"
    with pytest.raises(ClientError) as missing:
        sfn.describe_execution(executionArn=unknown)
    assert missing.value.response["Error"]["Code"] == "ExecutionDoesNotExist"
    with pytest.raises(ClientError) as no_machine:
        sfn.start_execution(
            stateMachineArn="arn:aws:states:us-east-1:000000000000:stateMachine:none"
        )
    assert no_machine.value.response["Error"]["Code"] == "StateMachineDoesNotExist"
    with pytest.raises(ClientError) as not_arn:
        sfn.describe_state_machine(stateMachineArn="not-an-arn")
    assert not_arn.value.response["Error"]["Code"] == "InvalidArn"
    with pytest.raises(ClientError) as no_task:
        sfn.send_task_success(taskToken="forged", output="{}")
    assert no_task.value.response["Error"]["Code"] == "TaskDoesNotExist"
    checked = sfn.validate_state_machine_definition(definition=json.dumps(bad))
    assert checked["result"] == "FAIL"
    assert any(d["location"] == "/StartAt" for d in checked["diagnostics"])


def test_unsigned_or_wrongly_signed_requests_are_refused(endpoint: str) -> None:
    with pytest.raises(ClientError) as wrong:
        client(endpoint, secret="not-the-secret-at-all").list_state_machines()
    assert wrong.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as unknown_key:
        client(endpoint, key="AKIAUNKNOWN").list_state_machines()
    assert unknown_key.value.response["Error"]["Code"] == "AccessDeniedException"
    target = {"X-Amz-Target": "AWSStepFunctions.ListStateMachines"}
    unsigned = httpx.post(endpoint + "/", headers=target, content=b"{}")
    assert unsigned.status_code == 403
    bearer = httpx.post(
        endpoint + "/", headers={**target, "Authorization": f"Bearer {TOKEN}"}, content=b"{}"
    )
    assert bearer.status_code == 200 and "stateMachines" in bearer.json()


def test_versions_aliases_and_updates_keep_running_executions_on_their_definition(
    endpoint: str,
) -> None:
    sfn = client(endpoint)

    def machine(result: str, seconds: int = 0) -> str:
        return json.dumps({
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": seconds, "Next": "P"},
                "P": {"Type": "Pass", "Result": result, "End": True},
            },
        })  # fmt: skip

    arn = sfn.create_state_machine(
        name="versioned", definition=machine("one", 1), roleArn=ROLE, publish=True
    )["stateMachineArn"]
    first = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in first] == [arn + ":1"]
    running = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    sfn.update_state_machine(stateMachineArn=arn, definition=machine("two"))
    assert json.loads(wait_status(sfn, running, "SUCCEEDED")["output"]) == "one"
    later = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    assert json.loads(wait_status(sfn, later, "SUCCEEDED")["output"]) == "two"
    two = sfn.publish_state_machine_version(stateMachineArn=arn, description="second")
    assert two["stateMachineVersionArn"] == arn + ":2"
    alias = sfn.create_state_machine_alias(
        name="live", routingConfiguration=[{"stateMachineVersionArn": arn + ":1", "weight": 100}]
    )["stateMachineAliasArn"]
    assert sfn.describe_state_machine_alias(stateMachineAliasArn=alias)["name"] == "live"
    on_alias = sfn.start_execution(stateMachineArn=alias)["executionArn"]
    assert json.loads(wait_status(sfn, on_alias, "SUCCEEDED")["output"]) == "one"
    described = sfn.describe_state_machine(stateMachineArn=arn + ":2")
    assert json.loads(described["definition"])["States"]["P"]["Result"] == "two"


def test_redrive_runs_a_failed_execution_again_from_the_failed_state(endpoint: str) -> None:
    sfn = client(endpoint)
    definition = {
        "StartAt": "First",
        "States": {
            "First": {
                "Type": "Task",
                "Resource": "double",
                "ResultPath": "$.first",
                "Next": "Second",
            },
            "Second": {"Type": "Task", "Resource": "double", "InputPath": "$.next", "End": True},
        },
    }
    arn = sfn.create_state_machine(
        name="redriven", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    execution = sfn.start_execution(
        stateMachineArn=arn, input=json.dumps({"n": 1, "next": {"n": 13}})
    )["executionArn"]
    failed = wait_status(sfn, execution, "FAILED")
    assert failed["error"] == "ValueError"
    with pytest.raises(ClientError) as running:
        sfn.redrive_execution(executionArn=arn.replace("stateMachine", "execution") + ":x")
    assert running.value.response["Error"]["Code"] == "ExecutionDoesNotExist"
    sfn.redrive_execution(executionArn=execution)
    again = wait_status(sfn, execution, "FAILED")  # 13 is still unlucky
    events = sfn.get_execution_history(executionArn=execution)["events"]
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"] == "TaskStateEntered"
    ]
    assert entered == ["First", "Second"]  # First ran once: only Second ran again
    assert again["error"] == "ValueError"


def test_test_state_shows_the_catch_a_mocked_error_takes(endpoint: str) -> None:
    sfn = client(endpoint)
    state = {
        "Type": "Task",
        "Resource": "double",
        "InputPath": "$.order",
        "Catch": [{"ErrorEquals": ["Declined"], "ResultPath": "$.problem", "Next": "Apologise"}],
        "Next": "Ship",
    }
    answer = sfn.test_state(
        definition=json.dumps(state), input='{"order": {"n": 1}}', inspectionLevel="TRACE",
        mock={"errorOutput": {"error": "Declined", "cause": "card refused"}},
    )  # fmt: skip
    assert answer["status"] == "CAUGHT_ERROR"
    assert answer["nextState"] == "Apologise"
    assert (answer["error"], answer["cause"]) == ("Declined", "card refused")
    assert json.loads(answer["output"])["problem"] == {"Error": "Declined", "Cause": "card refused"}
    assert json.loads(answer["inspectionData"]["afterInputPath"]) == {"n": 1}
    assert answer["inspectionData"]["errorDetails"]["catchIndex"] == 0
    ran = sfn.test_state(
        definition=json.dumps(state), input='{"order": {"n": 4}}', inspectionLevel="DEBUG"
    )
    assert ran["status"] == "SUCCEEDED" and ran["nextState"] == "Ship"
    assert json.loads(ran["inspectionData"]["result"]) == {"n": 8}
    with pytest.raises(ClientError) as invalid:
        sfn.test_state(definition=json.dumps({"Type": "Task"}), input="{}")
    assert invalid.value.response["Error"]["Code"] == "InvalidDefinition"


def test_start_sync_execution_answers_an_express_machines_outcome(endpoint: str) -> None:
    sfn = client(endpoint)
    definition = {
        "StartAt": "D",
        "States": {"D": {"Type": "Task", "Resource": "double", "End": True}},
    }
    arn = sfn.create_state_machine(
        name="express", definition=json.dumps(definition), roleArn=ROLE, type="EXPRESS"
    )["stateMachineArn"]
    done = sfn.start_sync_execution(stateMachineArn=arn, input='{"n": 5}')
    assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"n": 10}
    failed = sfn.start_sync_execution(stateMachineArn=arn, input='{"n": 13}')
    assert failed["status"] == "FAILED" and failed["error"] == "ValueError"


def test_stop_execution_aborts_it_with_the_error_and_cause_given(endpoint: str) -> None:
    sfn = client(endpoint)
    waiting = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": True}}}
    arn = sfn.create_state_machine(name="stoppable", definition=json.dumps(waiting), roleArn=ROLE)[
        "stateMachineArn"
    ]
    execution = sfn.start_execution(stateMachineArn=arn)["executionArn"]
    wait_status(sfn, execution, "RUNNING")
    sfn.stop_execution(executionArn=execution, error="Operator", cause="not needed any more")
    stopped = wait_status(sfn, execution, "ABORTED")
    assert (stopped["error"], stopped["cause"]) == ("Operator", "not needed any more")
    last = sfn.get_execution_history(executionArn=execution, reverseOrder=True)["events"][0]
    assert last["type"] == "ExecutionAborted"
    assert last["executionAbortedEventDetails"] == {
        "error": "Operator",
        "cause": "not needed any more",
    }
