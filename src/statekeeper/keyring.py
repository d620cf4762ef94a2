"""The keyring of encryption at rest: AES-GCM keys, a primary that seals and all that open.

``Keyring.seal`` returns ``nonce (12 bytes) || ciphertext+tag`` and the id of the key
that sealed it; the caller stores both (``sealing.py`` frames them as one envelope,
the state store keeps the id in a column) and supplies the associated data that
binds a value to where it lives. Keys come from the environment or a file, never
from the database.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from statekeeper.constants import ENV_ENCRYPTION_KEYS, ENV_ENCRYPTION_KEYS_FILE
from statekeeper.errors import DecryptionError, EncryptionError

_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NONCE_BYTES = 12
_TAG_BYTES = 16


class Keyring:
    """The keys that seal and open values: ``primary`` seals, all of them open."""

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        if not keys:
            raise EncryptionError("the keyring holds no keys")
        for key_id, material in keys.items():
            if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
                raise EncryptionError(
                    f"encryption key id {key_id!r} must be 1-64 letters, digits, '_', '.' or '-'"
                )
            if len(material) not in (16, 24, 32):
                raise EncryptionError(
                    f"encryption key {key_id!r} is {len(material)} bytes; AES-GCM needs 16, 24 "
                    "or 32 (32 recommended)"
                )
        if primary not in keys:
            raise EncryptionError(f"primary encryption key {primary!r} is not in the keyring")
        self.primary = primary
        self._ciphers = {key_id: AESGCM(material) for key_id, material in keys.items()}

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[bytes, str]:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._ciphers[self.primary].encrypt(nonce, plaintext, aad), self.primary

    def open(self, sealed: bytes, key_id: str, aad: bytes) -> bytes:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionError(
                f"value was sealed with encryption key {key_id!r}, which is not configured "
                f"(configured: {', '.join(self._ciphers)})",
                key_id=key_id,
            )
        if len(sealed) < _NONCE_BYTES + _TAG_BYTES:
            raise DecryptionError(
                f"stored value is {len(sealed)} bytes, too short to be sealed", key_id=key_id
            )
        try:
            return cipher.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"value does not open with encryption key {key_id!r}: wrong key material, "
                "or the stored value was tampered with",
                key_id=key_id,
            ) from None

    # --- where keys come from --------------------------------------------------------

    @staticmethod
    def generate_key() -> str:
        """A new random 256-bit key, base64-encoded."""
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """``id:base64key[,id:base64key...]``; the first key is the primary."""
        keys: dict[str, bytes] = {}
        primary = ""
        for index, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
            key_id, sep, encoded = part.partition(":")
            if not sep:
                raise EncryptionError(
                    f"encryption key #{index + 1} must be written as ID:BASE64KEY"
                )
            if key_id.strip() in keys:
                raise EncryptionError(f"encryption key id {key_id.strip()!r} is given twice")
            keys[key_id.strip()] = _decode_key(key_id.strip(), encoded.strip())
            primary = primary or key_id.strip()
        return cls(keys, primary)

    @classmethod
    def from_file(cls, path: str) -> Keyring:
        """A JSON file: ``{"primary": "k2", "keys": {"k1": "BASE64", "k2": "BASE64"}}``."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise EncryptionError(f"cannot read encryption key file {path!r}: {exc}") from None
        except ValueError as exc:
            raise EncryptionError(f"encryption key file {path!r} is not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), dict):
            raise EncryptionError(f"encryption key file {path!r} needs an object 'keys'")
        keys = {str(k): _decode_key(str(k), v) for k, v in data["keys"].items()}
        primary = data.get("primary") or (next(iter(keys)) if keys else "")
        return cls(keys, str(primary))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring | None:
        """The keyring configured in the environment, or None when none is."""
        env = os.environ if environ is None else environ
        if env.get(ENV_ENCRYPTION_KEYS):
            return cls.parse(env[ENV_ENCRYPTION_KEYS])
        if env.get(ENV_ENCRYPTION_KEYS_FILE):
            return cls.from_file(env[ENV_ENCRYPTION_KEYS_FILE])
        return None


def _decode_key(key_id: str, encoded: object) -> bytes:
    if not isinstance(encoded, str):
        raise EncryptionError(f"encryption key {key_id!r} must be a base64 string")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(f"encryption key {key_id!r} is not valid base64") from None
