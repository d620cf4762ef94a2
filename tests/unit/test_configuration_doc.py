"""docs/configuration.md names every environment variable the package reads: each
``ENV_*`` constant of statekeeper.constants, and any name read through ``os.environ``,
``environ.get`` or ``os.getenv`` anywhere in src/ (as a literal or as a constant)."""

from __future__ import annotations

import ast
from pathlib import Path

from statekeeper import constants

ROOT = Path(__file__).parents[2]
SOURCE = ROOT / "src" / "statekeeper"
DOC = ROOT / "docs" / "configuration.md"


def constant_names() -> set[str]:
    return {
        value
        for name, value in vars(constants).items()
        if name.startswith("ENV_") and isinstance(value, str)
    }


def _named(node: ast.expr) -> str | None:
    """The variable name an expression spells: a string literal, or an ENV_ constant."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name | ast.Attribute):
        attribute = node.id if isinstance(node, ast.Name) else node.attr
        value = getattr(constants, attribute, None)
        return value if isinstance(value, str) else None
    return None


def _is_environ(node: ast.expr) -> bool:
    """``os.environ`` or ``environ``."""
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ"
    )


def read_in_source() -> dict[str, str]:
    """Every name read from the environment in src/, with where."""
    found: dict[str, str] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            key: ast.expr | None = None
            if isinstance(node, ast.Subscript) and _is_environ(node.value):
                key = node.slice
            elif isinstance(node, ast.Call) and node.args:
                func = node.func
                if isinstance(func, ast.Attribute) and (
                    (func.attr in ("get", "setdefault", "pop") and _is_environ(func.value))
                    or func.attr == "getenv"
                ):
                    key = node.args[0]
            for keyword in getattr(node, "keywords", []):
                if keyword.arg == "envvar":
                    name = _named(keyword.value)
                    if name is not None:
                        found[name] = f"{path.relative_to(ROOT)}:{node.lineno}"  # type: ignore[attr-defined]
            name = None if key is None else _named(key)
            if name is not None:
                found[name] = f"{path.relative_to(ROOT)}:{node.lineno}"  # type: ignore[attr-defined]
    return found


def test_the_source_is_searched() -> None:
    found = read_in_source()
    assert {"STATEKEEPER_DATABASE_URL", "STATEKEEPER_DEV", "STATEKEEPER_TLS_CERT"} <= set(found)


def test_every_constant_is_documented() -> None:
    doc = DOC.read_text()
    missing = sorted(name for name in constant_names() if f"`{name}`" not in doc)
    assert missing == [], f"document these in docs/configuration.md: {missing}"


def test_every_variable_read_in_the_source_is_documented() -> None:
    doc = DOC.read_text()
    missing = {name: where for name, where in read_in_source().items() if f"`{name}`" not in doc}
    assert missing == {}, f"document these in docs/configuration.md: {missing}"
