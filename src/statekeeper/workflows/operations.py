"""Operator controls on workflow runs: forking a run from a journal position, and moving
runs to another application version. ``app.workflows.fork`` and
``app.workflows.move_version`` delegate here.

A fork is a NEW run (its own id) of the same workflow with the same input, whose journal
is a copy of the original's entries before the chosen position: its first run replays
them (returning what the original recorded, running nothing) and executes from that
position on. The original is not touched. Stored values are sealed for their run and
position, so the copy is opened and sealed again for the new id.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from statekeeper.errors import ValidationError, WorkflowConflict, WorkflowNotFound
from statekeeper.identifiers import check_workflow_id, check_workflow_name
from statekeeper.sealing import STEP, WORKFLOW
from statekeeper.storage.rows import HistoryEntry
from statekeeper.workflows.attributes import ATTRIBUTES
from statekeeper.workflows.mailbox import PUBLISH, message_where, value_where
from statekeeper.workflows.signatures import WorkflowRun
from statekeeper.workflows.streams import STREAM, STREAM_CLOSE
from statekeeper.workflows.versions import check_version

if TYPE_CHECKING:
    from statekeeper.workflows.engine import Workflows

# Calls that take several positions and whose later positions answer to the run's own id
# (a child reports its end to its parent, a callback's token names its workflow): a fork
# may not keep the first position of one without the rest.
_BOUND_CALLS = ("child", "callback")


async def fork(
    flows: Workflows, id: str, from_position: int, new_id: str | None = None
) -> WorkflowRun[Any]:
    check_workflow_id(id)
    if isinstance(from_position, bool) or not isinstance(from_position, int) or from_position < 1:
        raise ValidationError(
            f"from_position must be an integer from 1 (positions count from 1), "
            f"got {from_position!r}"
        )
    chosen = uuid.uuid4().hex if new_id is None else check_workflow_id(new_id)
    backend, ns, seal = flows._backend, flows.namespace, flows.sealer
    row = await backend.workflows.get(ns, id)
    if row is None:
        raise WorkflowNotFound(f"there is no workflow {id!r}", id=id)
    entries = await backend.workflows.history(ns, id)
    by_position = {e.position: e for e in entries}
    last = max(by_position, default=0)
    if from_position > last + 1:
        raise ValidationError(
            f"workflow {id!r} has {last} journal entries: fork it from a position from 1 "
            f"to {last + 1}, got {from_position}"
        )
    _check_cut(id, by_position, from_position)
    copied: list[HistoryEntry] = []
    published: dict[str, bytes | None] = {}  # the last publish per key before the cut
    for e in entries:
        # A ctx.set_attributes entry records no values: the fork sets them again when its
        # replay reaches that position (a gap in a journal is new work).
        # Nor does a stream's entry carry its stream's row: the fork writes its own
        # stream again, the same way.
        if e.position >= from_position or e.kind in (ATTRIBUTES, STREAM, STREAM_CLOSE):
            continue
        old, new = (STEP, ns, id, str(e.position)), (STEP, ns, chosen, str(e.position))
        data = {
            field: seal.seal(seal.open(value, *old, field), *new, field)
            for field, value in (("input", e.input), ("output", e.output))
            if value is not None
        }
        if e.kind == PUBLISH:
            published[e.name] = None if e.output is None else seal.open(e.output, *old, "output")
        error = e.error
        if error is not None:
            error = seal.seal_text(seal.open_text(error, *old, "error"), *new, "error")
        copied.append(e._replace(input=data.get("input"), output=data.get("output"), error=error))
    input = seal.open(row.input, WORKFLOW, ns, id, "input")
    input = seal.seal(input, WORKFLOW, ns, chosen, "input")
    version = flows.versions.at_start(row.name)
    mailbox = await _copied_mailbox(flows, id, chosen)
    later = {e.name for e in entries if e.kind == PUBLISH and e.position >= from_position}
    values = await _copied_values(flows, id, chosen, published, later)
    # A run started into a workflow queue forks into the same place: the fork waits for
    # the queue's limits as any start does (a singleton's or debounce's lock aside).
    place = await backend.flow.run(ns, id)
    queued = None if place is None else (place.queue, place.key, place.priority)
    done = await backend.workflows.fork(
        ns, chosen, row.name, input, copied, flows._clock(), version=version, mailbox=mailbox,
        values=values, queued=queued,
    )  # fmt: skip
    if not done:
        raise WorkflowConflict(
            f"workflow id {chosen!r} is taken: fork into a new id", id=chosen, differs="id"
        )
    if queued is not None:
        await flows.flow.admit_run(chosen)
    flows.wake()
    return WorkflowRun(chosen)


async def _copied_mailbox(
    flows: Workflows, id: str, new_id: str
) -> list[tuple[str, int, bytes | None, float]]:
    """Workflow ``id``'s mailbox, sealed again for ``new_id``, with the same numbers: the
    copied journal's receives name the messages they consumed by number, and the fork
    receives again the messages the original took after the cut."""
    backend, ns, seal = flows._backend, flows.namespace, flows.sealer
    copied: list[tuple[str, int, bytes | None, float]] = []
    after = ("", 0)
    while page := await backend.workflow_messages.mailbox_page(ns, id, after, 500):
        for topic, seq, data, sent_at in page:
            if data is not None:
                data = seal.seal(
                    seal.open(data, *message_where(ns, id, topic)),
                    *message_where(ns, new_id, topic),
                )
            copied.append((topic, seq, data, sent_at))
        after = page[-1][0], page[-1][1]
    return copied


async def _copied_values(
    flows: Workflows, id: str, new_id: str, published: dict[str, bytes | None], later: set[str]
) -> list[tuple[str, bytes]]:
    """The values the copied journal published (the last per key before the cut), sealed
    for ``new_id``: its replay of a publish writes nothing. A publish journaled without
    its value (before the journal kept it) takes the stored value, when no publish after
    the cut replaced it."""
    ns, seal = flows.namespace, flows.sealer
    copied: list[tuple[str, bytes]] = []
    for key, plain in published.items():
        if plain is None:
            if key in later:
                continue  # the stored value is a later one
            found = await flows._backend.workflow_messages.value(ns, id, key)
            if found is None:
                continue
            plain = seal.open(found[0], *value_where(ns, id, key))
        copied.append((key, seal.seal(plain, *value_where(ns, new_id, key))))
    return copied


def _check_cut(id: str, by_position: dict[int, HistoryEntry], position: int) -> None:
    """ValidationError when ``position`` falls inside a call of several positions that
    the copy could not finish (an event's arrival without its wait, a child or a
    callback without its end)."""
    before, at = by_position.get(position - 1), by_position.get(position)
    inside = (at is not None and at.kind == "event") or (
        before is not None and before.kind in _BOUND_CALLS
    )
    if inside:
        start = position - 1
        first = by_position.get(start - 1)
        if by_position[start].kind == "wait" and first is not None and first.kind in _BOUND_CALLS:
            start -= 1
        raise ValidationError(
            f"position {position} of workflow {id!r} is inside the call that starts at "
            f"position {start} ({by_position[start].kind} {by_position[start].name!r}): "
            f"fork from position {start} or from after that call"
        )


async def move_version(
    flows: Workflows,
    from_version: str | None,
    to_version: str,
    *,
    name: str | None = None,
    id: str | None = None,
) -> int:
    check_version(to_version, "to_version")
    if from_version is not None:
        check_version(from_version, "from_version")
    if name is not None:
        check_workflow_name(name)
    if id is not None:
        check_workflow_id(id)
    elif from_version is None:
        raise ValidationError("give the version to move runs from (from_version), or a run id")
    moved = await flows._backend.workflows.move_version(
        flows.namespace, from_version, to_version, flows._clock(), name=name, id=id
    )
    if id is not None and not moved:
        status = await flows.status(id)  # WorkflowNotFound if there is none
        if status.done:
            raise ValidationError(
                f"workflow {id!r} has finished ({status.status}): its version stays"
            )
    if moved:
        flows.wake()
    return len(moved)
