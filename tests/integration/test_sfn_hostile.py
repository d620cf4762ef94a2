"""Hostile input to the Step Functions API of a running ``statekeeper serve`` and to
``statekeeper sfn``: every bad request gets a 4xx in AWS's shape ({"__type",
"message"}) naming what is wrong, never a 5xx, a traceback or a hang; a refused
request changes nothing; an execution with hostile content fails with a States error;
no secret appears in an answer or in the server's log, and a runaway expression holds
neither the server's event loop nor its other executions."""

from __future__ import annotations

import base64
import datetime
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from statekeeper.workflows.tokens import CallbackTarget, issue
from tests.integration.cli_support import one_line_error, serving, statekeeper

ROOT = Path(__file__).parents[2]
TOKEN = "sfn-hostile-token-0123456789abcdef"
KEY, SECRET = "AKIASTATEKEEPERHOSTILE", "a-hostile-secret-access-key"
CALLBACK_SECRET = "sfn-hostile-callback-secret-0123456789"
SECRETS = (TOKEN, SECRET, CALLBACK_SECRET)
PLACE = "arn:aws:states:us-east-1:000000000000"
MACHINE = f"{PLACE}:stateMachine:hostile"
EXECUTION = f"{MACHINE.replace('stateMachine', 'execution')}:done"
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
DEEP = "[" * 100_000 + "]" * 100_000
KIB = 1024


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@dataclass
class Server:
    url: str
    log: Path
    http: httpx.Client  # one connection pool: a client per request costs an SSL context

    def post(self, headers: Any, content: bytes, timeout: float = 15) -> httpx.Response:
        return self.http.post(self.url + "/", headers=headers, content=content, timeout=timeout)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A ``statekeeper serve`` with the API token, an AWS key and a callback secret;
    at the end its log holds no traceback and no secret."""
    where = tmp_path_factory.mktemp("sfn-hostile")
    log = where / "serve.log"
    env = {
        "SFN_DB_URL": f"sqlite:///{where / 'sfn.db'}",
        "STATEKEEPER_API_TOKEN": TOKEN,
        "STATEKEEPER_CALLBACK_SECRET": CALLBACK_SECRET,
        "STATEKEEPER_AWS_CREDENTIALS": f"{KEY}:{SECRET}",
    }
    with serving("sfn_app:app", env, log) as url, httpx.Client() as http:
        yield Server(url, log, http)
    text = log.read_text(errors="replace")
    for secret in SECRETS:
        assert secret not in text


def call(
    server: Server,
    action: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15,
) -> httpx.Response:
    """POST one action with the bearer token; no answer may carry a secret."""
    sent = {"Authorization": f"Bearer {TOKEN}", "X-Amz-Target": f"AWSStepFunctions.{action}",
            "Content-Type": "application/x-amz-json-1.0", **(headers or {})}  # fmt: skip
    content = raw if raw is not None else json.dumps({} if body is None else body).encode()
    answer = server.post(sent, content, timeout)
    assert not any(secret in answer.text for secret in SECRETS)
    return answer


def ok(answer: httpx.Response) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def aws_error(answer: httpx.Response, status: int, code: str) -> str:
    """The message of an error answered as AWS answers it."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/x-amz-json-1.0"
    assert answer.headers["x-amzn-errortype"] == code
    body = answer.json()
    assert set(body) == {"__type", "message"}, body
    assert body["__type"] == f"com.amazonaws.states#{code}", body
    assert "Traceback" not in body["message"]
    return str(body["message"])


def create(server: Server, name: str, definition: Any, kind: str = "STANDARD") -> str:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    body = {"name": name, "definition": text, "type": kind}
    return str(ok(call(server, "CreateStateMachine", body))["stateMachineArn"])


def finished(server: Server, arn: str, limit: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        described: dict[str, Any] = ok(call(server, "DescribeExecution", {"executionArn": arn}))
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


def run(server: Server, name: str, definition: Any, input: Any = None) -> dict[str, Any]:
    """A STANDARD execution of a new machine ``name``, to its end."""
    machine = create(server, name, definition)
    body = {"stateMachineArn": machine, "input": json.dumps({} if input is None else input)}
    return finished(server, ok(call(server, "StartExecution", body))["executionArn"])


def run_sync(server: Server, name: str, definition: Any, input: Any = None) -> dict[str, Any]:
    """An EXPRESS execution of a new machine ``name``, answered by StartSyncExecution."""
    machine = create(server, name, definition, "EXPRESS")
    body = {"stateMachineArn": machine, "input": json.dumps({} if input is None else input)}
    return dict(ok(call(server, "StartSyncExecution", body, timeout=30)))


def held(server: Server, work: Callable[[], Any]) -> tuple[Any, float]:
    """What ``work`` gives, and the longest a /healthz request waited meanwhile: how
    long the server's event loop was held."""
    waits: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            started = time.monotonic()
            httpx.get(server.url + "/healthz", timeout=60)
            waits.append(time.monotonic() - started)
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.1)
        result = work()
    finally:
        stop.set()
        poller.join()
    return result, max(waits)


@pytest.fixture(scope="module")
def base(server: Server) -> None:
    """Machine ``hostile`` with version 1, alias ``live``, tag team=a and execution
    ``done`` (SUCCEEDED), which the tables' requests name."""
    create(server, "hostile", PASS)
    ok(call(server, "PublishStateMachineVersion", {"stateMachineArn": MACHINE}))
    route = [{"stateMachineVersionArn": MACHINE + ":1", "weight": 100}]
    ok(call(server, "CreateStateMachineAlias", {"name": "live", "routingConfiguration": route}))
    tags = {"resourceArn": MACHINE, "tags": [{"key": "team", "value": "a"}]}
    ok(call(server, "TagResource", tags))
    started = {"stateMachineArn": MACHINE, "name": "done"}
    assert (
        finished(server, ok(call(server, "StartExecution", started))["executionArn"])["status"]
        == "SUCCEEDED"
    )


