"""JSONata expressions ({% %} strings) are checked for syntax, where they are, and
evaluated with AWS's rules: undefined apart from null, AWS's own functions, no $eval, JSON
numbers, AWS's messages; and the conformance cases of one JSONata Pass state agree."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from statekeeper.asl import expressions, problems
from statekeeper.asl.expressions import (
    UNDEFINED,
    ExpressionFailure,
    evaluate,
    is_expression,
    json_type,
    problem,
    type_cause,
    undefined_cause,
)

ROOT = Path(__file__).parents[2]
CASES = [
    place / "asl" / "cases.jsonl"
    for place in (ROOT.parent / "shared" / "conformance", Path("/work/shared/conformance"))
]


@pytest.mark.parametrize(
    "text",
    [
        "{% $states.input.a + 1 %}",
        "{%$partition([1,2,3], 2)%}",
        "{%   $map($states.input.items, function($v) { $v * 2 })  %}",
        "{% $states.input.name & ' ' & $uppercase($x) %}",
    ],
)
def test_good_expressions_parse(text: str) -> None:
    assert is_expression(text) and problem(text) is None


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("{% $x + %}", "JSONata syntax error S0207"),
        ("{% ) %}", "JSONata syntax error S0211"),
        ("{% %}", "the JSONata expression is empty"),
        ("{% $x", "a JSONata expression is written {% ... %}"),
    ],
)
def test_bad_expressions_say_why(text: str, said: str) -> None:
    found = problem(text)
    assert found is not None and said in found, found


def test_a_space_before_the_braces_makes_a_plain_string() -> None:
    # AWS returns " {% states.input %} " as it is (conformance case BASE_LITERALS)
    assert not is_expression(" {% $states.input %} ") and not is_expression("$states.input")
    assert is_expression("{% $x") and is_expression("{% $x %} ")
    # an expression that does not end the string with its %} is refused, not run
    assert problem("{% $x %} ") == "a JSONata expression is written {% ... %}, got '{% $x %} '"
    with pytest.raises(ValueError):
        evaluate("{% $x %} ", {})


def test_the_validator_finds_them_in_jsonata_states_only() -> None:
    def states(language: str, **fields: Any) -> dict[str, Any]:
        state = {"Type": "Pass", "End": True, "QueryLanguage": language, **fields}
        return {"StartAt": "A", "States": {"A": state}}

    [found] = problems(states("JSONata", Output={"total": "{% $states.input.a + %}"}))
    assert found.where == "/States/A/Output/total" and "S0207" in found.message
    assert problems(states("JSONata", Output={"n": "{% $count($states.input) %}"})) == []
    choice = {
        "QueryLanguage": "JSONata",
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [{"Condition": "{% $x > %}", "Next": "D"}],
                  "Default": "D"},
            "D": {"Type": "Succeed"},
        },
    }  # fmt: skip
    [found] = problems(choice)
    assert found.where == "/States/C/Choices/0/Condition"


# --- evaluation -------------------------------------------------------------------------

STATES = {
    "input": {"name": "Ada", "items": [1, 2, 3], "none": None, "empty": [], "one": [7]},
    "context": {"Execution": {"Id": "arn:exec"}, "State": {"Name": "A"}},
    "result": {"ok": True},
}
BINDINGS: dict[str, Any] = {"states": STATES, "limit": 2, "ratio": 2.0, "nothing": None}


def run(expression: str, bindings: Mapping[str, Any] = BINDINGS, **options: Any) -> Any:
    return evaluate("{% " + expression + " %}", bindings, **options)


def failure(expression: str, bindings: Mapping[str, Any] = BINDINGS) -> ExpressionFailure:
    with pytest.raises(ExpressionFailure) as raised:
        run(expression, bindings)
    return raised.value


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # undefined is not null
        ("$states.input.missing", UNDEFINED),
        ("$nosuchvariable", UNDEFINED),
        ("$states.input.none", None),
        ("$nothing", None),
        ("null", None),
        ("$states.input.items[$ > 5]", UNDEFINED),
        ("$filter($states.input.items, function($v) { $v > 5 })", UNDEFINED),
        ("[$states.input.missing]", []),
        ("{'a': $states.input.missing, 'b': 1}", {"b": 1}),
        ("$exists($states.input.none)", True),
        ("$exists($states.input.missing)", False),
        ("function($x) { $x }", UNDEFINED),
        # $states and user variables
        ("$states.input.name & '!'", "Ada!"),
        ("$states.context.Execution.Id", "arn:exec"),
        ("$states.result.ok", True),
        ("$limit * 3", 6),
        ("$states.input.items[$ <= $limit]", [1, 2]),
        ("$states.input.one", [7]),
        ("$states.input.empty", []),
        # sequences become lists, singletons unwrap as in JSONata
        ("$states.input.items.($ * 10)", [10, 20, 30]),
        ("$states.input.items[1]", 2),
        ("$map([1, 2], function($v) { [$v] })", [[1], [2]]),
        # numbers: integral ones are ints, the others floats
        ("$ratio", 2),
        ("3.0", 3),
        ("7 / 2", 3.5),
        ("0.1 + 0.2", 0.30000000000000004),
        ("-0", 0),
        ("1e20", 100000000000000000000),
        ("1e21", 1e21),
        ("$sum($states.input.items) / 3", 2),
        ("$string(3.0)", "3"),
        # JSONata 2.0.6 as usual
        ("$contains('hello$world', /^hello\\$/)", True),
        ("$merge([{'a': 1}, {'b': 2}])", {"a": 1, "b": 2}),
        ("$reduce([1, 2, 3], function($a, $b) { $a + $b })", 6),
        ("($f := function($n) { $n <= 1 ? 1 : $n * $f($n - 1) }; $f(5))", 120),
        ("$type($clone)", "function"),
    ],
)
def test_evaluate(expression: str, expected: Any) -> None:
    got = run(expression)
    if expected is UNDEFINED:
        assert got is UNDEFINED
    else:
        assert got == expected and type(got) is type(expected), got


def test_integral_results_are_ints_all_the_way_down() -> None:
    got = run("{'n': 2.0, 'list': [1.0, 2.5, {'deep': 4 / 2}]}")
    assert got == {"n": 2, "list": [1, 2.5, {"deep": 2}]}
    assert type(got["n"]) is int and type(got["list"][0]) is int
    assert type(got["list"][2]["deep"]) is int and type(got["list"][1]) is float
    assert json.dumps(run("$parse('[1.0, -0.0, 10.0]')")) == "[1, 0, 10]"


@pytest.mark.parametrize(
    ("expression", "code"),
    [("1 / 0", "D1001"), ("[1 / 0]", "D1001"), ("{'k': -1 / 0}", "D1001"),
     ("$power(10, 400)", "D3061")],
)  # fmt: skip
def test_non_finite_numbers_fail(expression: str, code: str) -> None:
    assert failure(expression).detail.startswith(f"{code}: ")


def test_bindings_are_json_values_and_user_variables_shadow() -> None:
    assert run("$x.y[1]", {"x": {"y": [1, 2]}}) == 2
    assert run("$states.input", {"states": {"input": "text"}}) == "text"
    assert run("$partition", {"partition": 5}) == 5  # a variable of that name wins
    assert run("$eval", {"eval": [1]}) == [1]
    assert run("$states.input", {}) is UNDEFINED


# --- AWS's functions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$partition([1, 2, 3, 4, 5, 6, 7, 8, 9], 4)", [[1, 2, 3, 4], [5, 6, 7, 8], [9]]),
        ("$partition([1, 2, 3, 4], 2)", [[1, 2], [3, 4]]),
        ("$partition([0], 1)", [[0]]),  # an array of one chunk, not unwrapped
        ("$partition([0, 1], 5)", [[0, 1]]),
        ("$partition([1, 2, 3], 2.9)", [[1, 2], [3]]),
        ("$partition('a', 2)", [["a"]]),  # JSONata makes an array of a lone value
        ("$partition([], 2)", UNDEFINED),
        ("$partition($states.input.missing, 2)", UNDEFINED),
        ("$range(0, 10, 2)", [0, 2, 4, 6, 8, 10]),
        ("$range(0, 9, 3)", [0, 3, 6, 9]),
        ("$range(0, 10, 3)", [0, 3, 6, 9]),
        ("$range(1, 9, 2)", [1, 3, 5, 7, 9]),
        ("$range(9, 1, -2)", [9, 7, 5, 3, 1]),
        ("$range(1, 9, 9)", 1),  # a sequence of one number is that number
        ("$count($range(1, 9, 9))", 1),
        ("$range(-1.7, 2, 1)", [-1, 0, 1, 2]),  # truncated towards zero
        ("$range(3, 1, 1)", UNDEFINED),
        ("$range(1, 3, -1)", UNDEFINED),
        ("$range(0, 4, 0)", UNDEFINED),
        ("$append([], $range(3, 1, 1))", []),
        ("$count($range(1, 200000, 1))", 200000),
        ("$hash('input', 'SHA-1')", "140f86aae51ab9e1cda9b4254fe98a74eb54c1a1"),
        ("$hash('', 'MD5')", "d41d8cd98f00b204e9800998ecf8427e"),
        (
            "$hash('abc', 'SHA-256')",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        ("$length($hash('abc', 'SHA-384'))", 96),
        ("$length($hash('żółw', 'SHA-512'))", 128),
        ("$hash($states.input.missing, 'MD5')", UNDEFINED),
        ("$random(42)", 0.7275636800328681),  # Java's new Random(42).nextDouble(), as AWS
        ("$random(42) = $random(42)", True),
        ("$random(0)", 0.730967787376657),
        ("$random(-7) < 1", True),
        ('$parse(\'{"Arg1": 1, "Arg2": []}\')', {"Arg1": 1, "Arg2": []}),
        ("$parse('[1, 2, \"HelloWorld\"]')", [1, 2, "HelloWorld"]),
        ("$parse('\"HelloWorld\"')", "HelloWorld"),
        ("$parse('1.1')", 1.1),
        ("$parse('-0')", 0),
        ("$parse('true')", True),
        ("$parse('null')", None),
        ("$type($parse('null'))", "null"),
        ('$parse(\'{"a": {"b": [1]}}\').a.b', [1]),
        ("$parse($states.input.missing)", UNDEFINED),
    ],
)
def test_aws_functions(expression: str, expected: Any) -> None:
    got = run(expression)
    assert got is expected if expected is UNDEFINED else got == expected, got


def test_random_and_uuid_without_a_seed() -> None:
    numbers = {run("$random()") for _ in range(20)}
    assert len(numbers) > 15 and all(0 <= n < 1 for n in numbers)
    ids = {run("$uuid()") for _ in range(20)}
    assert len(ids) == 20
    for text in ids:
        assert uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text


@pytest.mark.parametrize(
    ("expression", "detail"),
    [
        ("$partition([1, 2], 0)", 'Argument 2 of function "partition" must be a positive'),
        ("$partition([1, 2], -1)", 'Argument 2 of function "partition" must be a positive'),
        ("$partition([1, 2], 0.5)", 'Argument 2 of function "partition" must be a positive'),
        ("$partition([1, 2], '2')", 'T0410: Argument 2 of function "partition" does not match'),
        ("$partition([1, 2])", 'T0410: Argument 2 of function "partition" does not match'),
        ("$range('0', 4, 1)", 'T0410: Argument 1 of function "range" does not match function'),
        ("$range(0, 4, 1, 2)", 'T0410: Argument 4 of function "range" does not match function'),
        ("$range(0, 4)", 'T0410: Argument 3 of function "range" does not match function'),
        ("$range(1, 3, true)", 'T0410: Argument 3 of function "range" does not match function'),
        ("$range(0, 20000000, 1)", 'The size of the sequence made by function "range" must'),
        ("$hash('a', 'sha256')", 'Argument 2 of function "hash" must be one of MD5, SHA-1, '),
        ("$hash('a', 'SHA-3')", 'Argument 2 of function "hash" must be one of MD5, SHA-1, '),
        ("$hash(1, 'MD5')", 'T0410: Argument 1 of function "hash" does not match function'),
        ("$hash('a')", 'T0410: Argument 2 of function "hash" does not match function'),
        ("$random('x')", 'T0410: Argument 1 of function "random" does not match function'),
        ("$random(1, 2)", 'T0410: Argument 2 of function "random" does not match function'),
        ("$uuid(1)", 'T0410: Argument 1 of function "uuid" does not match function'),
        ("$parse('{')", 'Argument 1 of function "parse" is not JSON'),
        ("$parse('NaN')", 'Argument 1 of function "parse" is not JSON'),
        ("$parse('1e400')", 'Argument 1 of function "parse" is not JSON'),
        ("$parse({'a': 1})", 'T0410: Argument 1 of function "parse" does not match function'),
    ],
)
def test_aws_functions_refuse_bad_arguments(expression: str, detail: str) -> None:
    assert failure(expression).detail.startswith(detail)


def test_eval_is_not_there() -> None:
    found = failure("$eval('1 + 1')")
    assert found.detail == "T1006: Attempted to invoke a non-function"
    assert found.cause == (
        "The JSONata expression '$eval('1 + 1')' threw an error during evaluation. "
        "T1006: Attempted to invoke a non-function"
    )
    assert failure("$eval('1', {})").detail.startswith("T1006")


JSONATA_206 = """
    string length substring substringBefore substringAfter uppercase lowercase trim pad contains
    split join match replace base64encode base64decode encodeUrlComponent encodeUrl
    decodeUrlComponent decodeUrl number abs floor ceil round power sqrt random formatNumber
    formatBase formatInteger parseInteger sum max min average boolean not exists count append sort
    reverse shuffle distinct zip keys lookup spread merge sift each error assert type now millis
    fromMillis toMillis map filter single reduce clone
