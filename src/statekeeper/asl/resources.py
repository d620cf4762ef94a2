"""Task resources: what a Task state's ``Resource`` runs, with Lambda's semantics.

- A **function** registered by name (``charge``) or by a Lambda function ARN
  (``arn:aws:lambda:us-east-1:123456789012:function:charge``, with or without a
  version or alias): the Resource is that name or any Lambda ARN whose function
  name is registered. It is called with the payload (``fn(event)``, or
  ``fn(event, context)`` when it takes two arguments, as a Lambda handler does);
  a sync function runs in a thread. Its return value is the task's result.
- ``arn:aws:states:::lambda:invoke``: the payload names ``FunctionName`` and
  ``Payload``; the result is wrapped as AWS wraps it (``Payload``, ``StatusCode``,
  ``ExecutedVersion``, ``SdkHttpMetadata``, ``SdkResponseMetadata``).
- An **HTTP endpoint** (``https://...``, when the host has an HTTP client): the
  payload is POSTed as JSON and the JSON answer is the result; an answer that is
  not 2xx fails the task with ``States.TaskFailed`` and the answer as its cause.

A function that raises fails the task with error = the exception's class name and
cause = JSON ``{"errorMessage", "errorType", "requestId", "stackTrace"}``, as
Lambda reports it; a result of more than 256 KiB fails it with
``States.DataLimitExceeded``; one that is not JSON with ``States.Runtime``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import os
import re
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from statekeeper.asl.failure import DATA_LIMIT, MAX_PAYLOAD, RUNTIME, TASK_FAILED, StatesError
from statekeeper.asl.tasks import TaskCall

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
_LAMBDA_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]*:\d*:function:([A-Za-z0-9_-]{1,140})(?::[A-Za-z0-9$_-]+)?$"
)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,140}\Z")
Function = Callable[..., Any]
_CALLERS = (
    os.path.dirname(os.path.dirname(__file__)) + os.sep,  # statekeeper
    os.path.dirname(asyncio.__file__) + os.sep,
    os.path.dirname(concurrent.futures.__file__) + os.sep,
)
# POST ``body`` (JSON) to ``url``: the status code and the answer's body.
Post = Callable[[str, bytes, float | None], Awaitable[tuple[int, bytes]]]


@dataclass(frozen=True, slots=True)
class LambdaContext:
    """The second argument of a function called as a Lambda handler."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    deadline: float | None  # event-loop time by which the task must answer

    def get_remaining_time_in_millis(self) -> int:
        if self.deadline is None:
            return 900_000
        return max(0, int((self.deadline - asyncio.get_running_loop().time()) * 1000))


def function_name(resource: str) -> str | None:
    """The function a resource names (a plain name or a Lambda ARN), or None."""
    if _NAME.match(resource):
        return resource
    found = _LAMBDA_ARN.match(resource)
    return found.group(1) if found else None