# --- the request body and the operation -------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status", "code", "named"),
    [
        (DEEP.encode(), 400, "SerializationException", "nested deeper than 200 levels"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, 400, "SerializationException", "nested deeper"),
        (b"NaN", 400, "SerializationException", "NaN, which is not JSON"),
        (b'{"maxResults": Infinity}', 400, "SerializationException", "Infinity"),
        (b"\xff\xfe{}", 400, "SerializationException", "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", 400, "SerializationException", "byte order mark"),
        (b'{"name": "\\ud800"}', 400, "SerializationException", "lone surrogate"),
        (b'{"a": 1' + b"0" * 5000 + b"}", 400, "SerializationException", "digits"),
        (b"{", 400, "SerializationException", "is not JSON"),
        (b"   ", 400, "SerializationException", "is not JSON"),
        (b"[]", 400, "SerializationException", "is not a JSON object"),
        (b'"x"', 400, "SerializationException", "is not a JSON object"),
        (b"{}" + b" " * (3 * KIB * KIB), 413, "ValidationException", "larger than 2097152 bytes"),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "nan",
        "infinity",
        "utf16",
        "bom",
        "surrogate",
        "huge-int",
        "truncated",
        "blank",
        "array",
        "string",
        "3MiB",
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(
    server: Server, raw: bytes, status: int, code: str, named: str
) -> None:
    assert named in aws_error(call(server, "ListStateMachines", raw=raw), status, code)


@pytest.mark.parametrize(
    ("targets", "named"),
    [
        ([], "unknown operation (none)"),
        (["AWSStepFunctions.Nope"], "unknown operation AWSStepFunctions.Nope"),
        (["AWSStepFunctions."], "unknown operation AWSStepFunctions."),
        (["Other.ListStateMachines"], "unknown operation Other.ListStateMachines"),
        (["AWSStepFunctions." + "X" * 10_000], "unknown operation AWSStepFunctions.XXX"),
        (["AWSStepFunctions.ListStateMachines", "AWSStepFunctions.DeleteStateMachine"],
         "more than one X-Amz-Target"),
    ],
)  # fmt: skip
def test_the_operation_is_named_once_and_known(
    server: Server, targets: list[str], named: str
) -> None:
    headers = [("Authorization", f"Bearer {TOKEN}"), *(("X-Amz-Target", t) for t in targets)]
    answer = server.post(headers, b"{}")
    message = aws_error(answer, 400, "UnknownOperationException")
    assert named in message and len(message) < 200


# --- every field of every action ----------------------------------------------------------

V1, ALIAS = MACHINE + ":1", MACHINE + ":live"
DEFINITION_OVER_1MIB = json.dumps({"StartAt": "P", "States": {"P": {
    "Type": "Pass", "Result": "x" * (KIB * KIB), "End": True}}})  # fmt: skip
WAITS_FOR_TOKEN = json.dumps({"StartAt": "T", "States": {"T": {
    "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
    "Parameters": {"FunctionName": "ask"}, "End": True}}})  # fmt: skip
OTHER_PLACES = [
    ("arn:aws:states:eu-west-1:000000000000:stateMachine:hostile", "region 'eu-west-1'"),
    ("arn:aws:states:us-east-1:123456789012:stateMachine:hostile", "account '123456789012'"),
    ("arn:aws-cn:states:us-east-1:000000000000:stateMachine:hostile", "partition 'aws-cn'"),
    ("arn:aws:states:::stateMachine:hostile", "region ''"),
]
NOT_ARNS = [
    (None, "Invalid Arn: 'null'"),
    (5, "Invalid Arn: '5'"),
    ("", "Invalid Arn: ''"),
    ("not-an-arn", "Invalid Arn: 'not-an-arn'"),
    ("arn:aws:lambda:us-east-1:000000000000:function:hostile", "Invalid Arn"),
    (f"{PLACE}:activity:hostile", "Invalid Arn"),
    (f"{PLACE}:stateMachine:", "Invalid Arn"),
    (f"{PLACE}:stateMachine:hostile:", "Invalid Arn"),
    (f"{PLACE}:stateMachine:hostile:1:2", "Invalid Arn"),
    (f"{PLACE}:stateMachine:hostile:0", "Invalid Arn"),
    (f"{PLACE}:stateMachine:hostile:01", "Invalid Arn"),
    (f"{PLACE}:stateMachine:hostile:\u0661", "Invalid Arn"),  # an Arabic-Indic 1
    (f"{PLACE}:stateMachine:hostile:12345678901", "Invalid Arn"),
    (f"{PLACE}:stateMachine:hostile:" + "1" * 5000, "..."),
    (f"{PLACE}:stateMachine:h\u00e9", "Invalid Arn"),
    (f"{PLACE}:stateMachine:hostile\x00", "Invalid Arn"),
    ("arn:" + ":" * 10_000, "..."),
    (EXECUTION, "is an execution, not a state machine"),
]
CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # CreateStateMachine
    ("CreateStateMachine", {}, "InvalidName", "Invalid Name: 'null'"),
    ("CreateStateMachine", {"name": 5, "definition": PASS}, "InvalidName", "1-80 letters"),
    ("CreateStateMachine", {"name": "", "definition": PASS}, "InvalidName", "Invalid Name: ''"),
    ("CreateStateMachine", {"name": "a" * 81, "definition": PASS}, "InvalidName", "1-80"),
    ("CreateStateMachine", {"name": "caf\u00e9", "definition": PASS}, "InvalidName", "caf"),
    ("CreateStateMachine", {"name": "a\x00b", "definition": PASS}, "InvalidName", "a\x00b"),
    ("CreateStateMachine", {"name": "a:b", "definition": PASS}, "InvalidName", "'a:b'"),
    ("CreateStateMachine", {"name": "m\n", "definition": PASS}, "InvalidName", "Invalid Name"),
    ("CreateStateMachine", {"name": "m"}, "InvalidDefinition", "it is missing"),
    ("CreateStateMachine", {"name": "m", "definition": 5}, "InvalidDefinition", "missing"),
    ("CreateStateMachine", {"name": "m", "definition": "{"}, "InvalidDefinition",
     "INVALID_JSON_DESCRIPTION"),
    ("CreateStateMachine", {"name": "m", "definition": DEEP}, "InvalidDefinition",
     "nested deeper than 200 levels"),
    ("CreateStateMachine", {"name": "m", "definition": "NaN"}, "InvalidDefinition", "NaN"),
    ("CreateStateMachine", {"name": "m", "definition": "[]"}, "InvalidDefinition",
     "SCHEMA_VALIDATION_FAILED"),
    ("CreateStateMachine", {"name": "m", "definition": DEFINITION_OVER_1MIB},
     "InvalidDefinition", "over 1048576 bytes"),
    ("CreateStateMachine", {"name": "m", "definition": WAITS_FOR_TOKEN, "type": "EXPRESS"},
     "InvalidDefinition", ".waitForTaskToken integration at /States/T/Resource"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "type": "X"},
     "ValidationException", "type must be STANDARD or EXPRESS, got X"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "type": ["EXPRESS"]},
     "ValidationException", "type must be"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "roleArn": 5},
     "ValidationException", "roleArn is a string"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "description": "d" * 5000},
     "ValidationException", "description is a string of at most 2048"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "tags": "team"},
     "ValidationException", "tags is a list"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "tags": [5]},
     "ValidationException", "a tag is"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "tags": [{"key": ""}]},
     "ValidationException", "1-128 characters"),
    ("CreateStateMachine", {"name": "m", "definition": PASS,
                            "tags": [{"key": "k", "value": "v" * 257}]},
     "ValidationException", "at most 256 characters"),
    ("CreateStateMachine", {"name": "m", "definition": PASS,
                            "tags": [{"key": f"k{i}", "value": ""} for i in range(51)]},
     "ValidationException", "at most 50"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "loggingConfiguration": "x"},
     "ValidationException", "loggingConfiguration is an object"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "tracingConfiguration": 5},
     "ValidationException", "tracingConfiguration is an object"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "publish": "yes"},
     "ValidationException", "publish is true or false, got yes"),
    ("CreateStateMachine", {"name": "m", "definition": PASS, "publish": True,
                            "versionDescription": 5},
     "ValidationException", "versionDescription is a string"),
    # Describe, update, delete, publish, list
    ("DescribeStateMachine", {"stateMachineArn": f"{PLACE}:stateMachine:none"},
     "StateMachineDoesNotExist", "stateMachine:none"),
    ("DescribeStateMachine", {"stateMachineArn": MACHINE + ":7"}, "ResourceNotFound",
     "hostile:7"),
    ("DescribeStateMachine", {"stateMachineArn": ALIAS}, "ValidationException",
     "DescribeStateMachineAlias"),
    ("UpdateStateMachine", {"stateMachineArn": V1}, "ValidationException",
     "only a state machine"),
    ("UpdateStateMachine", {"stateMachineArn": MACHINE, "loggingConfiguration": 5},
     "ValidationException", "loggingConfiguration is an object"),
    ("UpdateStateMachine", {"stateMachineArn": MACHINE, "publish": 1},
     "ValidationException", "publish is true or false"),
    ("UpdateStateMachine", {"stateMachineArn": MACHINE, "definition": "{"},
     "InvalidDefinition", "INVALID_JSON_DESCRIPTION"),
    ("DeleteStateMachine", {"stateMachineArn": EXECUTION}, "InvalidArn", "is an execution"),
    ("DeleteStateMachine", {"stateMachineArn": ALIAS}, "ValidationException",
     "DeleteStateMachineAlias"),
    ("PublishStateMachineVersion", {"stateMachineArn": V1}, "ValidationException",
     "published of a state machine"),
    ("PublishStateMachineVersion", {"stateMachineArn": MACHINE, "revisionId": "old"},
     "ConflictException", "changed since that revision"),
    ("ListStateMachineVersions", {"stateMachineArn": EXECUTION}, "InvalidArn",
     "is an execution"),
    *[
        ("ListStateMachines", {"maxResults": bad}, "ValidationException",
         "maxResults is an integer from 1 to 1000")
        for bad in (-1, 1001, 10**9, True, 1.5, "5", [1])
    ],
    *[
        ("ListStateMachines", {"nextToken": bad}, "InvalidToken", "not one this service gave")
        for bad in (5, "x" * 2000, "a b", "\x00", "../x", "", "hostile:1")
    ],
    ("ListStateMachineVersions", {"stateMachineArn": MACHINE, "nextToken": "x:y"},
     "InvalidToken", "not one this service gave"),
    # Aliases
    ("CreateStateMachineAlias", {"name": 5}, "InvalidName", "an alias name is 1-80"),
    ("CreateStateMachineAlias", {"name": "123"}, "ValidationException", "cannot be a number"),
    ("CreateStateMachineAlias", {"name": "a", "routingConfiguration": "x"},
     "ValidationException", "routes to one or two versions"),
    ("CreateStateMachineAlias", {"name": "a", "routingConfiguration": [
        {"stateMachineVersionArn": V1, "weight": True}]},
     "ValidationException", "weight 0-100"),
    ("CreateStateMachineAlias", {"name": "a", "routingConfiguration": [
        {"stateMachineVersionArn": V1.replace("us-east-1", "eu-west-1"), "weight": 100}]},
     "InvalidArn", "region 'eu-west-1'"),
    ("CreateStateMachineAlias", {"name": "live", "routingConfiguration": [
        {"stateMachineVersionArn": V1, "weight": 100}]},
     "ConflictException", "exists already"),
    ("DescribeStateMachineAlias", {"stateMachineAliasArn": MACHINE}, "InvalidArn",
     "not the ARN of an alias"),
    # Tags
    ("TagResource", {"resourceArn": V1, "tags": []}, "InvalidArn",
     "tags belong to a state machine, not to a version"),
    ("TagResource", {"resourceArn": EXECUTION, "tags": []}, "InvalidArn",
     "not to an execution"),
    ("TagResource", {"resourceArn": MACHINE, "tags": [{"value": "v"}]},
     "ValidationException", "a tag is"),
    ("TagResource", {"resourceArn": MACHINE,
                     "tags": [{"key": f"k{i}", "value": ""} for i in range(50)]},
     "TooManyTags", "at most 50 tags"),
    ("UntagResource", {"resourceArn": MACHINE, "tagKeys": "team"}, "ValidationException",
     "tagKeys is a list"),
    ("UntagResource", {"resourceArn": MACHINE, "tagKeys": [5]}, "ValidationException",
     "tagKeys is a list"),
    ("UntagResource", {"resourceArn": MACHINE}, "ValidationException", "tagKeys is a list"),
    ("ListTagsForResource", {"resourceArn": ALIAS}, "InvalidArn", "not to an alias"),
    # Executions
    ("StartExecution", {"stateMachineArn": MACHINE, "name": ""}, "InvalidName",
     "an execution name is 1-80"),
    ("StartExecution", {"stateMachineArn": MACHINE, "name": 5}, "InvalidName", "'5'"),
    ("StartExecution", {"stateMachineArn": MACHINE, "name": "a:b"}, "InvalidName", "'a:b'"),
    ("StartExecution", {"stateMachineArn": MACHINE, "name": "e" * 81}, "InvalidName", "1-80"),
    ("StartExecution", {"stateMachineArn": MACHINE, "name": "done"},
     "ExecutionAlreadyExists", "execution:hostile:done"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": 5}, "InvalidExecutionInput",
     "JSON text of at most 256 KiB"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": "{"}, "InvalidExecutionInput",
     "the input is not JSON"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": ""}, "InvalidExecutionInput",
     "the input is not JSON"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": "NaN"}, "InvalidExecutionInput",
     "NaN, which is not JSON"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": "[1e999]"},
     "InvalidExecutionInput", "beyond the range of a 64-bit float"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": '"\\udc00"'},
     "InvalidExecutionInput", "lone surrogate"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": "[" * 201 + "]" * 201},
     "InvalidExecutionInput", "nested deeper than 200 levels"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": DEEP},
     "InvalidExecutionInput", "nested deeper than 200 levels"),
    ("StartExecution", {"stateMachineArn": MACHINE, "input": "1" * 5000},
     "InvalidExecutionInput", "digits"),
    ("StartExecution", {"stateMachineArn": MACHINE,
                        "input": json.dumps("x" * (256 * KIB - 1))},
     "InvalidExecutionInput", "at most 256 KiB"),
    ("StartExecution", {"stateMachineArn": EXECUTION}, "InvalidArn", "is an execution"),
    ("StartSyncExecution", {"stateMachineArn": MACHINE}, "StateMachineTypeNotSupported",
     "EXPRESS state machines only"),
    ("DescribeExecution", {"executionArn": MACHINE}, "InvalidArn", "is not an execution"),
    ("DescribeExecution", {"executionArn": EXECUTION[:-4] + "nope"}, "ExecutionDoesNotExist",
     "execution:hostile:nope"),
    ("DescribeExecution", {"executionArn": EXECUTION.replace("us-east-1", "eu-west-1")},
     "InvalidArn", "region 'eu-west-1'"),
    ("DescribeExecution", {"executionArn": EXECUTION + ":x"}, "InvalidArn", "(executionArn)"),
    ("ListExecutions", {"stateMachineArn": MACHINE, "statusFilter": "running"},
     "ValidationException", "statusFilter is one of RUNNING"),
    ("ListExecutions", {"stateMachineArn": MACHINE, "maxResults": -1},
     "ValidationException", "maxResults is an integer from 1 to 1000"),
    ("ListExecutions", {"stateMachineArn": ALIAS}, "ValidationException",
     "executions of a machine or a version"),
    *[
        ("ListExecutions", {"stateMachineArn": MACHINE, "nextToken": bad}, "InvalidToken",
         "not one this service gave")
        for bad in (5, "", "zzz", "!!!", b64("[1,2,3]"), b64('"x"'), b64('["a","b"]'),
                    b64('[NaN,"x"]'), b64('[1e999,"x"]'), b64('[true,"x"]'),
                    b64("[" * 700 + "]" * 700), "x" * 2000, b64("\u00e9"))
    ],
    *[
        ("GetExecutionHistory", {"executionArn": EXECUTION, "nextToken": bad}, "InvalidToken",
         "not one this service gave")
        for bad in (5, "zzz", b64("-5"), b64(" 1 "), b64("\u0661"), b64("1e3"), b64("1" * 500))
    ],
    ("GetExecutionHistory", {"executionArn": EXECUTION, "reverseOrder": "yes"},
     "ValidationException", "reverseOrder is true or false"),
    ("GetExecutionHistory", {"executionArn": EXECUTION, "includeExecutionData": "no"},
     "ValidationException", "includeExecutionData is true or false"),
    ("GetExecutionHistory", {"executionArn": EXECUTION, "maxResults": 1001},
     "ValidationException", "maxResults is an integer from 1 to 1000"),
    ("StopExecution", {"executionArn": EXECUTION, "error": 5}, "ValidationException",
     "error is a string of at most 256"),
    ("StopExecution", {"executionArn": EXECUTION, "cause": ["x"]}, "ValidationException",
     "cause is a string of at most 32768"),
    ("RedriveExecution", {"executionArn": EXECUTION}, "ExecutionNotRedrivable",
     "it is SUCCEEDED"),
    # Task tokens
    *[
        (action, {"taskToken": bad, "output": "{}"}, "InvalidToken", "1-2048 characters")
        for action in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat")
        for bad in (None, 5, "", "t" * 2049)
    ],
    *[
        (action, {"taskToken": forged, "output": "{}"}, "TaskDoesNotExist", "token is unknown")
        for action in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat")
        for forged in ("forged", "a.b", "\u00e9\x00", "t" * 2048, "e30." + "0" * 64)
    ],
    ("SendTaskSuccess", {"taskToken": "forged"}, "InvalidOutput", "JSON text of at most"),
    ("SendTaskSuccess", {"taskToken": "forged", "output": "{"}, "InvalidOutput",
     "the output is not JSON"),
    ("SendTaskSuccess", {"taskToken": "forged", "output": "NaN"}, "InvalidOutput", "NaN"),
    ("SendTaskSuccess", {"taskToken": "forged", "output": "[" * 1000 + "]" * 1000},
     "InvalidOutput", "nested deeper than 200 levels"),
    ("SendTaskSuccess", {"taskToken": "forged", "output": '"\\ud800"'}, "InvalidOutput",
     "lone surrogate"),
    ("SendTaskSuccess", {"taskToken": "forged", "output": json.dumps("x" * 300 * KIB)},
     "InvalidOutput", "at most 256 KiB"),
    ("SendTaskFailure", {"taskToken": "forged", "error": "e" * 257}, "ValidationException",
     "error is a string of at most 256"),
    ("SendTaskFailure", {"taskToken": "forged", "error": 5}, "ValidationException",
     "error is a string"),
    ("SendTaskFailure", {"taskToken": "forged", "cause": "c" * 40_000},
     "ValidationException", "cause is a string of at most 32768"),
    # ValidateStateMachineDefinition
    ("ValidateStateMachineDefinition", {"definition": 5}, "ValidationException",
     "definition is the definition as JSON text"),
    *[
        ("ValidateStateMachineDefinition", {"definition": PASS, "maxResults": bad},
         "ValidationException", "maxResults is an integer from 1 to 100")
        for bad in ("x", -1, 101, True)
    ],
    # TestState
    ("TestState", {}, "ValidationException", "definition is required"),
    ("TestState", {"definition": DEEP}, "InvalidDefinition", "nested deeper than 200"),
    ("TestState", {"definition": "{"}, "InvalidDefinition", "definition is not JSON"),
    ("TestState", {"definition": "[]"}, "InvalidDefinition", "a state is a JSON object"),
    ("TestState", {"definition": PASS, "stateName": "B"}, "ValidationException",
     "State not found in definition: 'B'"),
    ("TestState", {"definition": PASS, "stateName": 5}, "ValidationException",
     "stateName must be a string"),
    ("TestState", {"definition": WAITS_FOR_TOKEN, "stateName": "T"}, "ValidationException",
     "tested with a mock of its result"),
]  # fmt: skip
TASK = json.dumps({"Type": "Task", "Resource": "double", "End": True})
PASS_STATE = json.dumps({"Type": "Pass", "End": True})
MOCKS: list[tuple[dict[str, Any], str]] = [
    ({"mock": "x"}, "mock must be an object"),
    ({"mock": {"result": 5}}, "result must be a string"),
    ({"mock": {"result": "{"}}, "result is not JSON"),
    ({"mock": {"result": DEEP}}, "result is nested deeper than 200 levels"),
    ({"mock": {"result": "NaN"}}, "result holds NaN"),
    ({"mock": {"result": "1", "errorOutput": {"error": "E"}}}, "a result or an errorOutput"),
    ({"mock": {"errorOutput": "x"}}, "errorOutput must be an object"),
    ({"mock": {"errorOutput": {"error": 5}}}, "mock.errorOutput has an error"),
    ({"mock": {"errorOutput": {}}}, "mock.errorOutput has an error"),
    ({"inspectionLevel": "X"}, "inspectionLevel must be one of INFO, DEBUG, TRACE"),
    ({"inspectionLevel": 5}, "inspectionLevel must be a string"),
    ({"stateConfiguration": 5}, "stateConfiguration must be an object"),
    ({"stateConfiguration": {"retrierRetryCount": -1}}, "retrierRetryCount cannot be negative"),
    ({"stateConfiguration": {"retrierRetryCount": "1"}}, "retrierRetryCount must be an integer"),
    ({"input": 5}, "input must be a string"),
    ({"input": "NaN"}, "input holds NaN"),
    ({"input": DEEP}, "input is nested deeper than 200 levels"),
    ({"variables": "[]"}, "variables must be the JSON text of an object"),
    ({"context": "5"}, "context must be the JSON text of an object"),
    ({"roleArn": 5}, "roleArn must be a string"),
]
CASES += [("TestState", {"definition": TASK, **extra}, "ValidationException", named)
          for extra, named in MOCKS]  # fmt: skip
