"""Code changes a workflow's runs agree on (``ctx.patched``, ``ctx.deprecate_patch``).

``patched``: True for a run that reaches this point with nothing recorded here yet (the
change is recorded, one position, so every replay agrees), and for one that recorded
the change before; False for a run whose journal records something else here (it was
recorded by the code before the change, which it must go on following). Once no run in
flight can be older than the change, replace the call with ``deprecate_patch`` and keep
only the new path; later still, remove that too (docs/workflow-code-changes.md).

``deprecate_patch``: a run that recorded the change skips its record here; a run that
did not record it goes on without it (it must not be one that took the old path: retire
a patch only once every such run has finished).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from statekeeper.workflows.journal import PATCH, check_change_id

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext


async def patched(ctx: WorkflowContext, change_id: str) -> bool:
    name = check_change_id(change_id)
    position = ctx._position + 1
    entry = ctx._journal.get(position)
    if entry is None:
        ctx._may_start_new_work()
        ctx._within_limit(position)
        ctx._position = position
        await ctx._checkpoint(position, PATCH, name)
        return True
    if (entry.kind, entry.name) == (PATCH, name):
        ctx._position = position
        return True
    return False  # recorded before the change: takes no position


def deprecate_patch(ctx: WorkflowContext, change_id: str) -> None:
    name = check_change_id(change_id)
    entry = ctx._journal.get(ctx._position + 1)
    if entry is not None and (entry.kind, entry.name) == (PATCH, name):
        ctx._position += 1
