"""What the PostgreSQL adapter's modules share: driver errors, translated, and new
connections that wait for a free slot on a full server."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from types import TracebackType
from typing import Any

import asyncpg

from statekeeper.errors import StatekeeperError
from statekeeper.storage.translate import postgres_error

# InternalClientError: the driver's own state is wrong, as for a connection whose
# server crashed mid-statement; its subclass TargetServerAttributeNotMatched: no host
# of a multi-host URL is of the kind asked for (target_session_attrs), as while a
# failover has no primary yet.
DRIVER_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
)

log = logging.getLogger("statekeeper.postgres")

FULL_WARNING_EVERY = 60.0  # seconds between two warnings of a full server, per process
_last_full_warning = -FULL_WARNING_EVERY


async def connect_waiting(*args: Any, **kwargs: Any) -> Any:
    """``asyncpg.connect(*args, **kwargs)``, waiting while the server has no free slot.

    A server at ``max_connections`` refuses new sessions ("too many clients", SQLSTATE
    53300) until one ends, as when many worker processes share it and a burst opens
    connections in all of them at once. Opening a connection changes nothing, so it is
    tried again, after pauses that grow from 20 ms to half a second (with jitter), for
    up to the connect timeout in all (``connect_timeout``, 10 s by default); then the
    error is raised (``DatabaseUnavailable`` once translated). The pool opens its
    connections with this (``create_pool(connect=...)``), as do the migration and the
    listener."""
    deadline = time.monotonic() + float(kwargs.get("timeout") or 60.0)
    pause = 0.02
    while True:
        try:
            return await asyncpg.connect(*args, **kwargs)
        except asyncpg.exceptions.TooManyConnectionsError as error:
            if deadline - time.monotonic() <= pause:
                raise
            _warn_full(error)
            await asyncio.sleep(pause * random.uniform(0.5, 1.0))
            pause = min(pause * 2, 0.5)


def _warn_full(error: Exception) -> None:
    global _last_full_warning
    now = time.monotonic()
    if now - _last_full_warning >= FULL_WARNING_EVERY:
        _last_full_warning = now
        log.warning(
            "PostgreSQL has no free connection (%s): waiting for one; raise its "
            "max_connections or lower pool_max if this lasts",
            error,
        )


class translated:  # lower case: it reads as a statement, ``with translated(...)``
    """Raise driver errors met in the block as statekeeper errors, saying ``what`` failed.

    A plain (synchronous) context manager: it wraps awaits just as well and costs a
    fraction of an async generator-based one, on every database call.
    """

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if error is None or isinstance(error, StatekeeperError):
            return
        if isinstance(error, DRIVER_ERRORS):
            raise postgres_error(error, self.what) from error
