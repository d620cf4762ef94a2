"""What a Task state asks its host to run.

A ``TaskCall`` names the resource (a function name, a Lambda ARN, an HTTP URL, an
``arn:aws:states:::`` integration, with ``.waitForTaskToken`` when the task waits for
its token), the payload (the state's Parameters or Arguments), its time limits and,
for a task that waits, the token the payload carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WAIT_FOR_TOKEN = ".waitForTaskToken"
SYNC = ".sync"


@dataclass(frozen=True, slots=True)
class TaskCall:
    state: str  # the Task state's name
    resource: str
    payload: Any
    timeout: float | None = None  # seconds
    heartbeat: float | None = None  # seconds
    token: str | None = None  # for .waitForTaskToken

    @property
    def waits_for_token(self) -> bool:
        return self.resource.endswith(WAIT_FOR_TOKEN)

    @property
    def target(self) -> str:
        """The resource without its integration pattern suffix."""
        for suffix in (WAIT_FOR_TOKEN, SYNC + ":2", SYNC):
            if self.resource.endswith(suffix):
                return self.resource[: -len(suffix)]
        return self.resource
