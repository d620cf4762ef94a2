"""TestState: one state run on its own, as Step Functions' TestState API runs it.

``test_state(definition, input)`` validates ONE state's definition (or a whole
machine, with ``state_name`` naming the state to test), runs that state once in
memory with the interpreter and answers in the shape of TestState's response:
``status`` (SUCCEEDED, FAILED, RETRIABLE or CAUGHT_ERROR), ``output`` (JSON text),
``nextState``, ``error`` and ``cause``, and at the DEBUG and TRACE levels
``inspectionData``: each step of the state's data processing as JSON text (``input``,
``afterInputPath``, ``afterParameters`` or, in JSONata, ``afterArguments``,
``result``, ``afterResultSelector``, ``afterResultPath``), the ``variables`` in scope
after the state, and ``errorDetails`` (``retryIndex``, ``retryBackoffIntervalSeconds``,
``catchIndex``) when a Retry or a Catch took an error.

A Task's result or error can be mocked: a mocked (or real) error that a retrier with
attempts left takes gives RETRIABLE (no retry is run: ``retrier_retry_count`` says how
many retries happened before); one that a catcher takes gives CAUGHT_ERROR, with the
catcher's output and Next; otherwise FAILED. Nothing sleeps: a Wait state and a retry
interval pass at once. ``run_request(body)`` takes TestState's request body (its JSON
texts parsed here) for the HTTP API.

Not here yet: a mocked result or error of a Map or Parallel state (they run their
iterations and branches for real), Map fields of the inspection data
(``afterItemsPath``, ``maxConcurrency``, ...) and TRACE's HTTP request and response.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from statekeeper.asl import validation
from statekeeper.asl.dataflow import Variables
from statekeeper.asl.failure import TIMEOUT, StatesError, compact, matches
from statekeeper.asl.host import ManualClock, MemoryHost
from statekeeper.asl.interpreter import JSONATA, JSONPATH, Execution, Frame, Machine
from statekeeper.asl.tasks import WAIT_FOR_TOKEN, TaskCall
from statekeeper.asl.timing import backoff
from statekeeper.codec import decode_json
from statekeeper.errors import InvalidDefinition, ValidationError

INFO, DEBUG, TRACE = "INFO", "DEBUG", "TRACE"
LEVELS = (INFO, DEBUG, TRACE)
SUCCEEDED, FAILED, RETRIABLE, CAUGHT_ERROR = "SUCCEEDED", "FAILED", "RETRIABLE", "CAUGHT_ERROR"
# The name a single state is tested under ($$.State.Name), as on AWS.
STATE_NAME: Final = "StateName"
TIME_LIMIT = 300.0  # seconds a test may run, as on AWS
HANDLED = ("Task", "Map", "Parallel")  # the states with Retry and Catch
Invoke = Callable[[TaskCall], Awaitable[Any]]


class _Nothing:
    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Final = _Nothing()  # no mocked result


async def test_state(
    definition: Any,
    input: Any = NOTHING,
    *,
    state_name: str | None = None,
    inspection_level: str = INFO,
    variables: Mapping[str, Any] | None = None,
    mock_result: Any = NOTHING,
    mock_error: tuple[str, str | None] | None = None,
    retrier_retry_count: int = 0,
    context: Mapping[str, Any] | None = None,
    role_arn: str | None = None,
    invoke: Invoke | None = None,
    time_limit: float = TIME_LIMIT,
) -> dict[str, Any]:
    """Run one state once; TestState's response (see the module's docstring).

    ``definition`` is one state (parsed JSON), or a whole machine when ``state_name``
    names the state of it to test; ``input`` the state's input (``{}`` if not given);
    ``variables`` the variables in scope; ``mock_result`` / ``mock_error`` (error,
    cause) replace what a Task's resource gives; without them ``invoke`` runs it;
    ``context`` is merged over the context object (``$$``). InvalidDefinition (every
    problem with a JSON Pointer into ``definition``) or ValidationError if the test
    cannot run; nothing that happens in the state raises.
    """
    if inspection_level not in LEVELS:
        raise ValidationError(
            f"inspectionLevel must be one of {', '.join(LEVELS)}, got {inspection_level!r}"
        )
    if mock_result is not NOTHING and mock_error is not None:
        raise ValidationError("a mock has a result or an errorOutput, not both")
    if retrier_retry_count < 0:
        raise ValidationError("retrierRetryCount cannot be negative")
    name, state, language = _selected(definition, state_name)
    mocked = mock_result is not NOTHING or mock_error is not None
    kind = state["Type"]
    if mocked and kind != "Task":
        raise ValidationError(f"a mock is taken by a Task state here, not by a {kind} state")
    if kind == "Task" and state["Resource"].endswith(WAIT_FOR_TOKEN) and not mocked:
        raise ValidationError(f"a {WAIT_FOR_TOKEN} Task is tested with a mock of its result")
    data = {} if input is NOTHING else input
    host = _Host(invoke, mock_result, mock_error)
    noted: dict[str, Any] = {}
    machine = {"StartAt": name, "States": {name: state}, "QueryLanguage": language}
    names = Machine() if role_arn is None else Machine(role_arn=role_arn)
    execution = _Execution(machine, data, host, names, context=context, inspect=noted)
    execution.history.add("ExecutionStarted", input=compact(data), roleArn=names.role_arn)
    frame = Frame(Variables(), language)
    frame.variables.assign(dict(variables or {}))
    test = _Test(execution, name, state, data, frame, language, retrier_retry_count)
    try:
        await asyncio.wait_for(test.run(), time_limit)
    except TimeoutError:
        test.failed(StatesError(TIMEOUT, f"The test ran for more than {time_limit:g} seconds"))
    return test.response(inspection_level, noted)


test_state.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest


async def run_request(body: Mapping[str, Any], *, invoke: Invoke | None = None) -> dict[str, Any]:
    """TestState's request body (``definition``, ``input``, ``variables``, ``context``
    and ``mock.result`` as JSON text; ``stateName``, ``inspectionLevel``, ``roleArn``,
    ``mock.errorOutput``, ``stateConfiguration.retrierRetryCount``) run; its response."""
    text = body.get("definition")
    if not isinstance(text, str):
        raise ValidationError("definition is required: the JSON text of a state")
    try:
        definition = decode_json(text.encode(), "definition")
    except ValidationError as malformed:
        raise InvalidDefinition(
            malformed.message, problems=[{"where": "", "message": malformed.message}]
        ) from None
    mock = _object(body, "mock")
    error_output = _object(mock, "errorOutput")
    mock_error = None
    if "errorOutput" in mock:
        error, cause = error_output.get("error"), error_output.get("cause")
        if not isinstance(error, str) or not isinstance(cause, str | None):
            raise ValidationError("mock.errorOutput has an error (a string) and a cause")
        mock_error = (error, cause)
    configuration = _object(body, "stateConfiguration")
    retries = configuration.get("retrierRetryCount", 0)
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise ValidationError("stateConfiguration.retrierRetryCount must be an integer")
    variables = _json(body, "variables", None)
    if variables is not None and not isinstance(variables, dict):
        raise ValidationError("variables must be the JSON text of an object")
    context = _json(body, "context", None)
    if context is not None and not isinstance(context, dict):
        raise ValidationError("context must be the JSON text of an object")
    return await test_state(
        definition,
        _json(body, "input", {}),
        state_name=_text(body, "stateName"),
        inspection_level=_text(body, "inspectionLevel") or INFO,
        variables=variables,
        mock_result=_json(mock, "result", NOTHING),
        mock_error=mock_error,
        retrier_retry_count=retries,
        context=context,
        role_arn=_text(body, "roleArn"),
        invoke=invoke,
    )


# --- one test -------------------------------------------------------------------------


class _Test:
    """One state run once, and what came of it."""

    def __init__(
        self,
        execution: Execution,
        name: str,
        state: dict[str, Any],
        data: Any,
        frame: Frame,
        language: str,
        retries: int,
    ) -> None:
        self.execution, self.name, self.state = execution, name, state
        self.data, self.frame, self.language, self.retries = data, frame, language, retries
        self.kind: str = state["Type"]
        self.status = SUCCEEDED
        self.output: Any = NOTHING
        self.next: str | None = None
        self.error: StatesError | None = None
        self.details: dict[str, Any] = {}

    async def run(self) -> None:
        execution, name, state, frame = self.execution, self.name, self.state, self.frame
        try:
            if self.kind in HANDLED:
                step = await execution.attempt(
                    name, state, self.data, frame, self.language, self.retries
                )
            else:
                step = await execution.state(name, state, self.data, frame, self.language)
        except StatesError as error:
            await self._handle(error)
            return
        if step.assigned:
            frame.variables.assign(step.assigned)
        self.output, self.next = step.output, step.next

    async def _handle(self, error: StatesError) -> None:
        """Retry (RETRIABLE), Catch (CAUGHT_ERROR) or neither (FAILED), as AWS decides:
        the first retrier naming the error takes it while it has attempts left; then
        the first catcher naming it."""
        self.error = error
        if self.kind not in HANDLED:
            self.status = FAILED
            return
        for index, retrier in enumerate(self.state.get("Retry", [])):
            if matches(retrier["ErrorEquals"], error):
                self.details["retryIndex"] = index
                if self.retries < retrier.get("MaxAttempts", 3):
                    delay = backoff(retrier, self.retries)
                    self.details["retryBackoffIntervalSeconds"] = round(delay)
                    self.status = RETRIABLE
                    return
                break
        for index, catcher in enumerate(self.state.get("Catch", [])):
            if matches(catcher["ErrorEquals"], error):
                self.details["catchIndex"] = index
                try:
                    step = await self.execution.caught(
                        self.name, self.kind, catcher, error, self.data, self.frame, self.language
                    )
                except StatesError as failure:
                    self.failed(failure)
                    return
                if step.assigned:
                    self.frame.variables.assign(step.assigned)
                self.status, self.output, self.next = CAUGHT_ERROR, step.output, step.next
                return
        self.status = FAILED

    def failed(self, error: StatesError) -> None:
        self.status, self.error, self.output, self.next = FAILED, error, NOTHING, None

    def response(self, level: str, noted: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = {"status": self.status}
        if self.output is not NOTHING:
            answer["output"] = compact(self.output)
        if self.next is not None:
            answer["nextState"] = self.next
        if self.error is not None:
            if self.error.error is not None:
                answer["error"] = self.error.error
            if self.error.cause is not None:
                answer["cause"] = self.error.cause
        if level != INFO:
            answer["inspectionData"] = self._inspection(noted)
        return answer

    def _inspection(self, noted: dict[str, Any]) -> dict[str, Any]:
        """What AWS shows of each state type's data processing, as JSON text."""
        shown: dict[str, Any] = {"input": self.data}
        kind, jsonpath = self.kind, self.language != JSONATA
        keys: tuple[str, ...] = ()
        if kind == "Pass" and jsonpath:
            # With a Result, AWS shows no input processing; without, no result of its own.
            keys = _PASS_RESULT if "Result" in self.state else _PASS
            if "result" in noted:
                shown["afterResultSelector"] = noted["result"]
        elif kind == "Fail" and jsonpath:
            shown["afterInputPath"] = self.data
        elif kind == "Task":
            keys = _TASK if jsonpath else _TASK_JSONATA
        elif kind in HANDLED:
            # Their inner states note too: only the last notes, of their result, are theirs.
            keys = _RESULT if jsonpath and self.status == SUCCEEDED else ()
        elif jsonpath:  # Choice, Succeed, Wait
            keys = ("afterInputPath",)
        shown.update({key: noted[key] for key in keys if key in noted})
        inspection: dict[str, Any] = {key: compact(value) for key, value in shown.items()}
        visible = self.frame.variables.visible()
        if visible:
            inspection["variables"] = compact(visible)
        if self.details:
            inspection["errorDetails"] = dict(self.details)
        return inspection