class Resources:
    """The task resources of a process."""

    def __init__(self, post: Post | None = None) -> None:
        self.functions: dict[str, Function] = {}
        self.post = post

    def function(self, name: str, fn: Function) -> None:
        """Run ``fn`` for resource ``name`` (a function name or a Lambda ARN)."""
        found = function_name(name)
        if found is None:
            raise ValueError(
                f"a task function is named by a name of letters, digits, '-' and '_' or by "
                f"a Lambda function ARN, got {name!r}"
            )
        self.functions[found] = fn

    async def invoke(self, call: TaskCall) -> Any:
        """The result of running ``call``'s resource; StatesError if it failed."""
        target = call.target
        if target == LAMBDA_INVOKE:
            return await self._lambda_invoke(call)
        name = function_name(target)
        if name is not None:
            return await self._call(name, target, call.payload, call)
        if target.startswith(("https://", "http://")):
            return await self._http(target, call)
        raise StatesError(RUNTIME, f"the resource '{target}' is not one this worker runs")

    async def _lambda_invoke(self, call: TaskCall) -> Any:
        payload = call.payload if isinstance(call.payload, dict) else {}
        given = payload.get("FunctionName")
        name = function_name(given) if isinstance(given, str) else None
        if name is None:
            raise StatesError(
                RUNTIME,
                f"lambda:invoke needs a FunctionName (a name or a Lambda ARN), got {given!r}",
            )
        result = await self._call(name, str(given), payload.get("Payload"), call)
        request = str(uuid.uuid4())
        return {
            "ExecutedVersion": "$LATEST",
            "Payload": result,
            "SdkHttpMetadata": {
                "HttpHeaders": {"Content-Type": "application/json", "X-Amz-Request-Id": request},
                "HttpStatusCode": 200,
            },
            "SdkResponseMetadata": {"RequestId": request},
            "StatusCode": 200,
        }

    async def _call(self, name: str, arn: str, event: Any, call: TaskCall) -> Any:
        fn = self.functions.get(name)
        if fn is None:
            raise StatesError(
                "Lambda.ResourceNotFoundException",
                f"Function not found: {arn} (no task function named {name!r} is registered)",
            )
        loop, timeout = asyncio.get_running_loop(), call.timeout
        deadline = None if timeout is None else loop.time() + timeout
        arguments: tuple[Any, ...] = (event,)
        if _takes_context(fn):
            arguments = (event, LambdaContext(name, arn, str(uuid.uuid4()), deadline))
        try:
            if inspect.iscoroutinefunction(fn):
                running: Awaitable[Any] = fn(*arguments)
            else:
                running = asyncio.to_thread(fn, *arguments)
            result = await (running if timeout is None else asyncio.wait_for(running, timeout))
            if inspect.isawaitable(result):
                result = await result
        except TimeoutError:
            raise StatesError(
                "States.Timeout", f"Task timed out after {timeout:g} seconds"
            ) from None
        except Exception as error:
            raise lambda_error(error) from None
        return checked_result(result, call.state)

    async def _http(self, url: str, call: TaskCall) -> Any:
        if self.post is None:
            raise StatesError(RUNTIME, f"HTTP task resources are not enabled here: {url}")
        body = json.dumps(call.payload, separators=(",", ":")).encode()
        try:
            status, answer = await self.post(url, body, call.timeout)
        except TimeoutError:
            raise StatesError("States.Timeout", f"{url} did not answer in time") from None
        except StatesError:
            raise
        except Exception as error:
            raise StatesError(TASK_FAILED, f"POST {url} failed: {error}") from None
        text = answer.decode("utf-8", "replace")
        if not 200 <= status < 300:
            cause = json.dumps({"statusCode": status, "body": text[:32768]}, separators=(",", ":"))
            raise StatesError(TASK_FAILED, cause)
        if not text.strip():
            return None
        try:
            return checked_result(json.loads(text), call.state)
        except ValueError:
            raise StatesError(TASK_FAILED, f"{url} answered with text that is not JSON") from None


def _takes_context(fn: Function) -> bool:
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in parameters)


def lambda_error(error: BaseException) -> StatesError:
    """A function's exception as Lambda reports it."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    # The function's own frames: not statekeeper's, nor the event loop's that called it.
    own = [frame for frame in frames if not frame.filename.startswith(_CALLERS)]
    cause = {
        "errorMessage": str(error),
        "errorType": type(error).__name__,
        "requestId": str(uuid.uuid4()),
        "stackTrace": [line.rstrip("\n") for line in traceback.format_list(own)][-20:],
    }
    return StatesError(type(error).__name__, json.dumps(cause, separators=(",", ":")))


def checked_result(result: Any, state: str) -> Any:
    """``result`` as JSON gives it back; StatesError if it is not JSON or too large."""
    try:
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StatesError(RUNTIME, f"the task's result is not JSON: {error}") from None
    if len(text.encode()) > MAX_PAYLOAD:
        raise StatesError(
            DATA_LIMIT,
            f"The state/task '{state}' returned a result with a size exceeding the maximum "
            "number of bytes service limit.",
        )
    return json.loads(text)
