"""The state store: keyed JSON values with ETags, TTL, transactions, encryption, cache."""

from __future__ import annotations

from statekeeper.state.encryption import Keyring
from statekeeper.state.item import Item, Page
from statekeeper.state.store import ReencryptReport, StateStore
from statekeeper.state.transaction import Transaction

__all__ = ["Item", "Keyring", "Page", "ReencryptReport", "StateStore", "Transaction"]
