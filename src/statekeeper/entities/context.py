"""What an entity's handler is given: the entity's key and state, and an outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statekeeper.entities.signals import ENTITY_CALLS, signal_body
from statekeeper.errors import ValidationError
from statekeeper.identifiers import check_workflow_id
from statekeeper.state.transaction import Outbox
from statekeeper.storage.rows import NewMessage

if TYPE_CHECKING:
    from statekeeper.entities.definitions import EntityTypes


@dataclass(frozen=True, slots=True)
class StartAsked:
    """A workflow a handler starts (``ctx.start_workflow``), made when the call ends."""

    name: str | Callable[..., Any]
    input: Any
    id: str
    timeout: float | None


class EntityContext:
    """``ctx`` of a handler: ``ctx.type``, ``ctx.key``, ``ctx.call_id`` (None when the
    caller gave none) and ``ctx.state``, which an exclusive handler reads and replaces
    (or changes in place). What it holds when the handler returns is committed in one
    transaction with what the handler asked for: messages (``ctx.send``), calls to
    entities run later (``ctx.signal``, ``ctx.remind``) and workflows started
    (``ctx.start_workflow``). A handler that raises changes nothing and sends nothing."""

    def __init__(
        self,
        type: str,
        key: str,
        state: Any,
        *,
        call_id: str | None,
        outbox: Callable[[str], Outbox] | None,
        readonly: bool,
        types: EntityTypes | None = None,
    ) -> None:
        self.type = type
        self.key = key
        self.state = state
        self.call_id = call_id
        self.readonly = readonly
        self._outbox = outbox
        self._types = types
        self.messages: list[NewMessage] = []
        self.starts: list[StartAsked] = []

    def send(
        self,
        queue: str,
        body: Any,
        *,
        delay: float | None = None,
        group: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        correlation: str | None = None,
    ) -> None:
        """Enqueue ``body`` on ``queue`` if, and only if, this call commits."""
        self.messages.append(
            self._queue(queue).new_message(
                body, delay=delay, group=group, attributes=attributes, correlation=correlation
            )
        )

    def signal(
        self, type: str, key: str, handler: str, arg: Any = None, *, delay: float | None = None
    ) -> None:
        """Call ``handler`` of entity ``type``/``key`` with ``arg`` later (after
        ``delay`` seconds), if and only if this call commits; nothing waits for it."""
        if self._types is not None:
            self._types.target(type, handler)
        body = signal_body(type, key, handler, arg)
        self.messages.append(self._queue(ENTITY_CALLS).new_message(body, delay=delay))

    def remind(self, handler: str, arg: Any = None, *, delay: float) -> None:
        """A reminder: this entity's ``handler`` is called with ``arg`` in ``delay``
        seconds (a handler re-arms it by reminding again)."""
        self.signal(self.type, self.key, handler, arg, delay=delay)

    def start_workflow(
        self,
        name: str | Callable[..., Any],
        input: Any = None,
        *,
        id: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Start workflow ``name`` with ``input`` if, and only if, this call commits: its
        id (``id``, or a new one). An id taken already leaves that workflow as it is."""
        self._writable()
        chosen = uuid.uuid4().hex if id is None else check_workflow_id(id)
        self.starts.append(StartAsked(name, input, chosen, timeout))
        return chosen

    def _queue(self, name: str) -> Outbox:
        self._writable()
        if self._outbox is None:
            raise ValidationError("this entity has no queues to send to")
        return self._outbox(name)

    def _writable(self) -> None:
        if self.readonly:
            raise ValidationError(
                f"read-only handlers of entity {self.type!r} send, signal and start nothing"
            )
