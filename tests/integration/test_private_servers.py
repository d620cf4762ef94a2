"""``make test`` on a machine where nothing listens on PostgreSQL's or Redis's port: a
test run in a subprocess, its "already listening?" check pointed at closed ports, starts
private servers, runs on them and removes them, also when it is interrupted or killed
(tests/servers.py). The machine's own servers are never touched."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import pg_dsn
from tests.servers import (
    ENV_TEST_PG,
    ENV_TEST_PG_BINDIR,
    ENV_TEST_REDIS,
    ServerUnavailable,
    TestServers,
    free_port,
    listening,
    postgres_bindir,
    redis_binary,
    sweep_stale_homes,
)

ROOT = Path(__file__).parents[2]
SMOKE = [
    "tests/contract/test_outbox.py",  # a contract file on both backends
    "tests/integration/test_cache.py::test_the_runs_redis_serves_the_cache",
]
STARTED = re.compile(
    r"started a private (PostgreSQL|Redis) on 127\.0\.0\.1:(\d+) \(pid (\d+), files in (\S+)\)"
)

pytestmark = pytest.mark.skipif(
    postgres_bindir() is None or redis_binary() is None,
    reason="the PostgreSQL server binaries or redis-server are not installed",
)


@dataclass
class Private:
    kind: str
    port: int
    pid: int
    home: Path


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def started(output: str) -> list[Private]:
    return [
        Private(kind, int(port), int(pid), Path(home))
        for kind, port, pid, home in STARTED.findall(output)
    ]


def closed_ports_env() -> dict[str, str]:
    """The environment of a run that finds nothing listening where it looks."""
    return inner_env(
        **{
            ENV_TEST_PG: f"postgresql://postgres@127.0.0.1:{free_port()}/test",
            ENV_TEST_REDIS: f"redis://127.0.0.1:{free_port()}/0",
        }
    )


def pytest_command(basetemp: Path, *args: str) -> list[str]:
    """An inner run with the plugins the selected tests need (see ``inner_env``)."""
    return [
        sys.executable, "-m", "pytest", "-p", "asyncio", "-p", "pytest_timeout",
        "-p", "no:cacheprovider", f"--basetemp={basetemp}", "-v", *args,
    ]  # fmt: skip


def inner_env(**changes: str) -> dict[str, str]:
    """The environment of an inner run; the plugins it does not need are not loaded
    (they take seconds to import)."""
    return {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **changes}


def wait_until_gone(servers: list[Private], limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while any(running(s.pid) for s in servers) and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def leftovers() -> Iterator[list[Private]]:
    """Servers a test saw started: whatever is left of them is stopped and removed after
    the test, so a failing test leaves nothing behind either."""
    seen: list[Private] = []
    yield seen
    for server in seen:
        if running(server.pid):
            os.kill(server.pid, signal.SIGKILL)
        subprocess.run(["rm", "-rf", str(server.home)], check=False)


def test_a_run_with_nothing_listening_starts_uses_and_removes_private_servers(
    tmp_path: Path, leftovers: list[Private]
) -> None:
    result = subprocess.run(
        pytest_command(tmp_path / "inner", *SMOKE),
        cwd=ROOT,
        env=closed_ports_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    servers = started(output)
    leftovers.extend(servers)
    assert result.returncode == 0, output
    assert sorted(s.kind for s in servers) == ["PostgreSQL", "Redis"], output
    for backend in ("sqlite", "postgres"):  # the PostgreSQL and Redis ones are the private ones
        assert f"test_committed_transaction_sends[{backend}] PASSED" in output, output
        assert f"test_the_runs_redis_serves_the_cache[{backend}] PASSED" in output, output
    for server in servers:
        assert server.port not in (5432, 6379)
        assert not running(server.pid), f"{server.kind} still runs"
        assert not server.home.exists(), f"{server.home} is left over"
        assert not listening("127.0.0.1", server.port)
    assert asyncio.run(answers(pg_dsn())), "the PostgreSQL of this run was disturbed"


async def answers(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT 1") == 1)
    finally:
        await conn.close()


def start_and_wait_for_servers(tmp_path: Path) -> tuple[subprocess.Popen[str], list[Private]]:
    """An inner run, returned once both its private servers are up."""
    inner = subprocess.Popen(
        pytest_command(tmp_path / "inner", "tests/contract/test_state.py"),
        cwd=ROOT,
        env=closed_ports_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert inner.stdout is not None
    lines = []
    for line in inner.stdout:
        lines.append(line)
        if len(started("".join(lines))) == 2:
            return inner, started("".join(lines))
    inner.wait()
    raise AssertionError("".join(lines))


def test_a_terminated_run_stops_and_removes_them(tmp_path: Path, leftovers: list[Private]) -> None:
    inner, servers = start_and_wait_for_servers(tmp_path)
    leftovers.extend(servers)
    inner.send_signal(signal.SIGTERM)
    output, _ = inner.communicate(timeout=60)
    assert inner.returncode != 0 and "KeyboardInterrupt: signal SIGTERM" in output, output
    for server in servers:
        assert not running(server.pid), f"{server.kind} still runs"
        assert not server.home.exists(), f"{server.home} is left over"


def test_a_killed_run_takes_them_down_and_the_next_run_removes_their_files(
    tmp_path: Path, leftovers: list[Private]
) -> None:
    inner, servers = start_and_wait_for_servers(tmp_path)
    leftovers.extend(servers)
    inner.kill()
    inner.wait()
    wait_until_gone(servers)
    for server in servers:
        assert not running(server.pid), f"{server.kind} outlived the run"
        assert server.home.exists()  # nobody was left to remove it...
    sweep_stale_homes()  # what the next run does first
    for server in servers:
        assert not server.home.exists(), f"{server.home} was not swept"  # ...until now


def test_a_missing_server_binary_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    pg = f"127.0.0.1:{free_port()}"
    env = inner_env(
        **{
            ENV_TEST_PG: f"postgresql://postgres@{pg}/test",
            ENV_TEST_PG_BINDIR: str(tmp_path),  # no initdb there
            ENV_TEST_REDIS: f"redis://127.0.0.1:{free_port()}/0",
        }
    )
    inner = subprocess.Popen(
        pytest_command(tmp_path / "inner", "tests/unit/test_url.py"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = inner.communicate(timeout=120)
    assert inner.returncode == pytest.ExitCode.USAGE_ERROR, stdout + stderr
    assert stderr.strip().splitlines() == [
        f"ERROR: PostgreSQL is not listening at {pg} and its server binaries (initdb, "
        "postgres) are not installed: apt-get install postgresql (Debian), or set "
        f"{ENV_TEST_PG} to a running server"
    ]
    assert "started a private" not in stdout  # Redis neither: nothing starts until all is there
    assert not list(Path(tempfile.gettempdir()).glob(f"statekeeper-test-{inner.pid}-*"))


def test_a_missing_redis_server_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server there
    servers = TestServers({ENV_TEST_PG: f"postgresql://postgres@127.0.0.1:{free_port()}/test"})
    with pytest.raises(ServerUnavailable) as refused:
        servers.start_missing()
    assert str(refused.value) == (
        "redis-server is not installed (the tests start their own): "
        "apt-get install redis-server (Debian)"
    )
    assert servers.private == []
