"""What a workflow records, on SQLite and PostgreSQL: errors as type, message and
traceback apart; each failed step attempt journaled (and long backoffs slept durably);
values of declared types coming back as those types, on the first run and on replay."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import decimal
import logging
import uuid
from typing import Any

import pytest

from statekeeper import App, Retry
from statekeeper.errors import ErrorRecord
from statekeeper.workflows import StepFailed, WorkflowContext, WorkflowRunner
from tests.conftest import FakeClock
from tests.support import drive


@dataclasses.dataclass(frozen=True)
class Quote:
    id: uuid.UUID
    price: decimal.Decimal
    valid_until: datetime.datetime
    signature: bytes


@dataclasses.dataclass(frozen=True)
class Request:
    sku: str
    quantity: int
    wanted_by: datetime.date


QUOTE = Quote(
    uuid.UUID(int=42),
    decimal.Decimal("19.99"),
    datetime.datetime(2027, 1, 1, 12, tzinfo=datetime.UTC),
    b"\x00\x01signed\xff",
)


async def test_a_failed_workflow_records_type_message_and_traceback(app: App) -> None:
    def lookup(table: dict[str, int]) -> int:
        return table["missing"]

    @app.workflow
    async def reads(ctx: WorkflowContext, _: Any) -> int:
        return lookup({})

    run = await app.workflows.start("reads")
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "failed" and status.error is not None
    assert (status.error.type, status.error.message) == ("KeyError", "'missing'")
    assert status.error.traceback is not None
    assert "in lookup" in status.error.traceback and "in reads" in status.error.traceback
    assert status.to_dict()["error"]["type"] == "KeyError"


async def test_step_errors_keep_their_type_for_a_catch(app: App) -> None:
    class CardDeclined(Exception):
        pass

    async def charge() -> None:
        raise CardDeclined("insufficient funds")

    @app.workflow
    async def pays(ctx: WorkflowContext, _: Any) -> list[str]:
        try:
            await ctx.step(charge, retry=Retry(max_attempts=1))
        except StepFailed as failed:
            return [failed.error_type, failed.error.message, failed.error.traceback or ""]
        return []

    run = await app.workflows.start("pays")
    await drive(app)
    kind, message, traceback = (await app.workflows.status(run)).output
    assert (kind, message) == ("CardDeclined", "insufficient funds")
    assert "in charge" in traceback
    [entry] = await app.workflows.history(run)
    assert entry["error"]["type"] == "CardDeclined"


async def test_each_failed_attempt_is_journaled_and_logged_and_long_backoffs_are_durable(
    app: App, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[float] = []

    async def flaky() -> str:
        attempts.append(clock())
        if len(attempts) < 3:
            raise ConnectionError(f"refused on attempt {len(attempts)}")
        return "done"

    @app.workflow
    async def patient(ctx: WorkflowContext, _: Any) -> str:
        slow = Retry(max_attempts=5, initial_interval=60.0, backoff_rate=2.0, jitter=False)
        return str(await ctx.step(flaky, retry=slow))

    caplog.set_level(logging.WARNING, "statekeeper.workflows")
    run = await app.workflows.start("patient")
    await drive(app)
    # The first attempt failed; its 60 s backoff is a durable sleep: nothing holds the run.
    assert len(attempts) == 1
    status = await app.workflows.status(run)
    assert status.status == "sleeping"
    [entry] = await app.workflows.history(run)
    assert (entry["kind"], entry["attempts"]) == ("attempt", 1)
    assert entry["error"]["type"] == "ConnectionError"
    assert entry["error"]["message"] == "refused on attempt 1"
    [logged] = [r for r in caplog.records if r.getMessage() == "step attempt failed; retrying"]
    assert logged.__dict__["attempt"] == 1 and logged.__dict__["retry_in"] == 60.0
    assert logged.exc_info is not None

    clock.advance(30)  # not yet due
    await drive(app)
    assert len(attempts) == 1
    clock.advance(31)
    await drive(app)  # attempt 2 fails: 120 s more
    assert len(attempts) == 2
    [entry] = await app.workflows.history(run)
    assert (entry["kind"], entry["attempts"]) == ("attempt", 2)
    assert entry["error"]["message"] == "refused on attempt 2"
    clock.advance(121)
    await drive(app)
    assert attempts == [attempts[0], attempts[0] + 61, attempts[0] + 61 + 121]
    status = await app.workflows.status(run)
    assert (status.status, status.output) == ("succeeded", "done")
    [entry] = await app.workflows.history(run)
    assert (entry["kind"], entry["attempts"], entry["error"]) == ("step", 3, None)
    assert entry["output"] == "done"


async def test_attempts_count_across_a_lost_run(app: App, clock: FakeClock) -> None:
    """A run that dies between attempts (its task cancelled, its lease left to lapse)
    resumes at the next attempt: the attempt limit holds across runs."""
    tries: list[int] = []
    second_failed = asyncio.Event()

    async def failing() -> None:
        tries.append(len(tries) + 1)
        if len(tries) == 2:
            second_failed.set()
        raise TimeoutError(f"try {len(tries)}")

    @app.workflow
    async def bounded(ctx: WorkflowContext, _: Any) -> str:
        quick = Retry(max_attempts=3, initial_interval=1.0, backoff_rate=1.0, jitter=False)
        try:
            await ctx.step(failing, retry=quick)
        except StepFailed as failed:
            return str(failed.error)
        return "succeeded"

    run = await app.workflows.start("bounded")
    runner = WorkflowRunner(app.workflows)
    [leased] = await runner._lease(["bounded"], 1)
    crashed = asyncio.create_task(runner.execute(leased))
    await asyncio.wait_for(second_failed.wait(), 10)
    await asyncio.sleep(0.05)  # the second attempt is journaled; the run sleeps 1 s
    crashed.cancel()
    await asyncio.gather(crashed, return_exceptions=True)
    [entry] = await app.workflows.history(run)
    assert (entry["kind"], entry["attempts"]) == ("attempt", 2)
    clock.advance(app.workflows.lease + 1)
    await drive(app)
    assert tries == [1, 2, 3]
    assert (await app.workflows.status(run)).output == "TimeoutError: try 3"


async def test_declared_types_come_back_on_the_first_run_and_on_replay(
    app: App, clock: FakeClock
) -> None:
    seen: list[Any] = []

    async def quote(request: Request) -> Quote:
        assert isinstance(request, Request)
        return QUOTE

    def deliver(quote: Quote) -> datetime.date:
        return quote.valid_until.date()

    @app.workflow
    async def orders(ctx: WorkflowContext, request: Request) -> dict[str, Any]:
        seen.append(request)
        got = await ctx.step(quote, request)
        seen.append(got)
        await ctx.sleep(10)  # the next run replays the step
        day = await ctx.step(deliver, got)
        return {"quote": got, "day": day}

    wanted = Request("desk", 2, datetime.date(2027, 2, 1))
    run = await app.workflows.start("orders", wanted)
    await drive(app)
    clock.advance(11)
    await drive(app)
    assert seen == [wanted, QUOTE, wanted, QUOTE]
    assert all(type(v) in (Request, Quote) for v in seen)
    status = await app.workflows.status(run)
    assert status.status == "succeeded"
    assert status.output["day"] == "2027-01-01"
    assert status.output["quote"]["signature"] == "AAFzaWduZWT_"


async def test_a_recorded_value_that_no_longer_fits_the_declared_type_fails_clearly(
    app: App, clock: FakeClock
) -> None:
    returns: list[Any] = [{"id": "not a uuid"}]

    async def changed() -> Any:
        return returns[0]

    changed.__annotations__["return"] = Quote  # the code changed its declared type

    @app.workflow
    async def typed(ctx: WorkflowContext, _: Any) -> str:
        await ctx.step(changed)
        return "fine"

    run = await app.workflows.start("typed")
    await drive(app)
    status = await app.workflows.status(run)
    assert status.status == "failed" and status.error is not None
    assert status.error.type == "InvalidValue"
    assert status.error.message.startswith("the result of step ")
    assert "is not a Quote" in status.error.message


async def test_error_records_cross_to_a_parent_and_through_a_callback(app: App) -> None:
    app.workflows.secret = "s" * 32

    @app.workflow
    async def child(ctx: WorkflowContext, _: Any) -> None:
        raise PermissionError("no access to the ledger")

    @app.workflow
    async def parent(ctx: WorkflowContext, _: Any) -> list[str]:
        try:
            await ctx.child("child")
        except StepFailed as failed:
            child_error = failed.error
        callback = await ctx.callback()
        from statekeeper.workflows.signals import CallbackFailed

        try:
            await callback.result()
        except CallbackFailed as failed:
            answered = failed.error
        return [child_error.type, child_error.message, answered.type, answered.message]

    run = await app.workflows.start("parent")
    await drive(app)
    history = await app.workflows.history(run)
    [token] = [e["output"] for e in history if e["kind"] == "callback"]
    await app.workflows.answer_callback(
        token, {"status": "failure", "error": "CardDeclined", "cause": "limit reached"}
    )
    await drive(app)
    kind, message, answered_type, answered_message = (await app.workflows.status(run)).output
    assert kind == "PermissionError"
    assert message.endswith("failed: no access to the ledger")
    assert (answered_type, answered_message) == ("CardDeclined", "limit reached")


def test_error_record_json_is_what_the_journal_holds() -> None:
    record = ErrorRecord.made("ValueError", "bad", "Traceback ...")
    assert ErrorRecord.from_json(record.to_json()) == record
