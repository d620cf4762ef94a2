"""Flow control: named workflow queues, their limits enforced by the database.

emails = app.workflow_queue("emails", concurrency=4, per_key_concurrency=1,
                            rate=(50, 1.0), key="tenant")
await emails.start(send_email, {"tenant": "t-7", ...}, priority=5)
# the same: app.workflows.start(send_email, input, queue="emails", key="t-7", priority=5)

A run started into a queue is written as a pending workflow that is not due, with its
place in the queue (``sk_flow_runs``). Admission makes it due when the queue's limits
allow: at the start itself, when a run of the queue ends (in the transaction that ends
it), and in each worker's lease loop (for rate limits and debounce windows that open
with time). Admission reads and writes only the database, under the queue's lock on
PostgreSQL and the one writer on SQLite, so the limits hold across any number of workers;
a run keeps its slot until it ends (a sleep or a wait keeps it), and a run whose worker
was killed keeps it while another worker takes the run over when its lease runs out.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statekeeper.errors import (
    ConfigurationError,
    FlowKeyBusy,
    UnknownFlowQueue,
    ValidationError,
)
from statekeeper.identifiers import check_group, check_queue_name, shown
from statekeeper.observability import metrics
from statekeeper.queues.wakeups import Wakeups
from statekeeper.storage.flow_ops import ADMIT_BATCH, QueueLimits
from statekeeper.storage.runner import Finishing, Take

if TYPE_CHECKING:
    from statekeeper.storage.contracts import Storage

WAKEUP_CHANNEL = "statekeeper.workflows"  # engine.WAKEUP_CHANNEL (not imported: a cycle)
MAX_PRIORITY = 1_000_000
SINGLETON_MODES = ("reject", "queue")
RATE_POLL = 0.05  # seconds between a runner's admission passes while time opens slots
# ... and for a queue whose slots only its runs' ends open (each end admits the next in
# its transaction): a pass now and then, for runs a crashed start left waiting.
SAFETY_POLL = 1.0
DEBOUNCE_TRIES = 3

KeyFn = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class WorkflowQueue:
    """A named workflow queue and its limits (None: no limit).

    ``concurrency``: runs of the queue started and not ended, at most, across every
    worker. ``per_key_concurrency``: the same per key. ``rate`` / ``per_key_rate``:
    ``(n, seconds)``, at most n runs admitted in any window of that many seconds.
    ``debounce``: seconds; starts of a key within that window of each other make one
    run, with the latest start's input, admitted once the window after the last start
    passes. ``singleton``: ``"reject"`` (a start while a run of its key is queued or
    running is FlowKeyBusy) or ``"queue"`` (it waits: per-key concurrency 1). ``key``:
    the key of a start that gives none, from its input: a field name or a function.
    """

    name: str
    concurrency: int | None = None
    per_key_concurrency: int | None = None
    rate: tuple[int, float] | None = None
    per_key_rate: tuple[int, float] | None = None
    debounce: float | None = None
    singleton: str | None = None
    key: str | KeyFn | None = None
    workflows: Workflows_ | None = None  # set by FlowControl.declare; starts runs

    def limits(self, now: float) -> QueueLimits:
        rate = self.rate or (None, None)
        key_rate = self.per_key_rate or (None, None)
        per_key = 1 if self.singleton == "queue" else self.per_key_concurrency
        rule = "debounce" if self.debounce is not None else self.singleton
        field = self.key if isinstance(self.key, str) else None
        return QueueLimits(
            self.name, self.concurrency, per_key, rate[0], rate[1], key_rate[0], key_rate[1], now,
            rule, field,
        )  # fmt: skip

    async def start(
        self, workflow: Any, input: Any = None, *, key: str | None = None, priority: int = 0,
        id: str | None = None, timeout: float | None = None,
    ) -> Any:  # fmt: skip
        """``app.workflows.start(workflow, input, queue=<this queue>, ...)``."""
        if self.workflows is None:
            raise ConfigurationError(f"workflow queue {self.name!r} is not declared in an app")
        return await self.workflows(
            workflow, input, id=id, timeout=timeout, queue=self.name, key=key, priority=priority
        )


Workflows_ = Callable[..., Awaitable[Any]]


def stored_queue(stored: QueueLimits) -> WorkflowQueue:
    """A queue as another process stored it, with what a schedule is checked against
    there (its start rule and key field; its limits act in the database)."""
    rule = stored.start_rule
    return WorkflowQueue(
        stored.name,
        key=stored.key_field,
        singleton=rule if rule in SINGLETON_MODES else None,
        debounce=1.0 if rule == "debounce" else None,  # its window is not kept: any
    )


def _positive(name: str, what: str, value: Any, *, real: bool = False) -> None:
    kinds = (int, float) if real else (int,)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
        kind = "a positive number" if real else "a positive integer"
        raise ConfigurationError(f"workflow queue {name!r}: {what} must be {kind}, got {value!r}")


def _rate(name: str, what: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or len(value) != 2:
        raise ConfigurationError(
            f"workflow queue {name!r}: {what} must be (n, seconds), got {value!r}"
        )
    _positive(name, f"{what}'s n", value[0])
    _positive(name, f"{what}'s seconds", value[1], real=True)


def check_queue(queue: WorkflowQueue) -> None:
    """ConfigurationError naming what is wrong with a queue's declaration."""
    name = queue.name
    _positive(name, "concurrency", queue.concurrency)
    _positive(name, "per_key_concurrency", queue.per_key_concurrency)
    _rate(name, "rate", queue.rate)
    _rate(name, "per_key_rate", queue.per_key_rate)
    _positive(name, "debounce", queue.debounce, real=True)
    if queue.singleton is not None and queue.singleton not in SINGLETON_MODES:
        raise ConfigurationError(
            f"workflow queue {name!r}: singleton must be 'reject' or 'queue', "
            f"got {queue.singleton!r}"
        )
    if queue.singleton == "queue" and queue.per_key_concurrency not in (None, 1):
        raise ConfigurationError(
            f"workflow queue {name!r}: singleton='queue' runs one run per key; "
            "per_key_concurrency cannot be more"
        )
    if queue.singleton == "reject" and queue.debounce is not None:
        raise ConfigurationError(
            f"workflow queue {name!r}: debounce and singleton='reject' cannot be combined"
        )
    if queue.key is not None and not isinstance(queue.key, str) and not callable(queue.key):
        raise ConfigurationError(
            f"workflow queue {name!r}: key must be a field name or a function of the input"
        )


