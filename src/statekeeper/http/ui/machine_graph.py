"""A state machine's definition as a Mermaid flowchart (``diagrams.Flowchart``), and an
execution's path marked on it.

Every state is a node, labelled with its name and type (a Choice is a diamond); the
branches of a Parallel and the item processor of a Map are subgraphs reached from their
state's node. Edges: from Start to ``StartAt``, ``Next``, each Choice rule (labelled
with its comparison) and ``Default``, each Catch (labelled with the errors it takes),
and from the states that end the machine (``End``, Succeed, Fail) to End. A definition
comes from users: names and rules are only ever labels (``diagrams.label`` encodes
them), and a field of the wrong shape draws nothing rather than failing.

``ExecutionPath.of(events, status)`` reads an execution's history (the events of
``GetExecutionHistory``): the states it entered and left, the one running, those that
failed (a state entered and never left, once the execution ended or the Parallel or
Map around it went on), and the transitions it took, by Next or Choice or by a Catch.
``machine_chart`` then marks each node done, active, waiting, failed or unvisited, and
draws the edges not taken dotted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from statekeeper.http.ui.diagrams import Flowchart, label

MAX_STATES = 300  # states drawn at most: Mermaid lays out a larger graph too slowly
MAX_RULE_DEPTH = 4  # And / Or / Not nesting shown in a Choice rule's label
_OPERATORS = {"Equals": "==", "LessThan": "<", "GreaterThan": ">", "LessThanEquals": "<=",
              "GreaterThanEquals": ">=", "Matches": "matches"}  # fmt: skip
_RULE_FIELDS = {"Variable", "Next", "Assign", "Output", "Comment"}
# Events that start or end a Parallel branch or a Map iteration: the next state entered
# is not a transition from the last state left.
_BOUNDARY = ("Map", "Parallel")


@dataclass
class _Open:
    """A state entered and not left yet."""

    name: str
    type: str  # Task, Parallel, Map, Wait, ...
    on_token: bool = False  # a Task waiting for its token's answer
    failing: bool = False  # its last attempt failed: leaving it now is a Catch


@dataclass
class ExecutionPath:
    """Where an execution went, by state name (history events name states, not nodes).
    A transition is (from, to, whether a Catch took it): a state left, then the next one
    entered. Parallel branches run one after the other, so a branch's last state and
    the next branch's first pair up too; only pairs that are edges are ever drawn."""

    entered: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)
    transitions: set[tuple[str, str, bool]] = field(default_factory=set)
    last: str | None = None  # the state the execution ended in (None: it has not ended)

    @classmethod
    def of(cls, events: Iterable[dict[str, Any]], status: str) -> ExecutionPath:
        """The path of an execution whose history is ``events`` and whose status (as the
        Step Functions API says it) is ``status``."""
        path = cls()
        open_states: list[_Open] = []
        previous: tuple[str, bool] | None = None  # the state left last, and how
        latest: str | None = None  # the state of the latest entered or left event
        for event in events:
            kind = str(event.get("type", ""))
            if kind.endswith("StateEntered"):
                name = _state_name(event, "stateEnteredEventDetails")
                if name is None:
                    continue
                path.entered.add(name)
                if previous is not None:
                    path.transitions.add((previous[0], name, previous[1]))
                open_states.append(_Open(name, kind.removesuffix("StateEntered")))
                previous, latest = None, name
            elif kind.endswith("StateExited"):
                name = _state_name(event, "stateExitedEventDetails")
                if name is None:
                    continue
                path.left.add(name)
                previous, latest = (name, False), name
                for index in range(len(open_states) - 1, -1, -1):
                    if open_states[index].name == name:
                        previous = (name, open_states[index].failing)
                        # What is still open inside it failed there (a Catch took it).
                        path.failed.update(entry.name for entry in open_states[index + 1 :])
                        del open_states[index:]
                        break
            elif kind.startswith("Execution") and kind != "ExecutionStarted":
                path.last = latest
            else:
                _attempt(open_states, kind)
                if kind.startswith(_BOUNDARY):
                    previous = None
        for state in open_states:
            if status != "RUNNING":
                path.failed.add(state.name)
            elif state.type == "Wait" or state.on_token:
                path.waiting.add(state.name)
            else:
                path.active.add(state.name)
        return path

    def kind(self, name: str) -> str:
        """The node class of state ``name``."""
        for kind, names in (("failed", self.failed), ("active", self.active),
                            ("waiting", self.waiting), ("done", self.left)):  # fmt: skip
            if name in names:
                return kind
        return "done" if name in self.entered else "unvisited"


