"""The app the upload tests serve (UPLOAD_DB_URL): a workflow an upload starts, whose
step reads the uploaded file back chunk by chunk and checks it against the checksum
the upload recorded, and a queue that receives uploads."""

from __future__ import annotations

import hashlib
import os
from typing import Any

from statekeeper import App

app = App(os.environ["UPLOAD_DB_URL"], namespace="uploads", purge_interval=None)
app.queue("imports")


async def check(id: str) -> dict[str, Any]:
    hashing, size = hashlib.sha256(), 0
    async for chunk in app.uploads.open(id):
        hashing.update(chunk)
        size += len(chunk)
    return {"size": size, "sha256": hashing.hexdigest()}


@app.workflow(name="payroll")
async def payroll(ctx: Any, data: dict[str, Any]) -> dict[str, Any]:
    upload = data["upload"]
    read = await ctx.step(check, upload["id"])
    same = read == {"size": upload["size"], "sha256": upload["sha256"]}
    return {"read": read, "matches": same}
