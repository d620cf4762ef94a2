"""Private throwaway PostgreSQL and Redis servers for a test run.

The tests expect PostgreSQL at ``STATEKEEPER_TEST_PG`` and Redis at
``STATEKEEPER_TEST_REDIS`` (by default 127.0.0.1:5432 and 127.0.0.1:6379). When nothing
listens at such a loopback address, :class:`TestServers` starts a server of the run's
own from the installed binaries on a free loopback port, points the variable at it, and
stops it and removes its files when the run ends. A server that listens already is used
as it is; a non-loopback address is never replaced.

A private server is a child process of the test run in a session of its own (a Ctrl-C
in the terminal reaches the run, which then stops it in order), with a parent-death
signal, so it stops even when the run is killed; its files are in a temporary
directory named after the run's pid, removed at exit or, after a SIGKILL, by the next
run that finds the pid gone.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, MutableMapping
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import asyncpg

from statekeeper.chaos.hosts import alive

ENV_TEST_PG = "STATEKEEPER_TEST_PG"
ENV_TEST_REDIS = "STATEKEEPER_TEST_REDIS"
ENV_TEST_PG_BINDIR = "STATEKEEPER_TEST_PG_BINDIR"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HOME_PREFIX = "statekeeper-test-"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PR_SET_PDEATHSIG = 1


class ServerUnavailable(Exception):
    """A server the tests need is not listening and cannot be started here."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), 0.5):
            return True
    except OSError:
        return False


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: ``STATEKEEPER_TEST_PG_BINDIR``
    when set (and then only it), else the first of: the one of ``initdb`` on PATH,
    ``pg_config --bindir``, the newest ``/usr/lib/postgresql/*/bin`` (Debian) or
    ``/usr/pgsql-*/bin`` (RPM)."""
    chosen = os.environ.get(ENV_TEST_PG_BINDIR)
    candidates = [Path(chosen)] if chosen else _bindir_candidates()
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in ("initdb", "postgres")):
            return directory
    return None


def _bindir_candidates() -> list[Path]:
    candidates: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))
    versions = [*Path("/usr/lib/postgresql").glob("*/bin"), *Path("/usr").glob("pgsql-*/bin")]
    return candidates + sorted(versions, key=lambda p: _version(p.parent.name), reverse=True)


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def postgres_binary(name: str) -> str:
    """A PostgreSQL program (``initdb``, ``pg_ctl``, ``pg_dump``...) by full path when
    the server's binary directory has it, else by name from PATH."""
    directory = postgres_bindir()
    if directory is not None and os.access(directory / name, os.X_OK):
        return str(directory / name)
    return name


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def _server_user() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: ``postgres`` when the tests run as root (initdb
    and postgres refuse root), else the current user (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise ServerUnavailable(
            "PostgreSQL refuses to run as root and there is no 'postgres' account to run "
            "it as: run the tests as another user, or create one (useradd postgres)"
        ) from None


def _stop_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec function: the child gets ``sig`` when the test run dies (Linux only).
    ``prctl`` is looked up before the fork: the child calls it and nothing else."""
    if sys.platform != "linux":
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arrange() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the run died before the signal was armed
            os._exit(1)

    return arrange


async def _connect_once_ready(dsn: str) -> asyncpg.Connection:
    """A connection to a server that has just started, once it takes them (before, it
    answers "the database system is starting up")."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            return await asyncpg.connect(dsn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


class PrivateServer(ABC):
    """A server process of the test run's own; ``stop`` is idempotent."""

    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def start(self) -> None:
        """Start the server and return once it accepts connections."""

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _spawn(self, command: list[str], user: pwd.struct_passwd | None = None) -> None:
        log = (self.directory / f"{self.name}.log").open("ab")
        with log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_with_parent(self.stop_signal),
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
            )

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not listening("127.0.0.1", self.port):
            if self.process is None or self.process.poll() is not None:
                raise ServerUnavailable(f"{self.name} exited at start: {self.last_log_line()}")
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"{self.name} did not listen on port {self.port}")
            time.sleep(0.02)

    def last_log_line(self) -> str:
        try:
            lines = (self.directory / f"{self.name}.log").read_text(errors="replace").split("\n")
        except OSError:
            return "no log"
        return next((line for line in reversed(lines) if line.strip()), "no log")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class RedisServer(PrivateServer):
    """redis-server on a free loopback port, keeping nothing on disk."""

    name = "redis-server"

    def __init__(self, directory: Path, binary: str | None = None) -> None:
        super().__init__(directory)
        self.binary = binary or redis_binary() or "redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._spawn(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)]
        )  # fmt: skip
        self._wait_listening()


