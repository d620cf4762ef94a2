"""Running the sidecar: its HTTP (and gRPC) servers and its parts' services under
the app's supervisor, until SIGTERM.

On SIGTERM the health probe answers 500 at once, the servers take no new requests
and finish those in flight, and the parts' services (deliveries to the app) finish
what they hold, all within the grace; what is not finished is given back to its
queue and delivered again later.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable

from statekeeper.app import App
from statekeeper.errors import ConfigurationError
from statekeeper.http.application import uvicorn_server
from statekeeper.http.edge import bound_address, is_loopback, listen, shown
from statekeeper.http.server import HttpService
from statekeeper.sidecar.context import Sidecar, SidecarConfig
from statekeeper.sidecar.grpc_api import start_grpc
from statekeeper.sidecar.http_app import create_sidecar_http
from statekeeper.sidecar.pubsub import DaprPubSub
from statekeeper.sidecar.workflow_api import WorkflowApi

log = logging.getLogger("statekeeper.sidecar")


def build_sidecar(app: App, config: SidecarConfig) -> Sidecar:
    """The sidecar of ``app`` with every part this installation has."""
    sidecar = Sidecar(app, config)
    sidecar.add(WorkflowApi(sidecar, run_worker=config.run_workflows))
    sidecar.add(DaprPubSub(sidecar, config.delivery))
    return sidecar


def check_exposure(config: SidecarConfig, addresses: list[tuple[str, int]]) -> None:
    """Refuse to serve other hosts without an API token: whoever reaches the sidecar
    reads and writes the app's state."""
    exposed = [shown(*a) for a in addresses if not is_loopback(a[0])]
    if exposed and not config.api_token:
        raise ConfigurationError(
            f"the sidecar would serve {', '.join(exposed)} without an API token: "
            "set DAPR_API_TOKEN (or --api-token), or listen on 127.0.0.1"
        )


def banner(sidecar: Sidecar, addresses: list[tuple[str, int]], grpc: str | None) -> str:
    config = sidecar.config
    resources = config.resources
    return "; ".join(
        [
            f"statekeeper sidecar for app {config.app_id!r} serving "
            + ", ".join(f"http://{shown(*a)}" for a in addresses),
            f"grpc: {grpc or 'off'}",
            "api token: " + ("required" if config.api_token else "none"),
            "app: " + (config.app_url or "none (no deliveries)"),
            "state stores: " + (", ".join(sorted(resources.state_stores)) or "none"),
            "pubsubs: " + (", ".join(sorted(resources.pubsubs)) or "none"),
            "workflows: "
            + (
                f"run here (namespace {sidecar.app.namespace!r})"
                if config.run_workflows
                else f"started in namespace {sidecar.app.namespace!r}"
            ),
            f"database: {sidecar.app.url.described()}",
        ]
    )


async def run_sidecar(
    app: App,
    config: SidecarConfig,
    *,
    grace: float = 30.0,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``config``'s sidecar on ``app`` until SIGTERM or SIGINT."""
    sockets = listen(config.host, config.http_port)
    addresses = [bound_address(sock) for sock in sockets]
    try:
        check_exposure(config, addresses)
        async with app:
            await _serve(app, config, sockets, addresses, grace, announce)
    finally:
        for sock in sockets:
            sock.close()


async def _serve(
    app: App,
    config: SidecarConfig,
    sockets: list[socket.socket],
    addresses: list[tuple[str, int]],
    grace: float,
    announce: Callable[[str], None] | None,
) -> None:
    sidecar = build_sidecar(app, config)
    runtime = app.runtime
    assert runtime is not None
    runtime.grace = grace

    def stop() -> None:
        sidecar.stopping = True
        runtime.stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    http = uvicorn_server(create_sidecar_http(sidecar), grace=grace)
    grpc = None
    if config.grpc_port is not None:  # listening before anything starts: a port in use stops here
        grpc = await start_grpc(sidecar, config.host, config.grpc_port, grace)
    for part in sidecar.parts:
        for service in part.services():
            runtime.start(service)
    if grpc is not None:
        runtime.start(grpc)
    runtime.start(HttpService(http, sockets))  # stopped first: no new requests
    line = banner(sidecar, addresses, grpc.where if grpc is not None else None)
    log.info(line)
    if announce is not None:
        announce(line)
    try:
        await runtime.wait()
    finally:
        sidecar.stopping = True
        if grpc is not None:
            await grpc.close()
    if runtime.failure is not None:
        raise runtime.failure