"""


def test_only_jsonata_206_functions_and_aws_ones_are_defined() -> None:
    jsonata_206 = JSONATA_206.split()
    aws = ["partition", "range", "hash", "uuid", "parse"]
    for name in jsonata_206 + aws:
        assert run(f"$type(${name})", {}) == "function", name
    # jlens 0.25 defines no other function (its catalog is 2.0.6's); names other dialects use
    for name in ["eval", "distinctBy", "groupBy", "startsWith", "endsWith", "flatten", "sha256"]:
        assert run(f"$type(${name})", {}) in (UNDEFINED, "null"), name


# --- clock, randomness, cache -----------------------------------------------------------


def test_the_clock_is_read_once_per_evaluation_or_given() -> None:
    first, again = run("[$millis(), ($x := [1..100000] ~> $sum(); $millis())]")
    assert first == again and abs(first - time.time() * 1000) < 60_000
    assert run("$now()", now=1700000000123) == "2023-11-14T22:13:20.123Z"
    assert run("$millis()", now=1700000000123) == 1700000000123
    at = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert run("[$now(), $millis()]", now=at) == ["2024-01-02T03:04:05.678Z", 1704164645678]


def test_a_seed_replays_every_random_draw() -> None:
    draws = "[$random(), $uuid(), $shuffle([1, 2, 3, 4, 5, 6, 7, 8])]"
    assert run(draws, seed=11) == run(draws, seed=11)
    assert run(draws, seed=11) != run(draws, seed=12)


def test_parsed_expressions_are_cached() -> None:
    assert expressions._compiled("$x + 1") is expressions._compiled("$x + 1")
    before = expressions._compiled.cache_info().hits
    for n in range(5):
        assert evaluate("{%  $x + 1  %}", {"x": n}) == n + 1
    assert expressions._compiled.cache_info().hits >= before + 5


def test_a_runaway_expression_is_stopped() -> None:
    found = failure("($f := function($x) { 1 + $f($x + 1) }; $f(1))")
    assert found.detail.startswith("D1011: Stack overflow")


# --- AWS's messages ---------------------------------------------------------------------


def test_failures_say_what_aws_says() -> None:
    with pytest.raises(ExpressionFailure) as raised:
        evaluate("{% $sum(['a']) %}", {}, field="Output/total")
    assert raised.value.cause == (
        "The JSONata expression '$sum(['a'])' specified for the field 'Output/total' threw an "
        'error during evaluation. T0412: Argument 1 of function "sum" must be an array of '
        '"numbers"'
    )
    found = failure("1 + 'a'")
    assert found.expression == "1 + 'a'" and found.field is None
    assert found.for_field("Arguments/n") == (
        "The JSONata expression '1 + 'a'' specified for the field 'Arguments/n' threw an error "
        'during evaluation. T2002: The right side of the "+" operator must evaluate to a number'
    )
    refused = failure("$partition([1], 0)").for_field("Output")
    assert refused.startswith(
        "The JSONata expression '$partition([1], 0)' specified for the field 'Output' threw an "
        'error during evaluation: Argument 2 of function "partition"'
    )
    assert failure("$error('boom')").detail == "D3137: boom"
    with pytest.raises(ExpressionFailure) as raised:
        evaluate("{% $x + %}", {})
    assert raised.value.detail.startswith("S0207: ")


def test_undefined_and_type_causes() -> None:
    assert undefined_cause("{% $doesNotExist %}", "Output/result") == (
        "The JSONata expression '$doesNotExist' specified for the field 'Output/result' "
        "returned nothing (undefined)."
    )
    assert type_cause("{% {'foo': 'bar'} %}", "Items", "array", {"foo": "bar"}) == (
        "The JSONata expression '{'foo': 'bar'}' specified for the field 'Items' returned an "
        "unexpected result type. Expected 'array', but was 'object' for value: "
        '{"foo":"bar"}'
    )
    assert type_cause("{% 'string' %}", "Items", "array", "string").endswith(
        "but was 'string' for value: \"string\""
    )
    kinds = [None, True, 1, 1.5, "s", [1], {"a": 1}]
    assert [json_type(v) for v in kinds] == [
        "null", "boolean", "number", "number", "string", "array", "object",
    ]  # fmt: skip
    with pytest.raises(ValueError):
        evaluate("$states.input", {})


# --- the conformance cases --------------------------------------------------------------


def conformance_cases() -> list[dict[str, Any]]:
    for path in CASES:
        if path.exists():
            return [json.loads(line) for line in path.read_text().splitlines()]
    return []


def single_jsonata_passes() -> list[dict[str, Any]]:
    """Cases of one JSONata Pass state with an Output or an Assign: expressions and
    templates over $states.input, evaluated here as the interpreter would."""
    found = []
    for case in conformance_cases():
        definition = case["definition"]
        if len(definition["States"]) != 1:
            continue
        [state] = definition["States"].values()
        language = state.get("QueryLanguage", definition.get("QueryLanguage"))
        fields = {"Output", "Assign"} & state.keys()
        if state["Type"] == "Pass" and language == "JSONata" and fields:
            found.append(case)
    return found


class StateFailed(Exception):
    def __init__(self, cause: str) -> None:
        self.cause = cause


def template(value: Any, bindings: Mapping[str, Any], field: str) -> Any:
    if isinstance(value, dict):
        return {k: template(v, bindings, f"{field}/{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [template(v, bindings, f"{field}[{i}]") for i, v in enumerate(value)]
    if not is_expression(value):
        return value
    try:
        got = evaluate(value, bindings, field=field)
    except ExpressionFailure as failed:
        raise StateFailed(failed.cause) from failed
    if got is UNDEFINED:
        raise StateFailed(undefined_cause(value, field))
    return got


def test_the_conformance_subset_is_there() -> None:
    if not conformance_cases():
        pytest.skip("the conformance cases are not on this machine")
    assert len(single_jsonata_passes()) == 49


@pytest.mark.parametrize(
    "case", single_jsonata_passes(), ids=lambda case: str(case["id"]).rsplit("::", 1)[-1]
)
def test_conformance_single_jsonata_pass(case: dict[str, Any]) -> None:
    matcher = load_matcher()
    [(name, state)] = case["definition"]["States"].items()
    document = json.loads(case["input"])
    bindings = {"states": {"input": document, "context": {"Execution": {"Input": document}}}}
    try:
        template(state.get("Assign", {}), bindings, "Assign")
        output = template(state["Output"], bindings, "Output") if "Output" in state else document
    except StateFailed as failed:
        cause = (
            f"An error occurred while executing the state '{name}' (entered at the event id #2)."
        )
        error = "States.QueryEvaluationError"
        assert matcher.check(case, "FAILED", None, error, f"{cause} {failed.cause}")
    else:
        assert succeeded(matcher, case, output), output


def succeeded(matcher: Any, case: dict[str, Any], output: Any) -> bool:
    if matcher.check(case, "SUCCEEDED", json.dumps(output)):
        return True
    # a string result is recorded as its JSON text ("\"HelloWorld\""), which the matcher
    # compares with the string itself; compare it with the string's JSON text too
    return isinstance(output, str) and bool(
        matcher.check(case, "SUCCEEDED", json.dumps(json.dumps(output)))
    )


def load_matcher() -> Any:
    path = next(p.parent / "matcher.py" for p in CASES if p.exists())
    spec = importlib.util.spec_from_file_location("conformance_matcher", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- evaluations and the event loop (expressions.bounded) ---------------------------------


async def _where_and_ticks(text: str) -> tuple[Any, list[str], int]:
    """``text``'s value under ``bounded``, the threads its work ran on, and how often a
    ticker (every 5 ms) got the event loop meanwhile: once or twice if it was held."""
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.005)

    where: list[str] = []

    def work() -> Any:
        where.append(threading.current_thread().name)
        return expressions.evaluate(text, {})

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    before = len(ticks)
    try:
        value = await expressions.bounded(work)
    finally:
        ticking.cancel()
    return value, where, len(ticks) - before


async def test_a_quick_expression_is_evaluated_on_the_event_loop() -> None:
    value, where, _ = await _where_and_ticks("{% 1 + 2 %}")
    assert value == 3
    assert where == [threading.current_thread().name]  # no thread hop


async def test_a_slow_expression_goes_off_the_event_loop_after_its_budget() -> None:
    slow = "{% $reduce([1..2000000], function($a, $b){ $a + $b }) %}"  # ~0.5 s here
    value, where, ticks = await _where_and_ticks(slow)
    assert value == 2000001000000
    assert where[0] == threading.current_thread().name  # tried on the loop first
    assert where[1].startswith("statekeeper-jsonata")  # then again on a thread
    assert ticks >= 10  # the loop went on meanwhile (held, it would tick once or twice)


async def test_a_runaway_expression_on_a_thread_still_fails_at_the_time_limit() -> None:
    runaway = "{% ($f := function($x){ $f($x + 1) }; $f(0)) %}"
    began = time.monotonic()
    with pytest.raises(ExpressionFailure, match=r"(?i)timeout"):
        await _where_and_ticks(runaway)
    assert expressions.TIME_LIMIT <= time.monotonic() - began < expressions.TIME_LIMIT + 2
