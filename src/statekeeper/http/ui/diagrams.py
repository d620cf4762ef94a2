"""Mermaid flowcharts for the dashboard (a run's path, a state machine's graph): the
text the page's Mermaid script draws (``static/ui.js``), which a user may also copy.

Labels and ids come from users (step names, state names), so they are written with
Mermaid's entity codes for every character outside a small safe set: no label can
close its shape or start a directive."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.,:/+-=")
MAX_LABEL = 80
# Past these, the Mermaid served here refuses to draw (its maxTextSize is 50,000
# characters, its maxEdges 500): a chart that large is replaced by a note saying so.
MAX_TEXT = 45_000
MAX_EDGES = 450
CLASSES = {  # class name: Mermaid style (fill, stroke); a node takes at most one
    "done": "fill:#e6f4ea,stroke:#146c2e,color:#0d2e16",
    "failed": "fill:#fce8e6,stroke:#b3261e,color:#410e0b",
    "active": "fill:#e8f0fe,stroke:#0b57d0,color:#0b2a66,stroke-width:3px",
    "waiting": "fill:#fef7e0,stroke:#8a6100,color:#3d2b00",
    "unvisited": "fill:#f1f3f4,stroke:#9aa0a6,color:#5f6368",
}


def label(text: str) -> str:
    """``text`` as a quoted Mermaid label: at most MAX_LABEL characters, every unsafe
    character as an entity code (``#35;``)."""
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 1] + "…"
    return '"' + "".join(_safe(c) for c in text) + '"'


def _safe(c: str) -> str:
    """A character of a label: as it is when it is safe (a letter or digit of any script
    cannot be Mermaid syntax), else its entity code."""
    return c if c in SAFE or (c.isalnum() and not c.isascii()) else f"#{ord(c)};"


@dataclass
class Flowchart:
    """A top-down flowchart built node by node: ``node`` returns the node's id."""

    nodes: list[str] = field(default_factory=list)
    edges: list[str] = field(default_factory=list)
    classes: dict[str, list[str]] = field(default_factory=dict)

    def node(self, text: str, *, kind: str | None = None, shape: str = "box") -> str:
        id = f"n{len(self.nodes)}"
        opening, closing = {"box": ("[", "]"), "round": ("([", "])"), "choice": ("{", "}"),
                            "event": (">", "]")}[shape]  # fmt: skip
        self.nodes.append(f"  {id}{opening}{label(text)}{closing}")
        if kind is not None:
            self.classes.setdefault(kind, []).append(id)
        return id

    def edge(
        self, source: str, target: str, text: str | None = None, *, taken: bool = True
    ) -> None:
        arrow = "-->" if taken else "-.->"
        middle = f"|{label(text)}|" if text else ""
        self.edges.append(f"  {source} {arrow}{middle} {target}")

    def chain(self, ids: Iterable[str]) -> None:
        previous = None
        for id in ids:
            if previous is not None:
                self.edge(previous, id)
            previous = id

    def text(self) -> str:
        lines = ["flowchart TD", *self.nodes, *self.edges]
        for kind, ids in self.classes.items():
            lines.append(f"  classDef {kind} {CLASSES[kind]}")
            lines.append(f"  class {','.join(ids)} {kind}")
        text = "\n".join(lines)
        if len(self.edges) > MAX_EDGES or len(text) > MAX_TEXT:
            note = (f"Too large to draw here: {len(self.nodes)} nodes and "
                    f"{len(self.edges)} edges")  # fmt: skip
            return f"flowchart TD\n  n0[{label(note)}]"
        return text
