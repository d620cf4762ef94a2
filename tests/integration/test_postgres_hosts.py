"""A PostgreSQL URL with several hosts: statekeeper connects to the first that answers
and is of the kind asked for (``target_session_attrs``), as libpq does."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from statekeeper import App
from statekeeper.errors import DatabaseUnavailable
from tests.conftest import pg_dsn
from tests.servers import free_port

pytestmark = pytest.mark.postgres


def hosts_url(*ports: int, attrs: str, schema: str) -> str:
    real = urlsplit(pg_dsn())
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return f"postgresql://{real.username}@{hosts}{real.path}?target_session_attrs={attrs}" \
        f"&schema={schema}&connect_timeout=2"  # fmt: skip


async def test_a_host_that_is_down_is_passed_over(schema: str) -> None:
    closed = free_port()  # nothing listens there
    real = urlsplit(pg_dsn()).port or 5432
    async with App(hosts_url(closed, real, attrs="read-write", schema=schema)) as app:
        await app.state.put("k", {"v": 1})
        item = await app.state.get("k")
        assert item is not None and item.value == {"v": 1}


async def test_no_host_of_the_kind_asked_for_is_a_clear_error(schema: str) -> None:
    real = urlsplit(pg_dsn()).port or 5432
    with pytest.raises(DatabaseUnavailable, match="cannot connect to PostgreSQL") as raised:
        async with App(hosts_url(real, attrs="standby", schema=schema)):
            pass
    assert "Traceback" not in str(raised.value)
