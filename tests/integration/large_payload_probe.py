"""Run by test_large_payloads in a process of its own (so its peak memory is its own):
a workflow input of SIZE bytes and a step result of SIZE bytes round-trip through the
database given as argv[1], the worker in this process. Prints one JSON line: the
checks' results, the blobs left after the runs are purged, and the peak resident
memory above what the process held before the round trips."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import resource
import sys
from typing import Any

from statekeeper import App

MiB = 1 << 20


def payload(seed: str, size: int) -> str:
    """``size`` characters of ASCII text, made from ``seed`` (one allocation)."""
    block = hashlib.sha256(seed.encode()).hexdigest() * (MiB // 64)
    return block * (size // MiB)


def digest(text: str) -> str:
    """The SHA-256 of ``text`` as UTF-8, a MiB at a time (no second copy of it)."""
    hashing = hashlib.sha256()
    for start in range(0, len(text), MiB):
        hashing.update(text[start : start + MiB].encode())
    return hashing.hexdigest()


def resident() -> int:
    """Bytes resident now."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def main(url: str, size: int) -> dict[str, Any]:
    app = App(url, namespace="large", purge_interval=None)

    @app.workflow(name="digest_input")
    async def digest_input(ctx: Any, data: str) -> dict[str, Any]:
        return {"size": len(data), "sha": digest(data)}

    async def make(seed: str, size: int) -> str:
        return payload(seed, size)

    @app.workflow(name="big_result")
    async def big_result(ctx: Any, seed: str) -> str:
        made = await ctx.step(make, seed, size)
        del made
        await ctx.sleep(0.05)  # the run ends: the step's result is read back on replay
        return str(await ctx.step(make, seed, size))  # the output: another blob

    report: dict[str, Any] = {}
    async with app:
        worker = app.worker(poll=0.02)
        working = asyncio.create_task(worker.run())
        # Warm up (imports, connections, first queries) before measuring.
        warm = await app.workflows.start(digest_input, "warm")
        await app.workflows.result(warm, timeout=30)
        gc.collect()
        report["before"] = before = resident()

        data = payload("input", size)
        expected_input = digest(data)
        run = await app.workflows.start(digest_input, data)
        del data
        seen = await app.workflows.result(run, timeout=120)
        report["input_ok"] = seen == {"size": size, "sha": expected_input}
        report["after_input"] = peak() - before

        second = await app.workflows.start(big_result, "result")
        output = await app.workflows.result(second, timeout=120)
        # The same text as made (compared a MiB at a time: no second copy of it).
        block = payload("result", MiB)
        report["result_ok"] = len(output) == size and all(
            output[start : start + MiB] == block for start in range(0, size, MiB)
        )
        del output
        report["peak_above_before"] = peak() - before
        report["history"] = [e.get("out_of_line") for e in await app.workflows.history(second)]
        worker.stop()
        await working

        backend: Any = app.backend
        count = ("SELECT count(*) FROM sk_blobs", ())
        report["blobs_before_purge"] = (await backend.blobs._db.run_many(count, "count"))[0][0]
        for purged in (warm, run, second):
            await app.workflows.purge(purged)
        report["blobs_after_purge"] = (await backend.blobs._db.run_many(count, "count"))[0][0]
        chunks = ("SELECT count(*) FROM sk_blob_chunks", ())
        report["chunks_after_purge"] = (await backend.blobs._db.run_many(chunks, "count"))[0][0]
    return report


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], int(sys.argv[2])))))
