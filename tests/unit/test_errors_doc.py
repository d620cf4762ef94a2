"""docs/errors.md lists every error class that has a code, with its code, HTTP status
and exit code as the class says."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import statekeeper
from statekeeper.errors import StatekeeperError

DOC = Path(__file__).parents[2] / "docs" / "errors.md"


def error_classes() -> list[type[StatekeeperError]]:
    """Every StatekeeperError class defined in the package (errors.py and elsewhere)."""
    for module in pkgutil.walk_packages(statekeeper.__path__, "statekeeper."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found: list[type[StatekeeperError]] = []
    pending: list[type[StatekeeperError]] = [StatekeeperError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [c for c in found if c.__module__.startswith("statekeeper.")]


def test_the_package_has_error_classes_outside_errors_py() -> None:
    names = {cls.__name__ for cls in error_classes()}
    assert {"StatekeeperError", "NonDeterminismError", "InvalidToken"} <= names


def test_every_error_class_is_in_the_table() -> None:
    rows = {
        match.group(1): match.group(0)
        for match in re.finditer(r"^\| `(\w+)` \|.*$", DOC.read_text(), re.MULTILINE)
    }
    wrong = []
    for cls in error_classes():
        row = rows.get(cls.__name__)
        expected = f"| `{cls.code}` | {cls.http_status} | {cls.exit_code} |"
        if row is None or expected not in row:
            wrong.append(f"{cls.__name__}: {expected}")
    assert wrong == [], f"docs/errors.md misses or misstates: {wrong}"
