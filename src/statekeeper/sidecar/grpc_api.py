"""The sidecar's gRPC server: Dapr's runtime service (``dapr.proto.runtime.v1.Dapr``,
as the ``dapr`` package defines it), so Dapr's SDKs work over gRPC too.

Served: the state RPCs (GetState, GetBulkState, SaveState, DeleteState,
DeleteBulkState, ExecuteStateTransaction, and QueryStateAlpha1 on ``query.py``;
``grpc_state.py``), PublishEvent and BulkPublishEvent (through the pub/sub part; a
caller's ``traceparent`` / ``tracestate`` call metadata goes with what it publishes),
GetMetadata and SetMetadata (``grpc_metadata.py``). Every other RPC of the
service answers UNIMPLEMENTED, naming itself.

Errors: a DaprError is answered with its gRPC status code and message, and an
ErrorInfo detail whose reason is its Dapr error code (what the SDKs' ``error_code()``
read); anything unexpected is logged with its traceback and answered INTERNAL
"internal error". With an API token configured, every call must carry it in the
``dapr-api-token`` metadata (UNAUTHENTICATED otherwise).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2, pubsub_pb2, state_pb2
from google.protobuf import any_pb2, empty_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from statekeeper.errors import AddressInUse, CannotListen, StatekeeperError
from statekeeper.http.edge import listen, shown
from statekeeper.sidecar.context import Sidecar
from statekeeper.sidecar.errors import DaprError, Grpc, malformed, pubsub_not_found
from statekeeper.sidecar.grpc_metadata import GrpcMetadata
from statekeeper.sidecar.grpc_state import GrpcState
from statekeeper.sidecar.http_pubsub import MAX_BULK_ENTRIES
from statekeeper.sidecar.pubsub import BulkEntry, DaprPubSub

log = logging.getLogger("statekeeper.sidecar")
T = TypeVar("T")

TOKEN_METADATA = "dapr-api-token"
DETAILS_METADATA = "grpc-status-details-bin"
# W3C trace context a caller sends as call metadata, passed on to what it publishes.
TRACE_METADATA = ("traceparent", "tracestate")
_STATUS = {code: grpc.StatusCode[code.name] for code in Grpc}
_INTERNAL = DaprError("ERR_INTERNAL", "internal error", http_status=500, grpc=Grpc.INTERNAL)


async def abort(context: Any, error: DaprError) -> NoReturn:
    """End the call with ``error``: its status code, its message, and an ErrorInfo
    detail naming its Dapr error code."""
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=error.code, domain="dapr.io"))
    status = status_pb2.Status(code=error.grpc.value, message=error.message, details=[detail])
    await context.abort(
        _STATUS[error.grpc],
        error.message,
        trailing_metadata=((DETAILS_METADATA, status.SerializeToString()),),
    )
    raise AssertionError("abort returned")  # grpc raises to end the call


async def answer(context: Any, work: Awaitable[T]) -> T:
    """What ``work`` returns; its error ends the call in Dapr's shape."""
    try:
        return await work
    except DaprError as error:
        problem = error
    except StatekeeperError as error:
        client = error.http_status < 500
        problem = DaprError(
            "ERR_MALFORMED_REQUEST" if client else "ERR_INTERNAL", error.message,
            http_status=error.http_status if client else 500,
            grpc=Grpc.INVALID_ARGUMENT if client else Grpc.INTERNAL,
        )  # fmt: skip
    except Exception:
        log.exception("unexpected error serving a gRPC call")
        problem = _INTERNAL
    await abort(context, problem)


