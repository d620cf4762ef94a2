"""What the PostgreSQL adapter's modules share: driver errors, translated, and new
connections that wait for a free slot on a full server and give up on a dead link."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from socket import AF_INET, AF_INET6
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

TCP_USER_TIMEOUT = 10_000  # milliseconds; the URL's tcp_user_timeout

FULL_WARNING_EVERY = 60.0  # seconds between two warnings of a full server, per process
_last_full_warning = -FULL_WARNING_EVERY


async def connect_waiting(*args: Any, tcp_user_timeout: int = 0, **kwargs: Any) -> Any:
    """``asyncpg.connect(*args, **kwargs)``, waiting while the server has no free slot,
    its TCP socket bounded by ``tcp_user_timeout`` (``bound_unacknowledged``).

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
        left = max(0.1, deadline - time.monotonic())  # each try within what is left
        try:
            conn = await asyncpg.connect(*args, **{**kwargs, "timeout": left})
        except asyncpg.exceptions.TooManyConnectionsError as error:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            _warn_full(error)
            await asyncio.sleep(min(left, pause * random.uniform(0.5, 1.0)))
            pause = min(pause * 2, 0.5)
            continue
        if tcp_user_timeout:
            try:
                bound_unacknowledged(conn, tcp_user_timeout)
            except OSError:  # the connection holds a server slot: give it back
                await conn.close()
                raise
        return conn


def bound_unacknowledged(conn: Any, milliseconds: int) -> None:
    """Make the kernel drop ``conn``'s TCP connection when what it sent has gone
    unacknowledged for ``milliseconds`` (TCP_USER_TIMEOUT, libpq's tcp_user_timeout).

    Without it, a statement sent while the link to the server is down (a partition, a
    lost host) waits for TCP's own resends to give up, which takes many minutes; with
    it, the call fails with DatabaseUnavailable soon after the bound, and the pool opens
    a new connection next time. A Unix socket has no such state: left as it is. The
    driver keeps the connection's transport unexposed, so it is read by its attribute
    name; without one nothing is set, nor where the system has no TCP_USER_TIMEOUT
    (only Linux has it)."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if option is not None and sock is not None and sock.family in (AF_INET, AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, option, milliseconds)


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
