"""How the CLI prints: one JSON document with ``--json``, aligned text otherwise.

Times are ISO-8601 in UTC in both (``2030-01-01T12:00:00.250000+00:00``; whole seconds
in tables); identifiers are printed whole, never shortened, so they paste into other
commands. Text taken from storage is shown with its control characters escaped, so a
stored value cannot move the terminal's cursor or hide a line.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.cells import cell_len

CELL_LIMIT = 60  # characters of a value or error shown in a table cell
JSON_HELP = "Print one JSON document instead of text."


def iso(seconds: float | None, *, timespec: str = "auto") -> str | None:
    """Unix seconds as an ISO-8601 UTC time; None stays None."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec=timespec)


def with_iso(record: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """``record`` with the Unix times under ``names`` written as ISO-8601 UTC."""
    return {
        k: iso(v) if k in names and isinstance(v, int | float) else v for k, v in record.items()
    }


def echo_json(document: Any) -> None:
    """Print one JSON document on one line (non-ASCII kept, for readability)."""
    click.echo(json.dumps(document, ensure_ascii=False, default=str))


def compact(value: Any, limit: int = CELL_LIMIT) -> str:
    """A JSON value as one short line for a table cell."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return shorten(text, limit)


def shorten(text: str, limit: int = CELL_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe(text: str) -> str:
    """``text`` with control and format characters escaped (``\\n``, ``\\x1b``)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(char.encode("unicode_escape", "backslashreplace").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[str | None]]) -> None:
    """Aligned columns, two spaces apart, no cell ever cut short by the layout."""
    cells = [[safe(cell or "") for cell in row] for row in rows]
    widths = [cell_len(h) for h in headers]
    for row in cells:
        widths = [max(w, cell_len(c)) for w, c in zip(widths, row, strict=True)]

    def line(row: Sequence[str], **style: Any) -> None:
        padded = [c + " " * (w - cell_len(c)) for c, w in zip(row[:-1], widths, strict=False)]
        click.echo(click.style("  ".join([*padded, row[-1]]).rstrip(), **style))

    line([h.upper() for h in headers], bold=True)
    for row in cells:
        line(row)


def echo_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """One ``name  value`` line a field, names aligned; values that are not text as
    JSON, None as ``-``."""
    shown = [(name, _text(value)) for name, value in pairs]
    width = max((len(name) for name, _ in shown), default=0)
    for name, value in shown:
        click.echo(f"{click.style(name.ljust(width), bold=True)}  {safe(value)}")


def _text(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
