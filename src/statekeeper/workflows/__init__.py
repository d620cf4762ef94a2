"""Durable workflows as code: journaled steps, durable timers, events, recovery."""

from __future__ import annotations

from statekeeper.workflows.context import WorkflowContext
from statekeeper.workflows.engine import Workflows, WorkflowStatus
from statekeeper.workflows.mailbox import ReceiveTimeout
from statekeeper.workflows.runner import WorkflowRunner
from statekeeper.workflows.signals import ChildFailed, EventTimeout, StepFailed
from statekeeper.workflows.signatures import WorkflowRun

__all__ = [
    "ChildFailed",
    "EventTimeout",
    "ReceiveTimeout",
    "StepFailed",
    "WorkflowContext",
    "WorkflowRun",
    "WorkflowRunner",
    "WorkflowStatus",
    "Workflows",
]
