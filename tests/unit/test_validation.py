from __future__ import annotations

import math
import threading

import pytest

from statekeeper.codec import decode_value, encode_value
from statekeeper.errors import InvalidKey, InvalidTTL, InvalidValue, ValueTooLarge
from statekeeper.state.validation import check_key, check_ttl


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("", "must not be empty"),
        (42, "must be a string, got int"),
        (None, "must be a string, got NoneType"),
        ("k" * 1025, "1025 bytes long; the limit is 1024"),
        ("é" * 513, "1026 bytes long"),
        ("a\x00b", "control character"),
        ("a\nb", "control character"),
        ("line\n", "control character"),
        ("del\x7f", "control character"),
        ("\ud800", "lone surrogate"),
    ],
)
def test_bad_keys(key: object, fragment: str) -> None:
    with pytest.raises(InvalidKey, match=fragment):
        check_key(key)


def test_good_keys() -> None:
    assert check_key("k" * 1024) == "k" * 1024
    assert check_key("user#1#order#2") == "user#1#order#2"
    assert check_key("日本") == "日本"


@pytest.mark.parametrize("ttl", [0, -1, -0.5, math.nan, math.inf])
def test_non_positive_ttl(ttl: float) -> None:
    with pytest.raises(InvalidTTL, match="positive number of seconds"):
        check_ttl(ttl)


@pytest.mark.parametrize("ttl", ["10", True, [1], b"1"])
def test_non_numeric_ttl(ttl: object) -> None:
    with pytest.raises(InvalidTTL, match="must be a number of seconds"):
        check_ttl(ttl)


def test_huge_ttls_are_refused_not_overflowed() -> None:
    for ttl in (10**400, 1e300, 4e9):
        with pytest.raises(InvalidTTL, match="at most 3153600000 seconds"):
            check_ttl(ttl)


def test_ttl_values() -> None:
    assert check_ttl(None) is None
    assert check_ttl(5) == 5.0
    assert check_ttl(0.25) == 0.25


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (object(), "not JSON-serializable: Unable to serialize unknown type: <class 'object'>"),
        ({"x": [threading.Lock()]}, "unknown type: <class '_thread.lock'>"),
        (math.nan, "Out of range float"),
        ({"x": math.inf}, "Out of range float"),
        ("\udc80", "invalid Unicode"),
    ],
)
def test_values_that_are_not_json(value: object, fragment: str) -> None:
    with pytest.raises(InvalidValue, match=fragment):
        encode_value("k", value, 1 << 20)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({1: "one"}, "object key 1 of type int"),
        ({"a": [{None: 1}]}, "object key None of type NoneType"),
        ({True: 1}, "object key True of type bool"),
    ],
)
def test_non_string_object_keys_are_refused(value: object, fragment: str) -> None:
    with pytest.raises(InvalidValue, match=fragment):
        encode_value("k", value, 1 << 20)


def test_nesting_is_capped_so_values_always_read_back() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(199):
        child: list[object] = []
        node.append(child)
        node = child
    assert decode_value("k", encode_value("k", deep, 1 << 20)) == deep
    node.append([])
    with pytest.raises(InvalidValue, match="nested deeper than 200 levels"):
        encode_value("k", deep, 1 << 20)


def test_unreadable_stored_json_is_a_storage_error() -> None:
    from statekeeper.errors import StorageError

    with pytest.raises(StorageError, match="not readable JSON"):
        decode_value("k", b"{broken")


def test_circular_value() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(InvalidValue, match="nested deeper"):
        encode_value("k", loop, 1 << 20)


def test_size_limit_counts_json_bytes() -> None:
    assert encode_value("k", "x" * 8, 10) == b'"xxxxxxxx"'
    with pytest.raises(ValueTooLarge, match="11 bytes as JSON; the limit is 10"):
        encode_value("k", "x" * 9, 10)


def test_round_trip() -> None:
    value = {"a": [1, 2.5, None, True], "b": "ünïcode", "c": {"d": ""}}
    assert decode_value("k", encode_value("k", value, 1000)) == value
