"""The app of the large-payload crash test: workflows whose input and step results are
stored out of line (a small blob threshold), run by workers that are SIGKILLed."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

from statekeeper import App

app = App(os.environ["CRASH_PG_URL"], namespace="blobcrash", purge_interval=None,
          blob_threshold=4096)  # fmt: skip
app.workflows.lease = 2.0  # killed runners' workflows come back quickly


def text(seed: str, size: int) -> str:
    block = hashlib.sha256(seed.encode()).hexdigest()
    return (block * (size // 64 + 1))[:size]


async def make(seed: str, size: int) -> str:
    await asyncio.sleep(0.3)  # a step long enough for kills to land inside runs
    return text(seed, size)


@app.workflow(name="bulky")
async def bulky(ctx: Any, data: dict[str, Any]) -> list[str]:
    digests = []
    for n in range(6):  # each result out of line: 300 KB
        made = await ctx.step(make, f"{data['seed']}-{n}", 300_000)
        digests.append(hashlib.sha256(made.encode()).hexdigest())
    return digests
