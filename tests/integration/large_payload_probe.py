"""Run by test_large_payloads in a process of its own: a workflow input of SIZE bytes and
a step result of SIZE bytes round-trip through the database given as argv[1], run by a
``statekeeper worker`` process this one starts (as a client and a worker are). Prints
one JSON line: the checks' results, the blobs left after the runs are purged, and each
process's peak resident memory above what it held before the round trips."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
os.environ["LARGE_DB_URL"] = sys.argv[1]
sys.path.insert(0, str(HERE.parents[1]))  # the repository: tests.integration...

from statekeeper.runtime.memory import keep_large_blocks_mapped  # noqa: E402
from tests.integration.large_payload_app import (  # noqa: E402
    MiB,
    app,
    big_result,
    digest,
    digest_input,
    payload,
)


def memory(pid: int | str, field: str) -> int:
    """A process's VmRSS (now) or VmHWM (its peak) in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field}")


def start_worker() -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{HERE.parents[1] / 'src'}{os.pathsep}{HERE}"}
    return subprocess.Popen(
        [sys.executable, "-m", "statekeeper", "worker", "--app", "large_payload_app:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


async def main(size: int, worker: subprocess.Popen[bytes]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    try:
        async with app:
            # Warm up (imports, connections, first queries) before measuring.
            warm = await app.workflows.start(digest_input, "warm")
            await app.workflows.result(warm, timeout=60)
            gc.collect()
            worker_before = memory(worker.pid, "VmRSS")
            report["before"] = before = memory("self", "VmRSS")

            data = payload("input", size)
            expected_input = digest(data)
            run = await app.workflows.start(digest_input, data)
            del data
            seen = await app.workflows.result(run, timeout=120)
            report["input_ok"] = seen == {"size": size, "sha": expected_input}

            second = await app.workflows.start(big_result, {"seed": "result", "size": size})
            output = await app.workflows.result(second, timeout=120)
            # The same text as made (compared a MiB at a time: no second copy of it).
            block = payload("result", MiB)
            report["result_ok"] = len(output) == size and all(
                output[start : start + MiB] == block for start in range(0, size, MiB)
            )
            del output
            # VmHWM, not ru_maxrss: the latter keeps the peak of the process this one was
            # forked from (a test worker, maybe large) across the exec.
            peak = memory("self", "VmHWM")
            report["client_peak_above_before"] = peak - before
            report["worker_peak_above_before"] = memory(worker.pid, "VmHWM") - worker_before
            history = await app.workflows.history(second)
            report["history"] = [e.get("out_of_line") for e in history]
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)

            backend: Any = app.backend
            count = ("SELECT count(*) FROM sk_blobs", ())
            report["blobs_before_purge"] = (await backend.blobs._db.run_many(count, "n"))[0][0]
            for purged in (warm, run, second):
                await app.workflows.purge(purged)
            report["blobs_after_purge"] = (await backend.blobs._db.run_many(count, "n"))[0][0]
            chunks = ("SELECT count(*) FROM sk_blob_chunks", ())
            report["chunks_after_purge"] = (await backend.blobs._db.run_many(chunks, "n"))[0][0]
    finally:
        if worker.poll() is None:
            worker.kill()
        stderr = worker.communicate()[1].decode(errors="replace")
        report["worker_traceback"] = "Traceback" in stderr
    return report


if __name__ == "__main__":
    # As `serve` and `worker` do (docs/large-payloads.md): large blocks go back when freed.
    keep_large_blocks_mapped()
    print(json.dumps(asyncio.run(main(int(sys.argv[2]), start_worker()))))