class DaprApi(dapr_pb2_grpc.DaprServicer):
    """Dapr's runtime service for one sidecar. The RPCs it does not serve are added
    below the class, each answering UNIMPLEMENTED."""

    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
        self.state = GrpcState(sidecar.state)
        self.metadata = GrpcMetadata(sidecar)

    # --- state ----------------------------------------------------------------------------

    async def GetState(self, request: state_pb2.GetStateRequest, context: Any) -> Any:
        return await answer(context, self.state.get(request))

    async def GetBulkState(self, request: state_pb2.GetBulkStateRequest, context: Any) -> Any:
        return await answer(context, self.state.bulk_get(request))

    async def SaveState(self, request: state_pb2.SaveStateRequest, context: Any) -> Any:
        await answer(context, self.state.save(request))
        return empty_pb2.Empty()

    async def DeleteState(self, request: state_pb2.DeleteStateRequest, context: Any) -> Any:
        await answer(context, self.state.delete(request))
        return empty_pb2.Empty()

    async def DeleteBulkState(self, request: state_pb2.DeleteBulkStateRequest, context: Any) -> Any:
        await answer(context, self.state.delete_bulk(request))
        return empty_pb2.Empty()

    async def ExecuteStateTransaction(
        self, request: state_pb2.ExecuteStateTransactionRequest, context: Any
    ) -> Any:
        await answer(context, self.state.transaction(request))
        return empty_pb2.Empty()

    async def QueryStateAlpha1(self, request: state_pb2.QueryStateRequest, context: Any) -> Any:
        return await answer(context, self.state.query(request))

    # --- pub/sub ----------------------------------------------------------------------------

    async def PublishEvent(self, request: pubsub_pb2.PublishEventRequest, context: Any) -> Any:
        await answer(context, self._publish(request, context.invocation_metadata()))
        return empty_pb2.Empty()

    async def _publish(self, request: pubsub_pb2.PublishEventRequest, called: Any) -> None:
        part = self._pubsub(request.pubsub_name)
        trace = {k: v for k, v in called or () if k in TRACE_METADATA and isinstance(v, str)}
        await part.publish(
            request.pubsub_name,
            request.topic,
            request.data,
            request.data_content_type or None,
            dict(request.metadata),
            traceparent=trace.get("traceparent", ""),
            tracestate=trace.get("tracestate", ""),
        )

    async def BulkPublishEvent(self, request: pubsub_pb2.BulkPublishRequest, context: Any) -> Any:
        return await answer(context, self._bulk_publish(request))

    BulkPublishEventAlpha1 = BulkPublishEvent

    async def _bulk_publish(
        self, request: pubsub_pb2.BulkPublishRequest
    ) -> pubsub_pb2.BulkPublishResponse:
        part = self._pubsub(request.pubsub_name)
        if len(request.entries) > MAX_BULK_ENTRIES:
            raise malformed(f"a bulk publish holds at most {MAX_BULK_ENTRIES} entries")
        entries = [
            BulkEntry(e.entry_id, e.event, e.content_type or None, dict(e.metadata))
            for e in request.entries
        ]
        failed = await part.bulk_publish(
            request.pubsub_name, request.topic, entries, dict(request.metadata)
        )
        return pubsub_pb2.BulkPublishResponse(
            failedEntries=[
                pubsub_pb2.BulkPublishResponseFailedEntry(entry_id=entry_id, error=error)
                for entry_id, error in failed
            ]
        )

    def _pubsub(self, name: str) -> DaprPubSub:
        part = self.sidecar.part("pubsub")
        if not isinstance(part, DaprPubSub):  # a sidecar built without pub/sub
            raise pubsub_not_found(name)
        return part

    # --- metadata ---------------------------------------------------------------------------

    async def GetMetadata(self, request: Any, context: Any) -> Any:
        return await answer(context, self.metadata.get())

    async def SetMetadata(self, request: metadata_pb2.SetMetadataRequest, context: Any) -> Any:
        await answer(context, self.metadata.set(request))
        return empty_pb2.Empty()


def _unimplemented(name: str) -> Callable[[DaprApi, Any, Any], Awaitable[Any]]:
    problem = DaprError(
        "ERR_NOT_IMPLEMENTED",
        f"{name} is not served by the statekeeper sidecar: over gRPC it serves the state "
        "RPCs, QueryStateAlpha1, PublishEvent, BulkPublishEvent, GetMetadata and SetMetadata",
        http_status=501, grpc=Grpc.UNIMPLEMENTED,
    )  # fmt: skip

    async def refuse(self: DaprApi, request: Any, context: Any) -> Any:
        await abort(context, problem)

    refuse.__name__ = name
    return refuse


SERVED = frozenset(name for name in vars(DaprApi) if name[:1].isupper())
for _name in dir(dapr_pb2_grpc.DaprServicer):
    if _name[:1].isupper() and _name not in SERVED:
        setattr(DaprApi, _name, _unimplemented(_name))


