"""A 100 MiB workflow input and a 100 MiB step result round-trip on SQLite and on
PostgreSQL between a client process (``large_payload_probe.py``) and the worker process
it starts: each one's peak memory above what it held before stays under 3x the payload;
their blobs are gone once the runs are purged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).with_name("large_payload_probe.py")
SIZE = 100 << 20


def test_100_mib_input_and_step_result_round_trip_in_bounded_memory(
    own_database_url: str,
) -> None:
    done = subprocess.run(
        [sys.executable, str(PROBE), own_database_url, str(SIZE)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["input_ok"], report
    assert report["result_ok"], report
    # Memory: the payload, its JSON, a few chunks; never a third whole copy.
    assert report["client_peak_above_before"] < 3 * SIZE, report
    assert report["worker_peak_above_before"] < 3 * SIZE, report
    assert not report["worker_traceback"], report
    # Every journaled result was stored out of line: the first step's, the workflow's
    # sleep (small, inline) and the second step's.
    assert report["history"] == [["output"], None, ["output"]], report
    # The warm-up's output is small (inline); the big input, two step results and the
    # output are four blobs, and every one goes with the purge.
    assert report["blobs_before_purge"] == 4, report
    assert report["blobs_after_purge"] == 0, report
    assert report["chunks_after_purge"] == 0, report