_RESULT = ("result", "afterResultSelector", "afterResultPath")
_TASK = ("afterInputPath", "afterParameters", *_RESULT)
_TASK_JSONATA = ("afterArguments", "result")
_PASS = ("afterInputPath", "afterParameters", "afterResultPath")
_PASS_RESULT = ("result", "afterResultPath")


# --- where the state runs -------------------------------------------------------------


class _Host(MemoryHost):
    """In memory, with a clock whose timers fire at once, and a Task's mocked result
    or error in place of its resource."""

    def __init__(
        self, invoke: Invoke | None, result: Any, error: tuple[str, str | None] | None
    ) -> None:
        super().__init__(invoke, ManualClock(time.time()))
        self._mocked = result is not NOTHING or error is not None
        self._result, self._error = result, error

    def _mock(self) -> Any:
        if self._error is not None:
            raise StatesError(*self._error)
        return self._result

    async def invoke(self, call: TaskCall) -> Any:
        if not self._mocked:
            return await super().invoke(call)
        return None if call.waits_for_token else self._mock()

    async def token_result(self, token: str, timeout: float | None, heartbeat: float | None) -> Any:
        return self._mock()


class _Execution(Execution):
    """An execution whose context object has the test's ``context`` merged over it."""

    def __init__(
        self,
        definition: dict[str, Any],
        input: Any,
        host: MemoryHost,
        machine: Machine,
        *,
        context: Mapping[str, Any] | None,
        inspect: dict[str, Any],
    ) -> None:
        super().__init__(definition, input, host, machine, inspect=inspect)
        self._given = dict(context or {})

    def context(self, name: str, entered: float, retries: int | None = None) -> dict[str, Any]:
        return _merged(super().context(name, entered, retries), self._given)


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        inner = merged.get(key)
        if isinstance(inner, dict) and isinstance(value, Mapping):
            merged[key] = _merged(inner, value)
        else:
            merged[key] = value
    return merged


