"""TLS to PostgreSQL from the database URL: a PostgreSQL server of the test's own with
``ssl=on`` (a scratch cluster on a loopback port), and the shared one without TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from statekeeper import App
from statekeeper.errors import StorageError
from tests.conftest import pg_dsn
from tests.integration import cli_forkserver
from tests.integration.certs import free_port, self_signed
from tests.servers import postgres_binary

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).parents[2]


def as_postgres(*args: str) -> list[str]:
    """The command, run as the postgres user when the tests run as root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[int, Path]]:
    """A PostgreSQL cluster serving TLS only on 127.0.0.1: (port, its CA certificate)."""
    initdb, pg_ctl = postgres_binary("initdb"), postgres_binary("pg_ctl")
    if shutil.which(initdb) is None or shutil.which(pg_ctl) is None:
        pytest.skip("initdb and pg_ctl are not installed")
    home = Path(tempfile.mkdtemp(prefix="sk_pg_tls_"))  # outside pytest's root-only tree
    cert, key = self_signed(home, names=["localhost"], addresses=("127.0.0.1",))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        for path in (cert, key):
            shutil.chown(path, "postgres")
    key.chmod(0o600)
    data, port = home / "data", free_port()
    subprocess.run(
        as_postgres(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"),
        check=True,
        capture_output=True,
    )
    hba = "hostssl all all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 reject\n"
    (data / "pg_hba.conf").write_text(hba)
    options = (
        f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on "
        f"-c ssl_cert_file={cert} -c ssl_key_file={key}"
    )
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(home / "log"), "-w", "start"]
    subprocess.run(as_postgres(*start), check=True, capture_output=True)
    try:
        yield port, cert
    finally:
        stop = [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(as_postgres(*stop), capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


async def test_verified_tls_to_postgres(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    url = (
        f"postgresql://postgres@localhost:{port}/postgres"
        f"?schema=over_tls&sslmode=verify-full&sslrootcert={ca}"
    )
    async with App(url, namespace="tls", purge_interval=None, encryption=None) as app:
        await app.state.put("k", {"over": "tls"})
        item = await app.state.get("k")
        assert item is not None and item.value == {"over": "tls"}
        pool = app.backend.pool  # type: ignore[attr-defined]
        ssl_in_use = await pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert ssl_in_use is True


def cli(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return cli_forkserver.run(["--database", database, *args], env, None, None, 60)


def test_an_untrusted_server_certificate_is_one_line(
    tls_server: tuple[int, Path], tmp_path: Path
) -> None:
    port, _ = tls_server
    stranger, _ = self_signed(tmp_path, names=["localhost"], stem="stranger")
    url = (
        f"postgresql://postgres:hunter2@localhost:{port}/postgres?sslmode=verify-full"
        f"&sslrootcert={stranger}&sslpassword=keypass"
    )
    result = cli(url, "state", "get", "k")
    assert result.returncode == 8, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: database_unavailable: cannot connect to PostgreSQL")
    assert "certificate verify failed" in line.lower()
    assert "hunter2" not in line and "keypass" not in line


async def test_sslmode_reaches_the_driver(pg_schema_prefix: str) -> None:
    """The shared server has TLS off: ``sslmode=require`` must fail, not fall back."""
    with pytest.raises(StorageError, match="SSL"):
        async with App(f"{pg_dsn()}?sslmode=require", purge_interval=None, encryption=None):
            pass
    async with App(
        f"{pg_dsn()}?sslmode=disable&schema={pg_schema_prefix}_no_tls",
        purge_interval=None,
        encryption=None,
    ) as app:
        assert await app.state.get("absent") is None
