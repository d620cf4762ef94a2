"""The metadata RPCs over gRPC: GetMetadata answers the document ``GET /v1.0/metadata``
answers, as Dapr's message; SetMetadata sets an attribute of it, as
``PUT /v1.0/metadata/{key}`` does."""

from __future__ import annotations

from typing import Any

from dapr.proto.runtime.v1 import metadata_pb2

from statekeeper.sidecar.context import Sidecar
from statekeeper.sidecar.errors import malformed
from statekeeper.sidecar.http_app import MAX_ATTRIBUTE_BYTES, MAX_ATTRIBUTES, metadata_document

_ACTOR_STATUS = {
    "INITIALIZING": metadata_pb2.ActorRuntime.INITIALIZING,
    "DISABLED": metadata_pb2.ActorRuntime.DISABLED,
    "RUNNING": metadata_pb2.ActorRuntime.RUNNING,
}

_SUBSCRIPTION_TYPE = {
    "DECLARATIVE": metadata_pb2.DECLARATIVE,
    "PROGRAMMATIC": metadata_pb2.PROGRAMMATIC,
    "STREAMING": metadata_pb2.STREAMING,
}


class GrpcMetadata:
    def __init__(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar

    async def get(self) -> metadata_pb2.GetMetadataResponse:
        return metadata_message(metadata_document(self.sidecar))

    async def set(self, request: metadata_pb2.SetMetadataRequest) -> None:
        key, value, extended = request.key, request.value, self.sidecar.extended
        if not key:  # as Dapr: nothing to set
            return
        if len(value.encode()) > MAX_ATTRIBUTE_BYTES:
            raise malformed(f"a metadata value is at most {MAX_ATTRIBUTE_BYTES} bytes")
        if len(extended) >= MAX_ATTRIBUTES and key not in extended:
            raise malformed(f"at most {MAX_ATTRIBUTES} metadata attributes")
        extended[key] = value


def metadata_message(document: dict[str, Any]) -> metadata_pb2.GetMetadataResponse:
    """The metadata document (as ``GET /v1.0/metadata`` answers it) as a message."""
    connection = document.get("appConnectionProperties")
    actors = document.get("actorRuntime")
    return metadata_pb2.GetMetadataResponse(
        id=document.get("id", ""),
        runtime_version=document.get("runtimeVersion", ""),
        enabled_features=document.get("enabledFeatures", []),
        registered_components=[
            metadata_pb2.RegisteredComponents(
                name=c.get("name", ""),
                type=c.get("type", ""),
                version=c.get("version", ""),
                capabilities=c.get("capabilities", []),
            )
            for c in document.get("components", [])
        ],
        extended_metadata={str(k): str(v) for k, v in document.get("extended", {}).items()},
        subscriptions=[_subscription(s) for s in document.get("subscriptions", [])],
        app_connection_properties=None if connection is None else _connection(connection),
        actor_runtime=None
        if actors is None
        else metadata_pb2.ActorRuntime(
            runtime_status=_ACTOR_STATUS.get(
                str(actors.get("runtimeStatus")), metadata_pb2.ActorRuntime.INITIALIZING
            ),
            host_ready=bool(actors.get("hostReady")),
            placement=str(actors.get("placement", "")),
        ),
    )


def _connection(found: dict[str, Any]) -> metadata_pb2.AppConnectionProperties:
    health = found.get("health")
    return metadata_pb2.AppConnectionProperties(
        port=int(found.get("port") or 0),
        protocol=str(found.get("protocol", "")),
        channel_address=str(found.get("channelAddress", "")),
        max_concurrency=int(found.get("maxConcurrency") or 0),
        health=None
        if not isinstance(health, dict)
        else metadata_pb2.AppConnectionHealthProperties(
            health_check_path=str(health.get("healthCheckPath", "")),
            health_probe_interval=str(health.get("healthProbeInterval", "")),
            health_probe_timeout=str(health.get("healthProbeTimeout", "")),
            health_threshold=int(health.get("healthThreshold") or 0),
        ),
    )


def _subscription(found: dict[str, Any]) -> metadata_pb2.PubsubSubscription:
    rules = found.get("rules")
    return metadata_pb2.PubsubSubscription(
        pubsub_name=str(found.get("pubsubname", "")),
        topic=str(found.get("topic", "")),
        metadata={str(k): str(v) for k, v in (found.get("metadata") or {}).items()},
        rules=metadata_pb2.PubsubSubscriptionRules(
            rules=[
                metadata_pb2.PubsubSubscriptionRule(
                    match=str(r.get("match", "")), path=str(r.get("path", ""))
                )
                for r in (rules if isinstance(rules, list) else [])
                if isinstance(r, dict)
            ]
        ),
        dead_letter_topic=str(found.get("deadLetterTopic", "")),
        type=_SUBSCRIPTION_TYPE.get(str(found.get("type")), metadata_pb2.UNKNOWN),
    )
