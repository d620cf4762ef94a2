"""What the PostgreSQL adapter's modules share: driver errors, translated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from statekeeper.errors import StatekeeperError
from statekeeper.storage.translate import postgres_error

DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


@asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Raise driver errors met in the block as statekeeper errors, saying ``what`` failed."""
    try:
        yield
    except StatekeeperError:
        raise
    except DRIVER_ERRORS as exc:
        raise postgres_error(exc, what) from exc
