"""Identifier checks: whole matches, no control characters, errors that name the rule."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statekeeper import identifiers as ids
from statekeeper.errors import (
    ConfigurationError,
    EncryptionError,
    InvalidDatabaseURL,
    InvalidEventName,
    InvalidIdempotencyKey,
    InvalidKey,
    InvalidNamespace,
    InvalidQueueName,
    InvalidWorkflowId,
    InvalidWorkflowName,
    StatekeeperError,
    ValidationError,
)
from statekeeper.state import Keyring
from statekeeper.state.validation import check_key
from statekeeper.storage.url import parse

Check = Callable[[object], str]
# kind, check, a valid value, the error class, a fragment of the rule in the message
KINDS: list[tuple[str, Check, str, type[StatekeeperError], str]] = [
    ("queue name", ids.check_queue_name, "jobs", InvalidQueueName, "1-80 letters"),
    ("workflow id", ids.check_workflow_id, "order:42@x", InvalidWorkflowId, "1-200 letters"),
    ("workflow name", ids.check_workflow_name, "travel", InvalidWorkflowName, "1-200 letters"),
    ("event name", ids.check_event_name, "note 1", InvalidEventName, "1-200 characters"),
    ("namespace", ids.check_namespace, "billing", InvalidNamespace, "1-128 bytes"),
    ("dedup id", ids.check_dedup_id, "order-1 é", ValidationError, "1-255 characters"),
    ("Idempotency-Key", ids.check_idempotency_key, "k-1", InvalidIdempotencyKey, "1-255 visible"),
    ("group", ids.check_group, "tenant 7", ValidationError, "1-128 characters"),
    ("correlation id", ids.check_correlation_id, "c-1", ValidationError, "1-128 characters"),
    ("message id", ids.check_message_id, "ab12", ValidationError, "1-64 letters"),
    ("schema", ids.check_schema_name, "tenant_a", InvalidDatabaseURL, "lowercase SQL identifier"),
    ("key", check_key, "user#1", InvalidKey, "control character"),
]
CONTROL = st.sampled_from([chr(c) for c in range(0x20)] + ["\x7f"])


@pytest.mark.parametrize(("kind", "check", "good", "error", "rule"), KINDS)
def test_valid_values_pass(
    kind: str, check: Check, good: str, error: type[StatekeeperError], rule: str
) -> None:
    assert check(good) == good


@pytest.mark.parametrize(("kind", "check", "good", "error", "rule"), KINDS)
@given(control=CONTROL, where=st.sampled_from(["end", "start", "middle"]))
def test_no_control_character_passes_anywhere(
    kind: str,
    check: Check,
    good: str,
    error: type[StatekeeperError],
    rule: str,
    control: str,
    where: str,
) -> None:
    bad = {"end": good + control, "start": control + good, "middle": good[:1] + control + good[1:]}
    with pytest.raises(error) as caught:
        check(bad[where])
    message = caught.value.message
    assert rule in message
    if kind != "key":
        assert f"invalid {kind} " in message and repr(bad[where])[:20] in message


@pytest.mark.parametrize(("kind", "check", "good", "error", "rule"), KINDS)
def test_not_a_string_and_empty_are_refused(
    kind: str, check: Check, good: str, error: type[StatekeeperError], rule: str
) -> None:
    for bad in (None, 42, b"bytes", ""):
        with pytest.raises(error):
            check(bad)


@pytest.mark.parametrize(
    ("check", "longest"),
    [
        (ids.check_queue_name, "q" * 80),
        (ids.check_workflow_id, "w" * 200),
        (ids.check_event_name, "e" * 200),
        (ids.check_namespace, "n" * 128),
        (ids.check_dedup_id, "d" * 255),
        (ids.check_idempotency_key, "i" * 255),
        (ids.check_group, "g" * 128),
        (ids.check_schema_name, "s" * 63),
    ],
)
def test_length_limits_are_the_stated_ones(check: Check, longest: str) -> None:
    assert check(longest) == longest
    with pytest.raises(StatekeeperError):
        check(longest + longest[0])


@pytest.mark.parametrize("name", ["child:", "child:w:1", "callback:3", "callback:x y"])
def test_the_engines_own_event_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidEventName, match="are the workflow engine's own"):
        ids.check_event_name(name)


@pytest.mark.parametrize("name", ["child", "children:1", "Child:1", "x child:1", "callbacks:1"])
def test_names_near_the_reserved_ones_pass(name: str) -> None:
    assert ids.check_event_name(name) == name


@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=300))
def test_idempotency_keys_are_visible_ascii_only(key: str) -> None:
    valid = len(key) <= 255 and all("!" <= c <= "~" for c in key)
    try:
        assert ids.check_idempotency_key(key) == key and valid
    except InvalidIdempotencyKey as error:
        assert not valid
        assert "1-255 visible ASCII characters" in error.message


@pytest.mark.parametrize(
    "check",
    [ids.check_event_name, ids.check_dedup_id, ids.check_group, ids.check_correlation_id],
)
def test_text_identifiers_refuse_lone_surrogates(check: Check) -> None:
    """Counted in characters, yet checked as Unicode text: a lone surrogate cannot be
    stored as UTF-8 (PostgreSQL refuses it), so it is refused at the door."""
    for bad in ("\ud800", "note\udfff"):
        with pytest.raises(ValidationError, match="lone surrogate"):
            check(bad)


def test_namespace_limit_counts_bytes_and_surrogates_are_refused() -> None:
    assert ids.check_namespace("é" * 64) == "é" * 64
    with pytest.raises(InvalidNamespace, match="129 bytes"):
        ids.check_namespace("é" * 64 + "x")
    with pytest.raises(InvalidNamespace, match="lone surrogate"):
        ids.check_namespace("\ud800")
    assert issubclass(InvalidNamespace, ConfigurationError)


def test_long_values_are_shown_cut() -> None:
    with pytest.raises(InvalidQueueName) as caught:
        ids.check_queue_name("x" * 10_000 + "\n")
    assert len(caught.value.message) < 200 and "..." in caught.value.message


def test_schema_in_a_database_url_is_matched_whole() -> None:
    assert parse("postgresql://h/db?schema=tenant_a").options["schema"] == "tenant_a"
    for schema in ("abc%0A", "abc%0D", "ABC", "1abc", "a" * 64):
        with pytest.raises(InvalidDatabaseURL, match="lowercase SQL identifier"):
            parse(f"postgresql://h/db?schema={schema}")


def test_encryption_key_ids_are_matched_whole() -> None:
    material = b"k" * 32
    assert Keyring({"k1": material}, "k1").primary == "k1"
    with pytest.raises(EncryptionError, match="1-64 letters"):
        Keyring({"k1\n": material}, "k1\n")
