"""Encryption at rest on both backends: sealed bytes, key rotation, wrong keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from statekeeper import App, Keyring
from statekeeper.errors import DecryptionError, EncryptionError

K1, K2 = Keyring.generate_key(), Keyring.generate_key()


def keyring(spec: str) -> Keyring:
    return Keyring.parse(spec)


async def test_values_are_sealed_at_rest(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, encryption=keyring(f"k1:{K1}")) as app:
        await app.state.put("card", {"pan": "4111111111111111"})
        stored = await app.backend.state.get(namespace, "card", app.clock())
        assert stored is not None
        assert stored.key_id == "k1"
        assert b"4111" not in stored.value
        item = await app.state.get("card")
        assert item is not None and item.value == {"pan": "4111111111111111"}


async def test_rotation_and_reencrypt(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, encryption=None) as plain:
        await plain.state.put("was-plain", 0)
    async with App(database_url, namespace=namespace, encryption=keyring(f"k1:{K1}")) as old:
        await old.state.put_many({f"k{i}": i for i in range(7)})
    rotated = keyring(f"k2:{K2},k1:{K1}")
    async with App(database_url, namespace=namespace, encryption=rotated) as app:
        item = await app.state.get("k3")  # the old key still opens
        assert item is not None and item.value == 3
        await app.state.put("fresh", 1)  # the primary seals new writes
        report = await app.state.reencrypt()
        assert (report.examined, report.rewritten, report.changed_meanwhile) == (9, 8, 0)
        rows = await app.backend.state.list(
            namespace, after="", low="", high=None, limit=100, now=app.clock()
        )
        assert {row.key_id for row in rows} == {"k2"}
        etag_before = item.etag
        again = await app.state.get("k3")
        assert again is not None and again.etag == etag_before  # re-sealing is not a write
    async with App(database_url, namespace=namespace, encryption=keyring(f"k2:{K2}")) as new:
        got = await new.state.get_many([f"k{i}" for i in range(7)] + ["was-plain"])
        assert [g.value if g else None for g in got.values()] == [*range(7), 0]


async def test_wrong_key_is_a_clear_error_and_changes_nothing(
    database_url: str, namespace: str
) -> None:
    async with App(database_url, namespace=namespace, encryption=keyring(f"k1:{K1}")) as app:
        await app.state.put("secret", "s3cr3t")
    async with App(database_url, namespace=namespace, encryption=keyring(f"k1:{K2}")) as wrong:
        with pytest.raises(DecryptionError, match="wrong key material"):
            await wrong.state.get("secret")
    async with App(database_url, namespace=namespace, encryption=keyring(f"other:{K1}")) as other:
        with pytest.raises(DecryptionError, match="'k1', which is not configured"):
            await other.state.get("secret")
    async with App(database_url, namespace=namespace, encryption=None) as none:
        with pytest.raises(DecryptionError, match="no encryption keys are configured"):
            await none.state.get("secret")
        with pytest.raises(EncryptionError, match="nothing to re-encrypt"):
            await none.state.reencrypt()
    async with App(database_url, namespace=namespace, encryption=keyring(f"k1:{K1}")) as app:
        item = await app.state.get("secret")
        assert item is not None and item.value == "s3cr3t"


async def test_a_sealed_value_moved_to_another_key_does_not_open(
    database_url: str, namespace: str
) -> None:
    async with App(database_url, namespace=namespace, encryption=keyring(f"k1:{K1}")) as app:
        await app.state.put("alice", "alice's data")
        await app.state.put("bob", "bob's data")
        alice = await app.backend.state.get(namespace, "alice", app.clock())
        bob = await app.backend.state.get(namespace, "bob", app.clock())
        assert alice is not None and bob is not None
        await app.backend.state.reseal(namespace, "bob", bob.etag, alice.value, "k1")
        with pytest.raises(DecryptionError):
            await app.state.get("bob")


def test_keyring_sources(tmp_path: Path) -> None:
    env = {"STATEKEEPER_ENCRYPTION_KEYS": f"new:{K2}, old:{K1}"}
    ring = Keyring.from_env(env)
    assert ring is not None and ring.primary == "new" and ring.key_ids == ["new", "old"]
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"primary": "b", "keys": {"a": K1, "b": K2}}))
    ring = Keyring.from_env({"STATEKEEPER_ENCRYPTION_KEYS_FILE": str(path)})
    assert ring is not None and ring.primary == "b"
    assert Keyring.from_env({}) is None


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("k1", "ID:BASE64KEY"),
        ("k1:not base64!", "not valid base64"),
        ("k1:AAAA", "is 3 bytes; AES-GCM needs 16, 24 or 32"),
        (f"bad id:{K1}", "must be 1-64 letters"),
        ("", "holds no keys"),
    ],
    ids=["no-colon", "not-base64", "short-key", "bad-id", "empty"],
)
def test_bad_keyrings(spec: str, fragment: str) -> None:
    with pytest.raises(EncryptionError, match=fragment):
        Keyring.parse(spec)


def test_bad_key_files(tmp_path: Path) -> None:
    with pytest.raises(EncryptionError, match="cannot read"):
        Keyring.from_file(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(EncryptionError, match="is not JSON"):
        Keyring.from_file(str(tmp_path / "bad.json"))
    (tmp_path / "nokeys.json").write_text("{}")
    with pytest.raises(EncryptionError, match="needs an object 'keys'"):
        Keyring.from_file(str(tmp_path / "nokeys.json"))
    (tmp_path / "primary.json").write_text(json.dumps({"primary": "zz", "keys": {"a": K1}}))
    with pytest.raises(EncryptionError, match="primary encryption key 'zz'"):
        Keyring.from_file(str(tmp_path / "primary.json"))


def test_duplicate_key_ids_and_short_values() -> None:
    with pytest.raises(EncryptionError, match="given twice"):
        Keyring.parse(f"k1:{K1},k1:{K2}")
    ring = Keyring.parse(f"k1:{K1}")
    with pytest.raises(DecryptionError, match="too short to be sealed"):
        ring.open(b"short", "k1", b"aad")
