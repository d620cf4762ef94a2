"""Running the ``statekeeper`` command without paying for an interpreter start each time.

Every command a test runs is a process of its own, with its own standard input, output
and error, working directory, environment, arguments, signals and exit code, exactly as
``python -m statekeeper ARGS`` would be. What it does not redo is the interpreter's start
and the imports, about 0.6 s of CPU for every command: half of what the CLI tests cost,
and most of what a crash test's restarted workers did before they could work. A server
process (``python -m tests.integration.cli_forkserver FD``, one per command running at
a time, plus a spare already importing) imports the CLI once and forks a child per
command. The child takes the command's descriptors (passed over a Unix socket),
directory, environment and ``sys.argv``, runs ``statekeeper``'s ``__main__`` as ``-m``
would, and exits with its code; the server reports the child's pid (for signals) and
then its exit status.

``run`` / ``run_bytes`` are ``subprocess.run`` for a command; ``Forked`` is the part of
``subprocess.Popen`` the tests use, for commands that keep running (workers, servers).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

_LENGTH = struct.Struct("!I")


def _send(sock: socket.socket, document: dict[str, Any], fds: Sequence[int] = ()) -> None:
    data = json.dumps(document).encode()
    framed = _LENGTH.pack(len(data)) + data
    if fds:
        sent = socket.send_fds(sock, [framed], list(fds))
        framed = framed[sent:]
    sock.sendall(framed)


def _receive_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the other end closed the socket")
        data += chunk
    return data


def _receive(sock: socket.socket, fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    """One framed document, and the descriptors that came with its first bytes."""
    if fds:
        head, received, _, _ = socket.recv_fds(sock, _LENGTH.size, fds)
        if not head:
            raise EOFError("the other end closed the socket")
        head += _receive_exactly(sock, _LENGTH.size - len(head))
    else:
        head, received = _receive_exactly(sock, _LENGTH.size), []
    (length,) = _LENGTH.unpack(head)
    return json.loads(_receive_exactly(sock, length)), received


# The server -------------------------------------------------------------------------


def _command(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the command, run it, exit with its code."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]  # what -m puts first: the directory it was started in
    code: Any = 0
    try:
        import runpy

        sys.argv = ["statekeeper", *request["args"]]
        runpy.run_module("statekeeper", run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        code = exit.code
    except BaseException:  # what the interpreter does with an uncaught error
        import traceback

        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(fd: int) -> None:
    import statekeeper.cli  # noqa: F401  (the imports every command shares)

    sock = socket.socket(fileno=fd)
    while True:
        try:
            request, fds = _receive(sock, 3)
        except (EOFError, ConnectionResetError):  # the test process is done with it
            return
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _command(request, fds)
            finally:
                os._exit(70)  # only if the child could not even become the command
        for received in fds:
            os.close(received)
        _send(sock, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(sock, {"exit": os.waitstatus_to_exitcode(status)})


# The client -------------------------------------------------------------------------

Settings = tuple[tuple[str, str], ...]


class _Server:
    def __init__(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        root = Path(__file__).parents[2]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.cli_forkserver", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self.sock = ours

    def close(self) -> None:
        self.sock.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# Idle servers by the interpreter settings they started with: the ``PYTHON*`` variables
# (``PYTHONPATH`` above all) act at an interpreter's start, so a command is only forked
# from a server started with the same ones. Each server runs one command at a time; one
# spare per setting is kept starting, so the next command finds its imports done.
_idle: dict[Settings, list[_Server]] = {}
_lock = threading.Lock()
_MOST_IDLE = 3


def _interpreter_settings(env: dict[str, str]) -> Settings:
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith("PYTHON")))


def _take(env: dict[str, str]) -> tuple[Settings, _Server]:
    settings = _interpreter_settings(env)
    with _lock:
        idle = _idle.setdefault(settings, [])
        server = idle.pop() if idle else None
        if not idle:
            idle.append(_Server(env))
    return settings, server or _Server(env)


def _give_back(settings: Settings, server: _Server) -> None:
    with _lock:
        idle = _idle.setdefault(settings, [])
        if len(idle) < _MOST_IDLE:
            idle.append(server)
            return
    server.close()


@atexit.register
def _close_all() -> None:
    with _lock:
        for servers in _idle.values():
            while servers:
                servers.pop().close()


Stream = int | IO[Any] | None


def _descriptor(stream: Stream, default: int, reading: bool) -> tuple[int, int | None]:
    """(the child's end, our end or None) for a ``subprocess`` stream argument."""
    if stream == subprocess.PIPE:
        read, write = os.pipe()
        return (read, write) if reading else (write, read)
    if stream == subprocess.DEVNULL:
        return os.open(os.devnull, os.O_RDONLY if reading else os.O_WRONLY), None
    if stream is None:
        return os.dup(default), None
    if isinstance(stream, int):
        return os.dup(stream), None
    return os.dup(stream.fileno()), None


class Forked:
    """A ``statekeeper`` command forked by a server: what tests use of ``Popen``
    (``pid``, ``returncode``, ``stdin``/``stdout``/``stderr``, ``poll``, ``wait``,
    ``communicate``, ``send_signal``, ``terminate``, ``kill``)."""

    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str],
        cwd: Path | str | None = None,
        stdin: Stream = subprocess.DEVNULL,
        stdout: Stream = None,
        stderr: Stream = None,
    ) -> None:
        self.args = ["statekeeper", *args]
        self.returncode: int | None = None
        self._ended = threading.Event()
        child_in, our_in = _descriptor(stdin, 0, reading=True)
        child_out, our_out = _descriptor(stdout, 1, reading=False)
        if stderr == subprocess.STDOUT:
            child_err, our_err = os.dup(child_out), None
        else:
            child_err, our_err = _descriptor(stderr, 2, reading=False)
        self.stdin = None if our_in is None else open(our_in, "wb")  # noqa: SIM115
        self.stdout = None if our_out is None else open(our_out, "rb")  # noqa: SIM115
        self.stderr = None if our_err is None else open(our_err, "rb")  # noqa: SIM115
        self._settings, self._server = _take(env)
        request = {"args": list(args), "env": env, "cwd": str(Path(cwd or os.getcwd()).resolve())}
        try:
            _send(self._server.sock, request, [child_in, child_out, child_err])
            self.pid: int = _receive(self._server.sock)[0]["pid"]
        except BaseException:
            self._server.close()
            raise
        finally:
            for fd in (child_in, child_out, child_err):
                os.close(fd)
        threading.Thread(target=self._await_exit, daemon=True).start()

    def _await_exit(self) -> None:
        try:
            self.returncode = _receive(self._server.sock)[0]["exit"]
        except (EOFError, OSError):
            self.returncode = -signal.SIGKILL  # the server is gone, and its child with it
            self._server.close()
        else:
            _give_back(self._settings, self._server)
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[Any, Any]:
        """Feed ``input``, read stdout and stderr to their end, wait for the exit."""
        read: dict[str, bytes] = {}

        def drain(name: str, stream: IO[bytes]) -> None:
            with stream:
                read[name] = stream.read()

        def feed(stream: IO[bytes]) -> None:
            with contextlib.suppress(BrokenPipeError), stream:  # it may exit unread
                stream.write(input or b"")

        threads = [
            threading.Thread(target=drain, args=(name, stream), daemon=True)
            for name, stream in (("out", self.stdout), ("err", self.stderr))
            if stream
        ]
        if self.stdin is not None:
            threads.append(threading.Thread(target=feed, args=(self.stdin,), daemon=True))
        for thread in threads:
            thread.start()
        self.wait(timeout)
        for thread in threads:
            thread.join()
        return read.get("out"), read.get("err")


