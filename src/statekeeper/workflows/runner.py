"""The workflow runner: leases runnable workflows of the registry and runs them.

A run replays the workflow's journal and goes on from where it stopped; it ends by
suspending (a sleep, a wait), by finishing (succeeded, failed, cancelled, compensated,
timed_out), or by being abandoned when its lease moved on to another runner.

A paused workflow is not leased; a run that learns at a checkpoint that its workflow
was paused gives it back before new work, and a paused workflow's finish is refused (the
run gives it back then too): it finishes once resumed.

A workflow started with a timeout has a deadline: leased after it, it ends timed_out
without running; running at it, its run is stopped and it ends timed_out; suspending,
it is due again at its deadline at the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Coroutine
from typing import Any

from statekeeper.codec import parameter_type
from statekeeper.constants import WORKFLOW_CANCEL_REQUESTED, child_event
from statekeeper.errors import (
    BlobUnavailable,
    DatabaseBusy,
    DatabaseUnavailable,
    DecryptionError,
    ErrorRecord,
    StatekeeperError,
)
from statekeeper.observability import metrics, tracing
from statekeeper.queues.wakeups import POLL_INTERVAL, workflow_subject
from statekeeper.sealing import EVENT, WORKFLOW
from statekeeper.storage.rows import LeasedWorkflow
from statekeeper.storage.runner import Take
from statekeeper.workflows.context import WorkflowContext
from statekeeper.workflows.definitions import REFRESH
from statekeeper.workflows.engine import WAKEUP_CHANNEL, Workflows
from statekeeper.workflows.signals import (
    OUTAGES,
    Cancelled,
    CheckpointFailed,
    Compensated,
    ContinueAsNew,
    GiveBack,
    StepFailed,
    Superseded,
    Suspend,
    TimedOut,
    Unreadable,
)

log = logging.getLogger("statekeeper.workflows")
UNREADABLE_RETRY = 30.0  # seconds before a workflow this process cannot read is tried again
# Seconds before a workflow whose run an outage stopped is due again: not at once, so a
# store that keeps refusing (a blob store's settings, a full disk) is not hammered.
OUTAGE_RETRY = 5.0


def _failure(error: Exception) -> ErrorRecord:
    """What a workflow that raised ``error`` records: a step's failure it did not catch
    keeps the step's error type and traceback, so the workflow fails as its step did."""
    if isinstance(error, StepFailed):
        step = error.error
        return ErrorRecord.made(
            step.type, f"step {error.step!r} failed: {step.message}", step.traceback
        )
    own = getattr(error, "error_record", None)  # an error that says how it is recorded
    return own if isinstance(own, ErrorRecord) else ErrorRecord.of(error)


