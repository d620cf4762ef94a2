"""Bulk operator operations: cancel, pause, resume or retry every workflow a search
selects (docs/workflow-search.md).

    await app.workflows.bulk("retry", status="failed", name="order", dry_run=True)
    # BulkResult(matched=1200, changed=0, skipped=0, sample=[...ten ids...], dry_run=True)

A dry run counts what the search matches and shows a sample of ids, changing nothing.
A run without any filter is refused unless it says ``all_workflows`` (a slip of the
filter must not cancel everything). A real run walks the matches newest first in
batches of ``batch`` ids, each batch read with a keyset cursor (never one long
transaction), and applies to each workflow the statement of the single-run operation
(``wf_cancel``, ``wf_pause``, ``wf_resume``, ``wf_retry``: each its own short
transaction). A workflow the operation does not apply to (cancelling one that has
finished, retrying one that has not failed) is skipped and counted. Running it again is
safe: what was done is skipped or changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from statekeeper.errors import InvalidFilter
from statekeeper.identifiers import shown
from statekeeper.workflows.search import FIRST_PAGE, Query, WorkflowSearch, check_limit

if TYPE_CHECKING:
    from statekeeper.storage.contracts import Storage

OPERATIONS = ("cancel", "pause", "resume", "retry")
DEFAULT_BATCH = 500
MAX_BATCH = 1000
DEFAULT_SAMPLE = 10
MAX_SAMPLE = 100
PARALLEL = 8  # operations in flight within a batch


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk operation matched, changed and skipped; ``sample``: the first ids it
    matched (newest first)."""

    operation: str
    dry_run: bool
    matched: int
    changed: int = 0
    skipped: int = 0
    sample: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "operation": self.operation, "dry_run": self.dry_run, "matched": self.matched,
            "changed": self.changed, "skipped": self.skipped, "sample": list(self.sample),
        }  # fmt: skip


def check_operation(operation: object) -> str:
    if operation not in OPERATIONS:
        raise InvalidFilter(
            f"invalid bulk operation {shown(operation)}: one of {', '.join(OPERATIONS)}"
        )
    return str(operation)


class Bulk:
    def __init__(
        self,
        backend: Callable[[], Storage],
        namespace: str,
        clock: Callable[[], float],
        search: WorkflowSearch,
        notify: Callable[[], None],
    ) -> None:
        self._backend_of = backend
        self.namespace = namespace
        self._clock = clock
        self._search = search
        self._notify = notify  # wakes the runners (after a cancel, resume or retry)

    async def run(
        self,
        operation: str,
        query: Query,
        *,
        dry_run: bool = False,
        batch: int = DEFAULT_BATCH,
        sample: int = DEFAULT_SAMPLE,
        all_workflows: bool = False,
    ) -> BulkResult:
        check_operation(operation)
        if query.empty and not all_workflows:
            raise InvalidFilter(
                f"bulk {operation} needs a filter (status, name, attributes, created_after "
                "or created_before); to act on every workflow of the namespace, say so (all, --all)"
            )
        check_limit(batch, MAX_BATCH, "batch")
        if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample <= MAX_SAMPLE:
            raise InvalidFilter(
                f"sample must be an integer from 0 to {MAX_SAMPLE}, got {shown(sample)}"
            )
        if dry_run:
            counted = await self._search.counts(query)
            shown_ids = []
            if sample and counted["total"]:
                shown_ids = [row["id"] for row in await self._search.list(query, limit=sample)]
            return BulkResult(operation, True, counted["total"], sample=shown_ids)
        apply = self._operation(operation)
        matched = changed = 0
        taken: list[str] = []
        cursor = FIRST_PAGE
        gate = asyncio.Semaphore(PARALLEL)

        async def one(id: str) -> bool:
            async with gate:
                return await apply(id)

        while True:
            page = await self._search.list(query, limit=batch, before=cursor)
            if not page:
                break
            ids = [row["id"] for row in page]
            taken.extend(ids[: max(0, sample - len(taken))])
            done = await asyncio.gather(*(one(id) for id in ids))
            matched += len(ids)
            changed += sum(done)
            if any(done) and operation != "pause":
                self._notify()
            if len(page) < batch:
                break
            cursor = (page[-1]["created_at"], page[-1]["id"])
        return BulkResult(operation, False, matched, changed, matched - changed, taken)

    def _operation(self, operation: str) -> Callable[[str], Awaitable[bool]]:
        """The single-run operation's storage statement: True if it changed the workflow."""
        workflows = self._backend_of().workflows
        ns = self.namespace

        async def cancel(id: str) -> bool:
            return await workflows.cancel(ns, id, self._clock()) is not None

        async def pause(id: str) -> bool:
            return await workflows.pause(ns, id, self._clock()) is not None

        async def resume(id: str) -> bool:
            return await workflows.resume(ns, id, self._clock()) is not None

        async def retry(id: str) -> bool:
            return await workflows.retry(ns, id, self._clock())

        return {"cancel": cancel, "pause": pause, "resume": resume, "retry": retry}[operation]
