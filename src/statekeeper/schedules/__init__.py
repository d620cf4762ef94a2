"""Schedules: start workflow runs at cron times, intervals or one given time, each fire
exactly once across every worker (docs/schedules.md)."""

from statekeeper.schedules.api import SCHEDULES_CHANNEL, Schedules
from statekeeper.schedules.model import Declared, Definition, Schedule, make_spec
from statekeeper.schedules.policy import OVERLAP_POLICIES
from statekeeper.schedules.scheduler import Scheduler
from statekeeper.schedules.specs import Spec

__all__ = [
    "OVERLAP_POLICIES",
    "SCHEDULES_CHANNEL",
    "Declared",
    "Definition",
    "Schedule",
    "Scheduler",
    "Schedules",
    "Spec",
    "make_spec",
]
