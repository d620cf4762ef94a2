"""Request status: where a message accepted by the ingress stands.

GET /v1/requests/{id}   ->  accepted | processing | failed | dead-lettered |
                            succeeded (with its result)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from statekeeper.errors import StatekeeperError
from statekeeper.http.models import RequestStatus
from statekeeper.http.operations import Answer, Operation, path_param
from statekeeper.http.responses import error_response, model_response
from statekeeper.identifiers import MESSAGE_ID_RULE, check_message_id
from statekeeper.queues.requests import request_status

if TYPE_CHECKING:
    from statekeeper.app import App


class RequestStatusRoutes:
    def __init__(self, app: App) -> None:
        self.app = app

    def operations(self) -> list[Operation]:
        return [
            Operation(
                "GET",
                "/v1/requests/{id}",
                self.get_request,
                "Where a request stands",
                {
                    200: Answer("The request's status", RequestStatus),
                    404: Answer("No such request"),
                },
                (path_param("id", f"The id the ingress answered: {MESSAGE_ID_RULE}."),),
            )
        ]

    async def get_request(self, request: Request) -> Response:
        request_id = request.path_params["id"]
        try:
            check_message_id(request_id)
        except StatekeeperError:
            return error_response(404, "not_found", "there is no such request")
        app = self.app
        document = await request_status(app.backend, app.namespace, request_id, app.sealer)
        if document is None:
            return error_response(404, "not_found", f"there is no request {request_id!r}")
        return model_response(RequestStatus.model_validate(document))
