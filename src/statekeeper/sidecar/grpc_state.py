"""Dapr's state RPCs (and the query RPC) over gRPC, on ``DaprState``: messages of
the ``dapr`` package's protobuf definitions in, messages out.

gRPC values are bytes: a save stores them with ``values.stored_bytes`` (JSON bytes
as that JSON, other bytes exactly), a read answers ``values.value_bytes``. Response
metadata carries ``ttlExpireTime`` for keys saved with a TTL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import state_pb2

from statekeeper.codec import decode_json
from statekeeper.errors import StatekeeperError
from statekeeper.sidecar.errors import DaprError, Grpc, malformed
from statekeeper.sidecar.query import failed, run_query
from statekeeper.sidecar.state import Concurrency, DaprState, DeleteItem, SaveItem
from statekeeper.sidecar.values import stored_bytes, value_bytes

_CONCURRENCY: dict[int, Concurrency | None] = {
    common_pb2.StateOptions.CONCURRENCY_UNSPECIFIED: None,
    common_pb2.StateOptions.CONCURRENCY_FIRST_WRITE: "first-write",
    common_pb2.StateOptions.CONCURRENCY_LAST_WRITE: "last-write",
}


class GrpcState:
    """The state RPCs of one sidecar's ``DaprState``."""

    def __init__(self, state: DaprState) -> None:
        self.state = state

    async def get(self, request: state_pb2.GetStateRequest) -> state_pb2.GetStateResponse:
        eventual = request.consistency == common_pb2.StateOptions.CONSISTENCY_EVENTUAL
        entry = await self.state.get(request.store_name, request.key, consistent=not eventual)
        if not entry.found:  # Dapr answers a missing key with an empty response, not an error
            return state_pb2.GetStateResponse()
        return state_pb2.GetStateResponse(
            data=value_bytes(entry.value), etag=entry.etag or "", metadata=entry.metadata
        )

    async def bulk_get(
        self, request: state_pb2.GetBulkStateRequest
    ) -> state_pb2.GetBulkStateResponse:
        if request.parallelism < 0:
            raise malformed("parallelism must not be negative")
        entries = await self.state.bulk_get(request.store_name, list(request.keys))
        return state_pb2.GetBulkStateResponse(
            items=[
                state_pb2.BulkStateItem(
                    key=entry.key,
                    data=value_bytes(entry.value) if entry.found else b"",
                    etag=entry.etag or "",
                    error=entry.error,
                    metadata=entry.metadata,
                )
                for entry in entries
            ]
        )

    async def save(self, request: state_pb2.SaveStateRequest) -> None:
        self.state.component(request.store_name)
        await self.state.save(request.store_name, [save_item(item) for item in request.states])

    async def delete(self, request: state_pb2.DeleteStateRequest) -> None:
        item = DeleteItem(
            request.key,
            request.etag.value if request.HasField("etag") else None,
            dict(request.metadata),
            _concurrency(request.options) if request.HasField("options") else None,
        )
        await self.state.delete(request.store_name, item)

    async def delete_bulk(self, request: state_pb2.DeleteBulkStateRequest) -> None:
        self.state.component(request.store_name)
        await self.state.delete_bulk(
            request.store_name, [delete_item(item) for item in request.states]
        )

    async def transaction(self, request: state_pb2.ExecuteStateTransactionRequest) -> None:
        self.state.component(request.storeName)
        await self.state.transaction(
            request.storeName, operations(request.operations, request.metadata)
        )

    async def query(self, request: state_pb2.QueryStateRequest) -> state_pb2.QueryStateResponse:
        store = request.store_name
        self.state.component(store)
        try:
            query = decode_json(request.query.encode(), "the query")
        except StatekeeperError as problem:
            raise failed(store, f"failed to parse JSON query body: {problem.message}") from None
        if not isinstance(query, dict):
            raise failed(store, "the query must be a JSON object")
        found = await run_query(self.state, store, query, dict(request.metadata))
        return state_pb2.QueryStateResponse(
            results=[
                state_pb2.QueryStateItem(
                    key=item.key,
                    data=b"" if item.error else value_bytes(item.value),
                    etag=item.etag or "",
                    error=item.error or "",
                )
                for item in found.results
            ],
            token=found.token or "",
        )


def save_item(item: common_pb2.StateItem) -> SaveItem:
    return SaveItem(
        item.key,
        stored_bytes(item.value),
        item.etag.value if item.HasField("etag") else None,
        dict(item.metadata),
        _concurrency(item.options) if item.HasField("options") else None,
    )


def delete_item(item: common_pb2.StateItem) -> DeleteItem:
    return DeleteItem(
        item.key,
        item.etag.value if item.HasField("etag") else None,
        dict(item.metadata),
        _concurrency(item.options) if item.HasField("options") else None,
    )


def operations(
    requested: Iterable[state_pb2.TransactionalStateOperation], shared: Mapping[str, str]
) -> list[SaveItem | DeleteItem]:
    """The operations of a transaction, in order; the request's metadata applies to each
    one (an operation's own metadata wins)."""
    out: list[SaveItem | DeleteItem] = []
    for i, op in enumerate(requested):
        if not op.HasField("request"):
            raise malformed(f"operation {i}: a request (key, value) is required")
        item = op.request
        if op.operationType == "upsert":
            out.append(save_item(item))
        elif op.operationType == "delete":
            out.append(delete_item(item))
        else:
            raise DaprError(
                "ERR_NOT_SUPPORTED_STATE_OPERATION",
                f"operation {i}: operation type {op.operationType[:40]!r} is not supported: "
                "upsert or delete",
                grpc=Grpc.UNIMPLEMENTED,
            )
        if shared:
            out[-1].metadata = {**shared, **out[-1].metadata}
    return out


def _concurrency(options: common_pb2.StateOptions) -> Concurrency | None:
    if options.consistency not in (0, 1, 2):
        raise malformed(f"invalid consistency {options.consistency}")
    try:
        return _CONCURRENCY[options.concurrency]
    except KeyError:
        raise malformed(f"invalid concurrency {options.concurrency}") from None
