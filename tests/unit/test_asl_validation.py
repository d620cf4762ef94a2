"""State machine definitions are validated before anything runs: every problem, with
where it is; and every definition of the conformance cases (each ran on AWS) passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statekeeper.asl import check, problems
from statekeeper.errors import InvalidDefinition

ROOT = Path(__file__).parents[2]
CASES = [
    place / "asl" / "cases.jsonl"
    for place in (ROOT.parent / "shared" / "conformance", Path("/work/shared/conformance"))
]


def conformance_definitions() -> list[Any]:
    for path in CASES:
        if path.exists():
            return [json.loads(line)["definition"] for line in path.read_text().splitlines()]
    return []


def test_every_conformance_definition_is_valid() -> None:
    definitions = conformance_definitions()
    if not definitions:
        pytest.skip("the conformance cases are not on this machine")
    assert len(definitions) > 800
    found = {i: problems(d) for i, d in enumerate(definitions)}
    assert {i: p for i, p in found.items() if p} == {}


def machine(**states: Any) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states}


PASS_END = {"Type": "Pass", "End": True}

BAD: list[tuple[Any, str, str]] = [
    ([], "", "a JSON object"),
    ({"States": {"A": PASS_END}}, "/StartAt", "StartAt must name a state"),
    ({"StartAt": "B", "States": {"A": PASS_END}}, "/StartAt", "names no state: 'B'"),
    ({"StartAt": "A", "States": {}}, "/States", "non-empty object"),
    (machine(A={"Type": "Sleep", "End": True}), "/States/A/Type", "unknown state type"),
    (machine(A={"Type": "Pass"}), "/States/A", "needs Next, or End: true"),
    (machine(A={"Type": "Pass", "Next": "B", "End": True}, B=PASS_END), "/States/A",
     "Next or End, not both"),
    (machine(A={"Type": "Pass", "Next": "Nowhere"}), "/States/A/Next", "names no state"),
    (machine(A=PASS_END, B=PASS_END), "/States/B", "never reached"),
    (machine(A={"Type": "Pass", "End": True, "Seconds": 3}), "/States/A/Seconds",
     "a Pass state has no field 'Seconds'"),
    (machine(A={"Type": "Task", "End": True}), "/States/A/Resource", "needs a Resource"),
    (machine(A={"Type": "Wait", "End": True}), "/States/A", "exactly one of Seconds"),
    (machine(A={"Type": "Wait", "End": True, "Seconds": 1, "Timestamp": "x"}), "/States/A",
     "exactly one of"),
    (machine(A={"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}), "/States/A",
     "Error or ErrorPath, not both"),
    (machine(A={"Type": "Choice", "Choices": []}), "/States/A/Choices", "non-empty array"),
    (machine(A={"Type": "Choice", "Choices": [{"Variable": "$.x", "Next": "B"}]}, B=PASS_END),
     "/States/A/Choices/0", "exactly one operator"),
    (machine(A={"Type": "Choice", "Choices": [
        {"Variable": "$.x", "NumericEquality": 1, "Next": "B"}]}, B=PASS_END),
     "/States/A/Choices/0/NumericEquality", "unknown Choice operator"),
    (machine(A={"Type": "Choice", "Choices": [
        {"Not": {"Variable": "$.x", "IsNull": True, "Next": "B"}, "Next": "B"}]}, B=PASS_END),
     "/States/A/Choices/0/Not/Next", "only a top-level Choice rule has Next"),
    (machine(A={"Type": "Choice", "Choices": [{"StringEquals": "x", "Next": "B"}]},
             B=PASS_END), "/States/A/Choices/0/Variable", "needs a Variable path"),
    (machine(A={"Type": "Choice", "QueryLanguage": "JSONata", "Choices": [{"Next": "B"}]},
             B=PASS_END), "/States/A/Choices/0", "needs a Condition"),
    (machine(A={"Type": "Choice", "Choices": [
        {"Variable": "$.x", "IsNull": True, "Next": "B"}], "Default": "C"}, B=PASS_END),
     "/States/A/Default", "names no state: 'C'"),
    (machine(A={"Type": "Task", "Resource": "r", "End": True,
                "Retry": [{"ErrorEquals": ["States.ALL", "X"]}]}),
     "/States/A/Retry/0/ErrorEquals", "States.ALL stands alone"),
    (machine(A={"Type": "Task", "Resource": "r", "End": True,
                "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}),
     "/States/A/Retry/0/ErrorEquals", "in the last retrier"),
    (machine(A={"Type": "Task", "Resource": "r", "End": True,
                "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]}),
     "/States/A/Retry/0/BackoffRate", "a number >= 1.0"),
    (machine(A={"Type": "Task", "Resource": "r", "End": True,
                "Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "SOME"}]}),
     "/States/A/Retry/0/JitterStrategy", "FULL or NONE"),
    (machine(A={"Type": "Task", "Resource": "r", "End": True,
                "Catch": [{"ErrorEquals": [], "Next": "A"}]}),
     "/States/A/Catch/0/ErrorEquals", "non-empty array"),
    (machine(A={"Type": "Task", "Resource": "r", "End": True,
                "Catch": [{"ErrorEquals": ["X"], "Next": "Gone"}]}),
     "/States/A/Catch/0/Next", "names no state"),
    (machine(A={"Type": "Parallel", "End": True, "Branches": [machine(B={"Type": "Pass"})]}),
     "/States/A/Branches/0/States/B", "needs Next, or End"),
    (machine(A={"Type": "Map", "End": True}), "/States/A", "ItemProcessor (or Iterator)"),
    (machine(A={"Type": "Map", "End": True, "MaxConcurrency": -1,
                "ItemProcessor": machine(B=PASS_END)}),
     "/States/A/MaxConcurrency", "integer >= 0"),
    (machine(A={"Type": "Pass", "End": True, "QueryLanguage": "JSONata",
                "InputPath": "$.x"}), "/States/A/InputPath", "this state uses JSONata"),
    (machine(A={"Type": "Pass", "End": True, "Output": {}}), "/States/A/Output",
     "this state uses JSONPath"),
    ({"QueryLanguage": "JSONata", **machine(A={**PASS_END, "QueryLanguage": "JSONPath"})},
     "/States/A/QueryLanguage", "cannot use JSONPath in a JSONata state machine"),
    ({"QueryLanguage": "XPath", **machine(A=PASS_END)}, "/QueryLanguage",
     "JSONPath or JSONata"),
    ({"TimeoutSeconds": 0, **machine(A=PASS_END)}, "/TimeoutSeconds", "positive integer"),
    (machine(**{"a/b~c": PASS_END}), "", ""),  # valid: names with / and ~ are escaped
    (machine(**{"x" * 81: PASS_END}), "/States/" + "x" * 81, "1 to 80 characters"),
    (machine(A={"Type": "Map", "End": True, "ItemBatcher": {"MaxItemsPerBatch": 2},
                "ItemProcessor": machine(B=PASS_END)}),
     "/States/A/ItemBatcher", "needs ProcessorConfig Mode DISTRIBUTED"),
    (machine(A={"Type": "Map", "End": True, "ItemProcessor": {
        **machine(B=PASS_END), "ProcessorConfig": {"Mode": "DISTRIBUTED"}}}),
     "/States/A/ItemProcessor/ProcessorConfig", "names its ExecutionType"),
    (machine(A={"Type": "Map", "End": True, "ItemReader": {"Resource": "arn:aws:states:::s3:put"},
                "ItemProcessor": {**machine(B=PASS_END), "ProcessorConfig": {
                    "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}}),
     "/States/A/ItemReader/Resource", "ItemReader's Resource is one of"),
    (machine(A={"Type": "Map", "End": True, "ItemBatcher": {"BatchInput": {}},
                "ItemProcessor": {**machine(B=PASS_END), "ProcessorConfig": {
                    "Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}}}),
     "/States/A/ItemBatcher", "sets MaxItemsPerBatch or MaxInputBytesPerBatch"),
]  # fmt: skip


@pytest.mark.parametrize(("definition", "where", "message"), BAD)
def test_a_problem_is_found_where_it_is(definition: Any, where: str, message: str) -> None:
    found = problems(definition)
    if not message:
        assert found == []
        return
    assert any(p.where == where and message in p.message for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    definition = machine(
        A={"Type": "Pass", "Next": "Nowhere"},
        B={"Type": "Task", "End": True, "Retry": [{"ErrorEquals": ["X"], "MaxAttempts": -1}]},
    )
    with pytest.raises(InvalidDefinition) as raised:
        check(definition)
    listed = raised.value.details["problems"]
    assert {(p["where"], p["message"][:20]) for p in listed} >= {
        ("/States/A/Next", "Next names no state:"),
        ("/States/B/Resource", "a Task state needs a"),
        ("/States/B/Retry/0/MaxAttempts", "MaxAttempts must be "),
        ("/States/B", "the state is never r"),
    }
    assert raised.value.http_status == 400
    assert "4 problems" in raised.value.message
    check(machine(A=PASS_END))  # a valid definition: nothing raised


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["StartAt", "States", "Type", "Next", "End", "Choices", "Retry",
                         "Catch", "Branches", "ItemProcessor", "ErrorEquals", "Variable",
                         "Not", "And", "QueryLanguage", "A", "B"]) | st.text(max_size=4),
        inner, max_size=5,
    ),
    max_leaves=30,
)  # fmt: skip


def test_a_type_that_is_not_text_is_a_problem() -> None:
    kinds: list[Any] = [[], {}, 3, None]
    for kind in kinds:
        machine = {"StartAt": "A", "States": {"A": {"Type": kind, "End": True}}}
        assert [p.where for p in problems(machine)] == ["/States/A/Type"]


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_gets_problems_never_an_exception(value: Any) -> None:
    found = problems(value)
    assert all(isinstance(p.where, str) and p.message for p in found)
    if found:
        with pytest.raises(InvalidDefinition):
            check(value)
