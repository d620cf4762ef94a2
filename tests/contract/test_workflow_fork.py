"""Forking a workflow run from journal position N, on SQLite and PostgreSQL: a new run
(new id, same name and input) replays the original's entries before N and executes
from N on; the original is untouched."""

from __future__ import annotations

from typing import Any

import pytest

from statekeeper import App, Keyring
from statekeeper.errors import ValidationError, WorkflowConflict, WorkflowNotFound
from statekeeper.workflows import WorkflowContext
from tests.conftest import FakeClock
from tests.support import drive

ran: list[str] = []
broken: set[str] = set()


async def first(item: str) -> str:
    ran.append("first")
    return f"first {item}"


async def second(item: str) -> str:
    ran.append("second")
    if "second" in broken:
        raise RuntimeError("second is broken")
    return f"second {item}"


async def third(item: str) -> str:
    ran.append("third")
    return f"third {item}"


async def three_steps(ctx: WorkflowContext, item: str) -> list[str]:
    return [
        await ctx.step(first, item),
        await ctx.step(second, item),
        await ctx.step(third, item),
    ]


async def waits(ctx: WorkflowContext, item: str) -> Any:
    done = await ctx.step(first, item)
    return [done, await ctx.wait_for_event("go")]


async def finished_run(app: App, item: str = "x") -> str:
    ran.clear()
    app.workflow(three_steps)
    app.workflow(waits)
    run = await app.workflows.start(three_steps, item)
    await drive(app)
    assert await app.workflows.result(run) == [f"first {item}", f"second {item}", f"third {item}"]
    ran.clear()
    return run


async def test_a_fork_replays_before_the_position_and_runs_from_it(app: App) -> None:
    run = await finished_run(app)
    before = await app.workflows.history(run)
    forked = await app.workflows.fork(run, 3, new_id="forked")
    assert forked == "forked"
    status = await app.workflows.status(forked)
    assert (status.name, status.status) == ("three_steps", "pending")
    assert await app.workflows.input(forked) == "x"
    assert status.version is None  # pinned by the code that first leases it
    copied = await app.workflows.history(forked)
    assert [(e["kind"], e["name"], e["output"]) for e in copied] == [
        (e["kind"], e["name"], e["output"]) for e in before[:2]
    ]
    await drive(app)
    assert await app.workflows.result(forked) == ["first x", "second x", "third x"]
    assert ran == ["third"]  # only from position 3 on
    assert await app.workflows.history(run) == before  # the original is untouched
    assert (await app.workflows.status(forked)).version == (await app.workflows.status(run)).version


async def test_forks_from_the_first_and_past_the_last_position(app: App) -> None:
    run = await finished_run(app)
    again = await app.workflows.fork(run, 1)
    assert again != run and len(again) == 32  # a new id
    assert await app.workflows.history(again) == []
    replay = await app.workflows.fork(run, 4)
    await drive(app)
    assert await app.workflows.result(again) == ["first x", "second x", "third x"]
    assert await app.workflows.result(replay) == ["first x", "second x", "third x"]
    assert ran == ["first", "second", "third"]  # the whole fork from 1; nothing from 4


async def test_a_failed_run_restarts_from_its_failed_step_in_a_fork(app: App) -> None:
    ran.clear()
    app.workflow(three_steps)
    broken.add("second")
    try:
        run = await app.workflows.start(three_steps, "y")
        await drive(app)
        assert (await app.workflows.status(run)).status == "failed"
    finally:
        broken.clear()
    ran.clear()
    forked = await app.workflows.fork(run, 2)
    await drive(app)
    assert await app.workflows.result(forked) == ["first y", "second y", "third y"]
    assert ran == ["second", "third"]
    assert (await app.workflows.status(run)).status == "failed"


