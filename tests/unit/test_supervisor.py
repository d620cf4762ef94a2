"""The supervisor and the upkeep service: failures stop the process loudly, a clean
stop is clean, and a bad upkeep round does not end upkeep."""

from __future__ import annotations

import asyncio

import pytest

from statekeeper.runtime.supervisor import Supervisor
from statekeeper.runtime.upkeep import Upkeep
from statekeeper.storage.rows import Maintenance


class Waits:
    """A service that works until stopped, noting that it stopped."""

    def __init__(self, name: str = "waits") -> None:
        self.name = name
        self.stopped = False

    async def run(self, stopping: asyncio.Event) -> None:
        await stopping.wait()
        self.stopped = True


class Fails:
    name = "fails"

    async def run(self, stopping: asyncio.Event) -> None:
        await asyncio.sleep(0.01)
        raise OSError("disk on fire")


class Ends:
    name = "ends"

    async def run(self, stopping: asyncio.Event) -> None:
        await asyncio.sleep(0.01)


async def test_a_clean_stop_stops_every_service_and_records_no_failure() -> None:
    supervisor = Supervisor(grace=1.0)
    first, second = Waits("first"), Waits("second")
    supervisor.start(first)
    supervisor.start(second)
    asyncio.get_running_loop().call_later(0.05, supervisor.stop)
    await asyncio.wait_for(supervisor.wait(), 5)
    assert first.stopped and second.stopped and supervisor.failure is None


@pytest.mark.parametrize("broken", [Fails(), Ends()], ids=["fails", "ends"])
async def test_a_service_that_fails_or_ends_stops_the_others_as_a_failure(
    broken: Fails | Ends,
) -> None:
    supervisor = Supervisor(grace=1.0)
    other = Waits()
    supervisor.start(other)
    supervisor.start(broken)
    await asyncio.wait_for(supervisor.wait(), 5)
    assert other.stopped
    assert supervisor.failure is not None and (
        isinstance(supervisor.failure, OSError) or "'ends' ended" in str(supervisor.failure)
    )


async def test_nothing_starts_once_stopping() -> None:
    supervisor = Supervisor(grace=1.0)
    supervisor.stop()  # a SIGTERM during start-up
    late = Waits()
    supervisor.start(late)
    await asyncio.wait_for(supervisor.wait(), 5)
    assert supervisor.services == [] and supervisor.failure is None


async def test_a_failing_upkeep_round_is_logged_and_upkeep_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []
    three = asyncio.Event()

    async def purge() -> int:
        rounds.append(len(rounds))
        if len(rounds) >= 3:
            three.set()
        if len(rounds) == 1:
            raise RuntimeError("a bug in the first round")
        return 0

    async def forget() -> int:
        return 0

    async def maintain() -> Maintenance:
        return Maintenance([], [])

    upkeep = Upkeep(
        purge=purge, forget=forget, maintain=maintain, purge_interval=0.01,
        maintenance_interval=None,
    )  # fmt: skip
    stopping = asyncio.Event()
    task = asyncio.create_task(upkeep.run(stopping))
    await asyncio.wait_for(three.wait(), 5)  # rounds went on after the failing one
    stopping.set()
    await asyncio.wait_for(task, 5)  # returns cleanly: the first round's error is not raised
    assert any(r.getMessage() == "upkeep round failed" for r in caplog.records)
