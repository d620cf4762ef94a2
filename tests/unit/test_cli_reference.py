"""docs/cli.md agrees with the commands: its reference part is what the commands say."""

from __future__ import annotations

from pathlib import Path

from statekeeper.cli.main import main
from statekeeper.cli.reference import MARKER, document, render

DOC = Path(__file__).parents[2] / "docs" / "cli.md"


def test_the_reference_is_what_the_commands_say() -> None:
    current = DOC.read_text()
    assert MARKER in current
    assert document(current) == current, (
        "docs/cli.md is out of date: python -m statekeeper.cli.reference --write docs/cli.md"
    )


def test_every_command_and_option_is_in_the_reference() -> None:
    reference = render()
    for group in main.commands.values():
        commands = getattr(group, "commands", {}) or {"": group}
        for name, command in commands.items():
            path = " ".join(filter(None, ["statekeeper", group.name, name]))
            assert f"### `{path}`" in reference
            for param in command.params:
                for opt in getattr(param, "opts", []):
                    if opt.startswith("--") and opt != "--help":
                        assert f"`{opt}" in reference, (path, opt)
