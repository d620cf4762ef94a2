"""JSONPath syntax as the States Language uses it: paths and reference paths."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statekeeper.asl import problems
from statekeeper.asl.paths import problem

GOOD = [
    "$", "$$", "$$.Execution.Id", "$var", "$var.field", "$.a.b", "$.a[0]", "$[-1]", "$[*]",
    "$.a.*", "$..name", "$..*", "$['a b']['c.d']", '$["q\\"uoted"]', "$.items[1:]",
    "$.items[:1]", "$.items[1:5:2]", "$.a[0,2]", "$['x','y']", "$.users[?(@.status == 0)]",
    "$.u[?(@.name == 'a)b')].id", "$['Test\\\"\"Name\"']",
]  # fmt: skip
BAD = [
    ("a.b", "a path starts with $", 1),
    ("$.", "expected a field name", 3),
    ("$.a[", "expected an index, a slice, * or a quoted name", 5),
    ("$.a[0", "expected ']'", 6),
    ("$.a['x]", "unterminated quoted name", 8),
    ("$.a[?(@.x > 1]", "unterminated filter", 15),
    ("$ a", "expected '.' or '['", 2),
]
REFERENCE_BAD = [
    ("$$.Execution", "context object"),
    ("$var.x", "starts at $"),
    ("$.a[*]", "no wildcard"),
    ("$..a", "no .."),
    ("$.a[1:2]", "no slice"),
    ("$.a[0,1]", "no union"),
    ("$.a[?(@.x)]", "no filter"),
    ("$.*", "no wildcard"),
]


@pytest.mark.parametrize("text", GOOD)
def test_paths_of_every_form_are_accepted(text: str) -> None:
    assert problem(text) is None


@pytest.mark.parametrize(("text", "message", "position"), BAD)
def test_a_bad_path_says_what_and_where(text: str, message: str, position: int) -> None:
    said = problem(text)
    assert said is not None and message in said and f"at character {position})" in said


@pytest.mark.parametrize(("text", "message"), REFERENCE_BAD)
def test_a_reference_path_names_one_place(text: str, message: str) -> None:
    assert problem(text) is None  # a path, though not a reference path
    said = problem(text, reference=True)
    assert said is not None and message in said


def test_reference_paths_of_one_place_are_accepted() -> None:
    for text in ("$", "$.a", "$.a.b", "$['a b'][0]", "$.list[-1]"):
        assert problem(text, reference=True) is None


def test_the_validator_checks_path_fields_where_they_are() -> None:
    def pass_state(**fields: Any) -> dict[str, Any]:
        return {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True, **fields}}}

    assert problems(pass_state(InputPath=None, OutputPath="$.a", ResultPath=None)) == []
    [found] = problems(pass_state(ResultPath="$.a[*]"))
    assert found.where == "/States/A/ResultPath" and "no wildcard" in found.message
    [found] = problems(pass_state(InputPath="input"))
    assert found.where == "/States/A/InputPath" and "starts with $" in found.message
    [found] = problems(pass_state(Parameters={"x.$": "$.a["}))
    assert found.where == "/States/A/Parameters/x.$"
    choice = {
        "StartAt": "C",
        "States": {
            "C": {"Type": "Choice", "Choices": [
                {"Variable": "$.a[", "IsNull": True, "Next": "D"},
                {"Variable": "$.b", "NumericEqualsPath": "b", "Next": "D"},
            ]},
            "D": {"Type": "Fail", "ErrorPath": "States.Format('{}', $.e)", "CausePath": "$.e["},
        },
    }  # fmt: skip
    assert {p.where for p in problems(choice)} == {
        "/States/C/Choices/0/Variable",
        "/States/C/Choices/1/NumericEqualsPath",
        "/States/D/CausePath",
    }


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="$.[]*?()@'\",:-0123abc =<", max_size=30), st.booleans())
def test_any_text_is_a_path_or_says_why(text: str, reference: bool) -> None:
    said = problem(text, reference=reference)
    assert said is None or said.startswith("invalid ")
