"""JSONata expressions ({% %} strings) are checked for syntax, where they are."""

from __future__ import annotations

from typing import Any

import pytest

from statekeeper.asl import problems
from statekeeper.asl.expressions import is_expression, problem


@pytest.mark.parametrize(
    "text",
    [
        "{% $states.input.a + 1 %}",
        "{%$partition([1,2,3], 2)%}",
        "  {% $map($states.input.items, function($v) { $v * 2 }) %}  ",
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
