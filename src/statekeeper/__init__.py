"""statekeeper: durable state for stateless functions."""

from __future__ import annotations

import logging

from statekeeper import errors
from statekeeper.app import App
from statekeeper.errors import (
    AlreadyExists,
    ConflictError,
    StatekeeperError,
    TransactionConflict,
    ValidationError,
)
from statekeeper.logs import configure_logging, correlation
from statekeeper.queues import Message, Retry
from statekeeper.state import Item, Keyring, Page

__version__ = "0.1.0"

# A library logs only where its user says: JSON lines once configure_logging() is called.
logging.getLogger("statekeeper").addHandler(logging.NullHandler())

__all__ = [
    "AlreadyExists",
    "App",
    "ConflictError",
    "Item",
    "Keyring",
    "Message",
    "Page",
    "Retry",
    "StatekeeperError",
    "TransactionConflict",
    "ValidationError",
    "__version__",
    "configure_logging",
    "correlation",
    "errors",
]