CASES += [("TestState", {"definition": PASS_STATE, "mock": {"result": "1"}}, "ValidationException",
           "a mock is taken by a Task state here, not by a Pass state")]  # fmt: skip
for arn, named in NOT_ARNS + OTHER_PLACES:
    CASES += [
        ("DescribeStateMachine", {"stateMachineArn": arn}, "InvalidArn", named),
        ("StartExecution", {"stateMachineArn": arn}, "InvalidArn", named),
        ("TagResource", {"resourceArn": arn, "tags": []}, "InvalidArn",
         "not to an execution" if arn == EXECUTION else named),
    ]  # fmt: skip


@pytest.mark.usefixtures("base")
@pytest.mark.parametrize(("action", "body", "code", "named"), CASES)
def test_each_field_of_each_action_is_checked(
    server: Server, action: str, body: dict[str, Any], code: str, named: str
) -> None:
    message = aws_error(call(server, action, body), 400, code)
    if named == "...":  # the value is too long to be shown whole: it is cut short
        assert message.startswith("Invalid Arn: '") and "...'" in message
    else:
        assert named in message, message
    assert len(message) < 1500


def test_the_inputs_of_the_limits_are_taken_whole(server: Server) -> None:
    """Just within the limits: names of 80 characters, an input of 256 KiB with control
    and non-BMP characters, a tag of the longest key and value: all kept whole."""
    text = json.dumps({"s": "\x01\u2028\U0001f600" + "x" * (256 * KIB - 40)})
    assert 256 * KIB - 30 < len(text.encode()) <= 256 * KIB
    machine = create(server, "m" * 80, PASS)
    body = {"stateMachineArn": machine, "name": "e" * 80, "input": text}
    done = finished(server, ok(call(server, "StartExecution", body))["executionArn"])
    assert done["status"] == "SUCCEEDED" and done["output"] == done["input"]
    assert json.loads(done["output"]) == json.loads(text)
    tags = [{"key": "k" * 128, "value": "\u00e9" * 256}]
    ok(call(server, "TagResource", {"resourceArn": machine, "tags": tags}))
    assert ok(call(server, "ListTagsForResource", {"resourceArn": machine}))["tags"] == tags


