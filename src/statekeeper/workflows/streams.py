"""Durable streams: values a workflow writes under a key, read in order by anyone.

``await ctx.write_stream(key, value)`` appends the value and journals it in one
transaction under the run's fence (exactly once: a replay finds the entry and writes
nothing); ``await ctx.close_stream(key)`` ends the stream for its readers. Each value
gets the next offset of its key (0, 1, ...). Readers (``app.workflows.read_stream``,
and ``GET /v1/workflows/{name}/{id}/streams/{key}``) read from any offset, in order, and
wait for more while the workflow runs: the run that writes wakes them (queues/wakeups.py,
across processes by LISTEN/NOTIFY). A stream ends at its close, or when the workflow
has ended and every value is read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statekeeper.errors import InvalidValue, ValidationError
from statekeeper.queues.wakeups import workflow_subject
from statekeeper.sealing import WORKFLOW, is_ref
from statekeeper.workflows.mailbox import check_name, record

if TYPE_CHECKING:
    from statekeeper.workflows.context import WorkflowContext
    from statekeeper.workflows.engine import Workflows

STREAM = "stream"  # the journal kind of a write
STREAM_CLOSE = "stream_close"  # ... and of a close
PAGE = 500  # rows read at once
KEEPALIVE = 15.0  # a waiting reader reads again at least this often (notifications are hints)


def stream_where(namespace: str, id: str, key: str, run: int, position: int) -> tuple[str, ...]:
    """Where a stream's value is sealed for: its workflow, key and the journal entry
    (its run and position) that wrote it."""
    return (WORKFLOW, namespace, id, f"stream:{key}", f"{run}.{position}")


# --- writing (the workflow's side) --------------------------------------------------------


async def write(ctx: WorkflowContext, key: str, value: Any, *, close: bool = False) -> None:
    """``ctx.write_stream`` (``close``: ``ctx.close_stream``)."""
    check_name("stream key", key)
    position = ctx._next()
    kind = STREAM_CLOSE if close else STREAM
    if ctx._recorded(position, kind, key) is not None:
        return
    closed = {e.name for e in ctx._journal.values() if e.kind == STREAM_CLOSE}
    if key in closed:
        raise ValidationError(f"stream {key!r} of workflow {ctx.workflow_id!r} is closed")
    subject = f"stream {key!r} of workflow {ctx.workflow_id!r}"
    plain = None if close else ctx._payloads.encode(subject, value)
    where = stream_where(ctx._namespace, ctx.workflow_id, key, ctx.continued, position)
    stored = None if plain is None else await ctx._payloads.seal(plain, *where)
    # The journal keeps the value too (the history shows it; a blob is shared).
    output = stored if stored is not None and is_ref(stored) else plain
    await record(ctx, position, kind, key, output=output, stream=(key, stored, ctx.continued))


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """A value of a durable stream and its offset."""

    offset: int
    value: Any


@dataclass(frozen=True, slots=True)
class StreamPage:
    """A stream's entries from an offset; ``closed``: its close was read (nothing comes
    after these); ``done``: the workflow has ended (checked when the page is not full)."""

    entries: list[StreamEntry]
    closed: bool
    done: bool

    @property
    def ended(self) -> bool:
        return self.closed or self.done


class StreamReader:
    """The durable streams of one namespace's workflows (``app.workflows``)."""

    def __init__(self, flows: Workflows) -> None:
        self._flows = flows

    async def page(self, id: str, key: str, offset: int, limit: int = PAGE) -> StreamPage:
        """The stream's entries from ``offset`` (at most ``limit``). WorkflowNotFound
        for no such workflow."""
        check_name("stream key", key)
        _check_offset(offset)
        flows = self._flows
        # The workflow's status first: a write commits before the run ends, so a run seen
        # ended has nothing more to write after the rows read next.
        status = await flows.status(id)
        rows = await flows._backend.workflow_messages.stream(
            flows.namespace, id, key, offset, limit
        )
        entries: list[StreamEntry] = []
        for seq, stored, run, position in rows:
            if stored is None:
                return StreamPage(entries, closed=True, done=status.done)
            where = stream_where(flows.namespace, id, key, run, position)
            entries.append(StreamEntry(seq, await flows.payloads.value(stored, None, key, *where)))
        full = len(rows) == limit
        return StreamPage(entries, closed=False, done=status.done and not full)

    async def entries(self, id: str, key: str, offset: int = 0) -> AsyncIterator[StreamEntry]:
        """Every entry from ``offset``, in order, waiting for more while the workflow
        runs; ends at the stream's close or once the workflow has ended."""
        flows = self._flows
        wakeups, namespace, subject = flows._wakeups, flows.namespace, workflow_subject(id)
        wakeups.start_watching(namespace, subject)
        try:
            while True:
                woken = wakeups.change_event(namespace, subject)  # before reading
                page = await self.page(id, key, offset)
                for entry in page.entries:
                    yield entry
                    offset = entry.offset + 1
                if page.ended:
                    return
                if len(page.entries) == PAGE:
                    continue  # a full page: read on at once
                waiting = asyncio.ensure_future(woken.wait())
                try:
                    await asyncio.wait([waiting], timeout=KEEPALIVE)
                finally:
                    waiting.cancel()
                wakeups.renew(namespace, subject)
        finally:
            wakeups.stop_watching(namespace, subject)


def _check_offset(offset: object) -> None:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidValue(f"a stream offset is a whole number from 0, got {offset!r}")
