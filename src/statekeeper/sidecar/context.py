"""What every part of the sidecar shares: its settings, the app (the opened
database), its components and its APIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.routing import Route

from statekeeper.constants import SIDECAR_MAX_BODY
from statekeeper.sidecar.components import Resources, default_resources
from statekeeper.sidecar.state import DaprState
from statekeeper.sidecar.subscriptions import DeliveryPolicy

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.runtime.supervisor import Service

DAPR_RUNTIME_VERSION = "1.15.0-statekeeper"
DEFAULT_MAX_BODY = SIDECAR_MAX_BODY  # Dapr's default request body limit (constants.py)


@dataclass
class SidecarConfig:
    """How the sidecar runs: the app it serves (its id, and where its own HTTP server
    listens: ``app_port`` None means no app, so nothing is delivered) and where the
    sidecar listens."""

    app_id: str = ""
    app_port: int | None = None
    app_host: str = "127.0.0.1"
    app_health_path: str = "/healthz"
    app_health_check: bool = False
    host: str = "127.0.0.1"
    http_port: int = 3500
    grpc_port: int | None = 50001
    api_token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    resources: Resources = field(default_factory=default_resources)
    # Whether the sidecar runs the app's workflows (``--app-module``), not only starts them.
    run_workflows: bool = False
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)  # pub/sub to the app

    @property
    def app_url(self) -> str | None:
        if self.app_port is None:
            return None
        return f"http://{self.app_host}:{self.app_port}"


class Part(Protocol):
    """A building block of the sidecar beyond state (pub/sub, workflows, ...): its
    HTTP routes, the background services it runs (delivery, relays), and what it adds
    to the metadata document."""

    name: str

    def routes(self) -> list[Route]: ...

    def services(self) -> list[Service]: ...

    def describe(self, document: dict[str, Any]) -> None: ...


class Sidecar:
    """The sidecar of one app: its config and the APIs the HTTP and gRPC servers
    serve. ``parts`` are the building blocks beyond state, each also reachable by
    name (``part("pubsub")``)."""

    def __init__(self, app: App, config: SidecarConfig) -> None:
        self.app = app
        self.config = config
        self.state = DaprState(app, config.resources, config.app_id)
        self.parts: list[Part] = []
        self.stopping = False
        self.extended: dict[str, str] = {"statekeeper": "sidecar"}  # metadata attributes

    def add(self, part: Part) -> None:
        self.parts.append(part)

    def part(self, name: str) -> Any:
        """The part named ``name``, or None."""
        return next((p for p in self.parts if p.name == name), None)

    @property
    def app_id(self) -> str:
        return self.config.app_id
