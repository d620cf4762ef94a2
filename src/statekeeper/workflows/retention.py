"""Retention: how long a finished workflow run is kept before upkeep purges it.

``App(workflow_retention=...)`` (or ``STATEKEEPER_WORKFLOW_RETENTION``, seconds) for
every workflow, ``@app.workflow(retention=...)`` for one (which wins); None keeps runs
until purged by hand. A run's purge time is fixed when it finishes (its finish time plus
the retention its runner has then) and stored with it: the app's upkeep deletes the runs
past it, a bounded batch a transaction, through the index of purge times
(``App.forget_old_records``). A run retried or rewound is unfinished again and loses it.
"""

from __future__ import annotations

import datetime
import os

from statekeeper.constants import ENV_WORKFLOW_RETENTION
from statekeeper.errors import ConfigurationError

Retention = float | datetime.timedelta | None


def check_retention(value: object, subject: str = "retention") -> float | None:
    """Seconds (a positive number or a timedelta), or None; ConfigurationError otherwise."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e12:
        raise ConfigurationError(
            f"{subject} must be a positive number of seconds (or a timedelta), got {value!r}"
        )
    return float(value)


class Retentions:
    """A namespace's retentions: the global one and those of single workflows."""

    def __init__(self) -> None:
        self.default: float | None = None
        self.by_name: dict[str, float] = {}

    def configure(self, default: Retention) -> None:
        """The global retention (None: ``STATEKEEPER_WORKFLOW_RETENTION``, else none)."""
        if default is None:
            text = os.environ.get(ENV_WORKFLOW_RETENTION) or None
            if text is not None:
                try:
                    default = float(text)
                except ValueError:
                    raise ConfigurationError(
                        f"{ENV_WORKFLOW_RETENTION} must be a number of seconds, got {text!r}"
                    ) from None
        self.default = check_retention(default, "workflow_retention")

    def set(self, name: str, retention: Retention) -> None:
        """Keep finished runs of workflow ``name`` ``retention`` seconds (None: as the
        global retention says)."""
        seconds = check_retention(retention)
        if seconds is None:
            self.by_name.pop(name, None)
        else:
            self.by_name[name] = seconds

    def purge_at(self, name: str, finished_at: float) -> float | None:
        """When a run of ``name`` finishing at ``finished_at`` is purged; None: kept."""
        seconds = self.by_name.get(name, self.default)
        return None if seconds is None else finished_at + seconds
