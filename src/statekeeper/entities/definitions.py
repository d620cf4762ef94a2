"""Entity types and their handlers, as the code declares them.

An entity type (``app.entity("counter", initial=0)``) names a kind of keyed object; its
handlers are functions ``handler(ctx)`` or ``handler(ctx, arg)`` (``def`` or ``async
def``) that read and change ``ctx.state``. Exclusive handlers (the default) run one at a
time per key across every process; read-only ones (``readonly=True``, or ``@readonly``
on a method) run at once on the last committed state and change nothing. A class
decorated by the type gives its public methods as handlers, each called on a new
instance with ``(ctx, arg)``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from statekeeper.errors import ConfigurationError, UnknownEntity, UnknownEntityHandler
from statekeeper.identifiers import check_entity_handler, check_entity_type

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
_READONLY = "__statekeeper_entity_readonly__"


def readonly(fn: T) -> T:
    """Mark a method of an entity class as a read-only handler."""
    setattr(fn, _READONLY, True)
    return fn


@dataclass(frozen=True, slots=True)
class Handler:
    """One handler: its name, the function, whether it only reads, and whether the
    function takes the call's argument (``fn(ctx, arg)``) or not (``fn(ctx)``)."""

    name: str
    fn: Callable[..., Any]
    readonly: bool
    takes_arg: bool
    is_async: bool


def _takes_arg(fn: Callable[..., Any], skip: int) -> bool:
    params = list(inspect.signature(fn).parameters.values())[skip:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 2:
        return True
    if not positional:
        raise ConfigurationError(f"an entity handler takes (ctx) or (ctx, arg): {fn!r}")
    return False


class EntityType:
    """An entity type: its name, its initial state (a value copied for each new entity,
    or a function called for it) and its handlers."""

    def __init__(self, name: str, initial: Any = None) -> None:
        self.name = check_entity_type(name)
        self._initial = initial
        self.handlers: dict[str, Handler] = {}

    def initial(self) -> Any:
        """The state of an entity no handler has changed yet."""
        made = self._initial
        return made() if callable(made) else copy.deepcopy(made)

    @overload
    def handler(self, fn: F, /) -> F: ...

    @overload
    def handler(
        self, fn: None = None, /, *, name: str | None = None, readonly: bool = False
    ) -> Callable[[F], F]: ...

    def handler(
        self,
        fn: F | None = None,
        /,
        *,
        name: str | None = None,
        readonly: bool = False,
    ) -> F | Callable[[F], F]:
        """Register ``fn`` as a handler (``@counter.handler`` or
        ``@counter.handler(readonly=True)``); it keeps its own name unless ``name``."""

        def register(f: F) -> F:
            self._add(name or f.__name__, f, readonly, _takes_arg(f, 0))
            return f

        return register if fn is None else register(fn)

    def __call__(self, cls: type[T]) -> type[T]:
        """Register the public methods of ``cls`` as handlers (``@app.entity(...)`` on a
        class): each call runs on a new instance, as ``method(ctx, arg)``."""
        if not inspect.isclass(cls):
            raise ConfigurationError(
                f"@app.entity({self.name!r}) decorates a class; register functions with "
                f"@{self.name}.handler"
            )
        for attr, member in vars(cls).items():
            if attr.startswith("_") or not inspect.isfunction(member):
                continue
            bound = _on_new_instance(cls, attr)
            ro = bool(getattr(member, _READONLY, False))
            self._add(attr, bound, ro, _takes_arg(member, 1), inspect.iscoroutinefunction(member))
        return cls

    def _add(
        self,
        name: str,
        fn: Callable[..., Any],
        ro: bool,
        takes_arg: bool,
        is_async: bool | None = None,
    ) -> None:
        checked = check_entity_handler(name)
        if checked in self.handlers:
            raise ConfigurationError(f"entity {self.name!r} has a handler {checked!r} already")
        asynchronous = inspect.iscoroutinefunction(fn) if is_async is None else is_async
        self.handlers[checked] = Handler(checked, fn, ro, takes_arg, asynchronous)

    def find(self, name: str) -> Handler:
        found = self.handlers.get(name)
        if found is None:
            raise UnknownEntityHandler(
                f"entity {self.name!r} has no handler {name!r}",
                entity=self.name, handler=name,
            )  # fmt: skip
        return found


def _on_new_instance(cls: type[Any], attr: str) -> Callable[..., Any]:
    method = getattr(cls, attr)
    if inspect.iscoroutinefunction(method):

        async def call_async(*args: Any) -> Any:
            return await getattr(cls(), attr)(*args)

        return call_async

    def call(*args: Any) -> Any:
        return getattr(cls(), attr)(*args)

    return call


class EntityTypes:
    """The entity types of an app, by name."""

    def __init__(self) -> None:
        self.types: dict[str, EntityType] = {}

    def declare(self, name: str, initial: Any = None) -> EntityType:
        declared = EntityType(name, initial)
        if declared.name in self.types:
            raise ConfigurationError(f"entity type {declared.name!r} is declared already")
        self.types[declared.name] = declared
        return declared

    def get(self, name: str) -> EntityType | None:
        return self.types.get(name)

    def target(self, type: str, handler: str) -> tuple[EntityType, Handler]:
        """The entity type and handler a call names (UnknownEntity, UnknownEntityHandler
        or InvalidIdentifier when it names none)."""
        entity = self.find(type)
        return entity, entity.find(check_entity_handler(handler))

    def find(self, type: str) -> EntityType:
        """The entity type ``type`` (UnknownEntity or InvalidIdentifier if none)."""
        entity = self.types.get(check_entity_type(type))
        if entity is None:
            raise UnknownEntity(f"no entity type {type!r} is registered", entity=type)
        return entity

    def names(self) -> Mapping[str, EntityType]:
        return dict(self.types)
