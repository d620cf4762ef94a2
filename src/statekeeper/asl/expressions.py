"""JSONata expressions of the States Language (``{% ... %}`` strings), checked for
syntax before anything runs.

The JSONata library is jlens (decision record 0007): this module is the only one
that touches it. ``problem(text)`` says what is wrong with a ``{% %}`` string, or
None; a string that opens ``{%`` without closing ``%}`` (or the other way round) is
a problem too.
"""

from __future__ import annotations

import jlens

OPEN, CLOSE = "{%", "%}"


def is_expression(value: object) -> bool:
    """Whether ``value`` is written as a JSONata expression (``{% ... %}``)."""
    return isinstance(value, str) and value.strip().startswith(OPEN)


def problem(text: str) -> str | None:
    """What is wrong with the ``{% ... %}`` string ``text``, or None."""
    stripped = text.strip()
    if not (stripped.startswith(OPEN) and stripped.endswith(CLOSE)) or len(stripped) < 4:
        return f"a JSONata expression is written {{% ... %}}, got {_shown(text)}"
    body = stripped[len(OPEN) : -len(CLOSE)]
    if not body.strip():
        return "the JSONata expression is empty"
    try:
        jlens.Expression(body)
    except jlens.JlensError as error:
        where = "" if error.position is None else f" at character {error.position + 1}"
        return f"JSONata syntax error {error.code}{where}: {error}"
    return None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")
