"""Killing the sidecar: a state write it acknowledged (204) survives a SIGKILL, and an
ETag-guarded counter incremented through it by concurrent clients counts every
acknowledged increment exactly once, across kills and restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.sidecar_support import running_sidecar

pytestmark = pytest.mark.crash
STORE = "/v1.0/state/statestore"


async def increment(client: httpx.AsyncClient, key: str) -> bool:
    """One ETag-guarded increment; True once acknowledged, False if the sidecar went
    away before answering (then it may or may not have applied)."""
    while True:
        try:
            got = await client.get(f"{STORE}/{key}")
            value = got.json() if got.status_code == 200 else 0
            item = {"key": key, "value": value + 1}
            if got.status_code == 200:
                item["etag"] = got.headers["etag"]
            else:
                item["options"] = {"concurrency": "first-write"}
            saved = await client.post(STORE, json=[item])
        except httpx.TransportError:
            return False
        if saved.status_code == 204:
            return True
        assert saved.status_code == 409, saved.text


async def one_round(
    client: httpx.AsyncClient, kill: Callable[[], None], tag: str, acknowledged: dict[str, int]
) -> tuple[int, int]:
    """Writers and two counters run until ``kill`` ends the sidecar under them: how many
    increments were acknowledged, and how many were left unanswered."""
    stop_at = time.monotonic() + 1.0

    async def writer(n: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            key = f"w{tag}-{n}-{i}"
            try:
                answer = await client.post(STORE, json=[{"key": key, "value": i}])
            except httpx.TransportError:
                return
            if answer.status_code == 204:
                acknowledged[key] = i
            i += 1

    async def counter() -> tuple[int, int]:
        done = 0
        while time.monotonic() < stop_at + 0.5:
            if not await increment(client, "counter"):
                return done, 1
            done += 1
        return done, 0

    async def killer() -> None:
        await asyncio.sleep(0.8)
        kill()

    counters = [asyncio.create_task(counter()) for _ in range(2)]
    await asyncio.gather(*(writer(n) for n in range(4)), killer())
    outcomes = [await task for task in counters]
    return sum(done for done, _ in outcomes), sum(lost for _, lost in outcomes)


@pytest.mark.parametrize("backend_name", ["sqlite", "postgres"], indirect=True)
async def test_acknowledged_writes_survive_a_sigkill(own_database_url: str, tmp_path: Path) -> None:
    acknowledged: dict[str, int] = {}
    counted = unknown = 0
    for round_ in range(3):
        with running_sidecar(
            own_database_url, tmp_path / f"sidecar-{round_}.log", grpc=False, check_log=False
        ) as sidecar:
            async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client:
                # Everything acknowledged before this start is still there.
                for key, value in acknowledged.items():
                    assert (await client.get(f"{STORE}/{key}")).json() == value
                done, lost = await one_round(
                    client, sidecar.process.kill, str(round_), acknowledged
                )
                counted += done
                unknown += lost
    with running_sidecar(own_database_url, tmp_path / "last.log", grpc=False) as sidecar:
        async with httpx.AsyncClient(base_url=sidecar.url, timeout=10) as client:
            keys = list(acknowledged)
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                answer = await client.post(f"{STORE}/bulk", json={"keys": chunk})
                found = {e["key"]: e.get("data") for e in answer.json()}
                assert found == {k: acknowledged[k] for k in chunk}
            total = (await client.get(f"{STORE}/counter")).json()
    assert len(acknowledged) > 100
    # Every acknowledged increment counted once; an unanswered one at most once.
    assert counted <= total <= counted + unknown, (counted, unknown, total)
