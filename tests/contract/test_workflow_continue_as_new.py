"""ctx.continue_as_new: a run ends and the workflow starts over with a new input under
the same id, with an empty journal, atomically and under the runner's fence; events it
has not consumed yet stay. And the journal limit that asks for it."""

from __future__ import annotations

from collections import Counter

import pytest

from statekeeper import App
from statekeeper.errors import WorkflowFailed
from statekeeper.queues.policy import Retry
from statekeeper.workflows import WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock


async def drain(runner: WorkflowRunner, rounds: int = 50) -> int:
    """Run what is due until nothing is; how many runs there were."""
    total = 0
    for _ in range(rounds):
        ran = await runner.run_due()
        if not ran:
            return total
        total += ran
    return total


async def test_a_loop_continues_as_new_until_its_items_are_done(app: App) -> None:
    done: Counter[int] = Counter()

    @app.function
    async def handle(item: int) -> int:
        done[item] += 1
        return item * item

    @app.workflow
    async def squares(ctx: WorkflowContext, work: dict[str, list[int]]) -> int:
        total = sum(work["sums"])
        batch, rest = work["items"][:3], work["items"][3:]
        for item in batch:
            total += await ctx.step(handle, item)
        if rest:
            await ctx.continue_as_new({"items": rest, "sums": [total]})
        return total

    run = await app.workflows.start(squares, {"items": list(range(1, 11)), "sums": []}, id="sq")
    runner = WorkflowRunner(app.workflows)
    assert await drain(runner) == 4  # 10 items, 3 a run
    assert await app.workflows.result(run) == sum(n * n for n in range(1, 11))
    assert done == Counter(range(1, 11))  # every step ran exactly once
    history = await app.workflows.history(run)
    assert [entry["output"] for entry in history] == [100]  # only the last run's journal
    assert await app.workflows.input(run) == {"items": [10], "sums": [285]}
    assert (await app.workflows.status(run)).status == "succeeded"


async def test_events_not_consumed_yet_survive_a_continue(app: App) -> None:
    @app.function
    async def note(data: str) -> str:
        # Sent while the run that continues is still going: not consumed by it.
        await app.workflows.send_event("inbox", "b", "kept")
        return data

    @app.workflow
    async def inbox(ctx: WorkflowContext, round: int) -> list[str]:
        if round == 0:
            await ctx.step(note, await ctx.wait_for_event("a"))
            await ctx.continue_as_new(1)
        b = await ctx.wait_for_event("b")
        a = await ctx.wait_for_event("a")  # the first "a" was consumed: a new one
        return [b, a]

    run = await app.workflows.start(inbox, 0, id="inbox")
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    await app.workflows.send_event(run, "a", "first")
    await drain(runner)
    status = await app.workflows.status(run)
    assert status.status == "waiting"  # for a second "a": the consumed one went
    assert [entry["kind"] for entry in await app.workflows.history(run)] == [
        "wait", "event", "wait",
    ]  # fmt: skip
    await app.workflows.send_event(run, "a", "second")  # no DuplicateEvent: it was consumed
    await drain(runner)
    assert await app.workflows.result(run) == ["kept", "second"]


async def test_a_runner_that_lost_its_lease_cannot_continue(app: App, clock: FakeClock) -> None:
    @app.workflow
    async def again(ctx: WorkflowContext, round: int) -> int:
        if round < 2:
            await ctx.continue_as_new(round + 1)
        return round

    run = await app.workflows.start(again, 0, id="again")
    stale = WorkflowRunner(app.workflows)
    (leased,) = await stale.lease()
    clock.advance(app.workflows.lease + 1)  # its lease runs out; another runner leases
    fresh = WorkflowRunner(app.workflows)
    (taken,) = await fresh.lease()
    assert taken.fence > leased.fence
    await stale.execute(leased)  # its continue is refused: nothing changes
    assert await app.workflows.input(run) == 0
    assert (await app.workflows.status(run)).status == "running"
    # The storage refuses a stale fence itself, and keeps the journal.
    refused = await app.backend.workflows.continue_as_new(
        app.namespace, run, leased.fence, b"5", clock()
    )
    assert refused is False
    assert await app.workflows.input(run) == 0
    await fresh.execute(taken)
    await drain(fresh)
    assert await app.workflows.result(run) == 2


