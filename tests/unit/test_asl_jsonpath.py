"""JSONPath evaluation as AWS Step Functions does it: definite paths give a value or fail,
indefinite ones give lists; ResultPath writes; and the conformance cases made of one Pass
state (InputPath, Parameters with plain paths, Result, ResultPath, OutputPath), computed
with this module alone, give what AWS gave."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statekeeper.asl import jsonpath
from statekeeper.asl.jsonpath import PathNotFound, assign

BOOKS = [
    {"category": "reference", "author": "Rees", "title": "Sayings", "price": 8.95},
    {"category": "fiction", "author": "Waugh", "title": "Sword", "price": 12.99, "isbn": "0-1"},
    {"category": "fiction", "author": "Melville", "title": "Moby", "price": 8.99, "isbn": "0-2"},
    {"category": "fiction", "author": "Tolkien", "title": "Rings", "price": 22, "isbn": "0-3"},
]
STORE: dict[str, Any] = {
    "store": {"book": BOOKS, "bicycle": {"color": "red", "price": 19.95}},
    "expensive": 10,
    "a b": {"c.d": 1, "it's": 2},
    "nums": [1, 2, 3, 4, 5],
    "nested": {"a": {"b": {"a": 3}}, "list": [{"a": 4}, [{"a": 5}]]},
    "nothing": None,
    "flags": [True, False, 1, "1", "true", 2.0],
}
AUTHORS = ["Rees", "Waugh", "Melville", "Tolkien"]

SELECT: list[tuple[str, Any]] = [
    # definite: the value itself
    ("$", STORE),
    ("$.expensive", 10),
    ("$.store.bicycle.color", "red"),
    ("$['store']['bicycle']['price']", 19.95),
    ('$["store"].bicycle', {"color": "red", "price": 19.95}),
    ("$['a b']['c.d']", 1),
    ("$.store.book[0].author", "Rees"),
    ("$.store.book[-1].author", "Tolkien"),
    ("$.store.book[-4].author", "Rees"),
    ("$.nothing", None),
    ("$.store.bicycle['color','price']", {"color": "red", "price": 19.95}),  # merged, definite
    ("$.store.bicycle['color','wheels']", {"color": "red"}),
    # indefinite: a list, possibly empty
    ("$.store.book[*].author", AUTHORS),
    ("$.store.book.*.author", AUTHORS),
    ("$.store.*.color", ["red"]),
    ("$.store.bicycle.*", ["red", 19.95]),
    ("$.nums[1:3]", [2, 3]),
    ("$.nums[3:]", [4, 5]),
    ("$.nums[:2]", [1, 2]),
    ("$.nums[-2:]", [4, 5]),
    ("$.nums[:-3]", [1, 2]),
    ("$.nums[1:-1]", []),  # the end of [a:b] does not count from the end
    ("$.nums[-2:2]", [4, 5, 1, 2]),  # ... but a negative start counts each index from it
    ("$.nums[0:5:2]", [1, 2, 3, 4, 5]),  # the step is ignored
    ("$.nums[:]", [1, 2, 3, 4, 5]),
    ("$.nums[3:99]", [4, 5]),
    ("$.nums[7:]", []),
    ("$.nums[0,2,-1]", [1, 3, 5]),
    ("$.nums[0,9]", [1]),
    ("$.store.book[0,1]['title','price']", [{"title": "Sayings", "price": 8.95},
                                            {"title": "Sword", "price": 12.99}]),
    ("$['expensive','nums'].x", []),
    ("$..author", AUTHORS),
    ("$..a", [{"b": {"a": 3}}, 3, 4, 5]),  # parents before children
    ("$.nested..a", [{"b": {"a": 3}}, 3, 4, 5]),
    ("$..bicycle.color", ["red"]),
    ("$.nested.a..*", [{"a": 3}, 3]),
    ("$..book[2].title", ["Moby"]),
    ("$.missing[*]", []),
    ("$.missing.deeper[1:]", []),
    ("$[*].book", [BOOKS]),
    ("$.expensive[*]", []),
    ("$.store.book[*].isbn", ["0-1", "0-2", "0-3"]),
    ("$.store.bicycle[*]", ["red", 19.95]),
    # filters
    ("$.store.book[?(@.price < 10)].title", ["Sayings", "Moby"]),
    ("$.store.book[?(@.price <= 8.99)].title", ["Sayings", "Moby"]),
    ("$.store.book[?(@.price > $.expensive)].title", ["Sword", "Rings"]),
    ("$.store.book[?(@.price >= 22)].title", ["Rings"]),
    ("$.store.book[?(@.category == 'reference')].author", ["Rees"]),
    ('$.store.book[?(@.category == "reference")].author', ["Rees"]),
    ("$.store.book[?(@.category != 'fiction')].author", ["Rees"]),
    ("$.store.book[?(@.price < 10 && @.category == 'fiction')].title", ["Moby"]),
    ("$.store.book[?(@.price < 9 || @.price > 20)].title", ["Sayings", "Moby", "Rings"]),
    ("$.store.book[?(@.author == 'Rees' || @.price > 9 && @.price < 20)].title",
     ["Sayings", "Sword"]),  # && before ||
    ("$.store.book[?((@.author == 'Rees' || @.price > 9) && @.price < 20)].title",
     ["Sayings", "Sword"]),
    ("$.store.book[?(!(@.price < 10))].title", ["Sword", "Rings"]),
    ("$.store.book[?(@.isbn)].title", ["Sword", "Moby", "Rings"]),
    ("$.store.book[?(!@.isbn)].title", ["Sayings"]),
    ("$.store.book[?(@.author in ['Rees', 'Tolkien'])].title", ["Sayings", "Rings"]),
    ("$.store.book[?(@.author nin ['Rees', 'Tolkien'])].title", ["Sword", "Moby"]),
    ("$.store.book[?(@.author =~ /M.*/)].title", ["Moby"]),
    ("$.store.book[?(@.author =~ /m.*/i)].title", ["Moby"]),
    ("$.store.book[?(@.author =~ /M/)].title", []),  # the whole text must match
    ("$.store.book[?(@.isbn =~ /0-[12]/)].title", ["Sword", "Moby"]),
    ("$.store.book[?(@.price == 22)].title", ["Rings"]),
    ("$.store.book[?(@.price == '22')].title", ["Rings"]),  # a string holding the number
    ("$.store.book[?(@.price === '22')].title", []),
    ("$.store.book[?(@.isbn != '0-1')].title", ["Sayings", "Moby", "Rings"]),  # missing differs
    ("$.store.book[?(@.title size 4)].title", ["Moby"]),
    ("$.store.book[?(@.title contains 'or')].title", ["Sword"]),
    ("$.store.book[?(@.missing == null)].title", []),
    ("$.store.bicycle[?(@.color)]", [{"color": "red", "price": 19.95}]),  # the object itself
    ("$.store.bicycle[?(@.wheels)]", []),
    ("$.nums[?(@ > 3)]", [4, 5]),
    ("$.nums[?(@ in [1, 5])]", [1, 5]),
    ("$.flags[?(@ == true)]", [True]),
    ("$.flags[?(@ == 1)]", [1, "1"]),
    ("$.flags[?(@ == '1')]", [1, "1"]),
    ("$.flags[?('1' == @)]", [1, "1"]),
    ("$.flags[?(@ == '2')]", [2.0]),  # a number equals a string holding it ...
    ("$.flags[?('2' == @)]", []),  # ... a string, a number written as the string is
    ("$..book[?(@.price < 9)].author", ["Rees", "Melville"]),
    ("$.store.book[?(@.price < 9)][?(@.isbn)].title", ["Moby"]),
    ("$.nested.list[?(@.a)].a", [4]),
]  # fmt: skip


@pytest.mark.parametrize(("path", "expected"), SELECT)
def test_select(path: str, expected: Any) -> None:
    compiled = jsonpath.compile(path)
    got = compiled.select(STORE)
    assert json.dumps(got) == json.dumps(expected)  # int stays int, order kept
    assert compiled.definite == (not isinstance(expected, list))


TAGGED = [{"i": 0, "t": ["a", "b"]}, {"i": 1, "t": ["c"]}, {"i": 2, "t": []}, {"i": 3}]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("@.t subsetof ['a', 'b', 'c']", [0, 1, 2]),
        ("@.t anyof ['a', 'c']", [0, 1]),
        ("@.t noneof ['a']", [1, 2]),
        ("@.t empty true", [2]),
        ("@.t contains 'c'", [1]),
        ("@.t size 2", [0]),
        ("@.t =~ /c/", [1]),  # any item of an array
        ("@.t == ['c']", [1]),
        ("@.t", [0, 1, 2]),
        ("!@.t", [3]),
        ("@.i in $[0].t", []),
        ("@.t[0] in ['c', 'b']", [1]),
        ("@.t[*] nin ['a']", [0, 1, 2, 3]),  # a list is never in a list of strings
    ],
)
def test_filter_operators(condition: str, expected: list[int]) -> None:
    assert jsonpath.compile(f"$[?({condition})].i").select(TAGGED) == expected


NOT_FOUND = [
    ("$.NoSuchInputPath", "$['NoSuchInputPath']", "No results for path: $['NoSuchInputPath']"),
    ("$.store.wheels", "$['store']['wheels']", "No results for path: $['store']['wheels']"),
    ("$.missing.deeper", "$['missing']['deeper']", "Missing property in path $['missing']"),
    ("$.nums[5]", "$['nums'][5]", "No results for path: $['nums'][5]"),
    ("$.nums[-6]", "$['nums'][-6]", "No results for path: $['nums'][-6]"),
    ("$.nums[9].x", "$['nums'][9]['x']", "No results for path: $['nums'][9]['x']"),
    ("$.nothing[0]", "$['nothing'][0]", "The path $['nothing'] is null"),
    ("$.store[0].x", "$['store'][0]['x']", "Filter: [0]['x'] can only be applied to arrays"),
    ("$.expensive.x", "$['expensive']['x']", "Expected to find an object with property ['x']"),
    ("$.nums.length", "$['nums']['length']", "in path $['nums'] but found 'array'"),
    ("$['a b']['it\\'s']", "$['a b']['it\\\\\\'s']", "No results"),  # taken as written
]


@pytest.mark.parametrize(("path", "normalized", "reason"), NOT_FOUND)
def test_definite_path_not_found(path: str, normalized: str, reason: str) -> None:
    with pytest.raises(PathNotFound) as caught:
        jsonpath.compile(path).select(STORE)
    assert (caught.value.path, caught.value.normalized) == (path, normalized)
    assert reason in caught.value.reason
    assert str(caught.value) == f"Invalid path '{path}' : {caught.value.reason}"


def test_roots_and_definiteness() -> None:
    context = {"Execution": {"Input": {"x": 1}}}
    path = jsonpath.compile("$$.Execution.Input.x")
    assert (path.root, path.definite, path.select(context)) == ("$$", True, 1)
    variable = jsonpath.compile("$answer.items[0]")
    assert (variable.root, variable.select({"items": [42]})) == ("answer", 42)
    assert jsonpath.compile("$answer").select("whole") == "whole"
    assert jsonpath.compile("$.a.b") is jsonpath.compile("$.a.b")  # cached
    assert not jsonpath.compile("$..a").definite
    assert jsonpath.compile("$['a','b']").definite
    assert not jsonpath.compile("$['a','b'].c").definite


@pytest.mark.parametrize(
    "text",
    ["a.b", "$.", "$.a[", "$..", "$.a[?(@.x ~~ 1)]", "$.a[?(@.x == )]", "$.a[?(@.x == 'y)]",
     "$.a[?(@.x =~ /(/)]", "$.a[?(1)]", "$.a[0,'b']", "$.a[?(@.x < 1 && )]"],
)  # fmt: skip
def test_bad_syntax(text: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        jsonpath.compile(text)


ASSIGN: list[tuple[str, Any, Any, Any]] = [
    ("$", {"a": 1}, "x", "x"),
    ("$.b", {"a": 1}, 2, {"a": 1, "b": 2}),
    ("$.a", {"a": 1}, {"z": 0}, {"a": {"z": 0}}),
    ("$.x.y.z", {"a": 1}, 3, {"a": 1, "x": {"y": {"z": 3}}}),
    ("$['a b'].c", {}, None, {"a b": {"c": None}}),
    ("$.a.c", {"a": {"b": 1}}, 2, {"a": {"b": 1, "c": 2}}),
    ("$.list[1]", {"list": [1, 2, 3]}, "two", {"list": [1, "two", 3]}),
    ("$.list[-1]", {"list": [1, 2, 3]}, 9, {"list": [1, 2, 9]}),
    ("$.list[0].k", {"list": [{"k": 0, "j": 1}]}, 5, {"list": [{"k": 5, "j": 1}]}),
    ("$.list[0].new.deep", {"list": [{}]}, 5, {"list": [{"new": {"deep": 5}}]}),
]


@pytest.mark.parametrize(("path", "data", "value", "expected"), ASSIGN)
def test_assign(path: str, data: Any, value: Any, expected: Any) -> None:
    before = copy.deepcopy(data)
    assert assign(path, data, value) == expected
    assert data == before  # a copy: the input is left as it was


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("$.a.b", {"a": "text"}, "is not an object"),
        ("$.x", [1, 2], "is not an object"),
        ("$.x", "text", "is not an object"),
        ("$.list[3]", {"list": [1, 2, 3]}, "has no index 3"),
        ("$.list[0]", {"list": {}}, "has no index 0"),
        ("$.missing[0]", {}, "missing has no index 0"),
        ("$.a[*]", {}, "invalid reference path"),
        ("$$.Execution", {}, "invalid reference path"),
    ],
)
def test_assign_cannot_write(path: str, data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"ResultPath|reference path") as caught:
        assign(path, data, 0)
    assert message in str(caught.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text("ab"),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=12,
)  # fmt: skip
PATHS = ["$.a", "$.a.b[0]", "$[0].c", "$..a", "$.*[*]", "$..b[?(@.a > 1 || @.c)]", "$.a[1:]",
         "$[?(@ =~ /a.*/)]", "$.a['b','c']", "$[-1]", "$..*"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(data=JSON, path=st.sampled_from(PATHS))
def test_select_gives_a_value_or_not_found(data: Any, path: str) -> None:
    compiled = jsonpath.compile(path)
    try:
        got = compiled.select(data)
    except PathNotFound:
        assert compiled.definite
        return
    assert compiled.definite or isinstance(got, list)


FILTERS = st.text(alphabet="$@.[]()?*:,'\"!=<>~/&|{} 01ab-intu", max_size=24)


@settings(max_examples=500, deadline=None)
@given(st.one_of(FILTERS, FILTERS.map(lambda inner: f"$.a[?({inner})]")), JSON)
def test_compile_fails_only_with_value_error(text: str, data: Any) -> None:
    try:
        path = jsonpath.compile(text)
    except ValueError:  # and nothing else
        return
    with contextlib.suppress(PathNotFound):
        path.select(data)


# --- conformance: one Pass state, computed with this module alone ---------------------------

ROOT = Path(__file__).parents[2]
SHARED = [ROOT.parent / "shared" / "conformance" / "asl", Path("/work/shared/conformance/asl")]
HERE = next((place for place in SHARED if (place / "cases.jsonl").exists()), None)
FIELDS = {"Type", "End", "Comment", "QueryLanguage", "InputPath", "Parameters", "Result",
          "ResultPath", "OutputPath"}  # fmt: skip
LIMIT = 256 * 1024


class Failed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(cause)
        self.error, self.cause = error, cause


def plain_template(template: Any) -> bool:
    """Only ``x.$`` fields holding a path (no intrinsic call), and literals."""
    if isinstance(template, dict):
        return all(
            (isinstance(v, str) and v.startswith("$")) if k.endswith(".$") else plain_template(v)
            for k, v in template.items()
        )
    return not isinstance(template, list) or ".$" not in json.dumps(template)


def single_pass_cases() -> list[dict[str, Any]]:
    if HERE is None:
        return []
    chosen = []
    for line in (HERE / "cases.jsonl").read_text().splitlines():
        case = json.loads(line)
        definition = case["definition"]
        states = definition["States"]
        state = next(iter(states.values()))
        if (
            len(states) == 1
            and state["Type"] == "Pass"
            and set(state) <= FIELDS
            and "JSONata" not in (definition.get("QueryLanguage"), state.get("QueryLanguage"))
            and plain_template(state.get("Parameters", {}))
        ):
            chosen.append(case)
    return chosen


def context_object(name: str, execution_input: Any) -> dict[str, Any]:
    arn = "arn:aws:states:us-east-1:111111111111"
    return {
        "Execution": {"Id": f"{arn}:execution:machine:run", "Input": execution_input,
                      "Name": "run", "RedriveCount": 0, "RoleArn": "snf_role_arn",
                      "StartTime": "date"},
        "State": {"EnteredTime": "date", "Name": name},
        "StateMachine": {"Id": f"{arn}:stateMachine:machine", "Name": "machine"},
    }  # fmt: skip


def select(path: str, data: Any, context: Any) -> Any:
    compiled = jsonpath.compile(path)
    return compiled.select(context if compiled.root == "$$" else data)


def template(fields: dict[str, Any], data: Any, context: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key.endswith(".$"):
            try:
                out[key[:-2]] = select(value, data, context)
            except PathNotFound:
                shown = json.dumps(data, separators=(",", ":"))
                raise Failed(
                    "States.Runtime",
                    f"The JSONPath '{value}' specified for the field '{key}' could not be"
                    f" found in the input '{shown}'",
                ) from None
        else:
            out[key] = template(value, data, context) if isinstance(value, dict) else value
    return out


def run_pass(name: str, state: dict[str, Any], raw: Any) -> Any:
    """InputPath, Parameters, Result, ResultPath, OutputPath: the States Language's order."""
    context = context_object(name, raw)
    try:
        effective = raw
        if "InputPath" in state:
            path = state["InputPath"]
            effective = {} if path is None else select(path, raw, context)
        if "Parameters" in state:
            effective = template(state["Parameters"], effective, context)
        result = state.get("Result", effective)
        if len(json.dumps(result)) > LIMIT:
            raise Failed(
                "States.DataLimitExceeded",
                f"The state/task '{name}' returned a result with a size exceeding the maximum"
                " number of bytes service limit.",
            )
        result_path = state.get("ResultPath", "$")
        output = raw if result_path is None else assign(result_path, raw, result)
        if "OutputPath" in state:
            path = state["OutputPath"]
            output = {} if path is None else select(path, output, context)
    except PathNotFound as missing:
        raise Failed("States.Runtime", str(missing)) from None
    return output