# --- a refused request changes nothing ----------------------------------------------------


def test_a_refused_create_stores_nothing(server: Server) -> None:
    for extra in ({"publish": "yes"}, {"publish": True, "versionDescription": 5},
                  {"loggingConfiguration": [1]}, {"tags": [{"key": "k", "value": 5}]}):  # fmt: skip
        body = {"name": "half-made", "definition": PASS, **extra}
        aws_error(call(server, "CreateStateMachine", body), 400, "ValidationException")
        arn = {"stateMachineArn": f"{PLACE}:stateMachine:half-made"}
        aws_error(call(server, "DescribeStateMachine", arn), 400, "StateMachineDoesNotExist")


def test_a_refused_update_changes_nothing(server: Server) -> None:
    machine = create(server, "unchanged", PASS)
    before = ok(call(server, "DescribeStateMachine", {"stateMachineArn": machine}))
    other = json.dumps({"StartAt": "Q", "States": {"Q": {"Type": "Succeed"}}})
    for extra in ({"definition": other, "roleArn": 5},
                  {"definition": other, "publish": True, "versionDescription": 5},
                  {"definition": other, "loggingConfiguration": "x"},
                  {"definition": other, "publish": "yes"}):  # fmt: skip
        body = {"stateMachineArn": machine, **extra}
        aws_error(call(server, "UpdateStateMachine", body), 400, "ValidationException")
    after = ok(call(server, "DescribeStateMachine", {"stateMachineArn": machine}))
    assert after == before
    versions = ok(call(server, "ListStateMachineVersions", {"stateMachineArn": machine}))
    assert versions["stateMachineVersions"] == []


