"""What an app declares in code: its workflows and workflow queues, consumers,
projections and subscriptions, step and task functions, entities, schedules and
idempotent functions. ``App`` takes these decorators from ``Declarations``; each
registers with the building block that runs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from statekeeper.asl.resources import Resources
from statekeeper.constants import is_internal_queue
from statekeeper.entities import Entities, EntityType, EntityTypes
from statekeeper.entities.signals import ENTITY_CALLS, FINAL
from statekeeper.errors import ConfigurationError
from statekeeper.events.projections import Projections, Target
from statekeeper.events.subscriptions import Handler as EventHandler
from statekeeper.events.subscriptions import subscription_options
from statekeeper.idempotency import Idempotency, IdempotentDecorator
from statekeeper.identifiers import check_queue_name, check_subscription_name
from statekeeper.queues import Retry
from statekeeper.runtime.consumer import Consumer, Handler, consumer_limits
from statekeeper.schedules import Declared, Definition, Schedules, make_spec
from statekeeper.workflows.engine import Workflows
from statekeeper.workflows.flow import WorkflowQueue
from statekeeper.workflows.retention import Retention
from statekeeper.workflows.signatures import AnyWorkflow

F = TypeVar("F", bound=Callable[..., Any])


class Declarations:
    """The decorators of ``App`` (a mixin: the blocks are the app's)."""

    workflows: Workflows
    projections: Projections
    task_functions: Resources
    consumers: dict[str, Consumer]
    entity_types: EntityTypes
    entities: Entities
    schedules: Schedules

    if TYPE_CHECKING:

        @property
        def idempotency(self) -> Idempotency: ...

    def idempotent(
        self, key: str | Callable[..., str], *, ttl: float = 24 * 3600.0, wait: bool = False
    ) -> IdempotentDecorator:
        """Decorate a function (``async def`` or ``def``; the result is awaited) so each
        key runs it once; ``key`` is a key, or a function given the call's arguments that
        returns one. The app must be open when the function is called."""

        def wrap(fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
            @functools.wraps(fn)
            async def call(*args: Any, **kwargs: Any) -> Any:
                chosen = key(*args, **kwargs) if callable(key) else key
                return await self.idempotency.run(chosen, fn, *args, ttl=ttl, wait=wait, **kwargs)

            return call

        return wrap

    @overload
    def workflow(
        self, fn: AnyWorkflow, /, *, name: str | None = None, retention: Retention = None
    ) -> AnyWorkflow: ...

    @overload
    def workflow(
        self, fn: None = None, /, *, name: str | None = None, retention: Retention = None
    ) -> Callable[[AnyWorkflow], AnyWorkflow]: ...

    def workflow(
        self,
        fn: AnyWorkflow | None = None,
        *,
        name: str | None = None,
        retention: Retention = None,
    ) -> AnyWorkflow | Callable[[AnyWorkflow], AnyWorkflow]:
        """Register an ``async def fn(ctx: WorkflowContext, input: In) -> Out`` workflow
        (``@app.workflow`` or ``@app.workflow(name="...")``), returned as it is, types
        included; start it with ``app.workflows.start(fn, input)`` or by its name.
        ``retention`` (seconds): how long its finished runs are kept (else the app's
        ``workflow_retention``)."""
        if fn is not None:
            return self.workflows.register(fn, name, retention=retention)

        def register(f: AnyWorkflow) -> AnyWorkflow:
            return self.workflows.register(f, name, retention=retention)

        return register

    def workflow_queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        per_key_concurrency: int | None = None,
        rate: tuple[int, float] | None = None,
        per_key_rate: tuple[int, float] | None = None,
        debounce: float | None = None,
        singleton: str | None = None,
        key: str | Callable[[Any], Any] | None = None,
    ) -> WorkflowQueue:
        """Declare a workflow queue: runs started into it (``queue=name`` on
        ``app.workflows.start``, or the returned queue's ``start``) are admitted within
        its limits, decided in the database across every worker (docs/flow-control.md).
        Declare it in every process that starts or runs its workflows."""
        queue = WorkflowQueue(
            name, concurrency, per_key_concurrency, rate, per_key_rate, debounce, singleton, key
        )
        return self.workflows.flow.declare(queue, self.workflows.start)

    def projection(
        self,
        name: str,
        *,
        category: str | None = None,
        types: Iterable[str] | None = None,
        batch: int = 200,
        retry: Retry | None = None,
        lease: float = 30.0,
        target: Target | None = None,
    ) -> Callable[[EventHandler], EventHandler]:
        """Register ``fn(event, view)`` to maintain the read model ``name`` from every
        event of this namespace (of one ``category``; of some ``types``): ``view.put``,
        ``view.delete``, ``await view.get``, ``view.send``, ``view.append`` commit with
        the projection's checkpoint. Read it with ``app.projections.read_model(name)``;
        ``target``: a SQL database instead of the state store
        (``statekeeper.events.sql_target.SqlTarget``). ``lease``: how long a process
        that stopped answering (killed, cut off) keeps the projection before another
        takes it over. ``statekeeper worker`` and ``serve`` run it."""
        options = subscription_options(category, types, batch, retry, lease)
        checked = check_subscription_name(name)

        def register(fn: EventHandler) -> EventHandler:
            self.projections.register(checked, fn, options, target)
            return fn

        return register

    def subscription(
        self,
        name: str,
        *,
        category: str | None = None,
        types: Iterable[str] | None = None,
        batch: int = 200,
        retry: Retry | None = None,
        lease: float = 30.0,
    ) -> Callable[[EventHandler], EventHandler]:
        """Register ``fn(event)`` or ``fn(event, ctx)`` to handle every event of this
        namespace (of one ``category``; of some ``types``) once in effect, from the
        start of the log: ``ctx.put``, ``ctx.delete``, ``await ctx.get``, ``ctx.send``
        and ``ctx.append`` commit with the subscription's checkpoint. A failing handler
        is retried, then its event parked; ``lease`` as for ``projection``.
        ``statekeeper worker`` and ``serve`` run it."""
        options = subscription_options(category, types, batch, retry, lease)
        checked = check_subscription_name(name)

        def register(fn: EventHandler) -> EventHandler:
            self.projections.subscribe(checked, fn, options)
            return fn

        return register

    @overload
    def function(self, fn: F, /, *, name: str | None = None) -> F: ...

    @overload
    def function(self, fn: None = None, /, *, name: str | None = None) -> Callable[[F], F]: ...

    def function(self, fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
        """Name a step function (``@app.function`` or ``@app.function(name="...")``) so
        journals and histories keep one stable name for it, whatever module it moves to.
        The function is returned as it is, types included."""

        def mark(f: F) -> F:
            f.__statekeeper_name__ = name or f.__name__  # type: ignore[attr-defined]
            return f

        return mark(fn) if fn is not None else mark

    @overload
    def task_function(self, fn: F, /, *, name: str | None = None) -> F: ...

    @overload
    def task_function(self, fn: None = None, /, *, name: str | None = None) -> Callable[[F], F]: ...

    def task_function(
        self, fn: F | None = None, *, name: str | None = None
    ) -> F | Callable[[F], F]:
        """Run ``fn`` for the Task states of state machines whose Resource is ``name``
        (default: the function's name) or a Lambda function ARN with that function name
        (``@app.task_function`` or ``@app.task_function(name="charge")``). It is called
        as a Lambda handler is: ``fn(event)`` or ``fn(event, context)``, sync or async;
        its return value is the task's result, an exception it raises the task's error
        (see ``statekeeper.asl.resources``)."""

        def register(f: F) -> F:
            try:
                self.task_functions.function(name or f.__name__, f)
            except ValueError as error:
                raise ConfigurationError(str(error)) from None
            return f

        return register(fn) if fn is not None else register

    def consumer(
        self,
        queue: str,
        *,
        concurrency: int = 8,
        non_retryable: tuple[type[BaseException], ...] = (),
        per_group_concurrency: int | None = None,
        global_concurrency: int | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register ``fn(message)`` to process ``queue`` in ``statekeeper worker``/``serve``,
        ``concurrency`` messages at a time in each worker. Decided in the database, across
        every worker (docs/flow-control.md): ``per_group_concurrency``, messages of one
        group (the key a message is sent with, ``group=``) in hand at a time (default 1:
        FIFO groups); ``global_concurrency``, messages of the queue in hand at a time."""
        limits = consumer_limits(queue, per_group_concurrency, global_concurrency)

        def register(fn: Handler) -> Handler:
            if not is_internal_queue(queue):
                check_queue_name(queue)
            if queue in self.consumers:
                raise ConfigurationError(f"queue {queue!r} already has a consumer")
            self.consumers[queue] = Consumer(
                queue, fn, concurrency, non_retryable, limits=limits
            )  # its limits are stored when the app opens
            return fn

        return register

    def entity(self, name: str, *, initial: Any = None) -> EntityType:
        """Declare an entity type: state per key, changed by its handlers one call at a
        time per key across every process. ``initial``: a new entity's state (a value,
        copied, or a function called for it). Register handlers with
        ``@counter.handler`` (``readonly=True`` for those that only read), or decorate a
        class (``@app.entity("cart")``) to make its public methods the handlers."""
        declared = self.entity_types.declare(name, initial)
        if ENTITY_CALLS not in self.consumers:  # signals and reminders, run by workers
            self.consumer(ENTITY_CALLS, concurrency=32, non_retryable=FINAL)(self.entities.deliver)
        return declared

    def schedule(
        self,
        cron: str | None = None,
        *,
        timezone: str = "UTC",
        every: float | None = None,
        anchor: float | None = None,
        at: float | None = None,
        id: str | None = None,
        input: Any = None,
        overlap: str = "skip",
        jitter: float = 0.0,
        catchup: float = 60.0,
        queue: str | None = None,
        key: str | None = None,
        priority: int = 0,
    ) -> Callable[[F], F]:
        """Declare a schedule on a workflow function (``@app.schedule("*/5 * * * *")``
        above or below ``@app.workflow``): created, or brought in line with the code,
        when a worker starts. ``id`` defaults to the workflow's name. ``queue``: a
        workflow queue (``app.workflow_queue``) its runs start in, under ``key``, by
        ``priority`` (docs/schedules.md)."""
        spec = make_spec(cron, timezone=timezone, every=every, anchor=anchor, at=at)
        checked = Definition.checked(
            id or "declared", "declared", spec, overlap=overlap, jitter=jitter, catchup=catchup,
            queue=queue, key=key, priority=priority,
        )  # fmt: skip

        def declare(fn: F) -> F:
            self.schedules.declare(Declared(
                fn, spec, id, input, checked.overlap, checked.jitter, checked.catchup,
                checked.queue, checked.key, checked.priority,
            ))  # fmt: skip
            return fn

        return declare
