"""The strict decoder of untrusted bytes: examples, then properties (hypothesis)."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statekeeper.codec import decode_json, decode_value, encode_value
from statekeeper.constants import MAX_VALUE_DEPTH
from statekeeper.errors import InvalidValue, MalformedJSON, ValidationError

# Text that looks like structure: brackets, quotes and backslashes inside strings.
TRICKY = st.text(alphabet='[]{}"\\/ab\n\u00e9\U0001f600', max_size=6)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | TRICKY
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text() | TRICKY, inner, max_size=4)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    stack, deepest = [(value, 0)], 0
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            level += 1
            deepest = max(deepest, level)
            stack.extend(
                (child, level) for child in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


def wrap(value: Any, levels: int, how: int) -> Any:
    for _ in range(levels):
        value = [value] if how == 0 else {'k"[': value} if how == 1 else ["]}", value, "{["]
    return value


@given(VALUES, st.booleans())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_valid_json_round_trips_exactly(value: Any, ascii_escapes: bool) -> None:
    data = json.dumps(value, ensure_ascii=ascii_escapes).encode()
    decoded = decode_json(data, "body")
    assert decoded == value
    assert decode_value("k", encode_value("k", decoded, 1 << 24)) == value


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_arbitrary_bytes_never_raise_anything_else(data: bytes) -> None:
    try:
        decode_json(data, "body")
    except MalformedJSON as error:
        assert error.message.startswith("body ")
        assert error.http_status == 400 and error.exit_code == 4


@given(st.text(alphabet='[]{}",:0123456789.eE-+ \\untrfals', max_size=300))
@settings(max_examples=500)
def test_json_like_text_never_raises_anything_else(text: str) -> None:
    with contextlib.suppress(MalformedJSON):
        decode_json(text.encode(), "body")


@given(VALUES, st.integers(0, MAX_VALUE_DEPTH + 60), st.integers(0, 2), st.booleans())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_depth_limit_is_exact_and_the_same_as_storing(
    inner: Any, levels: int, how: int, padded: bool
) -> None:
    """Whatever nests at most MAX_VALUE_DEPTH is accepted and can be stored (encode_value
    has the same limit); one level more is refused. Padding with many empty lists makes
    the bracket count large, so the exact check (not the cheap count) decides."""
    value = wrap(inner, levels, how)
    if padded:
        value = [value, [[] for _ in range(2 * MAX_VALUE_DEPTH)]]
    data = json.dumps(value).encode()
    if depth(value) <= MAX_VALUE_DEPTH:
        assert decode_json(data, "body") == value
        encode_value("k", value, 1 << 24)
    else:
        with pytest.raises(MalformedJSON, match=f"nested deeper than {MAX_VALUE_DEPTH} levels"):
            decode_json(data, "body")
        with pytest.raises(InvalidValue, match=f"nested deeper than {MAX_VALUE_DEPTH} levels"):
            encode_value("k", value, 1 << 24)


@pytest.mark.parametrize("levels", [1000, 5000, 100_000])
def test_very_deep_nesting_is_refused_without_recursion(levels: int) -> None:
    for data in (b"[" * levels + b"]" * levels, b'{"a":' * levels + b"1" + b"}" * levels):
        with pytest.raises(MalformedJSON, match="nested deeper than 200 levels"):
            decode_json(data, "body")
    with pytest.raises(MalformedJSON):
        decode_json(b"[" * levels, "body")  # unclosed


@given(
    st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xff\xfe\x00\x00"]),
    VALUES,
)
def test_byte_order_marks_are_refused(bom: bytes, value: Any) -> None:
    with pytest.raises(MalformedJSON, match=r"byte order mark|only UTF-8"):
        decode_json(bom + json.dumps(value).encode(), "body")


@given(VALUES, st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"]))
def test_utf16_and_utf32_are_refused(value: Any, encoding: str) -> None:
    with pytest.raises(MalformedJSON, match="only UTF-8"):
        decode_json(json.dumps(value).encode(encoding), "body")


@given(st.integers(0xD800, 0xDFFF), st.sampled_from(["{:04x}", "{:04X}"]), TRICKY)
def test_lone_surrogate_escapes_are_refused(code: int, form: str, around: str) -> None:
    escape = "\\u" + form.format(code)
    for text in (f'"{escape}"', f'[{json.dumps(around)}, "x{escape}"]', f'{{"{escape}": 1}}'):
        with pytest.raises(MalformedJSON, match="lone surrogate"):
            decode_json(text.encode(), "body")


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    assert decode_json(b'"\\ud83d\\ude00"', "body") == "\U0001f600"
    assert decode_json(b'"\\\\ud800"', "body") == "\\ud800"


@given(
    st.sampled_from(["1e999", "-1e400", "1E309", "1" * 400 + ".5", "-" + "9" * 320 + ".0"]),
    VALUES,
)
def test_numbers_beyond_a_float_are_refused(number: str, other: Any) -> None:
    text = f'[{json.dumps(other)}, {{"x": {number}}}]'
    with pytest.raises(MalformedJSON, match=r"beyond the range of a 64-bit float \(±1.8e308\)"):
        decode_json(text.encode(), "body")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(constant: str) -> None:
    with pytest.raises(MalformedJSON, match=f"{constant}, which is not JSON"):
        decode_json(f'{{"x": [{constant}]}}'.encode(), "body")


def test_integers_beyond_the_digit_limit_are_refused() -> None:
    assert decode_json(b"9" * 4300, "body") == int("9" * 4300)
    with pytest.raises(MalformedJSON, match="integer of more than 4300 digits"):
        decode_json(b"[" + b"9" * 4301 + b"]", "body")


def test_small_and_large_floats_keep_their_value() -> None:
    assert decode_json(b"[1.7976931348623157e308, 5e-324, 1e-999]", "body") == [
        1.7976931348623157e308,
        5e-324,
        0.0,
    ]
    assert math.isfinite(decode_json(b"-1.7976931348623157e308", "body"))


def test_errors_are_validation_errors_naming_the_subject() -> None:
    with pytest.raises(ValidationError, match=r"^VALUE is not JSON: Expecting"):
        decode_json(b"{broken", "VALUE")
    with pytest.raises(MalformedJSON) as caught:
        decode_json(b"\xff", "VALUE")
    assert caught.value.code == "malformed_json"
    assert isinstance(caught.value, InvalidValue)


# --- long strings: written a slice at a time --------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_JSON_VALUES)
def test_values_with_long_strings_encode_as_the_encoder_does(value: Any) -> None:
    """With the slice made tiny, every string is "long": the sliced writer's bytes are
    the standard encoder's, escapes, non-ASCII text and nesting included."""
    import statekeeper.codec as codec

    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    saved = codec._SLICE
    codec._SLICE = 3
    try:
        with contextlib.suppress(InvalidValue):  # lone surrogates are refused either way
            assert bytes(encode_value("k", value, 1 << 20)) == expected
    finally:
        codec._SLICE = saved


def test_a_long_string_is_encoded_in_slices_and_refused_when_invalid() -> None:
    text = 'a"\\\n\u00e9\U0001f600' * 300_000  # past a slice (1 MiB of characters)
    data = encode_value("k", text, 1 << 30)
    assert bytes(data) == json.dumps(text, ensure_ascii=False).encode()
    assert decode_value("k", bytes(data)) == text
    with pytest.raises(InvalidValue, match="lone surrogate"):
        encode_value("k", ["x" * (2 << 20) + "\ud800"], 1 << 30)
    with pytest.raises(ValidationError, match="limit is 1000"):
        encode_value("k", {"big": "x" * (2 << 20)}, 1000)
