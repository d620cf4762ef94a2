"""A full disk under SQLite: the writes that do not fit fail with StorageFull (507),
one clear line each; nothing acknowledged is lost; once space is freed, writes go on;
the file stays whole. The database's folder is a 4 MiB tmpfs in a mount namespace of
the test's own (root: ``unshare`` and ``mount``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.hosts.conftest import ROOT


def test_a_full_disk_refuses_writes_clearly_and_loses_nothing() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("a mount namespace needs root and unshare (util-linux)")
    folder = Path(tempfile.mkdtemp(prefix="statekeeper-disk-full-"))
    try:
        script = (
            f"mount -t tmpfs -o size=4m tmpfs {folder} && "
            f"exec {sys.executable} {ROOT / 'tests' / 'hosts' / 'disk_full_app.py'} {folder}"
        )
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True, text=True, timeout=300, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nSQLite on a full 4 MiB disk: {found}")
    assert found["errors"] == {"StorageFull": 20}
    assert found["messages"] == ["507 could not commit: database or disk is full"]
    assert found["acknowledged"] > 0
    assert (found["missing"], found["missing_reopened"]) == (0, 0)
    assert (found["after"], found["after_reopened"]) == (50, 50)
    assert found["integrity"] == "ok"
    assert "Traceback" not in done.stderr
