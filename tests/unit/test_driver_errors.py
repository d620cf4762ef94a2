"""The PostgreSQL driver's client-side errors become statekeeper errors: a caller (and
the HTTP API, which answers 503 for it) sees the database as unavailable, never the
driver's own exception."""

from __future__ import annotations

import asyncpg
import pytest

from statekeeper.errors import DatabaseUnavailable
from statekeeper.storage.postgres_common import DRIVER_ERRORS, translated


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.exceptions.TargetServerAttributeNotMatched(
            "None of the hosts match the target attribute requirement 'read-write'"
        ),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
def test_client_side_driver_errors_mean_the_database_is_unavailable(error: Exception) -> None:
    assert isinstance(error, DRIVER_ERRORS)
    with (
        pytest.raises(DatabaseUnavailable, match="cannot read 'k'") as raised,
        translated("cannot read 'k'"),
    ):
        raise error
    assert raised.value.__cause__ is error
