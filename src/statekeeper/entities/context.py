"""What an entity's handler is given: the entity's key and state, and an outbox."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from statekeeper.errors import ValidationError
from statekeeper.state.transaction import Outbox
from statekeeper.storage.rows import NewMessage


class EntityContext:
    """``ctx`` of a handler: ``ctx.type``, ``ctx.key``, ``ctx.call_id`` (None when the
    caller gave none) and ``ctx.state``, which an exclusive handler reads and replaces
    (or changes in place); what it holds when the handler returns is committed, with the
    messages the handler sent (``ctx.send``), in one transaction. A handler that raises
    changes nothing and sends nothing."""

    def __init__(
        self,
        type: str,
        key: str,
        state: Any,
        *,
        call_id: str | None,
        outbox: Callable[[str], Outbox] | None,
        readonly: bool,
    ) -> None:
        self.type = type
        self.key = key
        self.state = state
        self.call_id = call_id
        self.readonly = readonly
        self._outbox = outbox
        self.messages: list[NewMessage] = []

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
        if self.readonly:
            raise ValidationError(f"read-only handlers of entity {self.type!r} send nothing")
        if self._outbox is None:
            raise ValidationError("this entity has no queues to send to")
        self.messages.append(
            self._outbox(queue).new_message(
                body, delay=delay, group=group, attributes=attributes, correlation=correlation
            )
        )
