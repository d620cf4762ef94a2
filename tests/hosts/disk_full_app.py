"""Run by tests/hosts/test_disk_full.py inside a mount namespace whose FOLDER (argv[1])
is a small tmpfs: state puts until the disk is full (and 20 more that fail), then
space is freed and 50 puts more; what was acknowledged is read back, before and after
reopening, and SQLite checks the file. Prints one JSON document."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys

from statekeeper import App
from statekeeper.errors import StatekeeperError

FOLDER = sys.argv[1]
URL = f"sqlite:///{FOLDER}/state.db"


BALLAST = os.path.join(FOLDER, "ballast")  # what is freed once the disk is full


async def main() -> None:
    acked: list[str] = []
    errors: dict[str, int] = {}
    messages: set[str] = set()
    failures = tries = 0
    async with App(URL, purge_interval=None, encryption=None) as app:
        while failures < 20 and tries < 100_000:
            try:
                await app.state.put(f"k{tries}", {"v": "x" * 2000})
                acked.append(f"k{tries}")
            except StatekeeperError as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                messages.add(f"{error.http_status} {error}")
                failures += 1
            tries += 1
        os.remove(BALLAST)
        after = 0
        for n in range(50):
            await app.state.put(f"after-{n}", {"v": n})
            after += 1
        missing = [k for k in acked if await app.state.get(k) is None]
    integrity = sqlite3.connect(f"{FOLDER}/state.db").execute("PRAGMA integrity_check")
    checked = integrity.fetchone()[0]
    async with App(URL, purge_interval=None, encryption=None) as app:
        missing_reopened = [k for k in acked if await app.state.get(k) is None]
        after_reopened = sum([await app.state.get(f"after-{n}") is not None for n in range(50)])
    print(json.dumps({
        "acknowledged": len(acked), "errors": errors, "messages": sorted(messages),
        "after": after, "missing": len(missing), "missing_reopened": len(missing_reopened),
        "after_reopened": after_reopened, "integrity": checked,
    }))  # fmt: skip


with open(BALLAST, "wb") as out:
    out.write(b"\0" * 1_500_000)
asyncio.run(main())
