"""Running the ``statekeeper`` command without paying for an interpreter start each time.

Every command a CLI test runs is a process of its own, with its own standard input,
output and error, working directory, environment, arguments and exit code, exactly as
``python -m statekeeper ARGS`` would be. What it does not redo is the interpreter's start
and the imports, about 0.6 s of every command and half of what the CLI tests cost: a
server process (started once per test process, or more when commands overlap) imports
the CLI once and forks a child per command. The child takes the command's pipes (passed
over a Unix socket), directory, environment and ``sys.argv``, runs ``statekeeper``'s
``__main__`` as ``-m`` would and exits with its exit code; the server reports the child's
pid (so a timeout can kill it) and then its exit status.

``python -m tests.integration.cli_forkserver FD`` is the server; ``run`` is the client.
Long-running commands (``worker``, ``serve``) still start as plain processes: tests signal
and wait for them as their parent.
"""

from __future__ import annotations

import atexit
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
from typing import Any

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
# from a server started with the same ones.
_idle: dict[tuple[tuple[str, str], ...], list[_Server]] = {}
_lock = threading.Lock()


def _interpreter_settings(env: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith("PYTHON")))


@atexit.register
def _close_all() -> None:
    with _lock:
        for servers in _idle.values():
            while servers:
                servers.pop().close()


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
    settings = _interpreter_settings(env)
    with _lock:
        idle = _idle.setdefault(settings, [])
        server = idle.pop() if idle else None
    if server is None:
        server = _Server(env)
    healthy = False
    try:
        result = _run_on(server, args, env, cwd, stdin, timeout)
        healthy = True
        return result
    finally:
        if healthy:
            with _lock:
                _idle[settings].append(server)
        else:
            server.close()


def _run_on(
    server: _Server,
    args: Sequence[str],
    env: dict[str, str],
    cwd: Path | None,
    stdin: bytes,
    timeout: float,
) -> subprocess.CompletedProcess[bytes]:
    in_read, in_write = os.pipe()
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    request = {"args": list(args), "env": env, "cwd": str(Path(cwd or os.getcwd()).resolve())}
    try:
        _send(server.sock, request, [in_read, out_write, err_write])
    finally:
        for fd in (in_read, out_write, err_write):
            os.close(fd)
    output: dict[int, bytes] = {}

    def drain(fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            output[fd] = stream.read()

    def feed() -> None:
        data = memoryview(stdin)
        try:
            while data:  # a command that exits without reading it all breaks the pipe
                data = data[os.write(in_write, data) :]
        except BrokenPipeError:
            pass
        finally:
            os.close(in_write)

    readers = [threading.Thread(target=drain, args=(fd,)) for fd in (out_read, err_read)]
    readers.append(threading.Thread(target=feed))
    for reader in readers:
        reader.start()
    server.sock.settimeout(timeout)
    pid = _receive(server.sock)[0]["pid"]
    try:
        code = _receive(server.sock)[0]["exit"]
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        server.sock.settimeout(30)
        _receive(server.sock)
        for reader in readers:
            reader.join()
        raise subprocess.TimeoutExpired(
            ["statekeeper", *args], timeout, output.get(out_read), output.get(err_read)
        ) from None
    finally:
        server.sock.settimeout(None)
    for reader in readers:
        reader.join()
    return subprocess.CompletedProcess(["statekeeper", *args], code, output[out_read],
                                       output[err_read])  # fmt: skip


def _text(data: bytes) -> str:
    """Bytes read as ``subprocess.run(text=True)`` reads them (universal newlines)."""
    return data.decode().replace("\r\n", "\n").replace("\r", "\n")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
