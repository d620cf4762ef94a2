"""``statekeeper sfn graph``'s Mermaid text keeps every state name and rule on its own
line and inside its label: none can end a line, start a directive or close a quote."""

from __future__ import annotations

from statekeeper.asl.graph import mermaid

HOSTILE = 'a\r\n%%{init: {"theme": "dark"}}%%"]\tx'


def test_hostile_names_and_rules_stay_in_their_labels() -> None:
    definition = {
        "StartAt": HOSTILE,
        "States": {
            HOSTILE: {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "StringEquals": "a;b\r%%{init}#1", "Next": "b"}],
                "Default": "b",
            },
            "b": {"Type": "Succeed"},
        },
    }
    text = mermaid(definition, visited={HOSTILE}, failed="b")
    lines = text.splitlines()
    assert lines == [
        "stateDiagram-v2",
        "    state \"a  %%{init: {'theme': 'dark'}}%%'] x (Choice)\" as s0",
        '    state "b (Succeed)" as s1',
        "    [*] --> s0",
        "    s0 --> s1 : $.x StringEquals a,b {init}1",
        "    s0 --> s1 : default",
        "    s1 --> [*]",
        "    classDef visited fill:#d4f7d4,stroke:#2e7d32",
        "    class s0 visited",
        "    classDef failed fill:#ffd6d6,stroke:#c62828",
        "    class s1 failed",
    ]
    assert "\r" not in text and "\t" not in text