def outcome(case: dict[str, Any]) -> tuple[str, str | None, str | None, str | None]:
    """(status, output JSON, error, cause) as an execution would record them."""
    (name, state), = case["definition"]["States"].items()  # fmt: skip
    try:
        output = run_pass(name, state, json.loads(case["input"] or "{}"))
    except Failed as failed:
        where = f"An error occurred while executing the state '{name}' (entered at the event id #2)"
        limit = failed.error == "States.DataLimitExceeded"
        cause = failed.cause if limit else f"{where}. {failed.cause}"
        return "FAILED", None, failed.error, cause
    return "SUCCEEDED", json.dumps(output), None, None


def matcher() -> Any:
    assert HERE is not None
    spec = importlib.util.spec_from_file_location("conformance_matcher", HERE / "matcher.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CASES = single_pass_cases()


@pytest.mark.parametrize("case", CASES, ids=[case["id"].split("::")[-1] for case in CASES])
def test_single_pass_state_conformance(case: dict[str, Any]) -> None:
    status, output, error, cause = outcome(case)
    assert matcher().check(case, status, output, error, cause), (status, output, error, cause)


def test_conformance_cases_are_here() -> None:
    if HERE is None:
        pytest.skip("the conformance cases are not on this machine")
    assert len(CASES) >= 30
