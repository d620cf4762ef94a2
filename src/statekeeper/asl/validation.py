"""Validation of a state machine definition: every problem, with where it is.

``problems(definition)`` walks the whole definition, nested machines (Parallel
branches, Map item processors) included, and returns every problem found as a
``Problem(where, message)``, ``where`` a JSON Pointer into the definition
(``/States/Charge/Retry/0/ErrorEquals``). ``check(definition)`` raises
InvalidDefinition naming them all. Nothing here evaluates a path or an expression:
the structure, the fields each state type takes in its query language (JSONPath or
JSONata), transitions, reachability, Choice rules, Retry and Catch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from statekeeper.asl.expressions import is_expression
from statekeeper.asl.expressions import problem as expression_problem
from statekeeper.asl.intrinsics import IntrinsicSyntaxError, is_call, parse
from statekeeper.asl.paths import problem as path_problem
from statekeeper.errors import InvalidDefinition

MAX_STATE_NAME = 80  # characters, as Step Functions allows
JSONPATH, JSONATA = "JSONPath", "JSONata"

_COMMON = {"Type", "Comment", "QueryLanguage"}
_FLOW = {"Next", "End"}
_IO_PATHS = {"InputPath", "OutputPath"}
_RESULT = {"ResultSelector", "ResultPath"}
_ERRORS = {"Retry", "Catch"}
_JSONATA_IO = {"Arguments", "Output", "Assign"}
FIELDS: dict[str, set[str]] = {
    "Pass": _COMMON | _FLOW | _IO_PATHS | {"Parameters", "ResultPath", "Result"}
    | {"Output", "Assign"},
    "Task": _COMMON | _FLOW | _IO_PATHS | _RESULT | _ERRORS | _JSONATA_IO
    | {"Resource", "Parameters", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
       "HeartbeatSecondsPath", "Credentials"},
    "Choice": _COMMON | _IO_PATHS | {"Choices", "Default", "Output", "Assign"},
    "Wait": _COMMON | _FLOW | _IO_PATHS | {"Seconds", "SecondsPath", "Timestamp",
                                             "TimestampPath", "Output", "Assign"},
    "Succeed": _COMMON | _IO_PATHS | {"Output"},
    "Fail": _COMMON | {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _COMMON | _FLOW | _IO_PATHS | _RESULT | _ERRORS | _JSONATA_IO
    | {"Branches", "Parameters"},
    "Map": _COMMON | _FLOW | _IO_PATHS | _RESULT | _ERRORS | _JSONATA_IO
    | {"ItemProcessor", "Iterator", "ItemsPath", "Items", "ItemSelector", "Parameters",
       "ItemReader", "ResultWriter", "ItemBatcher", "MaxConcurrency", "MaxConcurrencyPath",
       "ToleratedFailureCount", "ToleratedFailureCountPath", "ToleratedFailurePercentage",
       "ToleratedFailurePercentagePath", "Label"},
}  # fmt: skip
# Fields of one query language only.
JSONPATH_ONLY = {
    "InputPath", "OutputPath", "Parameters", "ResultSelector", "ResultPath", "Result",
    "ItemsPath", "SecondsPath", "TimestampPath", "ErrorPath", "CausePath",
    "TimeoutSecondsPath", "HeartbeatSecondsPath", "MaxConcurrencyPath",
    "ToleratedFailureCountPath", "ToleratedFailurePercentagePath",
}  # fmt: skip
JSONATA_ONLY = {"Arguments", "Output", "Items"}
TERMINAL = {"Choice", "Succeed", "Fail"}  # no Next or End of their own
# JSONPath fields holding a path (null: none, for the first three).
PATHS = (
    "InputPath", "OutputPath", "ItemsPath", "SecondsPath", "TimestampPath", "ErrorPath",
    "CausePath", "MaxConcurrencyPath", "ToleratedFailureCountPath",
    "ToleratedFailurePercentagePath", "TimeoutSecondsPath", "HeartbeatSecondsPath",
)  # fmt: skip
NULLABLE = {"InputPath", "OutputPath", "ResultPath"}
NESTED = {"Branches", "ItemProcessor", "Iterator"}  # machines: checked as such
# JSONPath payload templates: a field named "x.$" holds a path or an intrinsic call.
TEMPLATES = ("Parameters", "ResultSelector", "ItemSelector", "Assign")

COMPARISONS = {
    f"{kind}{op}{path}"
    for kind in ("String", "Numeric", "Timestamp")
    for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
    for path in ("", "Path")
} | {"BooleanEquals", "BooleanEqualsPath", "StringMatches"}
TESTS = {"IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp"}
JITTER = {"FULL", "NONE"}


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a definition: ``where`` is a JSON Pointer into it."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where or '/'}: {self.message}"


def check(definition: Any) -> None:
    """InvalidDefinition naming every problem of ``definition``; nothing if none."""
    found = problems(definition)
    if found:
        shown = "; ".join(str(p) for p in found[:20])
        more = f" (and {len(found) - 20} more)" if len(found) > 20 else ""
        raise InvalidDefinition(
            f"the state machine definition has {len(found)} problem"
            f"{'s' if len(found) > 1 else ''}: {shown}{more}",
            problems=[{"where": p.where, "message": p.message} for p in found],
        )


def problems(definition: Any) -> list[Problem]:
    """Every problem of ``definition`` (a parsed JSON value), in document order."""
    found: list[Problem] = []
    if not isinstance(definition, dict):
        return [Problem("", "a state machine definition is a JSON object")]
    language = definition.get("QueryLanguage", JSONPATH)
    if language not in (JSONPATH, JSONATA):
        found.append(_bad_language("/QueryLanguage", language))
        language = JSONPATH
    for field in ("Comment", "Version"):
        if field in definition and not isinstance(definition[field], str):
            found.append(Problem(f"/{field}", f"{field} must be a string"))
    if "TimeoutSeconds" in definition and not _positive_int(definition["TimeoutSeconds"]):
        found.append(Problem("/TimeoutSeconds", "TimeoutSeconds must be a positive integer"))
    _machine(definition, "", language, found, top=True)
    return found


def _machine(machine: Any, at: str, language: str, found: list[Problem], *, top: bool) -> None:
    """A machine (the top one, a Parallel branch, a Map item processor)."""
    if not isinstance(machine, dict):
        found.append(Problem(at, "a state machine is a JSON object"))
        return
    allowed = {"StartAt", "States", "Comment"} | (
        {"QueryLanguage", "TimeoutSeconds", "Version"} if top else {"ProcessorConfig"}
    )
    for field in sorted(set(machine) - allowed):
        found.append(Problem(f"{at}/{_escape(field)}", f"unknown field {field!r}"))
    states = machine.get("States")
    if not isinstance(states, dict) or not states:
        found.append(Problem(f"{at}/States", "States must be a non-empty object"))
        states = {}
    start = machine.get("StartAt")
    if not isinstance(start, str):
        found.append(Problem(f"{at}/StartAt", "StartAt must name a state"))
    elif start not in states:
        found.append(Problem(f"{at}/StartAt", f"StartAt names no state: {start!r}"))
    targets: dict[str, list[str]] = {}
    for name, state in states.items():
        where = f"{at}/States/{_escape(name)}"
        if not 1 <= len(name) <= MAX_STATE_NAME:
            found.append(Problem(where, f"a state name has 1 to {MAX_STATE_NAME} characters"))
        targets[name] = _state(state, where, language, set(states), found)
    if isinstance(start, str) and start in states:
        for name in sorted(set(states) - _reachable(start, targets)):
            found.append(Problem(f"{at}/States/{_escape(name)}", "the state is never reached"))


def _state(state: Any, at: str, language: str, names: set[str], found: list[Problem]) -> list[str]:
    """Check one state; the states it may go to."""
    if not isinstance(state, dict):
        found.append(Problem(at, "a state is a JSON object"))
        return []
    kind = state.get("Type")
    if not isinstance(kind, str) or kind not in FIELDS:  # a list or an object too
        found.append(Problem(f"{at}/Type", f"unknown state type {kind!r}"))
        return []
    own = state.get("QueryLanguage", language)
    if own not in (JSONPATH, JSONATA):
        found.append(_bad_language(f"{at}/QueryLanguage", own))
        own = language
    elif language == JSONATA and own == JSONPATH:
        found.append(Problem(
            f"{at}/QueryLanguage", "a state cannot use JSONPath in a JSONata state machine"
        ))  # fmt: skip
    for field in state:
        where = f"{at}/{_escape(field)}"
        if field not in FIELDS[kind]:
            found.append(Problem(where, f"a {kind} state has no field {field!r}"))
        elif own == JSONATA and field in JSONPATH_ONLY:
            found.append(Problem(where, f"{field!r} is a JSONPath field; this state uses JSONata"))
        elif own == JSONPATH and field in JSONATA_ONLY:
            found.append(Problem(where, f"{field!r} is a JSONata field; this state uses JSONPath"))
    if own == JSONATA:
        for field, value in state.items():
            if field not in NESTED:
                _expressions(value, f"{at}/{_escape(field)}", found)
    if own == JSONPATH:
        for field in TEMPLATES:
            if field in state:
                _template(state[field], f"{at}/{field}", found)
        for field in PATHS:
            value = state.get(field)
            if field in ("ErrorPath", "CausePath") and isinstance(value, str) and is_call(value):
                _call(value, f"{at}/{field}", found)  # a Fail state's may be a call
            elif field in state:
                _path(value, f"{at}/{field}", found, nullable=field in NULLABLE)
        if "ResultPath" in state:
            _path(state["ResultPath"], f"{at}/ResultPath", found, reference=True)
    next_states = [] if kind in TERMINAL else _flow(state, at, names, found)
    if kind == "Choice":
        next_states += _choice(state, at, own, names, found)
    elif kind == "Wait":
        _exactly_one(state, at, _wait_fields(own), "a Wait state", found)
    elif kind == "Fail":
        for pair in (("Error", "ErrorPath"), ("Cause", "CausePath")):
            if all(p in state for p in pair):
                found.append(Problem(at, f"a Fail state has {pair[0]} or {pair[1]}, not both"))
    elif kind == "Task" and not isinstance(state.get("Resource"), str):
        found.append(Problem(f"{at}/Resource", "a Task state needs a Resource"))
    elif kind == "Parallel":
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            found.append(Problem(f"{at}/Branches", "Branches must be a non-empty array"))
        else:
            for i, branch in enumerate(branches):
                _machine(branch, f"{at}/Branches/{i}", own, found, top=False)
    elif kind == "Map":
        _map(state, at, own, found)
    if kind in ("Task", "Parallel", "Map"):
        _retry(state.get("Retry"), f"{at}/Retry", found)
        next_states += _catch(state.get("Catch"), f"{at}/Catch", own, names, found)
    return next_states


def _flow(state: dict[str, Any], at: str, names: set[str], found: list[Problem]) -> list[str]:
    has_next, end = "Next" in state, state.get("End")
    if has_next and end is not None:
        found.append(Problem(at, "a state has Next or End, not both"))
    elif not has_next and end is not True:
        found.append(Problem(at, "a state needs Next, or End: true"))
    if end is not None and not isinstance(end, bool):
        found.append(Problem(f"{at}/End", "End must be true or false"))
    return _target(state, "Next", at, names, found) if has_next else []


def _target(
    holder: dict[str, Any], field: str, at: str, names: set[str], found: list[Problem]
) -> list[str]:
    name = holder.get(field)
    if not isinstance(name, str) or name not in names:
        found.append(Problem(f"{at}/{field}", f"{field} names no state: {name!r}"))
        return []
    return [name]


def _choice(
    state: dict[str, Any], at: str, language: str, names: set[str], found: list[Problem]
) -> list[str]:
    choices = state.get("Choices")
    targets: list[str] = []
    if not isinstance(choices, list) or not choices:
        found.append(Problem(f"{at}/Choices", "Choices must be a non-empty array"))
        choices = []
    for i, rule in enumerate(choices):
        where = f"{at}/Choices/{i}"
        if isinstance(rule, dict):
            targets += _target(rule, "Next", where, names, found)
        if language == JSONATA:
            _jsonata_rule(rule, where, found)
        else:
            _jsonpath_rule(rule, where, found, top=True)
    if "Default" in state:
        targets += _target(state, "Default", at, names, found)
    return targets


def _jsonata_rule(rule: Any, at: str, found: list[Problem]) -> None:
    if not isinstance(rule, dict):
        found.append(Problem(at, "a Choice rule is a JSON object"))
        return
    for field in sorted(set(rule) - {"Condition", "Next", "Assign", "Output", "Comment"}):
        found.append(Problem(f"{at}/{_escape(field)}", f"a JSONata Choice rule has no {field!r}"))
    if "Condition" not in rule:
        found.append(Problem(at, "a JSONata Choice rule needs a Condition"))


def _jsonpath_rule(rule: Any, at: str, found: list[Problem], *, top: bool) -> None:
    if not isinstance(rule, dict):
        found.append(Problem(at, "a Choice rule is a JSON object"))
        return
    extra = {"Next", "Assign", "Comment"} if top else {"Comment"}
    operators = [k for k in rule if k not in extra and k != "Variable"]
    if "Next" in rule and not top:
        found.append(Problem(f"{at}/Next", "only a top-level Choice rule has Next"))
    if len(operators) != 1:
        found.append(Problem(at, "a Choice rule has exactly one operator"))
        return
    operator = operators[0]
    where = f"{at}/{_escape(operator)}"
    if operator in ("And", "Or"):
        parts = rule[operator]
        if not isinstance(parts, list) or not parts:
            found.append(Problem(where, f"{operator} takes a non-empty array of rules"))
            return
        for i, part in enumerate(parts):
            _jsonpath_rule(part, f"{where}/{i}", found, top=False)
    elif operator == "Not":
        _jsonpath_rule(rule[operator], where, found, top=False)
    elif operator in COMPARISONS or operator in TESTS:
        if not isinstance(rule.get("Variable"), str):
            found.append(Problem(f"{at}/Variable", f"{operator} needs a Variable path"))
        else:
            _path(rule["Variable"], f"{at}/Variable", found)
        if operator.endswith("Path"):
            _path(rule[operator], where, found)
    else:
        found.append(Problem(where, f"unknown Choice operator {operator!r}"))


def _wait_fields(language: str) -> tuple[str, ...]:
    if language == JSONATA:
        return ("Seconds", "Timestamp")
    return ("Seconds", "Timestamp", "SecondsPath", "TimestampPath")


def _exactly_one(
    state: dict[str, Any], at: str, fields: Iterable[str], what: str, found: list[Problem]
) -> None:
    names = list(fields)
    given = [f for f in names if f in state]
    if len(given) != 1:
        found.append(Problem(at, f"{what} has exactly one of {', '.join(names)}"))


def _map(state: dict[str, Any], at: str, language: str, found: list[Problem]) -> None:
    processors = [f for f in ("ItemProcessor", "Iterator") if f in state]
    if len(processors) != 1:
        found.append(Problem(at, "a Map state has ItemProcessor (or Iterator), once"))
        return
    _machine(state[processors[0]], f"{at}/{processors[0]}", language, found, top=False)
    concurrency = state.get("MaxConcurrency")
    if "MaxConcurrency" in state and not _jsonata_or(concurrency, _non_negative_int):
        found.append(Problem(f"{at}/MaxConcurrency", "MaxConcurrency is an integer >= 0"))
    percentage = state.get("ToleratedFailurePercentage")
    if "ToleratedFailurePercentage" in state and not _jsonata_or(
        percentage, lambda v: _number(v) and 0 <= v <= 100
    ):
        found.append(Problem(
            f"{at}/ToleratedFailurePercentage", "ToleratedFailurePercentage is from 0 to 100"
        ))  # fmt: skip
    _distributed(state, at, processors[0], found)


_READERS = {"arn:aws:states:::s3:getObject", "arn:aws:states:::s3:listObjectsV2"}
_INPUT_TYPES = {"CSV", "JSON", "JSONL", "MANIFEST", "PARQUET"}


def _distributed(state: dict[str, Any], at: str, processor: str, found: list[Problem]) -> None:
    """ProcessorConfig, and the fields of a distributed Map: ItemReader, ItemBatcher,
    ResultWriter (their shapes; what runs them is the interpreter's business)."""
    config = state[processor].get("ProcessorConfig") if isinstance(state[processor], dict) else None
    mode = "INLINE"
    if config is not None:
        where = f"{at}/{processor}/ProcessorConfig"
        if not isinstance(config, dict):
            found.append(Problem(where, "ProcessorConfig must be an object"))
            config = {}
        mode = config.get("Mode", "INLINE")
        if mode not in ("INLINE", "DISTRIBUTED"):
            found.append(Problem(f"{where}/Mode", "Mode is INLINE or DISTRIBUTED"))
        kind = config.get("ExecutionType")
        if kind is not None and kind not in ("STANDARD", "EXPRESS"):
            found.append(Problem(f"{where}/ExecutionType", "ExecutionType is STANDARD or EXPRESS"))
        if mode == "DISTRIBUTED" and kind is None:
            found.append(Problem(where, "a DISTRIBUTED Map names its ExecutionType"))
    for field in ("ItemReader", "ItemBatcher", "ResultWriter"):
        if field in state and mode != "DISTRIBUTED":
            found.append(
                Problem(f"{at}/{field}", f"{field} needs ProcessorConfig Mode DISTRIBUTED")
            )
    if "ItemReader" in state:
        _item_reader(state["ItemReader"], f"{at}/ItemReader", found)
    if "ItemBatcher" in state:
        _item_batcher(state["ItemBatcher"], f"{at}/ItemBatcher", found)
    if "ResultWriter" in state:
        writer = state["ResultWriter"]
        if not isinstance(writer, dict):
            found.append(Problem(f"{at}/ResultWriter", "ResultWriter must be an object"))
        elif "Resource" in writer and writer["Resource"] != "arn:aws:states:::s3:putObject":
            found.append(Problem(
                f"{at}/ResultWriter/Resource",
                "ResultWriter's Resource is arn:aws:states:::s3:putObject",
            ))  # fmt: skip


def _item_reader(reader: Any, at: str, found: list[Problem]) -> None:
    if not isinstance(reader, dict):
        found.append(Problem(at, "ItemReader must be an object"))
        return
    if reader.get("Resource") not in _READERS:
        found.append(Problem(
            f"{at}/Resource", "ItemReader's Resource is one of " + ", ".join(sorted(_READERS))
        ))  # fmt: skip
    config = reader.get("ReaderConfig", {})
    if not isinstance(config, dict):
        found.append(Problem(f"{at}/ReaderConfig", "ReaderConfig must be an object"))
        return
    if "InputType" in config and config["InputType"] not in _INPUT_TYPES:
        found.append(Problem(
            f"{at}/ReaderConfig/InputType", "InputType is one of " + ", ".join(sorted(_INPUT_TYPES))
        ))  # fmt: skip
    if "MaxItems" in config and not _jsonata_or(config["MaxItems"], _positive_int):
        found.append(Problem(f"{at}/ReaderConfig/MaxItems", "MaxItems is a positive integer"))
    if "MaxItems" in config and "MaxItemsPath" in config:
        found.append(Problem(f"{at}/ReaderConfig", "MaxItems and MaxItemsPath exclude each other"))


def _item_batcher(batcher: Any, at: str, found: list[Problem]) -> None:
    if not isinstance(batcher, dict):
        found.append(Problem(at, "ItemBatcher must be an object"))
        return
    limits = [f for f in ("MaxItemsPerBatch", "MaxInputBytesPerBatch") if f in batcher]
    paths = [f for f in ("MaxItemsPerBatchPath", "MaxInputBytesPerBatchPath") if f in batcher]
    if not limits and not paths:
        found.append(Problem(at, "ItemBatcher sets MaxItemsPerBatch or MaxInputBytesPerBatch"))
    for field in limits:
        if not _jsonata_or(batcher[field], _positive_int):
            found.append(Problem(f"{at}/{field}", f"{field} is a positive integer"))
    for field in paths:
        if field[:-4] in batcher:
            found.append(Problem(at, f"{field[:-4]} and {field} exclude each other"))
        elif isinstance(batcher[field], str) and (problem := path_problem(batcher[field])):
            found.append(Problem(f"{at}/{field}", problem))
    if "BatchInput" in batcher and not isinstance(batcher["BatchInput"], dict):
        found.append(Problem(f"{at}/BatchInput", "BatchInput must be an object"))


def _handlers(
    value: Any, at: str, field: str, kind: str, known: set[str], found: list[Problem]
) -> list[tuple[str, dict[str, Any]]]:
    """The retriers or catchers of ``value`` (a Retry or Catch field) with where each
    is, their ErrorEquals and field names checked."""
    if value is None:
        return []
    if not isinstance(value, list):
        found.append(Problem(at, f"{field} is an array of {kind}s"))
        return []
    handlers = []
    for i, handler in enumerate(value):
        where = f"{at}/{i}"
        if not isinstance(handler, dict):
            found.append(Problem(where, f"a {kind} is a JSON object"))
            continue
        _error_equals(handler, where, last=i == len(value) - 1, found=found)
        for name in sorted(set(handler) - known - {"ErrorEquals", "Comment"}):
            found.append(Problem(f"{where}/{_escape(name)}", f"a {kind} has no {name!r}"))
        handlers.append((where, handler))
    return handlers


def _retry(retriers: Any, at: str, found: list[Problem]) -> None:
    known = {"IntervalSeconds", "MaxAttempts", "BackoffRate", "MaxDelaySeconds",
             "JitterStrategy"}  # fmt: skip
    for where, retrier in _handlers(retriers, at, "Retry", "retrier", known, found):
        rules = (
            ("IntervalSeconds", _positive_int, "a positive integer"),
            ("MaxAttempts", _non_negative_int, "an integer >= 0"),
            ("BackoffRate", lambda v: _number(v) and v >= 1.0, "a number >= 1.0"),
            ("MaxDelaySeconds", _positive_int, "a positive integer"),
            ("JitterStrategy", lambda v: v in JITTER, "FULL or NONE"),
        )
        for field, valid, shape in rules:
            if field in retrier and not valid(retrier[field]):
                found.append(Problem(f"{where}/{field}", f"{field} must be {shape}"))


def _catch(
    catchers: Any, at: str, language: str, names: set[str], found: list[Problem]
) -> list[str]:
    known = {"Next", "Assign"} | ({"ResultPath"} if language == JSONPATH else {"Output"})
    targets: list[str] = []
    for where, catcher in _handlers(catchers, at, "Catch", "catcher", known, found):
        targets += _target(catcher, "Next", where, names, found)
        if language == JSONPATH and "ResultPath" in catcher:
            _path(catcher["ResultPath"], f"{where}/ResultPath", found, reference=True)
    return targets


def _error_equals(holder: dict[str, Any], at: str, *, last: bool, found: list[Problem]) -> None:
    errors = holder.get("ErrorEquals")
    where = f"{at}/ErrorEquals"
    if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
        found.append(Problem(where, "ErrorEquals is a non-empty array of error names"))
        return
    if "States.ALL" in errors and (len(errors) > 1 or not last):
        found.append(Problem(where, "States.ALL stands alone, in the last retrier or catcher"))


def _template(value: Any, at: str, found: list[Problem]) -> None:
    """A payload template: every ``x.$`` field a path, or an intrinsic call that parses."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _template(item, f"{at}/{i}", found)
        return
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        where = f"{at}/{_escape(key)}"
        if not key.endswith(".$"):
            _template(item, where, found)
        elif not isinstance(item, str):
            found.append(Problem(where, f"{key!r} holds a path or an intrinsic call (a string)"))
        elif is_call(item):
            _call(item, where, found)
        elif not item.startswith("$"):
            found.append(Problem(where, f"{key!r} holds a path (starting with $) or a call"))
        else:
            _path(item, where, found)


def _expressions(value: Any, at: str, found: list[Problem]) -> None:
    """Every ``{% %}`` string within ``value`` (a JSONata state's field) parses."""
    if isinstance(value, dict):
        for key, item in value.items():
            _expressions(item, f"{at}/{_escape(key)}", found)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _expressions(item, f"{at}/{i}", found)
    elif is_expression(value):
        wrong = expression_problem(value)
        if wrong is not None:
            found.append(Problem(at, wrong))


def _call(text: str, at: str, found: list[Problem]) -> None:
    try:
        parse(text)
    except IntrinsicSyntaxError as error:
        found.append(Problem(at, f"intrinsic call: {error}"))


def _path(
    value: Any, at: str, found: list[Problem], *, nullable: bool = False, reference: bool = False
) -> None:
    """A path field (a reference path for ResultPath; null where the field allows it)."""
    if value is None and (nullable or reference):
        return
    if not isinstance(value, str):
        found.append(Problem(at, "a path is a string starting with $"))
        return
    wrong = path_problem(value, reference=reference)
    if wrong is not None:
        found.append(Problem(at, wrong))


def _reachable(start: str, targets: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for name in targets.get(todo.pop(), []):
            if name not in seen:
                seen.add(name)
                todo.append(name)
    return seen


def _bad_language(where: str, value: Any) -> Problem:
    return Problem(where, f"QueryLanguage is JSONPath or JSONata, not {value!r}")


def _escape(token: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _non_negative_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _jsonata_or(value: Any, valid: Any) -> bool:
    """A JSONata expression (checked when it runs), or a literal ``valid`` accepts."""
    return (isinstance(value, str) and value.startswith("{%")) or bool(valid(value))
