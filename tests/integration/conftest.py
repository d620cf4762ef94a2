"""Fixtures of the process tests: a scratch schema and the processes they start."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from tests.integration.cli_forkserver import Process
from tests.integration.cli_support import Running


@pytest.fixture
def schema(pg_schema_prefix: str) -> str:
    return f"{pg_schema_prefix}_crash_{random.randrange(10**6)}"


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Processes a test starts; any still running at its end are killed."""
    running: list[Process] = []
    yield running
    for process in running:
        if process.poll() is None:
            process.kill()
        process.wait()


@pytest.fixture
def workers() -> Iterator[list[Running]]:
    """``statekeeper`` commands a test starts; killed at its end if still running."""
    started: list[Running] = []
    yield started
    for running in started:
        running.kill()