def test_untagging_by_a_string_removes_no_tag(server: Server) -> None:
    machine = create(server, "tagged", PASS)
    tags = [{"key": "a", "value": "1"}, {"key": "team", "value": "2"}]
    ok(call(server, "TagResource", {"resourceArn": machine, "tags": tags}))
    body = {"resourceArn": machine, "tagKeys": "team"}  # "a" in "team" removed tag "a"
    aws_error(call(server, "UntagResource", body), 400, "ValidationException")
    assert ok(call(server, "ListTagsForResource", {"resourceArn": machine}))["tags"] == tags


# --- task tokens ---------------------------------------------------------------------------


def waiting_token(server: Server, execution: str) -> str:
    for _ in range(300):
        events = ok(call(server, "GetExecutionHistory", {"executionArn": execution}))["events"]
        if any(event["type"] == "TaskSubmitted" for event in events):
            scheduled = [e for e in events if e["type"] == "TaskScheduled"][-1]
            parameters = json.loads(scheduled["taskScheduledEventDetails"]["parameters"])
            return str(parameters["Payload"]["token"])
        time.sleep(0.02)
    raise AssertionError("the task never waited for its token")


def waiting_machine(timeout: int | None = None) -> dict[str, Any]:
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "ask", "Payload": {"token.$": "$$.Task.Token"}},
            "End": True}  # fmt: skip
    if timeout is not None:
        task["TimeoutSeconds"] = timeout
    return {"StartAt": "Ask", "States": {"Ask": task}}