def _attempt(open_states: list[_Open], kind: str) -> None:
    """Note what event ``kind`` says of the innermost open Task, Parallel or Map state:
    an attempt starts, waits for its token, succeeds or fails."""
    owner = "Task" if kind.startswith("Task") else kind.partition("State")[0]
    state = next((s for s in reversed(open_states) if s.type == owner), None)
    if state is None:
        return
    if kind in ("TaskScheduled", "ParallelStateStarted", "MapStateStarted"):
        state.failing = False  # a new attempt (a Retry)
    elif kind == "TaskSubmitted":
        state.on_token = True
    elif kind in ("TaskFailed", "TaskTimedOut", "ParallelStateFailed", "MapStateFailed"):
        state.on_token, state.failing = False, True
    elif kind == "TaskSucceeded":
        state.on_token = False


def _state_name(event: dict[str, Any], key: str) -> str | None:
    details = event.get(key)
    name = details.get("name") if isinstance(details, dict) else None
    return name if isinstance(name, str) else None


def machine_chart(definition: Any, path: ExecutionPath | None = None) -> str:
    """The Mermaid text of ``definition`` (a state machine), with ``path`` marked."""
    return _Drawing(path).draw(definition)


class _Drawing:
    def __init__(self, path: ExecutionPath | None) -> None:
        self.chart = Flowchart()
        self.path = path
        self.drawn = 0  # states drawn so far
        self.groups = 0  # subgraphs opened so far
        self.cut = False  # whether states were left out (past MAX_STATES)
        self.start = self.chart.node("Start", shape="round")
        self.end = self.chart.node("End", shape="round")

    def draw(self, definition: Any) -> str:
        first = self.machine(definition, top=True)
        if first is not None:
            self.edge(self.start, first[0], taken=self.entered(first[1]))
        return self.chart.text()

    def machine(self, machine: Any, *, top: bool = False) -> tuple[str, str] | None:
        """Draw ``machine``'s states, its nested machines and its edges: the node and
        name of its StartAt state (None if it names none drawn)."""
        states = machine.get("States") if isinstance(machine, dict) else None
        if not isinstance(states, dict):
            return None
        ids: dict[str, str] = {}  # state name: node id
        for name, state in states.items():
            if not isinstance(state, dict):
                continue
            if self.drawn >= MAX_STATES:
                if not self.cut:
                    self.chart.node("more states, not drawn")
                    self.cut = True
                break
            self.drawn += 1
            kind = state.get("Type")
            text = f"{name} ({kind})" if len(name) + len(str(kind)) < 60 else name
            shape = "choice" if kind == "Choice" else "box"
            node_kind = None if self.path is None else self.path.kind(name)
            ids[name] = self.chart.node(text, kind=node_kind, shape=shape)
        for name, state in states.items():
            if name in ids and state.get("Type") in ("Parallel", "Map"):
                self.nested(ids[name], name, state)
        for name, state in states.items():
            if name in ids:
                self.edges(ids[name], name, state, ids, top=top)
        start = machine.get("StartAt")
        return (ids[start], start) if isinstance(start, str) and start in ids else None

    def nested(self, node: str, name: str, state: dict[str, Any]) -> None:
        """The branches of Parallel state ``name``, or its item processor if a Map, each
        a subgraph reached from the state's node."""
        if state.get("Type") == "Parallel":
            branches = state.get("Branches")
            machines = list(branches) if isinstance(branches, list) else []
            titles = [f"{name}: branch {i + 1}" for i in range(len(machines))]
        else:
            machines = [state.get("ItemProcessor") or state.get("Iterator")]
            titles = [f"{name}: each item"]
        for machine, title in zip(machines, titles, strict=True):
            self.groups += 1
            self.chart.nodes.append(f"  subgraph g{self.groups}[{label(title)}]")
            first = self.machine(machine)
            self.chart.nodes.append("  end")
            if first is not None:
                self.edge(node, first[0], taken=self.entered(first[1]))

    def edges(
        self,
        node: str,
        name: str,
        state: dict[str, Any],
        ids: dict[str, str],
        *,
        top: bool,
    ) -> None:
        """The edges leaving state ``name``."""
        kind = state.get("Type")
        if kind == "Choice":
            rules = state.get("Choices")
            for rule in rules if isinstance(rules, list) else []:
                if isinstance(rule, dict):
                    self.follow(node, name, rule.get("Next"), ids, rule_text(rule))
            self.follow(node, name, state.get("Default"), ids, "default")
        else:
            self.follow(node, name, state.get("Next"), ids)
        catchers = state.get("Catch")
        for catcher in catchers if isinstance(catchers, list) else []:
            if isinstance(catcher, dict):
                errors = catcher.get("ErrorEquals")
                shown = ", ".join(map(str, errors)) if isinstance(errors, list) else ""
                self.follow(node, name, catcher.get("Next"), ids, f"catch {shown}", caught=True)
        ends = state.get("End") is True or kind in ("Succeed", "Fail")
        if top and ends:
            self.edge(node, self.end, taken=self.path is not None and self.path.last == name)

    def follow(
        self,
        node: str,
        name: str,
        target: Any,
        ids: dict[str, str],
        text: str | None = None,
        *,
        caught: bool = False,
    ) -> None:
        """An edge from state ``name`` to state ``target`` (by a Catch: ``caught``)."""
        if isinstance(target, str) and target in ids:
            taken = self.path is not None and (name, target, caught) in self.path.transitions
            self.edge(node, ids[target], text, taken=taken)

    def edge(self, source: str, target: str, text: str | None = None, *, taken: bool) -> None:
        """An edge: dotted when an execution's path is drawn and did not take it."""
        self.chart.edge(source, target, text, taken=self.path is None or taken)

    def entered(self, name: str) -> bool:
        return self.path is None or name in self.path.entered


