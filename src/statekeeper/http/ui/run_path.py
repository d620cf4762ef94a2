"""A workflow run as its page shows it: the journal's entries as a timeline (offsets
and durations from the run's start, for bars drawn to scale) and the run's path as a
Mermaid flowchart (``diagrams.py``): start, each entry in order, then where the run is
now (running, sleeping, waiting) or how it ended."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from statekeeper.http.ui.diagrams import Flowchart

MAX_NODES = 60  # a longer journal shows its first and last entries, and how many between
EVENT_KINDS = ("wait", "event", "callback", "receive", "update", "condition", "attempt")
ACTIVE_KINDS = {"running": "running", "pending": "pending", "sleeping": "sleeping",
                "waiting": "waiting"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Bar:
    """One entry's place on the timeline, in fractions of the run's span so far."""

    entry: dict[str, Any]
    offset: float | None  # seconds from the run's creation to the entry's start
    duration: float | None  # seconds the entry took (None: not timed, or not finished)
    left: float  # 0..1
    width: float  # 0..1


def timeline(entries: list[dict[str, Any]], created_at: float, now: float) -> list[Bar]:
    """The bars of ``entries`` on a scale from the run's creation to its last recorded
    moment (or ``now`` while it runs)."""
    ends = [e["finished_at"] or e["started_at"] or created_at for e in entries]
    span = max([now if not entries else max(ends), created_at + 1e-3]) - created_at
    bars = []
    for e in entries:
        start = e["started_at"] if e["started_at"] is not None else e["finished_at"]
        finish = e["finished_at"]
        offset = None if start is None else max(0.0, start - created_at)
        duration = None
        if e["started_at"] is not None and finish is not None:
            duration = max(0.0, finish - e["started_at"])
        left = 0.0 if offset is None else min(1.0, offset / span)
        width = 0.0 if duration is None else min(1.0 - left, duration / span)
        bars.append(Bar(e, offset, duration, left, width))
    return bars


def describe(entry: dict[str, Any]) -> str:
    """What an entry was, in a few words: ``step charge``, ``sleep``, ``wait approve``."""
    kind, name = entry["kind"], entry["name"]
    short = name.rsplit(".", 1)[-1] if kind == "step" else name
    return kind if short in ("", kind) else f"{kind} {short}"


def path_chart(status: str, entries: list[dict[str, Any]]) -> str:
    """The run's path as Mermaid flowchart text."""
    chart = Flowchart()
    ids = [chart.node("start", shape="round")]
    shown: list[dict[str, Any] | int] = list(entries)
    if len(entries) > MAX_NODES:
        half = MAX_NODES // 2
        shown = [*entries[:half], len(entries) - 2 * half + 1, *entries[-half + 1 :]]
    for item in shown:
        if isinstance(item, int):
            ids.append(chart.node(f"{item} more entries", kind="unvisited"))
            continue
        failed = item["error"] is not None or item.get("read_error")
        text = describe(item)
        if item["attempts"] and item["attempts"] > 1:
            text += f" ({item['attempts']} attempts)"
        shape = "event" if item["kind"] in EVENT_KINDS else "box"
        ids.append(chart.node(text, kind="failed" if failed else "done", shape=shape))
    if status in ACTIVE_KINDS:
        ids.append(chart.node(ACTIVE_KINDS[status], kind="active"))
    else:
        ending = "failed" if status in ("failed", "timed_out") else "done"
        ids.append(chart.node(status, kind=ending, shape="round"))
    chart.chain(ids)
    return chart.text()
