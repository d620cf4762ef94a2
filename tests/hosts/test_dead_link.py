"""A call made while the link to the database is down fails soon after the URL's
``tcp_user_timeout`` (DatabaseUnavailable), instead of waiting for TCP's resends.

On worker host w1, an app with its pool open puts a key; then w1's link goes down and
the app puts another. With ``tcp_user_timeout=2000`` the kernel drops the connection
once the statement has gone unacknowledged for 2 s, and the call fails; with 0 (the
system's own, minutes of resends) it is still waiting long after, and completes only
when the link comes back."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from statekeeper.chaos.cluster import Cluster
from tests.hosts.conftest import worker_env

PUT_DURING = """
import asyncio, json, sys, time
from statekeeper import App
from statekeeper.errors import StatekeeperError

async def main(url):
    async with App(url, namespace="dead-link", purge_interval=None, encryption=None) as app:
        await app.state.put("before", 1)
        print("ready", flush=True)
        sys.stdin.readline()  # the link is down now
        started = time.monotonic()
        try:
            await app.state.put("during", 2)
            outcome = "acknowledged"
        except StatekeeperError as error:
            outcome = type(error).__name__
        print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started}),
              flush=True)
        sys.stdin.readline()

asyncio.run(main(sys.argv[1]))
"""


def _start(cluster: Cluster, bound_ms: int) -> subprocess.Popen[str]:
    url = f"{cluster.worker_dsn}?tcp_user_timeout={bound_ms}&connect_timeout=3&pool_min=1"
    process = subprocess.Popen(
        cluster.host("w1").command([sys.executable, "-c", PUT_DURING, url]),
        env=worker_env(cluster, "w1"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def _say(process: subprocess.Popen[str], line: str = "go") -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def _end(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.wait()


def test_a_call_on_a_dead_link_fails_after_the_bound(cluster: Cluster) -> None:
    process = _start(cluster, 2000)
    cluster.partition("w1")
    try:
        _say(process)
        assert process.stdout is not None
        answer = json.loads(process.stdout.readline())
        print(f"\ndead link, tcp_user_timeout=2000: {answer}")
        assert answer["outcome"] == "DatabaseUnavailable"
        assert 1.5 < answer["seconds"] < 8
    finally:
        cluster.heal("w1")
        _end(process)


def test_without_the_bound_a_call_waits_for_the_link(cluster: Cluster) -> None:
    process = _start(cluster, 0)
    cluster.partition("w1")
    cut = time.monotonic()
    try:
        _say(process)
        time.sleep(8)
        assert process.poll() is None  # still waiting: nothing answered yet
        cluster.heal("w1")
        assert process.stdout is not None
        answer = json.loads(process.stdout.readline())
        print(f"\ndead link, tcp_user_timeout=0: {answer}, {time.monotonic() - cut:.1f} s")
        assert answer["outcome"] == "acknowledged"
        assert answer["seconds"] > 8
    finally:
        cluster.heal("w1")
        _end(process)
