"""The queue listener (storage/postgres_notify.py) outlives a connection attempt that
fails in any of the driver's ways (DRIVER_ERRORS), its internal state errors included
(as after a server's crash), and listens once one succeeds."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from statekeeper.storage import postgres_notify
from statekeeper.storage.postgres_notify import Notifier
from tests.conftest import pg_dsn

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(
    "failure",
    [TimeoutError("connecting timed out"),
     asyncpg.exceptions.InternalClientError("cannot switch to state 12")],
    ids=["timeout", "internal-client-error"],
)  # fmt: skip
async def test_the_listener_tries_again_after_a_failed_connect(
    failure: Exception,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(postgres_notify, "_RECONNECT_DELAY", 0.01)
    tries = 0

    async def connect() -> asyncpg.Connection:
        nonlocal tries
        tries += 1
        if tries == 1:
            raise failure
        return await asyncpg.connect(pg_dsn())

    def no_pool() -> asyncpg.Pool:
        raise AssertionError("nothing is announced here")

    notifier = Notifier(connect, no_pool)
    notifier.listen(lambda namespace, queue: None)
    try:
        await asyncio.wait_for(notifier.listening.wait(), 5)
    finally:
        await notifier.close()
    assert tries == 2
