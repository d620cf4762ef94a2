"""The soak run as a test: selected with ``pytest -m soak`` only (minutes long).

SOAK_MINUTES sets its length (default 3). It passes when bench/soak.py does: processed
throughput in the last interval at least 90% of the first, the live-work tables bounded,
and no traceback in any process's log.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.soak, pytest.mark.timeout(4 * 3600)]
ROOT = Path(__file__).parents[2]


def test_throughput_holds_and_tables_stay_bounded(tmp_path: Path) -> None:
    minutes = float(os.environ.get("SOAK_MINUTES", "3"))
    interval = 60.0 if minutes >= 5 else 30.0
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), "--minutes", str(minutes),
         "--interval", str(interval), "--logs", str(tmp_path)],
        capture_output=True, text=True, timeout=minutes * 60 + 300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "live-work tables bounded" in done.stdout.splitlines()[-1]
