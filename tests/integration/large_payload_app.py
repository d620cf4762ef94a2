"""The app of the large-payload round trip (LARGE_DB_URL): a workflow that checks a large
input and one whose steps make a large result; run by ``statekeeper worker`` in a
process of its own while ``large_payload_probe.py`` starts them and reads them back."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from statekeeper import App

MiB = 1 << 20
app = App(os.environ["LARGE_DB_URL"], namespace="large", purge_interval=None)


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


@app.workflow(name="digest_input")
async def digest_input(ctx: Any, data: str) -> dict[str, Any]:
    return {"size": len(data), "sha": digest(data)}


async def make(seed: str, size: int) -> str:
    return payload(seed, size)


@app.workflow(name="big_result")
async def big_result(ctx: Any, request: dict[str, Any]) -> str:
    made = await ctx.step(make, request["seed"], request["size"])
    del made
    await ctx.sleep(0.05)  # the run ends: the step's result is read back on replay
    return str(await ctx.step(make, request["seed"], request["size"]))  # the output
