"""A workflow's journal entries as the history shows them (``Workflows.history``): each
entry's input, output and error opened and decoded; an entry that cannot be read has
``read_error``. A payload stored out of line is read only when asked (``expand``);
otherwise it shows as None and its field is listed in ``out_of_line`` (it may be
hundreds of MiB)."""

from __future__ import annotations

from typing import Any

from statekeeper.blobs import Payloads
from statekeeper.codec import decode_value
from statekeeper.errors import ErrorRecord, StatekeeperError
from statekeeper.sealing import STEP, is_ref
from statekeeper.storage.rows import HistoryEntry


async def shown(
    payloads: Payloads, namespace: str, id: str, e: HistoryEntry, *, expand: bool
) -> dict[str, Any]:
    """Journal entry ``e`` of workflow ``id`` as a dict."""
    entry: dict[str, Any] = {
        "position": e.position, "kind": e.kind, "name": e.name, "input": None,
        "output": None, "error": None, "attempts": e.attempts, "started_at": e.started_at,
        "finished_at": e.finished_at,
    }  # fmt: skip
    where = (STEP, namespace, id, str(e.position))
    try:
        for field, stored in (("input", e.input), ("output", e.output)):
            if stored is None:
                continue
            if not is_ref(stored):
                entry[field] = decode_value(e.name, payloads.sealer.open(stored, *where, field))
            elif expand:
                subject = f"the {field} of entry {e.position}"
                entry[field] = await payloads.value(stored, None, subject, *where, field)
            else:  # out of line: too big to show here
                entry.setdefault("out_of_line", []).append(field)
        if e.error is not None:
            text = payloads.sealer.open_text(e.error, *where, "error")
            entry["error"] = ErrorRecord.from_json(text).to_dict()
    except StatekeeperError as problem:
        entry["read_error"] = problem.message
    return entry
