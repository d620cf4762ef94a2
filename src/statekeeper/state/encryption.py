"""Encryption of state values: the associated data that binds a value to its key.

A state value is sealed by the keyring (``statekeeper.keyring``) and stored with the id
of the key that sealed it in its own ``key_id`` column; every other payload carries
its key id in its envelope (``statekeeper.sealing``).
"""

from __future__ import annotations

from statekeeper.keyring import Keyring

__all__ = ["Keyring", "associated_data"]


def associated_data(namespace: str, key: str) -> bytes:
    """The namespace and key: a sealed value copied under another key fails to open."""
    return f"{namespace}\x00{key}".encode()
