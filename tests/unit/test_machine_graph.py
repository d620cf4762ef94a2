"""A state machine drawn for the dashboard (``http/ui/machine_graph.py``): every state a
node (a Choice a diamond), Parallel branches and a Map's processor as subgraphs, the
Next, Choice, Default and Catch edges, a hostile state name only ever a label, and an
execution's path marked from its history."""

from __future__ import annotations

import re
from typing import Any

from statekeeper.asl.validation import problems
from statekeeper.http.ui.diagrams import label
from statekeeper.http.ui.machine_graph import MAX_STATES, ExecutionPath, machine_chart, rule_text

HOSTILE = '"]; click n2 call alert(1) %%{init: {}}%%\n<script>x</script>'
DEFINITION: dict[str, Any] = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "TooBig"},
                {
                    "And": [
                        {"Variable": "$.ok", "BooleanEquals": True},
                        {"Not": {"Variable": "$.name", "StringEquals": "x"}},
                    ],
                    "Next": "Fan",
                },
            ],
            "Default": "Each",
        },
        "TooBig": {"Type": "Fail", "Error": "TooBig", "Cause": "n > 10"},
        "Fan": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Left", "States": {"Left": {"Type": "Pass", "End": True}}},
                {"StartAt": "Right", "States": {"Right": {"Type": "Fail", "Error": "Boom"}}},
            ],
            "Catch": [{"ErrorEquals": ["Boom", "States.Timeout"], "Next": "Recover"}],
            "Next": "Each",
        },
        "Recover": {"Type": "Pass", "Next": HOSTILE},
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {"StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": True}}},
            "Next": HOSTILE,
        },
        HOSTILE: {"Type": "Succeed"},
    },
}


def nodes(chart: str) -> dict[str, str]:
    """Node id: its line."""
    return {
        m.group(1): line for line in chart.splitlines() if (m := re.match(r"  (n\d+)[\[{(]", line))
    }


def node_of(chart: str, text: str) -> str:
    [found] = [id for id, line in nodes(chart).items() if label(text)[:-1] in line]
    return found


def edges(chart: str) -> list[tuple[str, str, str, str]]:
    """(source, arrow, label, target) of every edge."""
    found = re.findall(r"^  (n\d+) (-->|-\.->)(?:\|(\"[^\"]*\")\|)? (n\d+)$", chart, re.M)
    return [(s, a, t, d) for s, a, t, d in found]


def classes(chart: str) -> dict[str, set[str]]:
    found = re.findall(r"^  class ([n0-9,]+) (\w+)$", chart, re.M)
    return {kind: set(ids.split(",")) for ids, kind in found}


def test_the_definition_is_valid() -> None:
    assert problems(DEFINITION) == []


def test_every_state_is_a_node_and_every_transition_an_edge() -> None:
    chart = machine_chart(DEFINITION)
    assert chart.startswith("flowchart TD\n")
    ids = {name: node_of(chart, name) for name in
           ("Check (Choice)", "TooBig (Fail)", "Fan (Parallel)", "Recover (Pass)", "Each (Map)",
            "Left (Pass)", "Right (Fail)", "Item (Pass)", "Start", "End")}  # fmt: skip
    hostile = node_of(chart, HOSTILE)
    assert nodes(chart)[ids["Check (Choice)"]].startswith(f"  {ids['Check (Choice)']}{{")
    drawn = {(s, d): t for s, _, t, d in edges(chart)}
    check, fan, each = ids["Check (Choice)"], ids["Fan (Parallel)"], ids["Each (Map)"]
    assert drawn[(ids["Start"], check)] == ""
    assert drawn[(check, ids["TooBig (Fail)"])] == label("$.n > 10")
    assert drawn[(check, fan)] == label('($.ok == true and not $.name == "x")')
    assert drawn[(check, each)] == label("default")
    assert drawn[(fan, ids["Recover (Pass)"])] == label("catch Boom, States.Timeout")
    assert (fan, each) in drawn and (ids["Recover (Pass)"], hostile) in drawn
    assert (each, hostile) in drawn and (hostile, ids["End"]) in drawn
    assert (ids["TooBig (Fail)"], ids["End"]) in drawn
    # Branches and the item processor: subgraphs reached from their state.
    assert drawn[(fan, ids["Left (Pass)"])] == "" and (fan, ids["Right (Fail)"]) in drawn
    assert (each, ids["Item (Pass)"]) in drawn
    assert re.findall(r"^  subgraph g\d+\[(.*)\]$", chart, re.M) == [
        label("Fan: branch 1"), label("Fan: branch 2"), label("Each: each item")]  # fmt: skip
    lines = chart.splitlines()
    opened = lines.index(f"  subgraph g3[{label('Each: each item')}]")
    assert lines[opened + 1].startswith(f"  {ids['Item (Pass)']}[") and lines[opened + 2] == "  end"
    assert "-.->" not in chart and "classDef" not in chart  # no execution: nothing marked


