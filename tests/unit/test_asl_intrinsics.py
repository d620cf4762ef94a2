"""Intrinsic function calls parse into trees, and bad ones say what is wrong and where."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statekeeper.asl import problems
from statekeeper.asl.intrinsics import Call, IntrinsicSyntaxError, Literal, Path, parse


def test_calls_nest_and_take_every_kind_of_argument() -> None:
    text = (
        "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), "
        "States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))"
    )
    split = Call("States.StringSplit", (Path("$$.StateMachine.Name"), Literal("-")))
    assert parse(text) == Call(
        "States.ArrayGetItem",
        (split, Call("States.MathAdd", (Call("States.ArrayLength", (split,)), Literal(-1)))),
    )
    assert parse("States.JsonMerge($.a, $var.b, false)").arguments == (
        Path("$.a"), Path("$var.b"), Literal(False),
    )  # fmt: skip
    assert parse("States.Array(1, 2.5, -3e2, null, true, 'x')").arguments == (
        Literal(1), Literal(2.5), Literal(-300.0), Literal(None), Literal(True), Literal("x"),
    )  # fmt: skip
    assert parse("States.UUID()") == Call("States.UUID", ())
    assert parse("  States.ArrayLength( $.a['x, y'][0] )  ").arguments == (Path("$.a['x, y'][0]"),)


def test_strings_keep_their_escapes() -> None:
    [text] = parse(r"States.StringToJson('{\"a\": \"it\'s\"}')").arguments
    assert text == Literal('{\\"a\\": \\"it\'s\\"}')
    format_string, _ = parse(r"States.Format('\{} {} \\', $.x)").arguments
    assert format_string == Literal("\\{} {} \\")  # escaped braces stay marked for Format


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("States.Nope(1)", "unknown intrinsic function 'States.Nope'", 1),
        ("Format('x')", "expected an intrinsic function", 1),
        ("States.Format", "expected '(' after States.Format", 14),
        ("States.Format('x'", "expected ',' or ')'", 18),
        ("States.Format('x", "unterminated string", 17),
        ("States.MathAdd(1)", "States.MathAdd takes 2 arguments, not 1", 1),
        ("States.MathRandom(1, 2, 3, 4)", "takes 2 to 3 arguments, not 4", 1),
        ("States.UUID() x", "unexpected text after the call", 15),
        ("States.Array(@)", "expected an argument", 14),
        ("States.ArrayLength($.a[0)", "unbalanced brackets or quotes", 26),
    ],
)
def test_a_bad_call_says_what_and_where(text: str, message: str, position: int) -> None:
    with pytest.raises(IntrinsicSyntaxError) as raised:
        parse(text)
    assert message in raised.value.message
    assert raised.value.position + 1 == position


def test_the_validator_checks_templates_of_jsonpath_states() -> None:
    definition = {
        "StartAt": "A",
        "States": {
            "A": {
                "Type": "Pass",
                "End": True,
                "Parameters": {
                    "ok.$": "States.Format('{}', $.x)",
                    "nested": {"bad.$": "States.MathAdd(1)"},
                    "list": [{"word.$": "hello"}],
                    "number.$": 3,
                },
            }
        },
    }
    found = {(p.where, p.message.split(":")[0]) for p in problems(definition)}
    assert found == {
        ("/States/A/Parameters/nested/bad.$", "intrinsic call"),
        ("/States/A/Parameters/list/0/word.$", "'word.$' holds a path (starting with $) or a call"),
        (
            "/States/A/Parameters/number.$",
            "'number.$' holds a path or an intrinsic call (a string)",
        ),
    }


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="States.FormatMathAdd()$'\\,{} 0123-.e", max_size=40))
def test_any_text_parses_or_says_why(text: str) -> None:
    try:
        parse(text)
    except IntrinsicSyntaxError as error:
        assert 0 <= error.position <= len(text)


def test_calls_nest_at_most_ten_deep() -> None:
    from statekeeper.asl.intrinsics import IntrinsicSyntaxError, parse

    ten = "States.Array(" * 10 + ")" * 10
    assert parse(ten).name == "States.Array"
    with pytest.raises(IntrinsicSyntaxError, match="nested at most 10 deep"):
        parse("States.Array(" * 11 + ")" * 11)
