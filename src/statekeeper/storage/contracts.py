"""What storage promises each building block, and the storage that combines them with
a unit of work.

A block's contract is the class of its operations, written once for every adapter
over the adapter's few primitives (``runner.Operations``): ``StateStorage`` is
``state_ops.StateOps``, and so on. There is no second copy of their signatures to
keep in step; an adapter provides the primitives and ``commit``, never its own
version of an operation. The blocks above speak only these names; they never import
an adapter or a driver. ``Storage.commit`` is the one way several writes become one
transaction: state writes with their conditions, messages, a message settled under
its lease, a workflow step under its fence, a subscription's checkpoint under its
lease, events appended to streams (see ``rows.UnitOfWork``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from statekeeper.storage.blob_ops import BlobOps as BlobStorage
from statekeeper.storage.definition_ops import DefinitionOps as DefinitionStorage
from statekeeper.storage.entity_ops import EntityOps as EntityStorage
from statekeeper.storage.event_ops import EventOps as EventStorage
from statekeeper.storage.flow_ops import FlowOps as FlowStorage
from statekeeper.storage.idempotency_ops import IdempotencyOps as IdempotencyStorage
from statekeeper.storage.machine_ops import MachineOps as MachineStorage
from statekeeper.storage.queries import Dialect
from statekeeper.storage.queue_ops import QueueOps as QueueStorage
from statekeeper.storage.reseal_ops import ResealOps as ResealStorage
from statekeeper.storage.rows import Maintenance, UnitOfWork, UnitResult
from statekeeper.storage.schedule_ops import ScheduleOps as ScheduleStorage
from statekeeper.storage.search_ops import SearchOps as SearchStorage
from statekeeper.storage.state_ops import StateOps as StateStorage
from statekeeper.storage.state_query_ops import StateQueryOps as StateQueryStorage
from statekeeper.storage.subscription_ops import SubscriptionOps as SubscriptionStorage
from statekeeper.storage.upload_ops import UploadOps as UploadStorage
from statekeeper.storage.workflow_message_ops import WorkflowMessageOps as WorkflowMessageStorage
from statekeeper.storage.workflow_ops import WorkflowOps as WorkflowStorage

__all__ = [
    "BlobStorage",
    "Committer",
    "DefinitionStorage",
    "EntityStorage",
    "EventStorage",
    "FlowStorage",
    "IdempotencyStorage",
    "MachineStorage",
    "QueueStorage",
    "ResealStorage",
    "ScheduleStorage",
    "SearchStorage",
    "StateQueryStorage",
    "StateStorage",
    "Storage",
    "SubscriptionStorage",
    "UploadStorage",
    "WorkflowMessageStorage",
    "WorkflowStorage",
]


class Committer(Protocol):
    """The unit of work: what a block needs to commit several intents as one."""

    async def commit(self, unit: UnitOfWork) -> UnitResult:
        """Apply every intent of ``unit`` in one transaction, or none of them."""


class Storage(Committer, Protocol):
    """One opened database: the blocks' operations, the unit of work, wake-ups, upkeep."""

    dialect: Dialect

    @property
    def state(self) -> StateStorage: ...

    @property
    def state_query(self) -> StateQueryStorage: ...

    @property
    def queues(self) -> QueueStorage: ...

    @property
    def idempotency(self) -> IdempotencyStorage: ...

    @property
    def workflows(self) -> WorkflowStorage: ...

    @property
    def definitions(self) -> DefinitionStorage: ...

    @property
    def machines(self) -> MachineStorage: ...

    @property
    def events(self) -> EventStorage: ...

    @property
    def subscriptions(self) -> SubscriptionStorage: ...

    @property
    def reseal(self) -> ResealStorage: ...

    @property
    def search(self) -> SearchStorage: ...

    @property
    def workflow_messages(self) -> WorkflowMessageStorage: ...

    @property
    def flow(self) -> FlowStorage: ...

    @property
    def schedules(self) -> ScheduleStorage: ...

    @property
    def entities(self) -> EntityStorage: ...

    @property
    def blobs(self) -> BlobStorage: ...

    @property
    def uploads(self) -> UploadStorage: ...

    async def open(self) -> None:
        """Connect, and bring the schema up to date under a lock."""

    async def close(self) -> None:
        """Release every connection and thread."""

    async def maintain(self) -> Maintenance:
        """Keep the tables healthy: vacuum and analyze what needs it (PostgreSQL, whatever
        autovacuum does), refresh the planner's statistics (SQLite)."""

    def listen(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(namespace, queue)`` when another process announces a queue
        (``("*", "*")``: anything may have changed); a no-op where nothing is heard."""

    def announce(self, namespace: str, queue: str) -> None:
        """Tell other processes that ``queue`` got messages (after the commit)."""
