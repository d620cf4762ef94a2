"""A state machine drawn as a Mermaid ``stateDiagram-v2``.

Each state is a node (its name as label, its type beside it), each transition an
edge: ``Next``, a Choice rule (labelled with its comparison), ``Default``, a Catch
(labelled with the errors it takes), and the edges from the start and to the end.
A Map's item processor and a Parallel's branches are drawn inside their state.
Given the names of the states an execution entered, those nodes are marked
(class ``visited``) and the state it failed in (class ``failed``).
"""

from __future__ import annotations

from typing import Any

_KEEP = {"Variable", "Next", "Assign", "Output", "Comment"}


def mermaid(
    definition: dict[str, Any],
    visited: set[str] | None = None,
    failed: str | None = None,
) -> str:
    """The Mermaid text of ``definition`` (a validated one)."""
    lines = ["stateDiagram-v2"]
    ids: dict[str, list[str]] = {}
    _machine(definition, "s", lines, "    ", ids)
    if visited:
        lines.append("    classDef visited fill:#d4f7d4,stroke:#2e7d32")
        marked = sorted({node for name in visited for node in ids.get(name, [])})
        if marked:
            lines.append(f"    class {','.join(marked)} visited")
    if failed and failed in ids:
        lines.append("    classDef failed fill:#ffd6d6,stroke:#c62828")
        lines.append(f"    class {','.join(ids[failed])} failed")
    return "\n".join(lines) + "\n"


def _machine(
    machine: dict[str, Any], prefix: str, lines: list[str], indent: str, ids: dict[str, list[str]]
) -> None:
    states: dict[str, Any] = machine["States"]
    node = {name: f"{prefix}{i}" for i, name in enumerate(states)}
    for name, state in states.items():
        ids.setdefault(name, []).append(node[name])
        label = _quoted(f"{name} ({state['Type']})")
        nested = _nested(state)
        if not nested:
            lines.append(f"{indent}state {label} as {node[name]}")
            continue
        lines.append(f"{indent}state {label} as {node[name]} {{")
        for j, inner in enumerate(nested):
            if j:
                lines.append(f"{indent}    --")
            _machine(inner, f"{node[name]}_{j}_", lines, indent + "    ", ids)
        lines.append(f"{indent}}}")
    lines.append(f"{indent}[*] --> {node[machine['StartAt']]}")
    for name, state in states.items():
        here = node[name]
        if state["Type"] == "Choice":
            for rule in state.get("Choices", []):
                lines.append(f"{indent}{here} --> {node[rule['Next']]} : {_rule(rule)}")
            if "Default" in state:
                lines.append(f"{indent}{here} --> {node[state['Default']]} : default")
        elif "Next" in state:
            lines.append(f"{indent}{here} --> {node[state['Next']]}")
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            lines.append(f"{indent}{here} --> [*]")
        for catcher in state.get("Catch", []):
            errors = ", ".join(catcher.get("ErrorEquals", []))
            lines.append(f"{indent}{here} --> {node[catcher['Next']]} : catch {_text(errors)}")


def _nested(state: dict[str, Any]) -> list[dict[str, Any]]:
    if state["Type"] == "Parallel":
        return list(state.get("Branches", []))
    if state["Type"] == "Map":
        processor = state.get("ItemProcessor") or state.get("Iterator")
        return [processor] if processor else []
    return []


def _rule(rule: dict[str, Any]) -> str:
    if "Condition" in rule:
        return _text(str(rule["Condition"]))
    for joined in ("And", "Or"):
        if joined in rule:
            return _text(f" {joined.lower()} ".join(_rule(inner) for inner in rule[joined]))
    if "Not" in rule:
        return _text(f"not {_rule(rule['Not'])}")
    for key, value in rule.items():
        if key not in _KEEP:
            return _text(f"{rule.get('Variable', '$')} {key} {value}")
    return "rule"


def _text(text: str) -> str:
    """Text Mermaid shows as it is on an edge (no line breaks or other control
    characters, no ':', ';', '%' or '#': nothing that ends the line or starts a
    directive, a comment or an entity)."""
    cleaned = _one_line(text).replace(";", ",").replace(":", "∶").replace("#", "")
    cleaned = cleaned.replace("%", "")
    return cleaned if len(cleaned) <= 60 else cleaned[:57] + "..."


def _quoted(text: str) -> str:
    """A state's label: quoted, with no quote or control character inside."""
    return '"' + _one_line(text).replace('"', "'") + '"'


def _one_line(text: str) -> str:
    return "".join(" " if c < " " or c == "\x7f" else c for c in text)