def rule_text(rule: dict[str, Any], depth: int = 0) -> str:
    """A Choice rule as a short comparison: ``$.total > 100``, ``not $.ok == true``."""
    if depth >= MAX_RULE_DEPTH:
        return "…"
    if "Condition" in rule:  # JSONata
        return str(rule["Condition"])
    for joined in ("And", "Or"):
        inner = rule.get(joined)
        if isinstance(inner, list):
            parts = [rule_text(r, depth + 1) for r in inner[:3] if isinstance(r, dict)]
            more = " …" if len(inner) > 3 else ""
            return "(" + f" {joined.lower()} ".join(parts) + more + ")"
    if isinstance(rule.get("Not"), dict):
        return "not " + rule_text(rule["Not"], depth + 1)
    variable = str(rule.get("Variable", "$"))
    for key, value in rule.items():
        if key in _RULE_FIELDS:
            continue
        if key.startswith("Is"):  # IsNull, IsPresent, ...
            return f"{variable} {key} {json.dumps(value)}"
        path = key.endswith("Path")
        operator = key.removesuffix("Path")
        for prefix in ("String", "Numeric", "Timestamp", "Boolean"):
            operator = operator.removeprefix(prefix)
        shown = str(value) if path else json.dumps(value, ensure_ascii=False)
        return f"{variable} {_OPERATORS.get(operator, operator)} {shown}"
    return "rule"
