"""The envelope of sealed payloads: framing, binding to a place, plaintext passing through."""

from __future__ import annotations

import json

import pytest

from statekeeper.errors import DecryptionError
from statekeeper.keyring import Keyring
from statekeeper.sealing import (
    MAGIC,
    PLAIN,
    TEXT_MAGIC,
    Sealer,
    associated_data,
    key_id_of,
    text_key_id_of,
)

K1, K2 = Keyring.generate_key(), Keyring.generate_key()
WHERE = ("message", "ns", "abc", "body")


def sealer(spec: str) -> Sealer:
    return Sealer(Keyring.parse(spec))


def test_a_sealed_value_carries_its_key_id_and_opens_with_any_key_of_the_ring() -> None:
    old = sealer(f"k1:{K1}")
    sealed = old.seal(b'{"pan":"4111"}', *WHERE)
    assert sealed.startswith(MAGIC) and key_id_of(sealed) == "k1" and b"4111" not in sealed
    rotated = sealer(f"k2:{K2},k1:{K1}")
    assert rotated.open(sealed, *WHERE) == b'{"pan":"4111"}'
    resealed = rotated.reseal(sealed, *WHERE)
    assert key_id_of(resealed) == "k2"
    assert resealed.startswith(rotated.primary_prefixes()[0])
    text = rotated.seal_text("ValueError: 4111", *WHERE)
    assert text.startswith(TEXT_MAGIC) and text_key_id_of(text) == "k2" and "4111" not in text
    assert text.startswith(rotated.primary_prefixes()[1])
    assert rotated.open_text(text, *WHERE) == "ValueError: 4111"
    assert rotated.reseal_text(old.seal_text("x", *WHERE), *WHERE).startswith(f"{TEXT_MAGIC}k2:")


@pytest.mark.parametrize(
    "elsewhere",
    [
        ("event", "ns", "abc", "body"),  # another kind
        ("message", "other", "abc", "body"),  # another namespace
        ("message", "ns", "abd", "body"),  # another row
        ("message", "ns", "abc", "result"),  # another field
    ],
)
def test_a_value_opens_only_where_it_was_sealed(elsewhere: tuple[str, ...]) -> None:
    ring = sealer(f"k1:{K1}")
    with pytest.raises(DecryptionError, match="tampered"):
        ring.open(ring.seal(b"1", *WHERE), *elsewhere)
    with pytest.raises(DecryptionError, match="tampered"):
        ring.open_text(ring.seal_text("1", *WHERE), *elsewhere)


def test_places_never_share_associated_data() -> None:
    assert associated_data(("a:b", "c")) != associated_data(("a", "b:c"))
    assert associated_data(("1:a", "")) != associated_data(("", "1:a"))
    assert associated_data(("x",)).startswith(b"\x00")  # a state value's never does


def test_plaintext_passes_through_and_a_sealed_value_needs_keys() -> None:
    assert PLAIN.seal(b"{}", *WHERE) == b"{}" and PLAIN.open(b"{}", *WHERE) == b"{}"
    assert sealer(f"k1:{K1}").open(b'{"old": 1}', *WHERE) == b'{"old": 1}'
    assert sealer(f"k1:{K1}").open_text("written before", *WHERE) == "written before"
    sealed = sealer(f"k1:{K1}").seal(b"1", *WHERE)
    with pytest.raises(DecryptionError, match=r"body of message 'abc' is sealed .* no encryption"):
        PLAIN.open(sealed, *WHERE)
    with pytest.raises(DecryptionError, match="'k1', which is not configured"):
        sealer(f"k2:{K2}").open(sealed, *WHERE)
    with pytest.raises(DecryptionError, match="wrong key material"):
        sealer(f"k1:{K2}").open(sealed, *WHERE)


def test_a_plaintext_error_that_looks_sealed_is_escaped() -> None:
    text = PLAIN.seal_text(f"{TEXT_MAGIC}k1:AAAA", *WHERE)
    assert not text.startswith(TEXT_MAGIC) and text.endswith("k1:AAAA")
    assert PLAIN.open_text(text, *WHERE) == text


def test_damaged_envelopes_are_decryption_errors() -> None:
    ring = sealer(f"k1:{K1}")
    with pytest.raises(DecryptionError, match="envelope is damaged"):
        ring.open_text(f"{TEXT_MAGIC}k1:not base64!", *WHERE)
    with pytest.raises(DecryptionError):
        ring.open(MAGIC, *WHERE)
    with pytest.raises(DecryptionError, match="too short"):
        ring.open(ring.seal(b"1", *WHERE)[:12], *WHERE)


@pytest.mark.parametrize("value", [{}, [], "", 0, -1, True, None, {"a": [1.5]}, " {}"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-be", "utf-32"])
def test_no_json_text_starts_like_a_sealed_value(value: object, encoding: str) -> None:
    data = json.dumps(value).encode(encoding)
    assert not data.startswith(MAGIC)
    assert json.loads(data) == json.loads(json.dumps(value))  # what json reads, we pass
    with pytest.raises(ValueError):
        json.loads(MAGIC + data)