def check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ValidationError(f"priority must be an integer, got {shown(priority)}")
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValidationError(
            f"priority must be from {-MAX_PRIORITY} to {MAX_PRIORITY}, got {priority}"
        )
    return priority


class FlowControl:
    """The workflow queues of one app (``app.workflows.flow``)."""

    def __init__(
        self,
        backend: Callable[[], Storage],
        namespace: str,
        clock: Callable[[], float],
        wakeups: Wakeups,
    ) -> None:
        self._backend_of = backend
        self.namespace = namespace
        self._clock = clock
        self._wakeups = wakeups
        self.queues: dict[str, WorkflowQueue] = {}
        self._declared = False  # the limits are stored (once a process, when first used)
        self._passed: dict[str, float] = {}  # queue: monotonic time of its last pass

    @property
    def active(self) -> bool:
        """Whether this process declares workflow queues (its runs' ends give slots back)."""
        return bool(self.queues)

    def declare(self, queue: WorkflowQueue, starter: Workflows_) -> WorkflowQueue:
        check_queue_name(queue.name)
        check_queue(queue)
        object.__setattr__(queue, "workflows", starter)
        known = self.queues.get(queue.name)
        if known is not None and known != queue:
            raise ConfigurationError(f"workflow queue {queue.name!r} is declared already")
        self.queues[queue.name] = queue
        self._declared = False
        return queue

    async def store_limits(self) -> None:
        """Store every declared queue's limits (what admission reads), once a process."""
        if self._declared:
            return
        now = self._clock()
        for queue in self.queues.values():
            await self._backend_of().flow.declare(self.namespace, queue.limits(now))
        self._declared = True

    def queue(self, name: str) -> WorkflowQueue:
        found = self.queues.get(name)
        if found is None:
            raise UnknownFlowQueue(
                f"there is no workflow queue {shown(name)}: declare it with "
                "app.workflow_queue(name, ...) in this process",
                queue=name,
            )
        return found

    async def known(self, name: str) -> WorkflowQueue | QueueLimits:
        """Queue ``name`` as this process declares it, else as another process of the
        namespace stored it (a worker used it: its limits and start rules); else
        UnknownFlowQueue (a schedule names a queue its runs can be admitted from)."""
        found = self.queues.get(name)
        if found is not None:
            return found
        for stored in await self._backend_of().flow.queues(self.namespace):
            if stored.name == name:
                return stored
        raise UnknownFlowQueue(
            f"there is no workflow queue {shown(name)}: declare it with "
            "app.workflow_queue(name, ...) in the workers of this namespace (a worker "
            "stores its queues when it starts) or in this process",
            queue=name,
        )

    async def admit_queues(self, counts: Mapping[str, int]) -> int:
        """Admit what each queue of ``counts`` allows now, up to that many runs each (the
        runs a schedule's fires just placed in them); how many were admitted. A queue
        this process does not declare is admitted by its stored limits (none stored:
        its runs wait until a process declaring it passes)."""
        if any(name in self.queues for name in counts):
            await self.store_limits()
        storage = self._backend_of().flow
        admitted = 0
        for name, count in counts.items():
            admitted += await storage.admit(
                self.namespace, name, self._clock(), max(1, min(count, ADMIT_BATCH))
            )
        if admitted:
            self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)
        return admitted

    def key_of(self, queue: WorkflowQueue, input: Any, key: Any) -> str | None:
        """The run's key: given at the start, else taken from the input by the queue's
        ``key`` (a field of an object input, or a function of it)."""
        if key is None and queue.key is not None:
            if callable(queue.key):
                key = queue.key(input)
            elif isinstance(input, dict):
                key = input.get(queue.key)
            if key is not None and not isinstance(key, str):
                key = str(key)
        if key is None:
            if queue.singleton is not None or queue.debounce is not None:
                raise ValidationError(
                    f"workflow queue {queue.name!r} needs a key for every start "
                    "(singleton or debounce): give key=..., or declare the queue's key"
                )
            return None
        return check_group(key)

    async def start(
        self,
        queue_name: str,
        *,
        id: str,
        name: str,
        input: Any,
        seal: Callable[[str], bytes],
        check_same: Callable[[str], Awaitable[None]],
        deadline: float | None,
        key: Any,
        priority: Any,
        version: str | None = None,
        trace: str | None = None,
    ) -> str:
        """Start a run into the queue, in the trace context ``trace`` (kept with its row,
        as a direct start keeps it); the id of the run that carries it (a waiting
        debounced run of its key, if there is one: that run keeps its own trace, and
        only a run created here counts as started)."""
        queue = self.queue(check_queue_name(queue_name))
        chosen_key = self.key_of(queue, input, key)
        priority = check_priority(priority)
        await self.store_limits()
        storage = self._backend_of().flow
        lock = None
        if chosen_key is not None and queue.debounce is not None:
            lock = "d:" + chosen_key
        elif chosen_key is not None and queue.singleton == "reject":
            lock = "s:" + chosen_key
        for _ in range(DEBOUNCE_TRIES):
            now = self._clock()
            not_before = now + (queue.debounce or 0.0)
            if lock is not None and queue.debounce is not None:
                holder = await storage.lock_holder(self.namespace, queue.name, lock)
                if holder is not None and await storage.debounce(
                    self.namespace, holder[0], lock, seal(holder[0]), not_before, now
                ):
                    return holder[0]
            outcome = await storage.enqueue(
                self.namespace, id=id, name=name, input=seal(id), deadline=deadline,
                queue=queue.name, key=chosen_key, priority=priority, not_before=not_before,
                lock=lock, now=now, version=version, trace=trace,
            )  # fmt: skip
            if outcome is None and queue.debounce is not None:
                continue  # another start of the key took the lock meanwhile: join it
            if outcome is None:
                holder = await storage.lock_holder(self.namespace, queue.name, lock or "")
                raise FlowKeyBusy(
                    f"workflow queue {queue.name!r} runs one run per key at a time and key "
                    f"{chosen_key!r} has one {holder[1] if holder else 'running'} "
                    f"({holder[0] if holder else 'ending now'}); start it again later",
                    queue=queue.name, key=chosen_key,
                    running=None if holder is None else holder[0],
                )  # fmt: skip
            if outcome[0] == "exists":
                await check_same(id)
                return id
            metrics.workflow_started(self.namespace, name)
            self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)
            return id
        raise FlowKeyBusy(
            f"workflow queue {queue.name!r}: key {chosen_key!r} kept changing under this "
            "start; start it again", queue=queue.name, key=chosen_key,
        )  # fmt: skip

    async def admission_pass(self, *, throttle: bool) -> int:
        """Admit what each declared queue's limits allow now (rate windows and debounce
        windows open with time, which no start or end announces); how many. With
        ``throttle``, a queue at most every RATE_POLL seconds (SAFETY_POLL if no time
        limit of it opens slots)."""
        if not self.queues:
            return 0
        moment = time.monotonic()
        await self.store_limits()
        storage = self._backend_of().flow
        admitted = 0
        for name, queue in self.queues.items():
            timed = queue.rate or queue.per_key_rate or queue.debounce is not None
            every = RATE_POLL if timed else SAFETY_POLL
            if throttle and moment - self._passed.get(name, 0.0) < every:
                continue
            self._passed[name] = moment
            admitted += await storage.admit(self.namespace, name, self._clock())
        return admitted

    async def admit_run(self, id: str) -> None:
        """A run that may now be admitted (resumed, retried): admit what its queue allows."""
        if await self._backend_of().flow.admit_run(self.namespace, id, self._clock()):
            self._wakeups.notify(self.namespace, WAKEUP_CHANNEL)

    def poll(self) -> float | None:
        """How often an idle runner should look again: often while some queue's slots
        open with time (rate limits, debounce windows); None otherwise."""
        timed = any(
            q.rate or q.per_key_rate or q.debounce is not None for q in self.queues.values()
        )
        return RATE_POLL if timed else None

    def finishing(self, id: str, now: float, take: Take | None = None) -> Finishing:
        """How a run's end gives its slot back (``WorkflowOps.finish``), in every process:
        one that declares no queue may run a queued run (a slot kept would block its queue
        for good). For a run in no queue it changes nothing (a primary-key read). With
        ``take``, the run its end admits is leased to that runner (PostgreSQL)."""
        return self._backend_of().flow.finishing(self.namespace, id, now, take)

    async def state(self, *, period: float = 60.0) -> list[dict[str, Any]]:
        """Every queue stored in this namespace: its limits, runs waiting and admitted
        now, and admitted in the last ``period`` seconds."""
        storage = self._backend_of().flow
        since = self._clock() - period
        found: list[dict[str, Any]] = []
        for limits in await storage.queues(self.namespace):
            waiting, running, recent = await storage.counts(self.namespace, limits.name, since)
            found.append({
                "name": limits.name, "concurrency": limits.concurrency,
                "per_key_concurrency": limits.per_key_concurrency,
                "rate": None if limits.rate_limit is None
                else [limits.rate_limit, limits.rate_period],
                "per_key_rate": None if limits.key_rate_limit is None
                else [limits.key_rate_limit, limits.key_rate_period],
                "waiting": waiting, "running": running, "admitted_recently": recent,
                "declared_here": limits.name in self.queues,
            })  # fmt: skip
        return found

    async def run_state(self, id: str) -> dict[str, Any] | None:
        """A run's place in its queue (None for a run started into none)."""
        run = await self._backend_of().flow.run(self.namespace, id)
        return None if run is None else run._asdict()