class PostgresServer(PrivateServer):
    """A scratch PostgreSQL cluster (trust authentication, no fsync) with a database
    ``test``, on a free loopback port, its data under ``directory``."""

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: clients are disconnected

    def __init__(self, directory: Path, bindir: Path) -> None:
        super().__init__(directory)
        self.bindir = bindir
        self.user = _server_user()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/test"

    def start(self) -> None:
        data = self._prepare(
            "initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
            "--no-sync",
        )  # fmt: skip
        self._serve(data, "fsync=off", "full_page_writes=off")
        asyncio.run(self._create_database())

    def _prepare(self, tool: str, *args: str) -> Path:
        """Run ``tool -D DATA ARGS`` as the server's account to make its data folder."""
        if self.user is not None:
            os.chown(self.directory, self.user.pw_uid, self.user.pw_gid)
        data = self.directory / "data"
        done = subprocess.run(
            [str(self.bindir / tool), "-D", str(data), *args],
            capture_output=True,
            text=True,
            user=self.user.pw_uid if self.user else None,
            group=self.user.pw_gid if self.user else None,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ServerUnavailable(f"{tool} failed: {last}")
        return data

    def _serve(self, data: Path, *settings: str) -> None:
        """Start the server on ``data`` with ``settings`` (``name=value``); once it listens."""
        options = [item for setting in settings for item in ("-c", setting)]
        self._spawn(
            [str(self.bindir / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", *options],
            self.user,
        )  # fmt: skip
        self._wait_listening()

    async def _create_database(self) -> None:
        conn = await _connect_once_ready(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            await conn.execute("CREATE DATABASE test")
        finally:
            await conn.close()


class StandbyServer(PostgresServer):
    """A hot standby of a ``PostgresServer``, streaming from it (``pg_basebackup -R``),
    on a free loopback port; ``directory`` must not be the primary's."""

    name = "postgres-standby"

    def __init__(self, directory: Path, primary: PostgresServer) -> None:
        super().__init__(directory, primary.bindir)
        self.primary = primary

    def start(self) -> None:
        data = self._prepare(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres",
            "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
        )  # fmt: skip
        self._serve(data, "hot_standby=on")
        asyncio.run(self._wait_accepting())  # not while "starting up"

    async def _wait_accepting(self) -> None:
        await (await _connect_once_ready(self.dsn)).close()


def sweep_stale_homes() -> list[Path]:
    """Remove the directories of earlier runs that were killed before their cleanup."""
    removed = []
    for home in Path(tempfile.gettempdir()).glob(f"{HOME_PREFIX}*"):
        owner = re.match(rf"{HOME_PREFIX}(\d+)-", home.name)
        if owner and not alive(int(owner.group(1))):
            shutil.rmtree(home, ignore_errors=True)
            removed.append(home)
    return removed


def _unanswered(url: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of the URL when it names a loopback address nothing listens at: the
    place of a private server. None when a server answers, or for another host (used as
    it is, never replaced)."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK:
        return None
    address = (parts.hostname, parts.port or default_port)
    return None if listening(*address) else address


def _where(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


class TestServers:
    """The servers of one test run: those listening already, or private ones."""

    __test__ = False  # not a test class

    def __init__(self, environ: MutableMapping[str, str]) -> None:
        self.environ = environ
        self.private: list[PrivateServer] = []
        self._restore_signals: Callable[[], None] | None = None

    def start_missing(self) -> list[str]:
        """Start a private server for each service nothing listens for; one report line
        per server started. Raises :class:`ServerUnavailable` (one line) when a server is
        needed and its binaries are missing; nothing is started then."""
        need_pg = _unanswered(self.environ.get(ENV_TEST_PG, DEFAULT_PG), 5432)
        need_redis = _unanswered(self.environ.get(ENV_TEST_REDIS, DEFAULT_REDIS), 6379)
        bindir = postgres_bindir() if need_pg else None
        redis = redis_binary()
        if need_pg and bindir is None:
            raise ServerUnavailable(
                f"PostgreSQL is not listening at {_where(need_pg)} and its server "
                "binaries (initdb, postgres) are not installed: apt-get install postgresql "
                f"(Debian), or set {ENV_TEST_PG} to a running server"
            )
        if redis is None:  # the cache tests start redis-servers of their own in any case
            raise ServerUnavailable(
                "redis-server is not installed (the tests start their own): "
                "apt-get install redis-server (Debian)"
            )
        sweep_stale_homes()
        if not (need_pg or need_redis):
            return []
        self._arm_cleanup()
        lines = []
        if need_pg and bindir:
            server = PostgresServer(self._home("postgres"), bindir)
            self._start(server)
            self.environ[ENV_TEST_PG] = server.dsn
            lines.append(self._report("PostgreSQL", need_pg, server))
        if need_redis:
            redis_server = RedisServer(self._home("redis"), redis)
            self._start(redis_server)
            self.environ[ENV_TEST_REDIS] = redis_server.url
            lines.append(self._report("Redis", need_redis, redis_server))
        return lines

    def _home(self, kind: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{HOME_PREFIX}{os.getpid()}-{kind}-"))

    def _start(self, server: PrivateServer) -> None:
        self.private.append(server)  # stopped and removed by stop(), even if start fails
        server.start()

    @staticmethod
    def _report(what: str, wanted: tuple[str, int], server: PrivateServer) -> str:
        return (
            f"nothing listens at {_where(wanted)}: started a private {what} on "
            f"127.0.0.1:{server.port} (pid {server.pid}, files in {server.directory}), "
            "removed when the run ends"
        )

    def _arm_cleanup(self) -> None:
        """Stop the servers at exit, and turn SIGTERM and SIGHUP into an interrupt so the
        run tears down (and stops them) as it does on Ctrl-C."""
        atexit.register(self.stop)
        previous = {}
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _interrupt)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        self._restore_signals = restore

    def stop(self) -> None:
        while self.private:
            server = self.private.pop()
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)
        if self._restore_signals is not None:
            self._restore_signals()
            self._restore_signals = None


# The signals that ended the run: one that arrives while Python runs a finalizer (an
# event loop's __del__) is swallowed there, and the run would end as if it had passed;
# conftest.py's pytest_sessionfinish fails it all the same.
INTERRUPTED: list[int] = []


def _interrupt(signum: int, frame: FrameType | None) -> None:
    INTERRUPTED.append(signum)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