async def test_a_journal_past_its_limit_fails_the_run_and_says_what_to_do(app: App) -> None:
    app.workflows.max_journal_entries = 5

    @app.function
    async def tick(n: int) -> int:
        return n

    @app.workflow
    async def forever(ctx: WorkflowContext, _: None) -> None:
        n = 0
        while True:
            n = await ctx.step(tick, n + 1)

    run = await app.workflows.start(forever, None, id="forever")
    await drain(WorkflowRunner(app.workflows))
    status = await app.workflows.status(run)
    assert status.status == "failed"
    assert status.error is not None
    assert status.error.type == "JournalTooLong"
    assert "limit of 5 journal entries" in status.error.message
    assert "ctx.continue_as_new" in status.error.message
    assert len(await app.workflows.history(run)) == 5
    with pytest.raises(WorkflowFailed):
        await app.workflows.result(run)


async def test_continue_as_new_is_refused_inside_a_saga_or_a_step(app: App) -> None:
    @app.function
    async def book(n: int) -> int:
        return n

    undone: list[int] = []

    @app.function
    async def unbook(n: int) -> None:
        undone.append(n)

    @app.workflow
    async def in_saga(ctx: WorkflowContext, _: None) -> None:
        async with ctx.saga() as saga:
            await saga.step(book, 1, compensate=unbook)
            await ctx.continue_as_new(None)

    contexts: list[WorkflowContext] = []

    @app.function
    async def sneaky() -> None:
        await contexts[0].continue_as_new(None)

    @app.workflow
    async def in_step(ctx: WorkflowContext, _: None) -> None:
        contexts.append(ctx)
        await ctx.step(sneaky, retry=Retry(max_attempts=1))

    saga_run = await app.workflows.start(in_saga, None, id="in-saga")
    step_run = await app.workflows.start(in_step, None, id="in-step")
    await drain(WorkflowRunner(app.workflows))

    saga_status = await app.workflows.status(saga_run)
    assert saga_status.status == "compensated"
    assert saga_status.error is not None
    assert "cannot be called inside a saga" in saga_status.error.message
    assert undone == [1]
    step_status = await app.workflows.status(step_run)
    assert step_status.status == "failed"
    assert step_status.error is not None
    assert "cannot be called inside a step" in step_status.error.message
    assert await app.workflows.input(step_run) is None  # not continued


async def test_the_journal_limit_is_an_app_option(database_url: str) -> None:
    from statekeeper.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="max_journal_entries"):
        App(database_url, max_journal_entries=0)
    assert App(database_url, max_journal_entries=7).workflows.max_journal_entries == 7


async def test_each_run_knows_its_number_and_has_children_of_its_own(app: App) -> None:
    @app.workflow
    async def double(ctx: WorkflowContext, n: int) -> int:
        return n * 2

    seen: list[int] = []

    @app.workflow
    async def rounds(ctx: WorkflowContext, got: list[int]) -> list[int]:
        seen.append(ctx.continued)
        got = [*got, await ctx.child(double, len(got))]  # default id: <id>:<run>.<position>
        if len(got) < 3:
            await ctx.continue_as_new(got)
        return got

    run = await app.workflows.start(rounds, [], id="rounds")
    await drain(WorkflowRunner(app.workflows))
    assert await app.workflows.result(run) == [0, 2, 4]  # not the first run's child again
    assert sorted(set(seen)) == [0, 1, 2]
    children = await app.workflows.list(name="double")
    assert sorted(child["id"] for child in children) == [
        "rounds:1", "rounds:1.1", "rounds:2.1",
    ]  # fmt: skip
    history = await app.workflows.history(run)
    assert [entry["position"] for entry in history] == [1, 2, 3]  # no count entry


async def test_a_later_run_is_not_answered_by_an_earlier_runs_callback(app: App) -> None:
    app.workflows.secret = "continue-as-new-callback-secret-0000"
    tokens: list[str] = []

    @app.function
    async def publish(token: str) -> None:
        tokens.append(token)

    @app.workflow
    async def asks(ctx: WorkflowContext, answers: list[str]) -> list[str]:
        callback = await ctx.callback()
        await ctx.step(publish, callback.token)
        answers = [*answers, await callback.result()]
        if len(answers) < 2:
            await ctx.continue_as_new(answers)
        return answers

    run = await app.workflows.start(asks, [], id="asks")
    runner = WorkflowRunner(app.workflows)
    await drain(runner)
    await app.workflows.answer_callback(tokens[0], {"status": "success", "data": "one"})
    await drain(runner)
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    # The first run's token again: its event went with its run, and no wait of the
    # second run reads it.
    await app.workflows.answer_callback(tokens[0], {"status": "success", "data": "stale"})
    await drain(runner)
    assert (await app.workflows.status(run)).status == "waiting"
    await app.workflows.answer_callback(tokens[1], {"status": "success", "data": "two"})
    await drain(runner)
    assert await app.workflows.result(run) == ["one", "two"]
