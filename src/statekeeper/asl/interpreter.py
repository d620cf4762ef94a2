"""The States Language interpreter: runs a (validated) state machine definition.

``Execution(definition, input, host).run()`` walks the states from ``StartAt``,
processing each state's data in its query language (JSONPath or JSONata), keeping
variables in scope, writing the history, and handling errors with Retry and
Catch, until a state ends the execution. Every step that does something is a
*transition* of the host: a durable host records it, so that a resumed execution
replays what happened and goes on from the state where it stopped. Work inside a
transition touches nothing of the interpreter but the history: what it decides
(an output, the next state, variables to assign) is its value, applied outside.

Map iterations and Parallel branches are in ``asl.branches``. An execution given an
``inspect`` dict notes there the intermediate values of each state's data processing
(``afterInputPath``, ``afterParameters``, ``result``, ...), as TestState shows them
(``asl.teststate``); they are noted as the work runs, so not on a durable replay.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from statekeeper.asl import branches, choice, dataflow, expressions, history, timing
from statekeeper.asl.dataflow import Scope, Variables
from statekeeper.asl.failure import (
    HEARTBEAT_TIMEOUT,
    MAX_PAYLOAD,
    NO_CHOICE,
    RUNTIME,
    TIMEOUT,
    DataError,
    StatesError,
    matches,
    size,
)
from statekeeper.asl.host import Host
from statekeeper.asl.tasks import WAIT_FOR_TOKEN, TaskCall

JSONPATH, JSONATA = "JSONPath", "JSONata"
T = TypeVar("T")
_ISO = "%Y-%m-%dT%H:%M:%S"
SUCCEEDED = "ExecutionSucceeded"
TIMED_OUT_CAUSE = "The execution ran past the state machine's TimeoutSeconds."


def iso(seconds: float) -> str:
    """Unix seconds as the context object writes times: ``2026-12-02T10:00:00.123Z``."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime(_ISO) + f".{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an execution ended."""

    status: str  # SUCCEEDED, FAILED, TIMED_OUT
    output: Any = None
    error: str | None = None
    cause: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.status == "SUCCEEDED":
            return {"status": self.status, "output": self.output}
        return {"status": self.status, "error": self.error, "cause": self.cause}


@dataclass(slots=True)
class Frame:
    """Where states run: the top of the machine, a Parallel branch or a Map iteration."""

    variables: Variables
    language: str
    top: bool = False  # the machine itself, not a branch or an iteration


@dataclass(slots=True)
class Step:
    """What a state decided: its output, the next state (None: the machine ends) and
    the variables it assigns."""

    output: Any
    next: str | None
    assigned: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Machine:
    """The names an execution is known by, for the context object and history."""

    name: str = "machine"
    arn: str = "arn:aws:states:local:000000000000:stateMachine:machine"
    execution: str = "execution"
    execution_arn: str = "arn:aws:states:local:000000000000:execution:machine:execution"
    role_arn: str = "arn:aws:iam::000000000000:role/statekeeper"


class Execution:
    """One run of a state machine definition with an input."""

    def __init__(
        self,
        definition: dict[str, Any],
        input: Any,
        host: Host,
        machine: Machine | None = None,
        *,
        started: float | None = None,
        inspect: dict[str, Any] | None = None,
        keep_history: bool = True,
    ) -> None:
        self.definition = definition
        self.inspect = inspect
        self.input = input
        self.host = host
        self.machine = machine or Machine()
        self.history = history.History(host.now, keep=keep_history)
        self.started = host.now() if started is None else started
        timeout = definition.get("TimeoutSeconds")
        self.deadline = None if timeout is None else self.started + float(timeout)
        self._start_pending = False  # set by run(): the first transition records the start
        self._execution = {
            "Id": self.machine.execution_arn,
            "Input": input,
            "Name": self.machine.execution,
            "RoleArn": self.machine.role_arn,
            "StartTime": iso(self.started),
            "RedriveCount": 0,
        }
        self._machine = {"Id": self.machine.arn, "Name": self.machine.name}

    # --- the execution ------------------------------------------------------------------

    async def run(self) -> Outcome:
        language = self.definition.get("QueryLanguage", JSONPATH)
        frame = Frame(Variables(), language, top=True)
        self._start_pending = True  # ExecutionStarted goes with the first transition
        try:
            output = await self.states(self.definition, self.input, frame)
        except StatesError as error:
            return await self._failed(error)
        if self.history.last_type != SUCCEEDED:  # the last state's transition records it

            async def succeed() -> None:
                self._succeeded(output)

            await self.transition("end", succeed)
        return Outcome("SUCCEEDED", output=output)

    async def transition(self, label: str, work: Callable[[], Awaitable[Any]]) -> Any:
        """``host.transition``; the first one also records the execution's start."""
        if not self._start_pending:
            return await self.host.transition(label, work)
        self._start_pending = False

        async def first() -> Any:
            self.history.add(
                "ExecutionStarted",
                input=json.dumps(self.input, separators=(",", ":")),
                inputDetails={"truncated": False},
                roleArn=self.machine.role_arn,
            )
            return await work()

        return await self.host.transition(label, first)

    def _succeeded(self, output: Any) -> None:
        self.history.add(
            SUCCEEDED,
            output=json.dumps(output, separators=(",", ":")),
            outputDetails={"truncated": False},
        )

    async def _failed(self, error: StatesError) -> Outcome:
        timed_out = (error.error, error.cause) == (TIMEOUT, TIMED_OUT_CAUSE)
        status = "TIMED_OUT" if timed_out else "FAILED"

        async def fail() -> None:
            shown = {"error": error.error}
            if error.cause is not None:
                shown["cause"] = error.cause
            self.history.add("ExecutionTimedOut" if timed_out else "ExecutionFailed", **shown)

        await self.transition("end", fail)
        return Outcome(status, error=error.error, cause=error.cause)

    async def stop(
        self, running: asyncio.Future[Outcome], error: str | None = None, cause: str | None = None
    ) -> Outcome:
        """Stop the in-memory run ``running`` (of ``run()``): ABORTED, unless it ended."""
        if not running.done():
            running.cancel()
        try:
            return await running
        except asyncio.CancelledError:
            pass
        shown = {key: value for key, value in (("error", error), ("cause", cause)) if value}
        self.history.add("ExecutionAborted", **shown)
        return Outcome("ABORTED", error=error, cause=cause)

    def note(self, key: str, value: Any) -> None:
        """Note an intermediate value of a state's data processing under its TestState
        name (``afterInputPath``, ``afterParameters``, ``afterArguments``, ``result``,
        ``afterResultSelector``, ``afterResultPath``), if this execution inspects."""
        if self.inspect is not None:
            self.inspect[key] = value

    def _timed_out(self) -> bool:
        return self.deadline is not None and self.host.now() >= self.deadline

    def check_deadline(self) -> None:
        """States.Timeout once the machine's TimeoutSeconds have passed (checked as each
        state starts, inside its first transition)."""
        if self._timed_out():
            raise StatesError(TIMEOUT, TIMED_OUT_CAUSE)

    async def states(self, machine: dict[str, Any], data: Any, frame: Frame) -> Any:
        """Run the states of ``machine`` (the top, a branch, an item processor) from its
        StartAt; the output of the state that ends it."""
        name: str = machine["StartAt"]
        states: dict[str, Any] = machine["States"]
        language = machine.get("QueryLanguage", frame.language)
        while True:
            state = states[name]
            step = await self.state(name, state, data, frame, language)
            if step.assigned:
                frame.variables.assign(step.assigned)
            if step.next is None:
                return step.output
            data, name = step.output, step.next

    def context(self, name: str, entered: float, retries: int | None = None) -> dict[str, Any]:
        """The context object of state ``name`` (``RetryCount``: of a Task, Map or
        Parallel state)."""
        state: dict[str, Any] = {"EnteredTime": iso(entered), "Name": name}
        if retries is not None:
            state["RetryCount"] = retries
        return {"Execution": self._execution, "State": state, "StateMachine": self._machine}

    # --- one state ----------------------------------------------------------------------

    async def state(
        self, name: str, state: dict[str, Any], data: Any, frame: Frame, language: str
    ) -> Step:
        kind = state["Type"]
        language = state.get("QueryLanguage", language)
        if kind in ("Task", "Map", "Parallel"):
            return await self._handled(name, state, data, frame, language)
        if kind == "Wait":
            return await self._wait(name, state, data, frame, language)

        async def work() -> dict[str, Any]:
            self.check_deadline()
            entered = self.history.add(f"{kind}StateEntered", **history.entered(name, data))
            scope = Scope(self.context(name, self.host.now()), frame.variables)

            def decide() -> Step:
                if kind == "Pass":
                    return self._pass(state, data, scope, language)
                if kind == "Choice":
                    return self._choice(state, data, scope, language)
                if kind == "Succeed":
                    return self._succeed(state, data, scope, language)
                raise self._fail(state, data, scope, language)

            try:
                step = await self.computed(language, decide)
            except DataError as error:
                raise error.located(name, entered) from None
            return self._exit(name, kind, step, frame)

        return _step(await self.transition(name, work))

    def _exit(self, name: str, kind: str, step: Step, frame: Frame) -> dict[str, Any]:
        """The state's exit event; the step as a transition's value."""
        if size(step.output) > MAX_PAYLOAD:
            raise StatesError(
                "States.DataLimitExceeded",
                f"The state/task '{name}' returned a result with a size exceeding the "
                "maximum number of bytes service limit.",
            )
        self.history.add(f"{kind}StateExited", **history.exited(name, step.output, step.assigned))
        if step.next is None and frame.top:  # the execution ends with this transition
            self._succeeded(step.output)
        return {"output": step.output, "next": step.next, "assigned": step.assigned}

    def _pass(self, state: dict[str, Any], data: Any, scope: Scope, language: str) -> Step:
        if language == JSONATA:
            seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
            output = dataflow.fill(state["Output"], seen, "Output") if "Output" in state else data
            assigned = _assign_jsonata(state, seen)
            return Step(output, state.get("Next"), assigned)
        effective = dataflow.input_path(state.get("InputPath", "$"), data, scope)
        self.note("afterInputPath", effective)
        if "Parameters" in state:
            effective = dataflow.template(state["Parameters"], effective, scope)
        self.note("afterParameters", effective)
        result = state.get("Result", effective)
        self.note("result", result)
        assigned = _assign_jsonpath(state, result, scope)
        output = dataflow.result_path(state.get("ResultPath", "$"), data, result)
        self.note("afterResultPath", output)
        output = dataflow.input_path(state.get("OutputPath", "$"), output, scope, "OutputPath")
        return Step(output, state.get("Next"), assigned)

    def _choice(self, state: dict[str, Any], data: Any, scope: Scope, language: str) -> Step:
        if language == JSONATA:
            seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
            for rule in state["Choices"]:
                condition = rule["Condition"]
                held = (
                    dataflow.evaluate(condition, seen, "Condition")
                    if isinstance(condition, str)
                    else condition
                )
                if not isinstance(held, bool):
                    dataflow.expected(held, "Condition", condition, "boolean")
                if held:
                    return self._chosen(rule, state, data, seen)
            if "Default" not in state:
                raise StatesError(NO_CHOICE, "No Matches!")
            return self._chosen({"Next": state["Default"]}, state, data, seen)
        effective = dataflow.input_path(state.get("InputPath", "$"), data, scope)
        self.note("afterInputPath", effective)
        target = state.get("Default")
        assigned = _assign_jsonpath(state, effective, scope)
        for rule in state["Choices"]:
            if choice.matches(rule, effective, scope):
                target = rule["Next"]
                if "Assign" in rule:
                    assigned = {
                        **(assigned or {}),
                        **dataflow.template(rule["Assign"], effective, scope),
                    }
                break
        else:
            if target is None:
                raise StatesError(NO_CHOICE, "No Matches!")
        output = dataflow.input_path(state.get("OutputPath", "$"), effective, scope, "OutputPath")
        return Step(output, target, assigned)

    def _chosen(
        self, rule: dict[str, Any], state: dict[str, Any], data: Any, seen: dict[str, Any]
    ) -> Step:
        source = rule if "Output" in rule else state
        output = dataflow.fill(source["Output"], seen, "Output") if "Output" in source else data
        assigned = _assign_jsonata(state, seen)
        if "Assign" in rule:
            assigned = {**(assigned or {}), **dataflow.fill(rule["Assign"], seen, "Assign")}
        return Step(output, rule["Next"], assigned)

    def _succeed(self, state: dict[str, Any], data: Any, scope: Scope, language: str) -> Step:
        if language == JSONATA:
            seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
            output = dataflow.fill(state["Output"], seen, "Output") if "Output" in state else data
            return Step(output, None)
        effective = dataflow.input_path(state.get("InputPath", "$"), data, scope)
        self.note("afterInputPath", effective)
        return Step(
            dataflow.input_path(state.get("OutputPath", "$"), effective, scope, "OutputPath"), None
        )

    def _fail(self, state: dict[str, Any], data: Any, scope: Scope, language: str) -> StatesError:
        if language == JSONATA:
            seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
            error = dataflow.fill(state["Error"], seen, "Error") if "Error" in state else None
            cause = dataflow.fill(state["Cause"], seen, "Cause") if "Cause" in state else None
            return StatesError(_text(error), _text(cause))
        error, cause = state.get("Error"), state.get("Cause")
        if "ErrorPath" in state:
            error = self._fail_field(state["ErrorPath"], data, scope, "ErrorPath")
        if "CausePath" in state:
            cause = self._fail_field(state["CausePath"], data, scope, "CausePath")
        return StatesError(error, cause)

    @staticmethod
    def _fail_field(path: str, data: Any, scope: Scope, field_name: str) -> str:
        if path.startswith("States."):
            value = dataflow.dynamic(path, data, scope, field_name)
        else:
            value = dataflow.field_path(path, data, scope, field_name)
        if not isinstance(value, str):
            raise DataError(
                RUNTIME,
                f"The {field_name} '{path}' resolved to a value that is not a string: "
                f"{json.dumps(value, separators=(',', ':'))}",
            )
        return value

    # --- Wait ---------------------------------------------------------------------------

    async def _wait(
        self, name: str, state: dict[str, Any], data: Any, frame: Frame, language: str
    ) -> Step:
        async def enter() -> dict[str, Any]:
            self.check_deadline()
            entered = self.history.add("WaitStateEntered", **history.entered(name, data))
            now = self.host.now()
            scope = Scope(self.context(name, now), frame.variables)

            def plan() -> tuple[float, Any, dict[str, Any] | None]:
                if language == JSONATA:
                    seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
                    output = (
                        dataflow.fill(state["Output"], seen, "Output")
                        if "Output" in state
                        else data
                    )
                    wake = timing.wake_jsonata(state, seen, now)
                    return wake, output, _assign_jsonata(state, seen)
                effective = dataflow.input_path(state.get("InputPath", "$"), data, scope)
                self.note("afterInputPath", effective)
                wake = timing.wake_jsonpath(state, effective, scope, now)
                assigned = _assign_jsonpath(state, effective, scope)
                output = dataflow.input_path(
                    state.get("OutputPath", "$"), effective, scope, "OutputPath"
                )
                return wake, output, assigned

            try:
                wake, output, assigned = await self.computed(language, plan)
            except DataError as error:
                raise error.located(name, entered) from None
            if self.deadline is not None:
                wake = min(wake, self.deadline)
            return {"wake": wake, "output": output, "assigned": assigned}

        planned = await self.transition(name, enter)
        await self.host.sleep_until(float(planned["wake"]))
        step = Step(planned["output"], state.get("Next"), planned["assigned"])

        async def leave() -> dict[str, Any]:
            return self._exit(name, "Wait", step, frame)

        return _step(await self.transition(name, leave))

    # --- Task, Map and Parallel: Retry and Catch ---------------------------------------

    async def _handled(
        self, name: str, state: dict[str, Any], data: Any, frame: Frame, language: str
    ) -> Step:
        kind = state["Type"]
        attempts = [0] * len(state.get("Retry", []))
        retries = 0
        while True:
            try:
                return await self.attempt(name, state, data, frame, language, retries)
            except StatesError as error:
                delay = timing.retry_delay(state.get("Retry", []), attempts, error)
                if delay is not None:
                    retries += 1

                    async def backoff(delay: float = delay) -> float:
                        return self.host.now() + delay

                    await self.host.sleep_until(await self.transition(name, backoff))
                    continue
                for catcher in state.get("Catch", []):
                    if matches(catcher["ErrorEquals"], error):
                        return await self.caught(name, kind, catcher, error, data, frame, language)
                raise

    async def attempt(
        self,
        name: str,
        state: dict[str, Any],
        data: Any,
        frame: Frame,
        language: str,
        retries: int = 0,
    ) -> Step:
        """One attempt of the Task, Map or Parallel state ``state`` (its ``retries``-th
        retry), without its Retry and Catch: its step, or the StatesError it raised."""
        if state["Type"] == "Task":
            return await self._task(name, state, data, frame, language, retries)
        return await branches.run(self, name, state, data, frame, language, retries)

    async def caught(
        self,
        name: str,
        kind: str,
        catcher: dict[str, Any],
        error: StatesError,
        data: Any,
        frame: Frame,
        language: str,
    ) -> Step:
        """The step of a state whose ``error`` the Catch ``catcher`` took: the catcher's
        output (ResultPath, or Output in JSONata) and its Next."""

        async def work() -> dict[str, Any]:
            scope = Scope(self.context(name, self.host.now()), frame.variables)

            def step() -> Step:
                if language == JSONATA:
                    seen = dataflow.bindings(
                        scope,
                        {"input": data, "context": scope.context, "errorOutput": error.output},
                    )
                    output = (
                        dataflow.fill(catcher["Output"], seen, "Output")
                        if "Output" in catcher
                        else error.output
                    )
                    return Step(output, catcher["Next"], _assign_jsonata(catcher, seen))
                assigned = _assign_jsonpath(catcher, error.output, scope)
                output = dataflow.result_path(catcher.get("ResultPath", "$"), data, error.output)
                return Step(output, catcher["Next"], assigned)

            return self._exit(name, kind, await self.computed(language, step), frame)

        return _step(await self.transition(name, work))

    async def _task(
        self, name: str, state: dict[str, Any], data: Any, frame: Frame, language: str, retries: int
    ) -> Step:
        token = None
        if state["Resource"].endswith(WAIT_FOR_TOKEN):
            token = await self.host.issue_token(timing.fixed_seconds(state, "TimeoutSeconds"))

        async def prepare() -> dict[str, Any]:
            self.check_deadline()
            if retries == 0:
                entered = self.history.add("TaskStateEntered", **history.entered(name, data))
            else:
                entered = self.history.last_id
            scope = Scope(self.context(name, self.host.now(), retries), frame.variables)
            if token is not None:
                scope.context["Task"] = {"Token": token}

            def call() -> tuple[Any, float | None, float | None]:
                if language == JSONATA:
                    seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
                    payload = (
                        dataflow.fill(state["Arguments"], seen, "Arguments")
                        if "Arguments" in state
                        else data
                    )
                    self.note("afterArguments", payload)
                    timeout = timing.seconds(state, "TimeoutSeconds", seen)
                    return payload, timeout, timing.seconds(state, "HeartbeatSeconds", seen)
                effective = dataflow.input_path(state.get("InputPath", "$"), data, scope)
                self.note("afterInputPath", effective)
                payload = (
                    dataflow.template(state["Parameters"], effective, scope)
                    if "Parameters" in state
                    else effective
                )
                self.note("afterParameters", payload)
                timeout = timing.seconds_path(state, "TimeoutSeconds", effective, scope)
                heartbeat = timing.seconds_path(state, "HeartbeatSeconds", effective, scope)
                return payload, timeout, heartbeat

            try:
                payload, timeout, heartbeat = await self.computed(language, call)
            except DataError as error:
                raise error.located(name, entered) from None
            self.history.add(
                "TaskScheduled",
                resource=state["Resource"],
                parameters=json.dumps(payload, separators=(",", ":")),
                **({"timeoutInSeconds": timeout} if timeout is not None else {}),
                **({"heartbeatInSeconds": heartbeat} if heartbeat is not None else {}),
            )
            return {
                "payload": payload,
                "timeout": timeout,
                "heartbeat": heartbeat,
                "entered": entered,
            }

        resource = state["Resource"]

        def failed(error: StatesError) -> None:
            shown = {"error": error.error, "resource": resource}
            if error.cause is not None:
                shown["cause"] = error.cause
            timed_out = error.error in (TIMEOUT, HEARTBEAT_TIMEOUT)
            self.history.add("TaskTimedOut" if timed_out else "TaskFailed", **shown)

        async def submit() -> dict[str, Any]:
            """Prepare the call and make it: the result, or (waiting for its token) None."""
            plan = await prepare()
            call = TaskCall(
                name, resource, plan["payload"], plan["timeout"], plan["heartbeat"], token
            )
            self.history.add("TaskStarted", resource=resource)
            try:
                plan["result"] = await self.host.invoke(call)
            except StatesError as error:
                failed(error)
                raise
            if token is not None:
                self.history.add("TaskSubmitted", resource=resource)
            return plan

        async def finish(plan: dict[str, Any], result: Any) -> dict[str, Any]:
            self.history.add(
                "TaskSucceeded",
                resource=resource,
                output=json.dumps(result, separators=(",", ":")),
                outputDetails={"truncated": False},
            )
            scope = Scope(self.context(name, self.host.now(), retries), frame.variables)
            try:
                step = await self.computed(
                    language, lambda: self.result(state, data, result, scope, language)
                )
            except DataError as error:
                raise error.located(name, plan["entered"]) from None
            return self._exit(name, "Task", step, frame)

        if token is None:  # one transition: a task that finished is never run again

            async def whole() -> dict[str, Any]:
                plan = await submit()
                return await finish(plan, plan["result"])

            return _step(await self.transition(name, whole))
        submitted = await self.transition(name, submit)
        try:
            answer = await self.host.token_result(
                token, submitted["timeout"], submitted["heartbeat"]
            )
        except StatesError as error:

            async def failure(error: StatesError = error) -> None:
                failed(error)
                raise error

            await self.transition(name, failure)
            raise AssertionError("unreachable") from None

        async def answered() -> dict[str, Any]:
            return await finish(submitted, answer)

        return _step(await self.transition(name, answered))

    async def computed(self, language: str, work: Callable[[], T]) -> T:
        """``work()``, which evaluates a state's fields: for JSONata within a budget on
        the event loop, else on a thread (an expression may run up to its time limit:
        ``expressions.bounded``); for JSONPath on the loop (its cost is bounded)."""
        return await expressions.bounded(work) if language == JSONATA else work()

    def result(
        self, state: dict[str, Any], data: Any, result: Any, scope: Scope, language: str
    ) -> Step:
        """The step of a Task, Map or Parallel state whose work gave ``result``."""
        self.note("result", result)
        if language == JSONATA:
            seen = dataflow.bindings(
                scope, {"input": data, "context": scope.context, "result": result}
            )
            output = dataflow.fill(state["Output"], seen, "Output") if "Output" in state else result
            return Step(output, state.get("Next"), _assign_jsonata(state, seen))
        if "ResultSelector" in state:
            result = dataflow.template(state["ResultSelector"], result, scope)
        self.note("afterResultSelector", result)
        assigned = _assign_jsonpath(state, result, scope)
        output = dataflow.result_path(state.get("ResultPath", "$"), data, result)
        self.note("afterResultPath", output)
        output = dataflow.input_path(state.get("OutputPath", "$"), output, scope, "OutputPath")
        return Step(output, state.get("Next"), assigned)


# --- helpers --------------------------------------------------------------------------


def _step(value: dict[str, Any]) -> Step:
    return Step(value["output"], value["next"], value.get("assigned"))


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _assign_jsonpath(holder: dict[str, Any], data: Any, scope: Scope) -> dict[str, Any] | None:
    if "Assign" not in holder:
        return None
    assigned = dataflow.template(holder["Assign"], data, scope)
    return assigned if isinstance(assigned, dict) else None


def _assign_jsonata(holder: dict[str, Any], seen: dict[str, Any]) -> dict[str, Any] | None:
    if "Assign" not in holder:
        return None
    assigned = dataflow.fill(holder["Assign"], seen, "Assign")
    return assigned if isinstance(assigned, dict) else None
