"""The app the schedule crash test runs in its worker processes: a schedule firing every
second (of a clock that runs CRASH_SCHED_SPEED times faster than real time, from the
same origin in every process) whose runs do nothing but finish."""

from __future__ import annotations

import os
import time
from typing import Any

from statekeeper import App

DSN = os.environ["CRASH_PG_DSN"]
SCHEMA = os.environ["CRASH_PG_SCHEMA"]
T0 = float(os.environ["CRASH_SCHED_T0"])  # schedule time at ...
WALL0 = float(os.environ["CRASH_SCHED_WALL0"])  # ... this real time
SPEED = float(os.environ["CRASH_SCHED_SPEED"])
CATCHUP = 3600.0


def clock() -> float:
    return T0 + (time.time() - WALL0) * SPEED


app = App(os.environ["CRASH_PG_URL"], namespace="crash", purge_interval=None, clock=clock)


@app.schedule(every=1, anchor=T0, id="beat", overlap="allow_all", catchup=CATCHUP)
@app.workflow
async def beat(ctx: Any, input: Any) -> None:
    return None
