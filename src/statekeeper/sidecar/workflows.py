"""Dapr's workflow management operations on statekeeper's workflows, protocol-neutral:
the HTTP routes (``workflow_api.py``) and any other front end call these, and each
failure is a ``DaprError`` that either protocol renders.

An instance is a statekeeper workflow of the app's namespace, its instance id the
workflow id. A name starts the app's workflow registered in code under that name, or
the state machine of that name (stored by the Step Functions API), which runs the
machine's definition as it is at the start; else any workflow defined or announced in
the namespace.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

from statekeeper.asl.arns import SfnError
from statekeeper.asl.machines import StateMachines
from statekeeper.asl.workflow import pinned_input, unpinned
from statekeeper.codec import decode_json
from statekeeper.errors import (
    DuplicateEvent,
    InvalidEventName,
    InvalidWorkflowId,
    StatekeeperError,
    UnknownWorkflow,
    WorkflowConflict,
    WorkflowFinished,
    WorkflowNotFinished,
    WorkflowNotFound,
)
from statekeeper.identifiers import check_workflow_id
from statekeeper.sidecar.errors import DaprError, Grpc, malformed
from statekeeper.sidecar.workflow_status import instance_document

if TYPE_CHECKING:
    from statekeeper.app import App

log = logging.getLogger("statekeeper.sidecar")

MAX_INSTANCE_ID = 64  # Dapr's limit on an instance id given to start
_INSTANCE_ID = re.compile(r"[A-Za-z0-9_-]+")


class DaprWorkflows:
    """The workflow instances of ``app``'s namespace, as Dapr's API sees them."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.machines = StateMachines(app)

    async def start(self, name: str, input: Any, instance_id: str | None = None) -> str:
        """Start workflow ``name`` with ``input`` (a JSON value) as ``instance_id``, or
        as a new random id: the instance id."""
        name = name.strip()
        if not name:
            raise DaprError("ERR_WORKFLOW_NAME_MISSING", "workflow name is not configured")
        id = str(uuid.uuid4()) if not instance_id else new_instance_id(instance_id)
        failed = f"error starting workflow '{name[:200]}'"
        try:
            await self._start(name, input, id)
        except UnknownWorkflow:
            raise DaprError(
                "ERR_START_WORKFLOW",
                f"{failed}: there is no workflow of that name in namespace "
                f"'{self.app.namespace}' (none registered by the app, no state machine, "
                "none defined)",
                http_status=404, grpc=Grpc.NOT_FOUND,
            ) from None  # fmt: skip
        except WorkflowConflict as conflict:
            raise DaprError(
                "ERR_START_WORKFLOW", f"{failed}: {conflict.message}",
                http_status=409, grpc=Grpc.ALREADY_EXISTS,
            ) from None  # fmt: skip
        except StatekeeperError as problem:
            status = problem.http_status if problem.http_status < 500 else 500
            raise DaprError(
                "ERR_START_WORKFLOW", f"{failed}: {problem.message}", http_status=status,
                grpc=Grpc.INVALID_ARGUMENT if status < 500 else Grpc.INTERNAL,
            ) from None  # fmt: skip
        return id

    async def _start(self, name: str, input: Any, id: str) -> None:
        workflows = self.app.workflows
        if name not in workflows.registry:
            try:
                machine = await self.machines.record(name)
            except SfnError:  # not a state machine: any workflow known by that name
                pass
            else:  # runs the machine's definition of now, even if updated before it runs
                input = pinned_input(input, machine["revisionId"])
        await workflows.start(name, input, id=id)

    async def get(self, instance_id: str) -> dict[str, Any]:
        """The instance as Dapr's HTTP API shows it (``workflow_status``)."""
        id = instance(instance_id)
        try:
            status = await self.app.workflows.status(id)
        except WorkflowNotFound:
            raise not_found(id) from None
        input, has_input = await self._input(id)
        return instance_document(status, input, has_input=has_input)

    async def _input(self, id: str) -> tuple[Any, bool]:
        """The instance's input as it was given, and whether it could be read."""
        try:
            return unpinned(await self.app.workflows.input(id))[0], True
        except WorkflowNotFound:  # purged in between
            raise not_found(id) from None
        except StatekeeperError as problem:  # a sealed input this process cannot open
            log.warning("a workflow's input cannot be read: %s", problem.message)
            return None, False

    async def raise_event(self, instance_id: str, event: str, data: Any) -> None:
        """Deliver event ``event`` with ``data`` (a JSON value) to the instance."""
        id = instance(instance_id)
        if not event.strip():
            raise DaprError("ERR_WORKFLOW_EVENT_NAME_MISSING", "missing workflow event name")
        failed = f"error raising event '{event[:200]}' on workflow '{id}'"
        try:
            await self.app.workflows.send_event(id, event, data)
        except WorkflowNotFound:
            raise not_found(id) from None
        except InvalidEventName as problem:
            raise DaprError("ERR_RAISE_EVENT_WORKFLOW", f"{failed}: {problem.message}") from None
        except DuplicateEvent:
            raise DaprError(
                "ERR_RAISE_EVENT_WORKFLOW",
                f"{failed}: the workflow has received an event of that name already (each "
                "event name is delivered once per instance)",
                http_status=409, grpc=Grpc.ALREADY_EXISTS,
            ) from None  # fmt: skip
        except WorkflowFinished:
            raise _finished("ERR_RAISE_EVENT_WORKFLOW", failed, "it takes no more events") from None

    async def terminate(self, instance_id: str) -> None:
        """Cancel the instance (its saga's compensations run); its children run on."""
        id = instance(instance_id)
        try:
            await self.app.workflows.cancel(id)
        except WorkflowNotFound:
            raise not_found(id) from None
        except WorkflowFinished:
            failed = f"error terminating workflow '{id}'"
            raise _finished("ERR_TERMINATE_WORKFLOW", failed, "there is nothing to stop") from None

    async def purge(self, instance_id: str) -> None:
        """Delete a finished instance: its record, journal and events."""
        id = instance(instance_id)
        try:
            await self.app.workflows.purge(id)
        except WorkflowNotFound:
            raise not_found(id) from None
        except WorkflowNotFinished as problem:
            raise DaprError(
                "ERR_PURGE_WORKFLOW",
                f"error purging workflow '{id}': {problem.message} (terminate it first)",
                http_status=409, grpc=Grpc.FAILED_PRECONDITION,
            ) from None  # fmt: skip

    async def pause(self, instance_id: str) -> None:
        """Suspend the instance: it stops at its next durable point (a step in flight
        finishes) and shows SUSPENDED until resumed; suspending a suspended one changes
        nothing. A finished instance (or one being terminated) is 409."""
        id = instance(instance_id)
        try:
            await self.app.workflows.pause(id)
        except WorkflowNotFound:
            raise not_found(id) from None
        except WorkflowFinished as problem:
            raise DaprError(
                "ERR_PAUSE_WORKFLOW", f"error pausing workflow '{id}': {problem.message}",
                http_status=409, grpc=Grpc.FAILED_PRECONDITION,
            ) from None  # fmt: skip

    async def resume(self, instance_id: str) -> None:
        """Resume a suspended instance where it stopped; one not suspended (finished
        included) is left as it is, as Dapr's engine does."""
        id = instance(instance_id)
        try:
            await self.app.workflows.resume(id)
        except WorkflowNotFound:
            raise not_found(id) from None


