"""The rules of a workflow's journal that more than the context needs: step names,
timeouts, the journal's length limit, and the journal kind and advice of code changes
(``ctx.patched``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from statekeeper.errors import ValidationError
from statekeeper.identifiers import check_event_name

# The most journal entries a run may record (``App(max_journal_entries=)``).
DEFAULT_MAX_JOURNAL = 10_000


def step_name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__statekeeper_name__", None) or getattr(fn, "__qualname__", repr(fn)))


def check_timeout(timeout: object) -> None:
    """A workflow timeout is a positive, finite number of seconds (or None)."""
    if timeout is None:
        return
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise ValidationError(
            f"a workflow timeout must be a positive number of seconds, got {timeout!r}"
        )


PATCH = "patch"  # the journal kind of ``ctx.patched``


def nondeterminism_advice(kind: str, name: str) -> str:
    """The advice a NonDeterminismError ends with."""
    if kind == PATCH:
        return (
            f"; the run recorded the change {name!r} here: keep "
            f"ctx.patched({name!r}) or ctx.deprecate_patch({name!r}) at this point"
        )
    return (
        "; guard a change to code that runs in flight with ctx.patched(...), run the new "
        "code under a new workflow name, or retry once the matching code is deployed "
        "(docs/workflow-code-changes.md)"
    )


def check_change_id(change_id: object) -> str:
    """A change id: what ``ctx.patched`` records (the rule of event names)."""
    if not isinstance(change_id, str):
        raise ValidationError(f"a change id is a string, got {type(change_id).__name__}")
    return check_event_name(change_id)
