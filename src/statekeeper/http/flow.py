"""Flow control over HTTP: the state of the app's workflow queues (docs/flow-control.md).

A run is started into a queue by ``POST /v1/workflows/{name}?queue=...&key=...&priority=...``
(http/workflows.py); this module answers what the queues hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.http.models import WorkflowQueues
from statekeeper.http.operations import Answer, Operation
from statekeeper.http.responses import model_response

if TYPE_CHECKING:
    from statekeeper.app import App


class FlowRoutes:
    def __init__(self, app: App) -> None:
        self.app = app

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "GET",
                "/v1/workflow-queues",
                self.queues,
                "The workflow queues: their limits, runs waiting and running",
                {200: Answer("The queues", WorkflowQueues)},
            ),
        ]

    async def queues(self, request: Request) -> Response:
        found = await self.app.workflows.flow.state()
        return model_response(WorkflowQueues.model_validate({"queues": found}))