# What the process tests keep of what they start: plain processes or forked commands.
Process = subprocess.Popen[bytes] | Forked


def run(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path | None,
    stdin: str | None,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    """``python -m statekeeper ARGS`` in ``cwd`` with ``env``: what it printed and its
    exit code, as ``subprocess.run(..., capture_output=True, text=True)`` gives them."""
    done = run_bytes(args, env, cwd, (stdin or "").encode(), timeout)
    return subprocess.CompletedProcess(done.args, done.returncode, _text(done.stdout),
                                       _text(done.stderr))  # fmt: skip


def run_bytes(
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path | None,
    stdin: bytes,
    timeout: float,
) -> subprocess.CompletedProcess[bytes]:
    """As ``run``, with the input and output as bytes (``capture_output=True``)."""
    PIPE = subprocess.PIPE
    command = Forked(args, env, cwd, stdin=PIPE, stdout=PIPE, stderr=PIPE)
    try:
        out, err = command.communicate(stdin, timeout)
    except subprocess.TimeoutExpired:
        command.kill()
        command.wait()
        raise subprocess.TimeoutExpired(command.args, timeout) from None
    assert command.returncode is not None
    return subprocess.CompletedProcess(command.args, command.returncode, out or b"", err or b"")


def _text(data: bytes) -> str:
    """Bytes read as ``subprocess.run(text=True)`` reads them (universal newlines)."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