def test_task_tokens_forged_answered_or_expired_are_refused(server: Server) -> None:
    machine = create(server, "tokens", waiting_machine())
    start = {"stateMachineArn": machine, "name": "one"}
    execution = ok(call(server, "StartExecution", start))["executionArn"]
    token = waiting_token(server, execution)
    payload, _, signature = token.partition(".")
    other_secret = "another-secret-of-32-characters!"
    forged = [
        issue(other_secret, CallbackTarget("default", "tokens:one", "x", None)),
        issue(CALLBACK_SECRET, CallbackTarget("other-namespace", "tokens:one", "x", None)),
        payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + signature,
        payload + "." + signature[::-1],
        token + "x",
        token.upper(),
    ]  # fmt: skip
    for action in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
        for bad in forged:
            body = {"taskToken": bad, "output": "{}"}
            assert "unknown" in aws_error(call(server, action, body), 400, "TaskDoesNotExist")
    assert finished(server, execution, 0)["status"] == "RUNNING"  # none of them reached it
    ok(call(server, "SendTaskHeartbeat", {"taskToken": token}))
    error, cause = "Refus\u00e9\x07", "line\nbreak \U0001f600 \x00 end"
    ok(call(server, "SendTaskFailure", {"taskToken": token, "error": error, "cause": cause}))
    failed = finished(server, execution)
    assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", error, cause)
    for action in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat"):
        answered = call(server, action, {"taskToken": token, "output": "{}"})
        assert "has been answered or has ended" in aws_error(answered, 400, "TaskTimedOut")

    expiring = create(server, "expiring", waiting_machine(timeout=1))
    start = {"stateMachineArn": expiring, "name": "late"}
    execution = ok(call(server, "StartExecution", start))["executionArn"]
    token = waiting_token(server, execution)
    timed_out = finished(server, execution)
    assert (timed_out["status"], timed_out["error"]) == ("FAILED", "States.Timeout")
    late = call(server, "SendTaskSuccess", {"taskToken": token, "output": "{}"})
    assert "has been answered or has ended" in aws_error(late, 400, "TaskTimedOut")


# --- signatures ----------------------------------------------------------------------------


def signed(
    server: Server,
    body: bytes = b"{}",
    *,
    service: str = "states",
    secret: str = SECRET,
    ago: float = 0.0,
    sent_body: bytes | None = None,
) -> httpx.Response:
    """ListStateMachines signed by botocore (as boto3 signs it), ``ago`` seconds ago."""
    request = AWSRequest(
        "POST", server.url + "/", data=body,
        headers={"X-Amz-Target": "AWSStepFunctions.ListStateMachines",
                 "Content-Type": "application/x-amz-json-1.0"},
    )  # fmt: skip
    moment = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    moment -= datetime.timedelta(seconds=ago)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("botocore.auth.get_current_datetime", lambda: moment)
        SigV4Auth(Credentials(KEY, secret), service, "us-east-1").add_auth(request)
    headers = dict(request.headers.items())
    content = body if sent_body is None else sent_body
    answer = server.post(headers, content)
    assert not any(s in answer.text for s in SECRETS)
    return answer


def test_requests_signed_by_the_key_are_served_and_others_refused(server: Server) -> None:
    assert "stateMachines" in ok(signed(server))
    assert "stateMachines" in ok(signed(server, ago=10 * 60))
    refused = [
        (signed(server, ago=20 * 60), "more than 15 minutes from now"),
        (signed(server, ago=-20 * 60), "more than 15 minutes from now"),
        (signed(server, ago=3 * 365 * 86400), "more than 15 minutes from now"),
        (signed(server, service="s3"), "scoped to service 's3', not 'states'"),
        (signed(server, secret="not-the-secret-key"), "signature does not match"),
        (signed(server, sent_body=b'{"maxResults": 1}'), "signature does not match"),
    ]
    for answer, named in refused:
        assert named in aws_error(answer, 403, "AccessDeniedException")


def authorization(key: str = KEY, day: str | None = None, signed: str = "host;x-amz-date") -> str:
    day = day or time.strftime("%Y%m%d", time.gmtime())
    return (f"AWS4-HMAC-SHA256 Credential={key}/{day}/us-east-1/states/aws4_request, "
            f"SignedHeaders={signed}, Signature={'0' * 64}")  # fmt: skip


NOW = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({}, "not signed with AWS Signature Version 4"),
        ({"Authorization": "garbage"}, "not signed with AWS Signature Version 4"),
        ({"Authorization": "AWS4-HMAC-SHA256 Credential=" + "A" * 12_000},
         "not signed with AWS Signature Version 4"),
        ({"Authorization": authorization().replace(", SignedHeaders=host;x-amz-date", "")},
         "not signed with AWS Signature Version 4"),
        ({"Authorization": authorization().replace("Signature=" + "0" * 64, "Signature=zz")},
         "not signed with AWS Signature Version 4"),
        ({"Authorization": authorization("AKIAUNKNOWN"), "X-Amz-Date": NOW},
         "the access key id 'AKIAUNKNOWN' is not one this service knows"),
        ({"Authorization": authorization("K" * 5000), "X-Amz-Date": NOW}, "KKK...'"),
        ({"Authorization": authorization()}, "no valid X-Amz-Date"),
        ({"Authorization": authorization(), "X-Amz-Date": "yesterday"}, "no valid X-Amz-Date"),
        ({"Authorization": authorization(day="00000101"), "X-Amz-Date": "00000101T000000Z"},
         "no valid X-Amz-Date"),
        ({"Authorization": authorization(day="99991231"), "X-Amz-Date": "99991231T235959Z"},
         "more than 15 minutes from now"),
        ({"Authorization": authorization(day="20200101"), "X-Amz-Date": NOW},
         "credential date 20200101 is not the day of its X-Amz-Date"),
        ({"Authorization": authorization(signed="host;x-amz-date;x-not-sent"),
          "X-Amz-Date": NOW}, "signed headers are missing"),
        ({"Authorization": authorization(signed="x-amz-date"), "X-Amz-Date": NOW},
         "signed headers are missing"),
        ({"Authorization": authorization(signed="a;" * 2000 + "host"), "X-Amz-Date": NOW},
         "signed headers are missing"),
        ({"Authorization": authorization(), "X-Amz-Date": NOW, "X-Amz-Content-Sha256": "ab"},
         "body does not match its signed hash"),
        ({"Authorization": authorization(), "X-Amz-Date": NOW}, "signature does not match"),
        ({"Authorization": "Bearer not-the-token"}, "invalid bearer token"),
        ({"Authorization": "Bearer " + TOKEN[:-1]}, "invalid bearer token"),
    ],
)  # fmt: skip
def test_malformed_signatures_are_refused_by_name(
    server: Server, headers: dict[str, str], named: str
) -> None:
    sent = {"X-Amz-Target": "AWSStepFunctions.ListStateMachines", **headers}
    answer = server.post(sent, b"{}")
    message = aws_error(answer, 403, "AccessDeniedException")
    assert named in message and len(message) < 300


def test_a_bearer_token_of_other_bytes_is_refused(server: Server) -> None:
    for value in (
        "Bearer \u00e9".encode(),
        b"Bearer \xff\xfe",
        b"Bearer " + TOKEN.encode() + b"\x80",
    ):
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n"
                b"X-Amz-Target: AWSStepFunctions.ListStateMachines\r\nAuthorization: "
                + value + b"\r\n\r\n{}"
            )  # fmt: skip
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
        assert b"invalid bearer token" in reply


# --- hostile definitions and executions ---------------------------------------------------


def nested_parallels(levels: int) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Pass", "End": True}
    for _ in range(levels):
        state = {"Type": "Parallel", "Branches": [{"StartAt": "S", "States": {"S": state}}],
                 "End": True}  # fmt: skip
    return {"StartAt": "S", "States": {"S": state}}


