"""The app the upload crash test serves (killed and restarted): a workflow each upload
starts, whose step reads the file back and compares it with the checksum recorded, and
an upkeep every half second (it starts what a killed server did not)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from statekeeper import App

app = App(os.environ["CRASH_PG_URL"], namespace="uploads", purge_interval=0.5)
app.workflows.lease = 2.0  # killed runners' workflows come back quickly


async def check(id: str) -> dict[str, Any]:
    hashing, size = hashlib.sha256(), 0
    async for chunk in app.uploads.open(id):
        hashing.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": hashing.hexdigest()}


@app.workflow(name="ingest")
async def ingest(ctx: Any, data: dict[str, Any]) -> bool:
    upload = data["upload"]
    read = await ctx.step(check, upload["id"])
    return bool(read == {"size": upload["size"], "sha256": upload["sha256"]})
