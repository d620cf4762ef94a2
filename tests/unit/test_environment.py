"""Environment variables: spelled once (``statekeeper.constants``) and all documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
SOURCE = ROOT / "src" / "statekeeper"
NAME = re.compile(r"STATEKEEPER_[A-Z_]*[A-Z]")


def read_in_source() -> dict[str, list[str]]:
    """Every STATEKEEPER_* name in the package's code, with the files naming it."""
    found: dict[str, list[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for name in set(NAME.findall(path.read_text())):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_source_names_the_variables_it_reads() -> None:
    names = read_in_source()
    assert {"STATEKEEPER_DATABASE_URL", "STATEKEEPER_DEV", "STATEKEEPER_APP"} <= set(names)


def test_every_variable_is_documented() -> None:
    docs = (ROOT / "README.md").read_text() + "".join(
        path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))
    )
    undocumented = {n: where for n, where in read_in_source().items() if n not in docs}
    assert undocumented == {}, f"document these in README.md or docs/*.md: {undocumented}"


def test_names_are_spelled_only_in_constants() -> None:
    """A string that is a variable's name appears only in constants.py; others import it."""
    elsewhere = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name == "constants.py" and path.parent == SOURCE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if NAME.fullmatch(node.value):
                elsewhere.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert elsewhere == []