def pass_through(count: int) -> dict[str, Any]:
    states: dict[str, Any] = {f"S{i}": {"Type": "Pass", "Next": f"S{i + 1}"} for i in range(count)}
    states[f"S{count}"] = {"Type": "Succeed"}
    return {"StartAt": "S0", "States": states}


def wide_choice(rules: int) -> dict[str, Any]:
    choices = [{"Variable": "$.x", "NumericEquals": i, "Next": "Done"} for i in range(rules)]
    return {"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": choices,
            "Default": "Done"}, "Done": {"Type": "Succeed"}}}  # fmt: skip


def one(state: dict[str, Any], language: str = "JSONPath") -> dict[str, Any]:
    return {"QueryLanguage": language, "StartAt": "S", "States": {"S": {**state, "End": True}}}


def test_definitions_at_the_limits_run_and_past_them_are_refused(server: Server) -> None:
    # 49 nested Parallel states reach the nesting limit of 200 levels; they run.
    assert run(server, "nested-49", nested_parallels(49))["status"] == "SUCCEEDED"
    assert run_sync(server, "nested-49x", nested_parallels(49))["status"] == "SUCCEEDED"
    too_deep = {"name": "nested-50", "definition": json.dumps(nested_parallels(50))}
    message = aws_error(call(server, "CreateStateMachine", too_deep), 400, "InvalidDefinition")
    assert "nested deeper than 200 levels" in message
    # Thousands of states, and a Choice of 15,000 rules (under 1 MiB).
    started = time.monotonic()
    assert run_sync(server, "long", pass_through(3000))["status"] == "SUCCEEDED"
    assert run_sync(server, "wide", wide_choice(15_000), {"x": -1})["status"] == "SUCCEEDED"
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("state", "input", "error", "named"),
    [
        (
            {"Type": "Wait", "SecondsPath": "$.s"},
            {"s": -5},
            "States.Runtime",
            "references a negative value: $.s == -5",
        ),
        (
            {"Type": "Wait", "SecondsPath": "$.s"},
            {"s": "soon"},
            "States.Runtime",
            "cannot be parsed as a long value",
        ),
        (
            {"Type": "Wait", "TimestampPath": "$.t"},
            {"t": "99999-12-31T00:00:00Z"},
            "States.Runtime",
            "not reference a valid ISO-8601",
        ),
        (
            {
                "Type": "Map",
                "ItemsPath": "$.x",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
            },
            {"x": 5},
            "States.Runtime",
            "Map state input must be an array but was: 5",
        ),
        (
            {"Type": "Pass", "Parameters": {"x.$": "States.ArrayRange(0, 1000000000, 1)"}},
            {},
            "States.IntrinsicFailure",
            "at most 1000 are allowed",
        ),
        (
            {"Type": "Pass", "Parameters": {"x.$": "States.Hash($.s, 'SHA-512')"}},
            {"s": "x" * 20_000},
            "States.IntrinsicFailure",
            "at most 10000 are allowed",
        ),
        (
            {"Type": "Pass", "Parameters": {"x.$": "States.StringToJson($.s)"}},
            {"s": "[" * 100_000 + "]" * 100_000},
            "States.Runtime",
            "nested too deeply",
        ),
        (
            {"Type": "Pass", "Output": "{% $pad('', 300000, 'x') %}"},
            {},
            "States.DataLimitExceeded",
            "exceeding the maximum number of bytes",
        ),
        (
            {"Type": "Pass", "Output": "{% $range(0, 100000000, 1) %}"},
            {},
            "States.QueryEvaluationError",
            "must not exceed 10000000",
        ),
        (
            {"Type": "Pass", "Output": "{% 1/0 %}"},
            {},
            "States.QueryEvaluationError",
            "Number out of range",
        ),
        (
            {"Type": "Pass", "Output": "{% $parse($states.input.s) %}"},
            {"s": "[" * 100_000 + "]" * 100_000},
            "States.Runtime",
            "nested too deeply",
        ),
    ],
    ids=[
        "negative-seconds",
        "text-seconds",
        "year-99999",
        "map-over-number",
        "range-1e9",
        "hash-20k",
        "deep-string-to-json",
        "big-output",
        "range-1e8",
        "divide-by-zero",
        "deep-parse",
    ],
)
def test_hostile_content_fails_an_execution_with_a_states_error(
    server: Server, state: dict[str, Any], input: Any, error: str, named: str
) -> None:
    language = "JSONata" if "Output" in state else "JSONPath"
    name = f"content-{abs(hash(json.dumps(state))) % 10**8}"
    for outcome in (run(server, name, one(state, language), input),
                    run_sync(server, name + "x", one(state, language), input)):  # fmt: skip
        assert (outcome["status"], outcome["error"]) == ("FAILED", error), outcome
        assert named in outcome["cause"]


def test_waits_past_any_horizon_wait_and_stop(server: Server) -> None:
    """A Wait until year 9999, or for 10**30 seconds, sleeps durably; it can be stopped."""
    for name, state, input in [
        ("year-9999", {"Type": "Wait", "Timestamp": "9999-12-31T23:59:59Z"}, {}),
        ("eons", {"Type": "Wait", "SecondsPath": "$.s"}, {"s": 10**30}),
        ("eons-jsonata", {"Type": "Wait", "Seconds": "{% $states.input.s %}"}, {"s": 10**20}),
    ]:
        language = "JSONata" if name.endswith("jsonata") else "JSONPath"
        machine = create(server, name, one(state, language))
        body = {"stateMachineArn": machine, "input": json.dumps(input)}
        execution = ok(call(server, "StartExecution", body))["executionArn"]
        time.sleep(0.3)
        assert finished(server, execution, 0)["status"] == "RUNNING"
        ok(call(server, "StopExecution", {"executionArn": execution}))
        assert finished(server, execution)["status"] == "ABORTED"
        events = ok(call(server, "GetExecutionHistory", {"executionArn": execution}))["events"]
        assert events[-1]["type"] == "ExecutionAborted"


