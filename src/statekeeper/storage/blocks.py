"""The blocks' operations an adapter serves, made once for every adapter."""

from __future__ import annotations

from statekeeper.storage.blob_ops import BlobOps
from statekeeper.storage.definition_ops import DefinitionOps
from statekeeper.storage.entity_ops import EntityOps
from statekeeper.storage.event_ops import EventOps
from statekeeper.storage.flow_ops import FlowOps
from statekeeper.storage.idempotency_ops import IdempotencyOps
from statekeeper.storage.machine_ops import MachineOps
from statekeeper.storage.queue_ops import QueueOps, Sender
from statekeeper.storage.reseal_ops import ResealOps
from statekeeper.storage.runner import Database
from statekeeper.storage.schedule_ops import ScheduleOps
from statekeeper.storage.search_ops import SearchOps
from statekeeper.storage.state_ops import StateOps
from statekeeper.storage.state_query_ops import StateQueryOps
from statekeeper.storage.subscription_ops import SubscriptionOps
from statekeeper.storage.upload_ops import UploadOps
from statekeeper.storage.workflow_message_ops import WorkflowMessageOps
from statekeeper.storage.workflow_ops import WorkflowOps


class Blocks:
    """Base of an adapter: ``state``, ``state_query``, ``queues``, ``idempotency``, ``workflows``,
    ``definitions``, ``machines``, ``events``, ``subscriptions`` and ``reseal`` over its
    primitives (it is the ``Database``, and the ``Sender`` of its queues)."""

    def _attach_blocks(self, db: Database, sender: Sender) -> None:
        self.state = StateOps(db)
        self.state_query = StateQueryOps(db)
        self.queues = QueueOps(db, sender)
        self.idempotency = IdempotencyOps(db)
        self.workflows = WorkflowOps(db)
        self.definitions = DefinitionOps(db)
        self.machines = MachineOps(db)
        self.events = EventOps(db)
        self.subscriptions = SubscriptionOps(db)
        self.reseal = ResealOps(db)
        self.search = SearchOps(db)  # workflow search: attributes, filters, counts
        self.workflow_messages = WorkflowMessageOps(db)
        self.flow = FlowOps(db)  # workflow queues (flow control)
        self.schedules = ScheduleOps(db)
        self.entities = EntityOps(db)  # keyed entities (virtual objects)
        self.blobs = BlobOps(db)  # out-of-line payloads (claim check)
        self.uploads = UploadOps(db)  # uploads through signed URLs