def json_payload(raw: bytes, what: str) -> Any:
    """A request body as JSON (an empty body is null): a statekeeper workflow's input
    and its events' data are JSON values."""
    if not raw.strip():
        return None
    try:
        return decode_json(raw, f"the workflow {what}")
    except StatekeeperError as problem:
        raise malformed(f"{problem.message}: the workflow {what} must be JSON") from None


def new_instance_id(given: str) -> str:
    """An instance id a client chose for a new instance, checked as Dapr does."""
    if len(given) > MAX_INSTANCE_ID:
        raise DaprError(
            "ERR_INSTANCE_ID_TOO_LONG",
            f"workflow instance ID exceeds the max length of {MAX_INSTANCE_ID} characters",
        )
    if not _INSTANCE_ID.fullmatch(given):
        raise DaprError(
            "ERR_INSTANCE_ID_INVALID",
            f"workflow instance ID '{given}' is invalid: only alphanumeric and underscore "
            "characters are allowed",
        )
    return given


def instance(id: str) -> str:
    """The instance id of an existing instance: any workflow id of the namespace (one
    started otherwise may hold ``.``, ``:`` or ``@``)."""
    if not id.strip():
        raise DaprError("ERR_INSTANCE_ID_PROVIDED_MISSING", "no instance ID was provided")
    try:
        return check_workflow_id(id)
    except InvalidWorkflowId as problem:
        raise DaprError("ERR_INSTANCE_ID_INVALID", problem.message) from None


def not_found(id: str) -> DaprError:
    return DaprError(
        "ERR_INSTANCE_ID_NOT_FOUND",
        f"unable to find workflow with the provided instance ID: {id}",
        http_status=404, grpc=Grpc.NOT_FOUND,
    )  # fmt: skip


def _finished(code: str, failed: str, why: str) -> DaprError:
    return DaprError(
        code, f"{failed}: the workflow has finished; {why}",
        http_status=409, grpc=Grpc.FAILED_PRECONDITION,
    )  # fmt: skip