def test_a_hostile_state_name_is_only_a_label() -> None:
    chart = machine_chart(DEFINITION)
    for line in chart.splitlines():
        for quoted in re.findall(r'"([^"]*)"', line):
            assert set(quoted) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789 _.,:/+-=#;…")  # fmt: skip
        outside = re.sub(r'"[^"]*"', "", line)
        assert "<" not in outside and "click" not in outside and "%%" not in outside
    for raw in ("<script", "alert(", "%%", "\n<"):
        assert raw not in chart
    line = nodes(chart)[node_of(chart, HOSTILE)]  # one line: its newline is a code too
    assert "#10;" in line and "#60;script#62;" in line


def test_an_execution_path_is_marked() -> None:
    def entered(name: str, kind: str = "Pass") -> dict[str, Any]:
        return {"type": f"{kind}StateEntered", "stateEnteredEventDetails": {"name": name}}

    def exited(name: str, kind: str = "Pass") -> dict[str, Any]:
        return {"type": f"{kind}StateExited", "stateExitedEventDetails": {"name": name}}

    history = [
        {"type": "ExecutionStarted"}, entered("Check", "Choice"), exited("Check", "Choice"),
        entered("Fan", "Parallel"), {"type": "ParallelStateStarted"}, entered("Left"),
        exited("Left"), entered("Right", "Fail"), {"type": "ParallelStateFailed"},
        exited("Fan", "Parallel"), entered("Recover"), exited("Recover"),
        entered(HOSTILE, "Succeed"), exited(HOSTILE, "Succeed"), {"type": "ExecutionSucceeded"},
    ]  # fmt: skip
    path = ExecutionPath.of(history, "SUCCEEDED")
    assert path.failed == {"Right"}  # failed inside the Parallel, caught by its Catch
    # (Left, Right) too: a branch's first state follows the branch before it.
    assert path.transitions == {("Check", "Fan", False), ("Fan", "Recover", True),
                                ("Recover", HOSTILE, False), ("Left", "Right", False)}  # fmt: skip
    assert path.last == HOSTILE
    chart = machine_chart(DEFINITION, path)
    marked = classes(chart)
    names = ("Check (Choice)", "Fan (Parallel)", "Right (Fail)", "Each (Map)", "Item (Pass)",
             "TooBig (Fail)", "End")  # fmt: skip
    ids = {n: node_of(chart, n) for n in names}
    hostile = node_of(chart, HOSTILE)
    assert {ids["Check (Choice)"], ids["Fan (Parallel)"], hostile} <= marked["done"]
    assert marked["failed"] == {ids["Right (Fail)"]}
    assert {ids["Each (Map)"], ids["Item (Pass)"], ids["TooBig (Fail)"]} <= marked["unvisited"]
    arrows = {(s, d): a for s, a, _, d in edges(chart)}
    assert arrows[(ids["Check (Choice)"], ids["Fan (Parallel)"])] == "-->"
    assert arrows[(ids["Check (Choice)"], ids["TooBig (Fail)"])] == "-.->"
    assert arrows[(ids["Fan (Parallel)"], ids["Each (Map)"])] == "-.->"  # its Next: not taken
    assert arrows[(ids["Fan (Parallel)"], ids["Right (Fail)"])] == "-->"
    assert arrows[(hostile, ids["End"])] == "-->"
    assert arrows[(ids["TooBig (Fail)"], ids["End"])] == "-.->"


