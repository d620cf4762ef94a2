"""Tests across test hosts (network namespaces on this machine, statekeeper/chaos):
marked ``hosts`` and left out of the default run; ``pytest -m hosts`` runs them, as
root. Where hosts cannot be built, they fail saying why."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from statekeeper.chaos.cluster import Cluster
from statekeeper.chaos.hosts import missing
from statekeeper.chaos.tables import TABLES as TABLES

ROOT = Path(__file__).parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hosts)


def worker_env(cluster: Cluster, host: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "STATEKEEPER_CHAOS_HOST": host,
        "STATEKEEPER_CHAOS_DSN": cluster.worker_dsn,
        "STATEKEEPER_LOG_LEVEL": "INFO",
        **extra,
    }


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A database host and two worker hosts; 0.5 ms each way (1 ms a
    round trip) added between the database and the rest."""
    reason = missing()
    if reason is not None:
        pytest.fail(f"cannot build test hosts: {reason}")
    with Cluster(workers=2, delay_ms=0.5) as built:
        try:
            yield built
        finally:  # the hosts' logs outlive them, for reading after a failure
            kept = ROOT / "tests" / "output" / "hosts" / "logs"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(built.logs, kept)
