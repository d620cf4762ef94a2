"""Starting statekeeper processes for the crash tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import PG_DSN

ROOT = Path(__file__).parents[2]
TOKEN = "crash-test-token-0123456789abcdef"


def environment(schema: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **(extra or {}),
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}",
        "CRASH_PG_DSN": PG_DSN,
        "CRASH_PG_SCHEMA": schema,
        "STATEKEEPER_API_TOKEN": TOKEN,
    }


def start(
    args: list[str], schema: str, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "statekeeper", *args],
        env=environment(schema, extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