async def test_a_fork_of_a_sealed_run_is_sealed_for_its_own_id(
    database_url: str, namespace: str, clock: FakeClock
) -> None:
    keyring = Keyring.parse(f"k1:{Keyring.generate_key()}")
    async with App(
        database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=keyring
    ) as app:
        run = await finished_run(app, "secret")
        forked = await app.workflows.fork(run, 3)
        await drive(app)
        assert await app.workflows.result(forked) == [
            "first secret", "second secret", "third secret"
        ]  # fmt: skip
        assert ran == ["third"]


async def test_fork_refuses_what_it_cannot_do(app: App) -> None:
    run = await finished_run(app)
    with pytest.raises(WorkflowNotFound):
        await app.workflows.fork("nope", 1)
    for position in (0, -1, True, 1.5):
        with pytest.raises(ValidationError, match="from_position"):
            await app.workflows.fork(run, position)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="has 3 journal entries"):
        await app.workflows.fork(run, 5)
    await app.workflows.fork(run, 2, new_id="taken")
    with pytest.raises(WorkflowConflict, match="taken"):
        await app.workflows.fork(run, 2, new_id="taken")
    with pytest.raises(ValidationError):
        await app.workflows.fork(run, 2, new_id="bad id\n")
    # Inside a wait: the event's arrival cannot be kept without its wait.
    waiting = await app.workflows.start(waits, "w")
    await drive(app)
    await app.workflows.send_event(waiting, "go", 7)
    await drive(app)
    assert await app.workflows.result(waiting) == ["first w", 7]
    with pytest.raises(ValidationError, match="inside the call that starts at position 2"):
        await app.workflows.fork(waiting, 3)
    resumed = await app.workflows.fork(waiting, 4)  # past the wait: replayed whole
    await drive(app)
    assert await app.workflows.result(resumed) == ["first w", 7]
    again = await app.workflows.fork(waiting, 2)  # from the wait: it waits again
    await drive(app)
    assert (await app.workflows.status(again)).status == "waiting"
    await app.workflows.send_event(again, "go", 8)
    await drive(app)
    assert await app.workflows.result(again) == ["first w", 8]


async def test_a_fork_sets_the_attributes_its_replay_passes_again(app: App) -> None:
    @app.workflow
    async def labelled(ctx: WorkflowContext, item: str) -> str:
        await ctx.set_attributes({"item": item, "stage": 1})
        await ctx.step(first, item)
        await ctx.set_attributes({"stage": 2})
        return item

    run = await app.workflows.start(labelled, "fork-me")
    await drive(app)
    assert await app.workflows.attributes(run) == {"item": "fork-me", "stage": 2}
    forked = await app.workflows.fork(run, 3, new_id="labelled-fork")
    await drive(app)
    assert await app.workflows.result(forked) == "fork-me"
    assert await app.workflows.attributes(forked) == {"item": "fork-me", "stage": 2}
    found = await app.workflows.list(attributes={"item": "fork-me"})
    assert {s["id"] for s in found} == {run, "labelled-fork"}


async def test_a_fork_receives_again_what_the_original_took_after_the_cut(app: App) -> None:
    @app.workflow
    async def reader(ctx: WorkflowContext, count: int) -> list[Any]:
        got = [await ctx.receive("inbox")]
        await ctx.step(first, "between")
        got += [await ctx.receive("inbox") for _ in range(count - 1)]
        return got

    run = await app.workflows.start(reader, 3)
    for n in (1, 2):
        await app.workflows.send_message(run, "inbox", n)
    await drive(app)
    # Fork after the first receive and the step: the copy replays them; its mailbox holds
    # the original's messages with their numbers, so it receives 2 again, then waits.
    forked = await app.workflows.fork(run, 3, new_id="reader-fork")
    await app.workflows.send_message(run, "inbox", 3)
    await drive(app)
    assert await app.workflows.result(run) == [1, 2, 3]
    assert not (await app.workflows.status(forked)).done
    assert await app.workflows.send_message(forked, "inbox", "fork's own") == 3
    await drive(app)
    assert await app.workflows.result(forked) == [1, 2, "fork's own"]
