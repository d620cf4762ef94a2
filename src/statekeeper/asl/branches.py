"""Map and Parallel states: the same machine over each item, or several machines
over one input, each in a scope of variables of its own.

A Map state picks its items (``ItemsPath`` or ``Items``), makes each iteration's
input (``ItemSelector``, which sees ``$$.Map.Item.Index`` and ``.Value``), runs the
item processor over each, at most ``MaxConcurrency`` at a time (0: no limit), and
its result is the list of iteration outputs in item order. Failed iterations up to
``ToleratedFailureCount`` / ``ToleratedFailurePercentage`` are tolerated (their
output is the error); past that the state fails with
``States.ExceedToleratedFailureThreshold``; with no tolerance, the first failure
fails the state. A Parallel state runs each branch on its input; its result is the
list of branch outputs, and any branch failing fails it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from statekeeper.asl import dataflow, history
from statekeeper.asl.dataflow import Scope
from statekeeper.asl.failure import (
    MAX_PAYLOAD,
    QUERY,
    RUNTIME,
    TOLERATED,
    DataError,
    StatesError,
    compact,
)

if TYPE_CHECKING:
    from statekeeper.asl.interpreter import Execution, Frame, Step

JSONATA = "JSONata"
INLINE_CONCURRENCY = 40  # iterations at a time of a Map without MaxConcurrency


async def run(
    execution: Execution,
    name: str,
    state: dict[str, Any],
    data: Any,
    frame: Frame,
    language: str,
    retries: int,
) -> Step:
    """Run the Map or Parallel state ``state``; its step."""
    from statekeeper.asl.interpreter import Frame, _step

    kind = state["Type"]
    host, events = execution.host, execution.history

    async def enter() -> dict[str, Any]:
        execution.check_deadline()
        if retries == 0:
            entered = events.add(f"{kind}StateEntered", **history.entered(name, data))
        else:
            entered = events.last_id
        scope = Scope(execution.context(name, host.now(), retries), frame.variables)
        planner = _map_plan if kind == "Map" else _parallel_plan
        try:
            plan = await execution.computed(language, lambda: planner(state, data, scope, language))
        except DataError as error:
            raise error.located(name, entered) from None
        if kind == "Map":
            events.add("MapStateStarted", length=len(plan["inputs"]))
        else:
            events.add("ParallelStateStarted")
        plan["entered"] = entered
        return plan

    plan = await execution.transition(name, enter)
    inputs: list[Any] = plan["inputs"]
    language_inside = language

    async def one(index: int) -> Any:
        machine = (
            state.get("ItemProcessor") or state.get("Iterator")
            if kind == "Map"
            else state["Branches"][index]
        )
        assert isinstance(machine, dict)
        if kind == "Map":

            async def started() -> None:
                events.add("MapIterationStarted", name=name, index=index)

            await execution.transition(name, started)
        inner = Frame(frame.variables.child(), language_inside)
        try:
            output = await execution.states(machine, inputs[index], inner)
        except StatesError:
            if kind == "Map":

                async def failed() -> None:
                    events.add("MapIterationFailed", name=name, index=index)

                await execution.transition(name, failed)
            raise
        if kind == "Map":

            async def succeeded() -> None:
                events.add("MapIterationSucceeded", name=name, index=index)

            await execution.transition(name, succeeded)
        return output

    try:
        results = await _all(
            len(inputs), one, plan.get("limit", 0), plan.get("tolerated"), host.concurrent
        )
    except StatesError:

        async def failed() -> None:
            events.add(f"{kind}StateFailed")

        await execution.transition(name, failed)
        raise

    async def finish() -> dict[str, Any]:
        events.add(f"{kind}StateSucceeded")
        scope = Scope(execution.context(name, host.now(), retries), frame.variables)
        try:
            step = await execution.computed(
                language, lambda: execution.result(state, data, results, scope, language)
            )
        except DataError as error:
            raise error.located(name, plan["entered"]) from None
        return execution._exit(name, kind, step, frame)

    return _step(await execution.transition(name, finish))


async def _all(
    count: int,
    one: Callable[[int], Awaitable[Any]],
    limit: int,
    tolerated: tuple[int | None, float | None] | None,
    concurrent: bool,
) -> list[Any]:
    """Run ``one(i)`` for each index, at most ``limit`` at a time (0: 40; one at a
    time where the host is not concurrent); the outputs in order."""
    results: list[Any] = [None] * count
    failures: list[StatesError] = []

    def settle(index: int, outcome: Any) -> None:
        if isinstance(outcome, StatesError):
            failures.append(outcome)
            results[index] = outcome.output
            if not _tolerates(tolerated, len(failures), count):
                if tolerated is None:
                    raise outcome
                raise StatesError(
                    TOLERATED, "The specified tolerated failure threshold was exceeded"
                )
        else:
            results[index] = outcome

    if not concurrent or limit == 1 or count <= 1:
        for index in range(count):
            try:
                outcome = await one(index)
            except StatesError as error:
                outcome = error
            settle(index, outcome)
        return results
    # At most ``limit`` at a time (INLINE_CONCURRENCY when it is 0, as AWS runs an inline
    # Map): that many runners take the next index until none is left or one failed.
    indexes = iter(range(count))
    stopped: list[StatesError] = []

    async def runner() -> None:
        for index in indexes:
            if stopped:
                return
            try:
                outcome = await one(index)
            except StatesError as error:
                outcome = error
            try:
                settle(index, outcome)
            except StatesError as error:
                stopped.append(error)

    runners = [
        asyncio.ensure_future(runner()) for _ in range(min(limit or INLINE_CONCURRENCY, count))
    ]
    try:
        await asyncio.gather(*runners)
    finally:
        for task in runners:
            task.cancel()
    if stopped:
        raise stopped[0]
    return results


def _tolerates(tolerated: tuple[int | None, float | None] | None, failed: int, count: int) -> bool:
    if tolerated is None:
        return False
    most, percentage = tolerated
    if most is not None and failed <= most:
        return True
    return percentage is not None and count > 0 and failed * 100 <= percentage * count


def _parallel_plan(state: dict[str, Any], data: Any, scope: Scope, language: str) -> dict[str, Any]:
    if language == JSONATA:
        seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
        given = (
            dataflow.fill(state["Arguments"], seen, "Arguments") if "Arguments" in state else data
        )
    else:
        given = dataflow.input_path(state.get("InputPath", "$"), data, scope)
        if "Parameters" in state:
            given = dataflow.template(state["Parameters"], given, scope)
    return {"inputs": [given] * len(state["Branches"])}


def _map_plan(state: dict[str, Any], data: Any, scope: Scope, language: str) -> dict[str, Any]:
    if language == JSONATA:
        seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
        effective = data
        if "Items" in state:
            items = state["Items"]
            if isinstance(items, str):
                items = dataflow.evaluate(items, seen, "Items")
                dataflow.expected(items, "Items", state["Items"], "array")
            else:
                items = dataflow.fill(items, seen, "Items")
        else:
            items = data
            if not isinstance(items, list):
                raise DataError(
                    QUERY, f"Map state input must be an array but was: {compact(items)}"
                )
        limit = _jsonata_number(state, "MaxConcurrency", seen)
        count = _jsonata_number(state, "ToleratedFailureCount", seen)
        percentage = _jsonata_number(state, "ToleratedFailurePercentage", seen)
    else:
        effective = dataflow.input_path(state.get("InputPath", "$"), data, scope)
        items = effective
        if "ItemsPath" in state:
            items = dataflow.field_path(state["ItemsPath"], effective, scope, "ItemsPath")
        if not isinstance(items, list):
            raise DataError(RUNTIME, f"Map state input must be an array but was: {compact(items)}")
        limit = _path_number(state, "MaxConcurrency", effective, scope)
        count = _path_number(state, "ToleratedFailureCount", effective, scope)
        percentage = _path_number(state, "ToleratedFailurePercentage", effective, scope)
    if count is not None and count < 0:
        raise DataError(RUNTIME, "ToleratedFailureCount cannot be negative.")
    if percentage is not None and not 0 <= percentage <= 100:
        raise DataError(RUNTIME, "ToleratedFailurePercentage must be between 0 and 100.")
    if "ItemReader" in state:
        raise DataError(
            RUNTIME,
            "ItemReader reads items from Amazon S3, which this service does not reach: give "
            "the Map its items in its input (ItemsPath or Items)",
        )
    inputs = [
        _item_input(state, effective, scope, language, i, item) for i, item in enumerate(items)
    ]
    if "ItemBatcher" in state:
        inputs = _batches(state["ItemBatcher"], inputs, effective, scope, language)
    tolerated = None if count is None and percentage is None else (count, percentage)
    return {"inputs": inputs, "limit": int(limit or 0), "tolerated": tolerated}


def _batches(
    batcher: dict[str, Any], inputs: list[Any], data: Any, scope: Scope, language: str
) -> list[Any]:
    """ItemBatcher: each iteration gets ``{"BatchInput": ..., "Items": [...]}``, at most
    MaxItemsPerBatch items of at most MaxInputBytesPerBatch bytes in all."""
    if language == JSONATA:
        seen = dataflow.bindings(scope, {"input": data, "context": scope.context})
        most = _jsonata_number(batcher, "MaxItemsPerBatch", seen)
        size = _jsonata_number(batcher, "MaxInputBytesPerBatch", seen)
        shared = dataflow.fill(batcher.get("BatchInput"), seen, "BatchInput")
    else:
        most = _path_number(batcher, "MaxItemsPerBatch", data, scope)
        size = _path_number(batcher, "MaxInputBytesPerBatch", data, scope)
        shared = dataflow.template(batcher.get("BatchInput"), data, scope)
    most_items = int(most) if most else len(inputs) or 1
    most_bytes = int(size) if size else MAX_PAYLOAD
    batches: list[dict[str, Any]] = []
    current: list[Any] = []
    used = 0
    for item in inputs:
        weight = len(compact(item).encode())
        if current and (len(current) >= most_items or used + weight > most_bytes):
            batches.append(_batch(shared, current))
            current, used = [], 0
        current.append(item)
        used += weight
    if current:
        batches.append(_batch(shared, current))
    return batches


def _batch(shared: Any, items: list[Any]) -> dict[str, Any]:
    return {"Items": items} if shared is None else {"BatchInput": shared, "Items": items}


def _item_input(
    state: dict[str, Any], data: Any, scope: Scope, language: str, index: int, item: Any
) -> Any:
    selector = state.get("ItemSelector", state.get("Parameters"))
    if selector is None:
        return item
    context = {**scope.context, "Map": {"Item": {"Index": index, "Value": item}}}
    inside = Scope(context, scope.variables)
    if language == JSONATA:
        seen = dataflow.bindings(inside, {"input": data, "context": context})
        return dataflow.fill(selector, seen, "ItemSelector")
    return dataflow.template(selector, data, inside)


def _jsonata_number(state: dict[str, Any], field: str, seen: dict[str, Any]) -> float | None:
    value = state.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        value = dataflow.evaluate(value, seen, field)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        dataflow.expected(value, field, state[field], "number")
    return float(value)


def _path_number(state: dict[str, Any], field: str, data: Any, scope: Scope) -> float | None:
    if field in state:
        return float(state[field])
    path = state.get(field + "Path")
    if path is None:
        return None
    value = dataflow.field_path(path, data, scope, field + "Path")
    number = _number(value, whole=field != "ToleratedFailurePercentage")
    if number is None:
        shown = value if isinstance(value, str) else compact(value)
        raise DataError(
            RUNTIME,
            f'The {field}Path field refers to value "{shown}" which is not a valid integer: {path}',
        )
    return number


def _number(value: Any, *, whole: bool) -> float | None:
    """A number, or the text of one ("1" is 1 as AWS reads it); None if not one."""
    if isinstance(value, str):
        try:
            value = int(value.strip()) if whole else float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    if whole and not isinstance(value, int):
        return None
    return float(value)
