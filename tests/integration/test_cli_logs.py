"""The command's logs on stderr, as real processes: coloured human-readable lines when
stderr is a terminal (a pseudo-terminal here), JSON lines when it is not, and what
--log-format forces."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from tests.integration.cli_support import environment, one_line_error, statekeeper

# Variables that would turn colours off or on whatever the terminal.
COLOUR_SWITCHES = ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")


def on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run the command with stderr on a pseudo-terminal 160 columns wide; its exit
    code, stdout, and what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {k: v for k, v in environment().items() if k not in COLOUR_SWITCHES}
    process = subprocess.Popen(
        [sys.executable, "-m", "statekeeper", *args],
        env={**env, "TERM": "xterm-256color"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    received = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError as error:  # EIO: the other side is closed
            assert error.errno == errno.EIO
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    stdout, _ = process.communicate(timeout=60)
    return process.returncode, stdout.decode(), received.decode()


def test_logs_are_coloured_text_on_a_terminal(tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path}/tty.db", "--log-level", "debug"]
    code, stdout, terminal = on_a_terminal(*db, "state", "put", "user:1", "1")
    assert code == 0, terminal
    assert json.loads(stdout)["key"] == "user:1"  # the output itself stays JSON
    assert "\x1b[" in terminal  # colours
    plain = re.sub(r"\x1b\[[0-9;]*m", "", terminal)
    [line] = [line for line in plain.splitlines() if "state put" in line]
    assert "key=user:1" in line and "etag=" in line and "[statekeeper.state]" in line
    assert not line.lstrip().startswith("{")
    # Forced JSON on the terminal: every line is one JSON object.
    code, _, terminal = on_a_terminal(*db, "--log-format", "json", "state", "put", "user:2", "2")
    assert code == 0, terminal
    entries = [json.loads(line) for line in terminal.splitlines() if line.strip()]
    assert any(e["message"] == "state put" and e["key"] == "user:2" for e in entries)


def test_logs_are_json_lines_elsewhere(tmp_path: Path) -> None:
    db = ["--database", f"sqlite:///{tmp_path}/pipe.db", "--log-level", "debug"]
    put = statekeeper(*db, "state", "put", "user:1", "1")
    assert put.returncode == 0, put.stderr
    entries = [json.loads(line) for line in put.stderr.splitlines()]
    [entry] = [e for e in entries if e["message"] == "state put"]
    assert entry["key"] == "user:1" and entry["level"] == "debug"
    assert entry["ts"].endswith("Z")
    text = statekeeper(*db, "--log-format", "text", "state", "put", "user:2", "2")
    [line] = [line for line in text.stderr.splitlines() if "state put" in line]
    assert "\x1b" not in text.stderr and "DEBUG" in line and "key=user:2" in line
    refused = statekeeper(*db, "--log-format", "fancy", "state", "list")
    assert "unknown log format 'fancy'" in one_line_error(refused, "configuration_error", 3)
