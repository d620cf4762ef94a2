"""The types of the typed workflow API: the shape of a workflow function, the type
variables the decorators and ``ctx`` helpers bind, and the typed id of a started run.

A workflow function is ``async def wf(ctx: WorkflowContext, input: In) -> Out``;
``app.workflows.start(wf, input)`` checks ``input`` against ``In`` and returns a
``WorkflowRun[Out]``, the run's id typed by the workflow's output, so that
``await app.workflows.result(run)`` is an ``Out`` to a type checker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeAlias, TypeVar, overload

if TYPE_CHECKING:
    from statekeeper.queues.policy import Retry
    from statekeeper.workflows.context import WorkflowContext

P = ParamSpec("P")  # the parameters of a step function
R = TypeVar("R")  # what a step, a transaction, a child or a workflow returns
In = TypeVar("In")  # a workflow's input
A1 = TypeVar("A1")  # positional arguments of a step given step options
A2 = TypeVar("A2")
A3 = TypeVar("A3")

Errors: TypeAlias = tuple[type[BaseException], ...]

# A workflow function taking ``In`` and returning ``R``.
# Runs ``ctx.call``: (entity type, key, handler, argument, call id) -> the result.
EntityCall: TypeAlias = Callable[[str, str, str, Any, str], Awaitable[Any]]
WorkflowFunction: TypeAlias = Callable[["WorkflowContext", In], Coroutine[Any, Any, R]]

# Any workflow function, kept as its own type by ``@app.workflow``.
AnyWorkflow = TypeVar(
    "AnyWorkflow", bound=Callable[["WorkflowContext", Any], Coroutine[Any, Any, Any]]
)


class WorkflowRun(str, Generic[R]):
    """The id of a started workflow run: a ``str`` in every way (compare it, store it,
    send it), typed by the workflow's output ``R`` for ``app.workflows.result``."""

    __slots__ = ()


# ``ctx.step`` and ``saga.step`` in their typed forms; the result is ``fn``'s: the
# awaited value of an ``async def``, the value of a ``def``. Up to three positional
# arguments are checked against ``fn``'s parameters with or without step options;
# any arguments, keywords included, through a ParamSpec, but only without options
# (keywords of the call's own cannot sit beside a ParamSpec's): with options, pass a
# step function's arguments positionally. The positional forms come first, so that
# a wrong call is reported against them.


class StepCall(Protocol):
    """``await ctx.step(fn, *args, retry=, timeout=, non_retryable=, **kwargs)``."""

    @overload
    def __call__(
        self,
        fn: Callable[[], Awaitable[R]],
        /,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1], Awaitable[R]],
        a1: A1,
        /,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1, A2], Awaitable[R]],
        a1: A1,
        a2: A2,
        /,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1, A2, A3], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        /,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[], R],
        /,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1], R],
        a1: A1,
        /,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1, A2], R],
        a1: A1,
        a2: A2,
        /,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1, A2, A3], R],
        a1: A1,
        a2: A2,
        a3: A3,
        /,
        *,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...


class SagaStepCall(Protocol):
    """``await saga.step(fn, *args, compensate=, retry=, timeout=, non_retryable=)``;
    ``compensate`` is given the step's result."""

    @overload
    def __call__(
        self,
        fn: Callable[[], Awaitable[R]],
        /,
        *,
        compensate: Callable[[R], object] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1], Awaitable[R]],
        a1: A1,
        /,
        *,
        compensate: Callable[[R], object] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1, A2], Awaitable[R]],
        a1: A1,
        a2: A2,
        /,
        *,
        compensate: Callable[[R], object] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1, A2, A3], Awaitable[R]],
        a1: A1,
        a2: A2,
        a3: A3,
        /,
        *,
        compensate: Callable[[R], object] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[], R],
        /,
        *,
        compensate: Callable[[R], object] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1], R],
        a1: A1,
        /,
        *,
        compensate: Callable[[R], object] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1, A2], R],
        a1: A1,
        a2: A2,
        /,
        *,
        compensate: Callable[[R], object] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self,
        fn: Callable[[A1, A2, A3], R],
        a1: A1,
        a2: A2,
        a3: A3,
        /,
        *,
        compensate: Callable[[R], object] | None = None,
        retry: Retry | None = None,
        timeout: float | None = None,
        non_retryable: Errors = (),
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def __call__(
        self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]: ...