# --- the state to test ----------------------------------------------------------------


def _selected(definition: Any, state_name: str | None) -> tuple[str, dict[str, Any], str]:
    """The tested state's name, definition and query language (of the machine around
    it); InvalidDefinition naming every problem of the definition."""
    if state_name is None:
        state = definition
        machine = {"StartAt": STATE_NAME, "States": {STATE_NAME: state, **_stubs(state)}}
        found = [_within(problem) for problem in validation.problems(machine)]
        if found:
            raise _invalid("state", found)
        return STATE_NAME, state, state.get("QueryLanguage", JSONPATH)
    found = validation.problems(definition)
    if found:
        raise _invalid("state machine", found)
    states = definition["States"]
    if state_name not in states:
        raise ValidationError(f"State not found in definition: {state_name!r}")
    state = states[state_name]
    return state_name, state, state.get("QueryLanguage", definition.get("QueryLanguage", JSONPATH))


def _stubs(state: Any) -> dict[str, Any]:
    """A state for each state that ``state`` may go to: a single state's Next need not
    name a state of any machine."""
    if not isinstance(state, dict):
        return {}
    targets = [state.get("Next"), state.get("Default")]
    for holder in ("Choices", "Catch"):
        if isinstance(state.get(holder), list):
            targets += [rule.get("Next") for rule in state[holder] if isinstance(rule, dict)]
    return {
        target: {"Type": "Succeed"}
        for target in targets
        if isinstance(target, str) and target != STATE_NAME
    }


_PREFIX = f"/States/{STATE_NAME}"


def _within(problem: validation.Problem) -> validation.Problem:
    """A problem of the wrapping machine, with where it is in the state."""
    where = problem.where
    if where == _PREFIX or where.startswith(_PREFIX + "/"):
        return validation.Problem(where[len(_PREFIX) :], problem.message)
    return validation.Problem("", problem.message)


def _invalid(subject: str, found: list[validation.Problem]) -> InvalidDefinition:
    shown = "; ".join(str(problem) for problem in found[:20])
    more = f" (and {len(found) - 20} more)" if len(found) > 20 else ""
    return InvalidDefinition(
        f"the {subject} definition has {len(found)} problem{'s' if len(found) > 1 else ''}: "
        f"{shown}{more}",
        problems=[{"where": problem.where, "message": problem.message} for problem in found],
    )


# --- the request ----------------------------------------------------------------------


def _object(holder: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = holder.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{key} must be an object")
    return value


def _text(holder: Mapping[str, Any], key: str) -> str | None:
    value = holder.get(key)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{key} must be a string")
    return value


def _json(holder: Mapping[str, Any], key: str, default: Any) -> Any:
    text = _text(holder, key)
    return default if text is None else decode_json(text.encode(), key)
