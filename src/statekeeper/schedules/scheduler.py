"""The scheduler: fires due schedules, in every worker, with no leader.

Each round claims the due schedules (one indexed range read: ``sk_schedules_due``), so
two schedulers take different ones; decides each one's fires (``Firing.decide``); and
writes all of them, with the runs they start, in one transaction (or, if one of them
changed since it was claimed, each in its own). A run's id is its schedule's id and
fire time, created ``ON CONFLICT DO NOTHING`` in the transaction that moves the
schedule past that fire: however many schedulers run, and wherever one is killed, a
fire starts one run. A scheduler killed holding a claim leaves its schedules due again
when the claim's lease ends; the fires missed meanwhile run then, within each
schedule's catch-up window. The runs of a schedule with a workflow queue are written
queued (pending, not due, with their place in the queue) in that transaction, and their
queues are admitted after its commit (``Schedules.admit``).

When traces are recorded, each fire that starts runs is a span (``fire schedule <id>``,
a root) from its decision to its commit, and its runs keep its trace context in their
rows: their spans, on whichever worker and however often they resume, join its trace.
The runs a round created (not those whose id existed already) count as started.

Between rounds it sleeps until the next due time (the App's clock), at most ``poll``
seconds, woken early when a schedule changes here or (PostgreSQL) in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable

from statekeeper.errors import StatekeeperError
from statekeeper.observability import metrics
from statekeeper.schedules.api import Schedules
from statekeeper.schedules.firing import Decision, traced
from statekeeper.schedules.policy import jitter_offset
from statekeeper.storage.schedule_ops import ScheduleRow

log = logging.getLogger("statekeeper.scheduler")

# Seconds a claimed schedule is kept from other schedulers: longer than a round takes
# (claim, the wait of a claim made AHEAD, decide, write), short enough that fires claimed
# by a scheduler killed meanwhile run soon after their time.
CLAIM_LEASE = 3.0
BATCH = 250  # schedules claimed in one round trip (PostgreSQL)
PARALLEL = 4  # rounds in flight at once on PostgreSQL, on as many connections
# SQLite: one round at a time, of up to this many schedules. Its one writer gains nothing
# from rounds in flight together; they only contend for it (1,000 schedules due at one
# instant: p99 lateness 114-152 ms in 4 rounds of 250, 83-95 ms in one round of 1,000).
SQLITE_BATCH = 1000
# Seconds before schedules are due that the service claims them: their claims and (under
# allow_all) their decisions are made beforehand, so that a fire is late only by its
# write. A scheduler killed holding such a claim leaves its fires to another when the
# claim ends, at most CLAIM_LEASE - AHEAD after their time.
AHEAD = 0.5
_ERROR_PAUSE = 1.0
_STOP_MARGIN = 0.1  # real seconds a stopping scheduler waits past a claimed fire's time


class Scheduler:
    """A supervised service (``name``, ``run(stopping)``) firing ``schedules``."""

    name = "scheduler"

    def __init__(
        self,
        schedules: Schedules,
        *,
        poll: float = 1.0,
        batch: int | None = None,
        observe: Callable[[list[str], float], None] | None = None,
    ) -> None:
        self.schedules = schedules
        self.poll = poll
        self.batch = batch  # schedules a round claims (None: the backend's default)
        self.started = 0  # runs started by this scheduler
        # Told the ids of the runs each round started and when their commit returned
        # (the clock's time): what the benchmark measures lateness with.
        self.observe = observe

    async def run_due(self, *, ahead: float = 0.0, stopping: asyncio.Event | None = None) -> int:
        """One round: fire what is due now; how many schedules were claimed. With
        ``ahead``, schedules due within that many seconds are claimed too, and each is
        decided and written at its time (its claim and, under ``allow_all``, its
        decision made beforehand, so that the fire is late only by its write)."""
        schedules = self.schedules
        backend = schedules._backend().schedules
        now = schedules.clock()
        rows = await backend.claim(
            schedules.namespace, now=now + ahead, lease_end=now + CLAIM_LEASE,
            limit=self._rounds()[0],
        )  # fmt: skip
        if not rows:
            return 0
        groups: dict[float, list[ScheduleRow]] = {}
        for row in rows:
            groups.setdefault(max(now, _target(row, now)), []).append(row)
        for at in sorted(groups):
            await self._fire(groups[at], at, stopping, ahead, now + CLAIM_LEASE)
        return len(rows)

    async def _fire(
        self,
        rows: list[ScheduleRow],
        at: float,
        stopping: asyncio.Event | None,
        ahead: float,
        lease_end: float,
    ) -> None:
        """Decide and write ``rows``, due at ``at``, once the clock reaches it."""
        with contextlib.ExitStack() as spans:  # the fires' spans (also on an error)
            await self._fire_in(rows, at, stopping, ahead, lease_end, spans)

    async def _fire_in(
        self,
        rows: list[ScheduleRow],
        at: float,
        stopping: asyncio.Event | None,
        ahead: float,
        lease_end: float,
        spans: contextlib.ExitStack,
    ) -> None:
        schedules = self.schedules
        firing = schedules.firing
        backend = schedules._backend().schedules
        early = [await firing.decide(r, at) for r in rows if r.overlap == "allow_all"]
        prepared = None
        if len(early) == len(rows):  # all decided: bound now too, written at their time
            early = traced(early, spans)
            writes = [(d.row, d.runs, d.cancel) for d in early]
            prepared = backend.prepare_many(schedules.namespace, writes, at)
        give_up: float | None = None  # a stopping one writes what it holds, if it comes soon
        while (left := at - schedules.clock()) > 0:
            if stopping is not None and stopping.is_set():
                give_up = give_up or time.monotonic() + min(left, ahead) + _STOP_MARGIN
                if left > ahead or time.monotonic() > give_up:  # (an injected clock stood)
                    return  # the claims end in CLAIM_LEASE; the fires run then
            await asyncio.sleep(min(left, self.poll))
        now = schedules.clock() if prepared is None else at
        late = [await firing.decide(r, now) for r in rows if r.overlap != "allow_all"]
        decisions = early + late
        if prepared is None:
            decisions = traced(decisions, spans)
            writes = [(d.row, d.runs, d.cancel) for d in decisions]
            prepared = backend.prepare_many(schedules.namespace, writes, now)
        created = await backend.write_prepared(prepared)
        if created is not None:
            done = decisions
        elif schedules.clock() >= lease_end:  # the claim ended: another scheduler has them
            log.warning(
                "a round of the scheduler outlasted its claim; its schedules are left to "
                "the scheduler that claims them next", extra={"schedules": len(rows)},
            )  # fmt: skip
            done, created = [], Counter()
        else:  # one changed since it was claimed (an operator's write): each on its own
            done, created = [], Counter()
            for decision in decisions:
                written = await self._write_one(decision, now)
                if written is not None:
                    done.append(decision)
                    created += written
        spans.close()  # the fires are written (or left): their spans end
        for workflow, count in created.items():  # the runs created, each counted once
            metrics.workflow_started(schedules.namespace, workflow, count)
        started = sum(created.values())
        await schedules.admit(r for d in done for r in d.runs)
        if self.observe is not None:
            self.observe([r.id for d in done for r in d.runs], schedules.clock())
        self.started += started
        schedules._changed(started=started > 0)

    def _rounds(self) -> tuple[int, int]:
        """(schedules a round claims, rounds in flight at once) on this backend."""
        if self.schedules._backend().dialect == "sqlite":
            return self.batch or SQLITE_BATCH, 1
        return self.batch or BATCH, PARALLEL

    async def _write_one(self, decision: Decision, now: float) -> Counter[str] | None:
        schedules = self.schedules
        return await schedules._backend().schedules.write(
            schedules.namespace, decision.row, now, runs=decision.runs, cancel=decision.cancel
        )

    async def run(self, stopping: asyncio.Event) -> None:
        """Fire due schedules until ``stopping`` is set (declared ones upserted first)."""
        schedules = self.schedules
        while not stopping.is_set():
            try:
                declared = await schedules.upsert_declared()
                break
            except StatekeeperError as error:
                log.warning("declaring schedules failed; retrying", exc_info=error)
                await _wait(stopping, None, _ERROR_PAUSE)
        else:
            return
        if declared:
            log.info("schedules declared", extra={"schedules": declared})
        while not stopping.is_set():
            woken = schedules.wake_event()
            try:
                batch, parallel = self._rounds()
                while True:
                    rounds = [self.run_due(ahead=AHEAD, stopping=stopping) for _ in range(parallel)]
                    if max(await asyncio.gather(*rounds)) < batch:
                        break
                due = await schedules._backend().schedules.next_due(schedules.namespace)
                delay = self.poll if due is None else due - AHEAD - schedules.clock()
            except StatekeeperError as error:
                log.warning("firing schedules failed; retrying", exc_info=error)
                delay = _ERROR_PAUSE
            await _wait(stopping, woken, min(self.poll, max(0.001, delay)))


def _target(row: ScheduleRow, now: float) -> float:
    """When a claimed schedule is due: its next fire plus jitter (now if fires wait in
    its buffer, or it has nothing to fire)."""
    if row.next_fire_at is None or row.buffered not in ("", "[]"):
        return now
    return row.next_fire_at + jitter_offset(row.id, row.next_fire_at, row.jitter)


async def _wait(stopping: asyncio.Event, woken: asyncio.Event | None, delay: float) -> None:
    waits = [asyncio.create_task(stopping.wait())]
    if woken is not None:
        waits.append(asyncio.create_task(woken.wait()))
    try:
        await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        for task in waits:
            with contextlib.suppress(asyncio.CancelledError):
                await task