class WorkflowRunner:
    """Leases runnable workflows and runs them, ``concurrency`` at a time."""

    def __init__(
        self,
        workflows: Workflows,
        *,
        concurrency: int = 32,
        poll: float = 1.0,
        grace: float = 30.0,
    ) -> None:
        self.workflows = workflows
        self.concurrency = concurrency
        self.poll = min(poll, POLL_INTERVAL)
        self.grace = grace
        self.owner = secrets.token_hex(8)
        self.completed = 0
        self.given_back = 0
        # Whether a run's end takes the next run of its queue to run at once (PostgreSQL:
        # leased to this runner in the finish's statement). ``run`` sets it; a test that
        # drives the runner by hand leases every run itself unless it sets it too.
        self.take_next = False
        self.taken = 0  # runs taken at the end of the run before them
        self._taken: dict[str, LeasedWorkflow] = {}  # by the id of the run whose end took it
        self._stopping: asyncio.Event | None = None

    def _is_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Lease and run workflows until ``stopping`` is set; then lease no more, let the
        runs in hand finish their steps in flight (they start no new ones: each gives its
        workflow back) within ``grace`` seconds, and cancel and give back the rest."""
        self._stopping = stopping
        self.take_next = True
        in_hand: set[asyncio.Task[None]] = set()
        stop = asyncio.create_task(stopping.wait())
        flows = self.workflows
        try:
            await flows.definitions.announce(list(flows.registry))
        except StatekeeperError as error:
            log.warning(
                "announcing the registered workflows failed", exc_info=error,
                extra={"error": error.message},
            )  # fmt: skip
        try:
            while not stopping.is_set():
                await flows.definitions.refresh()
                free = self.concurrency - len(in_hand)
                if free <= 0:
                    await asyncio.wait([*in_hand, stop], return_when=asyncio.FIRST_COMPLETED)
                    continue
                woken = self.workflows._wakeups.event(self.workflows.namespace, WAKEUP_CHANNEL)
                looked_at = self.workflows._clock()
                await self._admit(throttle=True)
                leased = await self._lease(self.workflows.runnable(), free)
                for workflow in leased:
                    task = asyncio.create_task(self.execute(workflow))
                    in_hand.add(task)
                    task.add_done_callback(in_hand.discard)
                if not leased:
                    await self._idle(woken, stop, looked_at)
        finally:
            stop.cancel()
            await self._drain(in_hand)

    async def _drain(self, in_hand: set[asyncio.Task[None]]) -> None:
        if not in_hand:
            return
        log.info(
            "waiting for workflow steps in flight",
            extra={"count": len(in_hand), "grace": self.grace},
        )
        _, late = await asyncio.wait(set(in_hand), timeout=self.grace)
        for task in late:
            task.cancel()  # execute gives the workflow back
        if late:
            log.warning(
                "grace period over: workflow steps in flight interrupted",
                extra={"count": len(late)},
            )
            await asyncio.wait(late, timeout=5.0)

    async def lease(self, limit: int = 16) -> list[LeasedWorkflow]:
        """Lease up to ``limit`` due workflows this process can run (run each with
        ``execute``); what ``run`` does in its loop, for a test to drive by hand."""
        await self.workflows.definitions.refresh()
        await self._admit(throttle=False)
        return await self._lease(self.workflows.runnable(), limit)

    async def run_due(self, limit: int = 16) -> int:
        """Lease the due workflows (up to ``limit``) and run each until it finishes or
        suspends (sleeps, waits); how many ran. Tests call it until it returns 0."""
        leased = await self.lease(limit)
        await asyncio.gather(*(self.execute(workflow) for workflow in leased))
        return len(leased)

    async def _admit(self, *, throttle: bool) -> None:
        """Flow control: admit the queued runs whose queue's limits allow them now."""
        try:
            await self.workflows.flow.admission_pass(throttle=throttle)
        except StatekeeperError as error:
            log.warning("admitting queued workflows failed", extra={"error": error.message})

    async def _lease(self, names: list[str], count: int) -> list[LeasedWorkflow]:
        flows = self.workflows
        if not names:
            return []
        now = flows._clock()
        try:
            return await flows._backend.workflows.lease(
                flows.namespace, names, owner=self.owner, lease_end=now + flows.lease,
                limit=min(count, 16), now=now, versions=flows.versions.leased(),
                stamps=flows.versions.stamps(names),
            )  # fmt: skip
        except StatekeeperError as error:
            log.warning("leasing workflows failed", exc_info=error, extra={"error": error.message})
            return []

    async def _idle(self, woken: asyncio.Event, stop: asyncio.Task[bool], looked_at: float) -> None:
        """Wait for a wake-up, the next due time, or the poll interval. A due time that
        had passed when the lease looked is a workflow another lease still holds (its
        lease ends later than its wake-up time says, or it is being cancelled): that waits
        for the poll, rather than asking again at once and again."""
        flows = self.workflows
        wait = min(self.poll, flows.flow.poll() or self.poll)
        if not flows.runnable():
            # Nothing this process can run (yet): no query but the definitions' read.
            wait = max(wait, REFRESH)
        else:
            with contextlib.suppress(StatekeeperError):
                due = await flows._backend.workflows.next_due(flows.namespace)
                if due is not None and due > looked_at:
                    wait = min(wait, max(0.0, due - flows._clock()) + 0.001)
        waiter = asyncio.create_task(woken.wait())
        await asyncio.wait([waiter, stop], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def execute(self, leased: LeasedWorkflow) -> None:
        """Run a leased workflow until it finishes or suspends; then the run its end took
        (``take_next``), if any, and so on."""
        running: LeasedWorkflow | None = leased
        while running is not None:
            self._changed(running.id)  # leased: running now
            try:
                await self._traced(running)
            except BaseException:  # interrupted (the grace period is over): not run
                taken = self._taken.pop(running.id, None)
                if taken is not None:
                    await self._give_back_shielded(taken)
                raise
            self._changed(running.id)  # ended, suspended or given back
            taken = self._taken.pop(running.id, None)
            if taken is not None and self._is_stopping():
                await self._give_back_shielded(taken)  # taken as the stop came
                taken = None
            running = taken

    async def _traced(self, leased: LeasedWorkflow) -> None:
        """``_execute_one`` in a span of the trace the workflow was started in (when
        traces are recorded), whichever process runs it and however often it resumes."""
        attributes = {"statekeeper.workflow_id": leased.id, "statekeeper.fence": leased.fence}
        with tracing.span(f"run workflow {leased.name}", parent=leased.trace, kind="consumer",
                          attributes=attributes):  # fmt: skip
            await self._execute_one(leased)

    def _changed(self, id: str) -> None:
        """Wake the live streams that follow workflow ``id``, here and elsewhere."""
        flows = self.workflows
        flows._wakeups.changed(flows.namespace, workflow_subject(id))

    async def _execute_one(self, leased: LeasedWorkflow) -> None:
        flows = self.workflows
        backend = flows._backend
        if self._time_left(leased) == 0.0:  # due at its deadline, or run past it
            await self._time_out(leased)
            return
        try:
            if leased.name not in flows.registry:
                await flows.definitions.read(leased.name)
            fn = flows.function_of(leased.name)
        except StatekeeperError as error:  # its definition does not build here
            await self._defer(leased, error.message)
            return
        except Exception as error:  # nor does its code import here
            log.warning(
                "workflow's definition does not build here", exc_info=error,
                extra={"workflow_id": leased.id, "workflow": leased.name},
            )  # fmt: skip
            await self._defer(leased, f"{type(error).__name__}: {error}")
            return
        if fn is None:  # undefined since it was leased
            await self._defer(leased, f"workflow {leased.name!r} is not defined here")
            return
        journal = await backend.workflows.journal(flows.namespace, leased.id)
        ctx = WorkflowContext(
            backend, flows.namespace, leased.id, leased.fence, journal,
            clock=flows._clock, lease=flows.lease,
            cancel_requested=leased.cancel_requested == WORKFLOW_CANCEL_REQUESTED,
            sealer=flows.sealer, state=flows._state_of, max_journal=flows.max_journal_entries,
            payloads=flows.payloads,
        )  # fmt: skip
        ctx.run_name = leased.name
        ctx.on_child_started = lambda: flows._wakeups.notify(flows.namespace, WAKEUP_CHANNEL)
        ctx.secret = flows.secret
        ctx.entity_call = flows.entity_call
        ctx.created_at = leased.created_at
        ctx.on_changed = lambda: self._changed(leased.id)
        ctx.workflow_name = flows.name_of
        ctx.version_of = flows.versions.of
        ctx.stopping = self._is_stopping
        try:
            workflow_input = await flows.payloads.value(
                leased.input, parameter_type(fn, 1), f"the input of workflow {leased.id!r}",
                WORKFLOW, flows.namespace, leased.id, "input",
            )  # fmt: skip
        except DecryptionError as error:  # a key this process lacks: later, not failed
            await self._defer(leased, error.message)
            return
        except (DatabaseUnavailable, DatabaseBusy, BlobUnavailable) as error:  # read later
            log.warning(
                "reading a workflow's input failed; it is given back", exc_info=error,
                extra={"workflow_id": leased.id, "error": error.message},
            )  # fmt: skip
            await self._give_back_shielded(leased)
            return
        except StatekeeperError as error:  # fails alone, and for good: it cannot change
            log.warning(
                "workflow failed: its input cannot be read", exc_info=error,
                extra={"workflow_id": leased.id, "workflow": leased.name},
            )  # fmt: skip
            await self._finish(leased, "failed", None, ErrorRecord.of(error, name="InvalidInput"))
            return
        run = asyncio.create_task(self._within_deadline(leased, fn(ctx, workflow_input)))
        keeper = asyncio.create_task(self._keep_lease(leased, run))
        try:
            output = await run
        except Suspend as suspend:
            if suspend.stored:
                return
            await backend.workflows.suspend(
                flows.namespace, leased.id, leased.fence, status=suspend.status,
                wake_at=self._by_deadline(leased, suspend.wake_at),
                waiting_for=suspend.waiting_for, now=flows._clock(),
            )  # fmt: skip
            return
        except TimedOut:
            await self._time_out(leased)
            return
        except ContinueAsNew as new_run:
            await self._continue_as_new(leased, new_run.input)
            return
        except Cancelled:
            cancelled = ErrorRecord.made("Cancelled", "cancelled on request")
            await self._finish(leased, "cancelled", None, cancelled)
            return
        except Compensated as compensated:
            await self._finish(leased, "compensated", None, compensated.error)
            return
        except GiveBack:
            try:
                # Steps started side by side (asyncio.gather) may still run: their
                # checkpoints are written before the workflow goes (the grace bounds this).
                await ctx.steps_settled()
            finally:
                await self._give_back_shielded(leased, paused=ctx.paused)
            return
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # the grace ended mid-step
                await self._give_back_shielded(leased)
                raise
            metrics.lease_lost(flows.namespace, "workflow")
            log.info("workflow run abandoned: its lease moved on", extra={"workflow_id": leased.id})
            return
        except Superseded:
            metrics.lease_lost(flows.namespace, "workflow")
            log.info("workflow run abandoned: its lease moved on", extra={"workflow_id": leased.id})
            return
        except Unreadable as unreadable:
            await self._defer(leased, unreadable.message)
            return
        except (CheckpointFailed, *OUTAGES) as outage:  # the database's fault, not the run's
            log.warning(
                "workflow run stopped: the database did not take its records; it is "
                "given back, due again in %g s", OUTAGE_RETRY,
                extra={"workflow_id": leased.id, "error": str(outage)[:500]},
            )  # fmt: skip
            try:
                await ctx.steps_settled()  # as for GiveBack: steps side by side end first
            finally:
                await self._give_back_shielded(leased, delay=OUTAGE_RETRY)
            return
        except Exception as error:
            failure = _failure(error)
            # A failure the workflow reports as its outcome (a state machine's States
            # error) is logged without the interpreter's traceback: it is not a fault.
            reported = getattr(error, "error_record", None) is not None
            log.warning(
                "workflow failed", exc_info=None if reported else error,
                extra={"workflow_id": leased.id, "workflow": leased.name,
                       "error": f"{failure.type}: {failure.message}"[:500]},
            )  # fmt: skip
            await self._finish(leased, "failed", None, failure)
            return
        finally:
            keeper.cancel()
        try:
            data = flows.payloads.encode(f"result of workflow {leased.name!r}", output)
        except StatekeeperError as error:
            log.warning(
                "workflow failed: its result cannot be stored", exc_info=error,
                extra={"workflow_id": leased.id, "workflow": leased.name},
            )  # fmt: skip
            await self._finish(
                leased, "failed", None, ErrorRecord.of(error, name="ResultNotStored")
            )
            return
        # The output is JSON now: its value (held by the task too) and the input go,
        # so that a large one is not in memory twice while it is stored.
        del output, run, workflow_input
        await self._finish(leased, "succeeded", data, None)

    async def _continue_as_new(self, leased: LeasedWorkflow, data: bytes) -> None:
        """Start the workflow over with the input ``data``, under this run's fence (a
        runner whose lease moved on changes nothing)."""
        flows = self.workflows
        sealed = await flows.payloads.seal(data, WORKFLOW, flows.namespace, leased.id, "input")
        continued = await flows._backend.workflows.continue_as_new(
            flows.namespace, leased.id, leased.fence, sealed, flows._clock()
        )
        if continued:
            log.info("workflow continued as new", extra={"workflow_id": leased.id})
            flows._wakeups.notify(flows.namespace, WAKEUP_CHANNEL)
        else:
            metrics.lease_lost(flows.namespace, "workflow")
            log.info("workflow run abandoned: its lease moved on", extra={"workflow_id": leased.id})

    async def _give_back_shielded(
        self, leased: LeasedWorkflow, *, paused: bool = False, delay: float = 0.0
    ) -> None:
        """``_give_back``, carried out even if this task is being cancelled; a failure is
        logged (the workflow's lease then runs out, and another runner resumes it)."""
        try:
            await asyncio.shield(self._give_back(leased, paused=paused, delay=delay))
        except StatekeeperError as error:
            log.warning(
                "giving a workflow back failed", exc_info=error,
                extra={"workflow_id": leased.id, "error": error.message},
            )  # fmt: skip

    async def _give_back(
        self, leased: LeasedWorkflow, *, paused: bool = False, delay: float = 0.0
    ) -> None:
        """This process is stopping: end the lease now, the workflow due at once (or in
        ``delay`` seconds), so another runner goes on with it without waiting for the
        lease to run out. A paused workflow is given back the same way, and is due once
        it is resumed."""
        flows = self.workflows
        now = flows._clock()
        given = await flows._backend.workflows.suspend(
            flows.namespace, leased.id, leased.fence, status="pending",
            wake_at=self._by_deadline(leased, now + delay), waiting_for=None, now=now,
        )  # fmt: skip
        if given and paused:
            log.info("workflow paused: its run gave it back", extra={"workflow_id": leased.id})
        elif given:
            self.given_back += 1
            log.info("workflow given back", extra={"workflow_id": leased.id})
            flows._wakeups.notify(flows.namespace, WAKEUP_CHANNEL)

    async def _defer(self, leased: LeasedWorkflow, why: str) -> None:
        """Give a workflow whose recorded values this process cannot open back, due again
        in UNREADABLE_RETRY seconds: a process with the right keyring (or this one, fixed)
        runs it then. Nothing of it is failed or compensated meanwhile."""
        flows = self.workflows
        log.error(
            "workflow cannot run in this process (its keys or its code); trying again later",
            extra={"workflow_id": leased.id, "error": why, "retry_in": UNREADABLE_RETRY},
        )
        await flows._backend.workflows.suspend(
            flows.namespace, leased.id, leased.fence, status="pending",
            wake_at=self._by_deadline(leased, flows._clock() + UNREADABLE_RETRY),
            waiting_for=None, now=flows._clock(),
        )  # fmt: skip

    # --- the workflow's timeout ----------------------------------------------------------

    def _time_left(self, leased: LeasedWorkflow) -> float | None:
        """Seconds until the workflow's deadline (0 once it has passed); None without."""
        if leased.deadline is None:
            return None
        return max(0.0, leased.deadline - self.workflows._clock())

    def _by_deadline(self, leased: LeasedWorkflow, wake_at: float | None) -> float | None:
        """When a suspended workflow is due: its own wake-up time, or its deadline if
        that comes first (a wait for an event alone has no wake-up time)."""
        if leased.deadline is None:
            return wake_at
        return leased.deadline if wake_at is None else min(wake_at, leased.deadline)

    async def _within_deadline(self, leased: LeasedWorkflow, work: Coroutine[Any, Any, Any]) -> Any:
        """Run the workflow's code, stopped at its deadline (TimedOut then)."""
        left = self._time_left(leased)
        if left is None:
            return await work
        scope = asyncio.timeout(left)
        try:
            async with scope:
                return await work
        except TimeoutError:
            if scope.expired():  # ours; a TimeoutError the code raised is its own failure
                raise TimedOut() from None
            raise

    async def _time_out(self, leased: LeasedWorkflow) -> None:
        """End the workflow timed_out (fenced, like every finish)."""
        assert leased.deadline is not None
        timeout = leased.deadline - leased.created_at
        log.info(
            "workflow timed out", extra={"workflow_id": leased.id, "workflow": leased.name},
        )  # fmt: skip
        error = ErrorRecord.made(
            "WorkflowTimedOut",
            f"workflow {leased.id!r} timed out: it did not finish within its timeout "
            f"of {timeout:g} s",
        )
        await self._finish(leased, "timed_out", None, error)

    async def _finish(
        self, leased: LeasedWorkflow, status: str, output: bytes | None, error: ErrorRecord | None
    ) -> None:
        """End the workflow; a child's outcome is delivered to its parent as event
        ``child:<id>`` in the same transaction."""
        flows = self.workflows
        seal, ns, id = flows.sealer, flows.namespace, leased.id
        text = None if error is None else seal.seal_text(error.to_json(), WORKFLOW, ns, id, "error")
        now = flows._clock()
        take = None
        if self.take_next and not self._is_stopping():
            names = flows.runnable()
            take = Take(
                self.owner, now + flows.lease, names, flows.versions.leased(),
                flows.versions.stamps(names),
            )  # fmt: skip
        try:
            stored = parent_event = None
            if output is not None:
                stored = await flows.payloads.seal(output, WORKFLOW, ns, id, "output")
            if leased.parent_id is not None:  # the child's outcome, its output as it is
                outcome = {"status": status, "error": error and error.to_dict(traceback=False)}
                data = json.dumps(outcome)[:-1].encode() + b', "output": ' + (output or b"null")
                parent_event = await flows.payloads.seal(
                    data + b"}", EVENT, ns, leased.parent_id, child_event(id), "data"
                )
            finished = await flows._backend.workflows.finish(
                ns, id, leased.fence, status=status,
                purge_at=flows.retention.purge_at(leased.name, now),
                output=stored,
                error=text,
                parent_id=leased.parent_id, parent_event=parent_event, now=now,
                finishing=flows.flow.finishing(id, now, take),
            )  # fmt: skip
        except StatekeeperError as error:  # a conflict, the database gone: nothing ended
            log.warning(
                "finishing a workflow failed; it is given back and runs again", exc_info=error,
                extra={"workflow_id": id, "status": status, "error": error.message},
            )  # fmt: skip
            await self._give_back_shielded(leased)
            return
        if finished.taken is not None:  # run next, by this task (execute)
            self._taken[id] = finished.taken
            self.taken += 1
        elif finished.done and flows.flow.active:  # its slot may have admitted a queued run
            flows._wakeups.notify(flows.namespace, WAKEUP_CHANNEL)
        if finished.done:
            self.completed += 1
            metrics.workflow_finished(ns, leased.name, status)
            log.info("workflow finished", extra={"workflow_id": leased.id, "status": status})
            if leased.parent_id is not None:
                flows._wakeups.notify(flows.namespace, WAKEUP_CHANNEL)
        else:  # paused (a paused workflow does not finish), or the lease moved on
            await self._give_back(leased, paused=True)

    async def _keep_lease(self, leased: LeasedWorkflow, run: asyncio.Task[Any]) -> None:
        flows = self.workflows
        while True:
            await asyncio.sleep(flows.lease / 3)
            now = flows._clock()
            try:
                kept = await flows._backend.workflows.renew(
                    flows.namespace, leased.id, leased.fence, now + flows.lease, now
                )
            except StatekeeperError:
                continue
            if kept is None:
                run.cancel()  # another runner owns it now
                return