def test_an_express_execution_looping_for_ever_times_out_and_lets_others_run(
    server: Server,
) -> None:
    loop = {"StartAt": "A", "TimeoutSeconds": 1, "States": {
        "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}  # fmt: skip
    outcome, waited = held(server, lambda: run_sync(server, "express-loop", loop))
    assert (outcome["status"], outcome["error"]) == ("TIMED_OUT", "States.Timeout")
    assert waited < 1.0


@pytest.fixture(scope="module")
def runaway_jsonata(server: Server) -> tuple[dict[str, Any], float]:
    """A STANDARD execution whose JSONata recursion runs to the 5 s time limit, and how
    long the server's event loop was held meanwhile."""
    state = {"Type": "Pass", "Output": "{% ($f := function($x){ $f($x + 1) }; $f(0)) %}"}
    return held(server, lambda: run(server, "runaway", one(state, "JSONata")))


def test_a_runaway_jsonata_expression_fails_at_its_time_limit(
    runaway_jsonata: tuple[dict[str, Any], float],
) -> None:
    outcome, _ = runaway_jsonata
    assert (outcome["status"], outcome["error"]) == ("FAILED", "States.QueryEvaluationError")
    assert "threw an error during evaluation" in outcome["cause"]


def test_a_runaway_jsonata_expression_does_not_hold_the_event_loop(
    runaway_jsonata: tuple[dict[str, Any], float],
) -> None:
    _, waited = runaway_jsonata
    assert waited < 1.0


def test_an_express_map_over_many_items_does_not_hold_the_event_loop(server: Server) -> None:
    state = {"Type": "Map", "ItemProcessor": {"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Result": 1, "End": True}}}}  # fmt: skip
    began = time.monotonic()
    outcome, waited = held(server, lambda: run_sync(server, "map-20k", one(state), [0] * 20_000))
    took = time.monotonic() - began
    assert outcome["status"] == "SUCCEEDED"
    # A held loop would keep a probe waiting about as long as the whole run (~0.8 s
    # here); measured against the run, so that a busy machine slows both alike.
    assert waited < took / 3, (waited, took)


# --- interpreter bugs, run in a process of their own: a hang is killed ---------------------


def in_process(code: str, timeout: float) -> Any:
    """The JSON value ``code`` prints last, run in a Python process that is killed
    after ``timeout`` seconds (subprocess.TimeoutExpired: it hung)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


MEMORY_RUN = """
import asyncio, json
from statekeeper.asl.host import ManualClock, MemoryHost
from statekeeper.asl.interpreter import Execution
outcome = asyncio.run(Execution({definition}, {input}, MemoryHost(None, ManualClock())).run())
print(json.dumps(outcome.to_dict()))
"""


def test_a_catastrophic_regex_filter_fails_instead_of_hanging() -> None:
    definition = one({"Type": "Pass", "InputPath": "$.items[?(@.a =~ /(a+)+$/)]"})
    input = {"items": [{"a": "a" * 40 + "!"}]}
    code = MEMORY_RUN.format(definition=repr(definition), input=repr(input))
    # It ends (no match, or a States error); a backtracking match over those 40 characters
    # would take hours. The limit allows for a busy machine starting the process.
    outcome = in_process(code, timeout=15)
    assert outcome["status"] == "SUCCEEDED" or outcome["error"].startswith("States.")


def test_an_execution_looping_for_ever_fails_at_the_history_limit() -> None:
    code = """
import asyncio, json
from statekeeper.asl.host import ManualClock, MemoryHost
from statekeeper.asl.interpreter import Execution

class Counted(MemoryHost):
    steps = 0
    async def transition(self, label, work):
        Counted.steps += 1
        if Counted.steps > 26_000:
            raise SystemExit(print(json.dumps({"status": "RUNNING", "steps": Counted.steps})))
        return await work()

loop = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
                                   "B": {"Type": "Pass", "Next": "A"}}}
outcome = asyncio.run(Execution(loop, {}, Counted(None, ManualClock())).run())
print(json.dumps(outcome.to_dict()))
"""
    outcome = in_process(code, timeout=30)
    assert outcome["status"] == "FAILED", outcome


def test_test_state_of_a_map_looping_for_ever_ends() -> None:
    state = {"Type": "Map", "End": True, "ItemProcessor": {"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}}}}  # fmt: skip
    code = f"""
import asyncio, json
from statekeeper.asl import teststate

async def main():
    ticks = 0
    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1
    ticker = asyncio.ensure_future(tick())
    test = asyncio.ensure_future(teststate.test_state({state!r}, [1], time_limit=1))
    answer = await test
    ticker.cancel()
    print(json.dumps({{"answer": answer, "ticks": ticks}}))

asyncio.run(main())
"""
    result = in_process(code, timeout=10)  # startup and imports included
    # It ends (at the history limit, or the time limit) and the loop ran meanwhile.
    assert result["answer"]["status"] == "FAILED" and result["ticks"] > 2


def test_deeply_nested_intrinsic_calls_are_a_problem_not_a_recursion_error() -> None:
    from statekeeper.asl import validation

    call_text = "States.Format('{}', " * 1000 + "$.a" + ")" * 1000
    found = validation.problems(one({"Type": "Pass", "Parameters": {"x.$": call_text}}))
    assert found and "nested" in found[0].message


async def test_test_state_of_deep_json_text_fails_the_state() -> None:
    from statekeeper.asl import teststate

    state = {"Type": "Pass", "Parameters": {"x.$": "States.StringToJson($.s)"}, "End": True}
    body = {
        "definition": json.dumps(state),
        "input": json.dumps({"s": "[" * 100_000 + "]" * 100_000}),
    }
    answer = await teststate.run_request(body)
    assert answer["status"] == "FAILED" and answer["error"] == "States.Runtime"


async def test_a_result_nested_past_the_journals_limit_fails_with_a_states_error(
    tmp_path: Path,
) -> None:
    from statekeeper import App
    from tests.support import drive

    state = {"Type": "Pass", "Parameters": {"x.$": "States.StringToJson($.s)"}}
    async with App(f"sqlite:///{tmp_path / 'deep.db'}", purge_interval=None) as app:
        await app.workflows.define("deep", "asl", one(state))
        run_id = await app.workflows.start("deep", {"s": "[" * 300 + "]" * 300})
        await drive(app)
        status = await app.workflows.status(run_id)
    assert status.status == "failed" and status.error is not None
    assert status.error.type.startswith("States."), status.error


# --- the CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "content", "named"),
    [
        ("validate", DEEP.encode(), "machine.json is nested deeper than 200 levels"),
        ("graph", DEEP.encode(), "standard input is nested deeper than 200 levels"),
        ("run", b"\xff\xfe{}", "machine.json is not valid UTF-8"),
        ("validate", b"\xef\xbb\xbf{}", "machine.json starts with a byte order mark"),
        ("run", b"NaN", "machine.json holds NaN, which is not JSON"),
        ("validate", b'{"StartAt": ', "machine.json is not JSON"),
    ],
    ids=[
        "validate-deep",
        "graph-deep-stdin",
        "run-utf16",
        "validate-bom",
        "run-nan",
        "validate-truncated",
    ],
)
def test_the_cli_refuses_a_hostile_definition_file_in_one_line(
    tmp_path: Path, command: str, content: bytes, named: str
) -> None:
    (tmp_path / "machine.json").write_bytes(content)
    env = {"STATEKEEPER_DATABASE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    if named.startswith("standard input"):
        done = statekeeper("sfn", command, "-", cwd=tmp_path, env=env, stdin=content.decode())
    else:
        done = statekeeper("sfn", command, "machine.json", cwd=tmp_path, env=env)
    assert named in one_line_error(done, "usage", 2)