def test_a_running_execution_and_a_failed_one() -> None:
    started: list[dict[str, Any]] = [
        {"type": "ExecutionStarted"},
        {"type": "ChoiceStateEntered", "stateEnteredEventDetails": {"name": "Check"}},
        {"type": "ChoiceStateExited", "stateExitedEventDetails": {"name": "Check"}},
        {"type": "MapStateEntered", "stateEnteredEventDetails": {"name": "Each"}},
        {"type": "MapStateStarted"}, {"type": "MapIterationStarted"},
        {"type": "WaitStateEntered", "stateEnteredEventDetails": {"name": "Item"}},
    ]  # fmt: skip
    running = ExecutionPath.of(started, "RUNNING")
    assert (running.active, running.waiting, running.failed) == ({"Each"}, {"Item"}, set())
    assert running.last is None
    failed = ExecutionPath.of([*started, {"type": "ExecutionFailed"}], "FAILED")
    assert failed.failed == {"Each", "Item"} and failed.kind("Check") == "done"
    assert failed.kind("Recover") == "unvisited"
    token = ExecutionPath.of(
        [{"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Ask"}},
         {"type": "TaskScheduled"}, {"type": "TaskSubmitted"}], "RUNNING"
    )  # fmt: skip
    assert token.waiting == {"Ask"}


def test_a_catch_and_a_next_to_the_same_state_are_told_apart() -> None:
    definition = {
        "StartAt": "Charge",
        "States": {
            "Charge": {"Type": "Task", "Resource": "charge", "Next": "Done",
                       "Retry": [{"ErrorEquals": ["Busy"]}],
                       "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Done"}]},
            "Done": {"Type": "Succeed"},
        },
    }  # fmt: skip

    def run(*attempts: str) -> dict[str, str]:
        history = [{"type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "Charge"}}]
        for outcome in attempts:
            history += [{"type": "TaskScheduled"}, {"type": "TaskStarted"}, {"type": outcome}]
        history += [
            {"type": "TaskStateExited", "stateExitedEventDetails": {"name": "Charge"}},
            {"type": "SucceedStateEntered", "stateEnteredEventDetails": {"name": "Done"}},
        ]
        chart = machine_chart(definition, ExecutionPath.of(history, "RUNNING"))
        found = re.findall(r"^  n\d+ (-->|-\.->)(\|\"[^\"]*\"\|)? n\d+$", chart, re.M)
        return {text or "next": arrow for arrow, text in found[:2]}

    # A failure retried, then a success: the Next; a last failure caught: the Catch.
    assert run("TaskFailed", "TaskSucceeded") == {
        "next": "-->",
        f"|{label('catch States.ALL')}|": "-.->",
    }
    assert run("TaskFailed", "TaskFailed") == {
        "next": "-.->",
        f"|{label('catch States.ALL')}|": "-->",
    }


def test_malformed_and_huge_definitions_draw_what_they_can() -> None:
    malformed: list[Any] = [None, [], {"States": []}, {"StartAt": 3, "States": {"A": "x"}}]
    for definition in malformed:
        assert machine_chart(definition).startswith("flowchart TD")
    big = {"StartAt": "s0", "States": {f"s{i}": {"Type": "Pass", "Next": f"s{i + 1}"}
                                        for i in range(MAX_STATES + 50)}}  # fmt: skip
    chart = machine_chart(big)
    assert len(nodes(chart)) == MAX_STATES + 3  # Start, End and the note
    assert label("more states, not drawn") in chart


def test_rules_read_as_comparisons() -> None:
    assert rule_text({"Variable": "$.a", "StringEqualsPath": "$.b", "Next": "X"}) == "$.a == $.b"
    assert rule_text({"Variable": "$.t", "IsPresent": True}) == "$.t IsPresent true"
    assert rule_text({"Condition": "{% $x > 1 %}", "Next": "X"}) == "{% $x > 1 %}"
    deep: dict[str, Any] = {"Variable": "$.a", "NumericEquals": 1}
    for _ in range(10):
        deep = {"Not": deep}
    assert rule_text(deep).endswith("…")