# --- registering, with malformed requests refused ------------------------------------------


class Malformed:
    """A request message that did not parse (given to the RPC in its place)."""

    def __init__(self, why: str) -> None:
        self.why = why


class _Registrar:
    """Stands for the server while the generated code lists the service's handlers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        self.service, self.handlers = service, handlers


def register(server: Any, api: DaprApi) -> None:
    """Serve ``api`` on ``server``. A unary request that does not parse is answered
    INVALID_ARGUMENT (grpc's own answer would be UNKNOWN)."""
    found = _Registrar()
    dapr_pb2_grpc.add_DaprServicer_to_server(api, found)  # type: ignore[no-untyped-call]
    handlers = {
        name: _tolerant(handler) if handler.unary_unary else handler
        for name, handler in found.handlers.items()
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(found.service, handlers),)
    )
    server.add_registered_method_handlers(found.service, handlers)


def _tolerant(handler: Any) -> Any:
    parse = handler.request_deserializer
    behavior = handler.unary_unary

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as problem:
            return Malformed(str(problem))

    async def serve(request: Any, context: Any) -> Any:
        if type(request) is Malformed:
            await abort(context, malformed(f"the request message is malformed: {request.why}"))
        return await behavior(request, context)

    return grpc.unary_unary_rpc_method_handler(
        serve,
        request_deserializer=deserialize,
        response_serializer=handler.response_serializer,
    )


# --- the API token ------------------------------------------------------------------------


class ApiTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Every call must carry the configured token in its ``dapr-api-token`` metadata
    (compared in constant time)."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()

    async def intercept_service(self, continuation: Any, call: Any) -> Any:
        given = next(
            (value for key, value in call.invocation_metadata or () if key == TOKEN_METADATA),
            None,
        )
        handler = await continuation(call)
        if given is not None and hmac.compare_digest(_as_bytes(given).strip(), self.token):
            return handler
        if handler is None:
            return None
        problem = DaprError(
            "ERR_API_UNAUTHORIZED",
            "missing api token" if given is None else "invalid api token",
            http_status=401, grpc=Grpc.UNAUTHENTICATED,
        )  # fmt: skip
        return _refusing(handler, problem)


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _refusing(handler: Any, problem: DaprError) -> Any:
    """A handler of the same kind as ``handler`` that ends every call with ``problem``."""

    async def refuse(request: Any, context: Any) -> Any:
        await abort(context, problem)

    if handler.unary_unary:
        make = grpc.unary_unary_rpc_method_handler
    elif handler.unary_stream:
        make = grpc.unary_stream_rpc_method_handler
    elif handler.stream_unary:
        make = grpc.stream_unary_rpc_method_handler
    else:
        make = grpc.stream_stream_rpc_method_handler
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


# --- the server as a supervised service -----------------------------------------------


class GrpcService:
    """The gRPC server, started (listening) before the supervisor runs it; on stop it
    takes no new calls and lets those in flight finish within the grace."""

    name = "grpc"

    def __init__(self, server: Any, where: str, grace: float) -> None:
        self.server = server
        self.where = where
        self.grace = grace
        self._stopped = False

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            await stopping.wait()
        finally:
            await self.close()

    async def close(self) -> None:
        if not self._stopped:
            self._stopped = True
            await self.server.stop(self.grace)


async def start_grpc(sidecar: Sidecar, host: str, port: int, grace: float) -> GrpcService:
    """The sidecar's gRPC server listening on ``host``:``port``; AddressInUse or
    CannotListen (one line) when it cannot."""
    where = shown(host, port)
    try:  # grpc itself would log its own lines about a port in use: check first
        for sock in listen(host, port):
            sock.close()
    except AddressInUse:
        raise AddressInUse(f"the gRPC address {where} is in use") from None
    limit = sidecar.config.max_body_bytes
    token = sidecar.config.api_token
    server = grpc.aio.server(
        interceptors=[ApiTokenInterceptor(token)] if token else None,
        options=[
            ("grpc.so_reuseport", 0),
            ("grpc.max_receive_message_length", limit),
        ],
    )
    register(server, DaprApi(sidecar))
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError:
        raise CannotListen(f"cannot listen on {where} for gRPC") from None
    await server.start()
    return GrpcService(server, shown(host, bound), grace)
