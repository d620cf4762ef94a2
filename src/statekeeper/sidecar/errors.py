"""Errors of the sidecar, in the shape Dapr clients expect.

Over HTTP an error is a JSON body ``{"errorCode": ..., "message": ...}`` with Dapr's
status code; over gRPC, a status code and the same message. Each error is raised once,
by the sidecar's operations, and turned into either shape by the route that serves it.
"""

from __future__ import annotations

from enum import Enum


class Grpc(Enum):
    """The gRPC status codes the sidecar answers with (their numeric values)."""

    INVALID_ARGUMENT = 3
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    FAILED_PRECONDITION = 9
    ABORTED = 10
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAUTHENTICATED = 16


class DaprError(Exception):
    """A failed sidecar operation: Dapr's ``errorCode``, a message, and the status it
    maps to over HTTP and over gRPC."""

    def __init__(
        self, code: str, message: str, *, http_status: int = 400, grpc: Grpc = Grpc.INVALID_ARGUMENT
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.grpc = grpc

    def body(self) -> dict[str, str]:
        return {"errorCode": self.code, "message": self.message}


def malformed(message: str) -> DaprError:
    return DaprError("ERR_MALFORMED_REQUEST", message)


def store_not_found(name: str) -> DaprError:
    return DaprError(
        "ERR_STATE_STORE_NOT_FOUND", f"state store {name} is not found",
        http_status=400, grpc=Grpc.INVALID_ARGUMENT,
    )  # fmt: skip


def pubsub_not_found(name: str) -> DaprError:
    return DaprError(
        "ERR_PUBSUB_NOT_FOUND", f"pubsub {name} is not found",
        http_status=404, grpc=Grpc.INVALID_ARGUMENT,
    )  # fmt: skip
