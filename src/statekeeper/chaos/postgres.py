"""A PostgreSQL server of the chaos harness's own, on a test host (chaos/hosts.py).

It is a new cluster (``initdb``, trust authentication, a database ``test``) in a folder
of the harness's, run from the installed binaries as the ``postgres`` account when the
harness runs as root (PostgreSQL refuses root). It listens on the host's address and on
a Unix socket in its folder: the socket is how the harness itself reads and checks the
database from outside the host's network.

    server = HostPostgres(db_host, Path(tmp) / "pg")
    server.start()
    server.socket_url           # the same database through the Unix socket
    server.kill()               # SIGKILL of the postmaster; start() again recovers
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from statekeeper.chaos.hosts import SUBNET, Host, HostError

PORT = 5432
SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "128MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "unix_socket_permissions": "0777",
}


def bindir() -> Path:
    """Where ``initdb`` and ``postgres`` are: ``pg_config --bindir``, else the newest
    Debian cluster's folder."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidate = Path(found.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise HostError("no PostgreSQL server binaries (initdb) found")
    return versions[-1].parent


def _server_account() -> pwd.struct_passwd | None:
    """The account PostgreSQL and pg_autoctl run as: ``postgres`` when the harness
    runs as root (they refuse root), else the harness's own (None)."""
    return pwd.getpwnam("postgres") if os.geteuid() == 0 else None


def as_server(argv: list[str]) -> list[str]:
    """``argv`` run as the server's account."""
    account = _server_account()
    if account is None:
        return argv
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
            "--clear-groups", *argv]  # fmt: skip


def own_by_server(path: Path) -> None:
    """Give ``path`` to the server's account (a folder it writes in)."""
    account = _server_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


class HostPostgres:
    def __init__(self, host: Host, directory: Path, *, port: int = PORT) -> None:
        self.host = host
        self.directory = directory
        self.port = port
        self.data = directory / "data"
        self.sockets = directory / "sockets"
        self.log = directory / "postgres.log"
        self.bin = bindir()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_url(self) -> str:
        return f"postgresql://postgres@/test?host={self.sockets}&port={self.port}"

    def start(self) -> None:
        """Create the cluster the first time, then start the server and wait for it."""
        if not self.data.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            own_by_server(self.directory)
            self.sockets.mkdir(exist_ok=True)
            own_by_server(self.sockets)
            done = subprocess.run(
                as_server(
                    [
                        str(self.bin / "initdb"),
                        "-D",
                        str(self.data),
                        "-A",
                        "trust",
                        "-U",
                        "postgres",
                        "--no-sync",
                    ]
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise HostError(f"initdb failed: {done.stderr.strip()[-500:]}")
            with open(self.data / "pg_hba.conf", "a") as hba:  # the other test hosts
                hba.write(f"host all all {SUBNET}.0/24 trust\n")
            fresh = True
        else:
            fresh = False
        options = [f"-c{k}={v}" for k, v in SETTINGS.items()]
        argv = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
                "-k", str(self.sockets), f"-clisten_addresses={self.host.address},127.0.0.1",
                *options]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = self.host.popen(as_server(argv), stdout=log, stderr=log)
        self._wait_ready()
        if fresh:
            self.psql("CREATE DATABASE test", database="postgres")

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise HostError(f"PostgreSQL exited: {self.last_log_line()}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-q", "-h", str(self.sockets), "-p", str(self.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise HostError(f"PostgreSQL did not start in {timeout:.0f} s: {self.last_log_line()}")

    def psql(self, sql: str, *, database: str = "test") -> str:
        done = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.sockets),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise HostError(f"psql: {done.stderr.strip()}")
        return done.stdout.strip()

    def last_log_line(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty log)"

    def kill(self) -> None:
        """SIGKILL the postmaster (its backends end when they notice it gone)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """A fast shutdown: sessions are ended, what committed is kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
