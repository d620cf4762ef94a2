"""What the PostgreSQL adapter's modules share: driver errors, translated."""

from __future__ import annotations

from types import TracebackType

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
