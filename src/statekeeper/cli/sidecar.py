"""``statekeeper sidecar``: Dapr's state and pub/sub API for an app in any language."""

from __future__ import annotations

import click

from statekeeper.cli.common import Settings, load_app, pass_settings, run
from statekeeper.cli.params import seconds_option
from statekeeper.cli.services import enable_callbacks
from statekeeper.constants import (
    ENV_PUBSUB_CONCURRENCY,
    ENV_PUBSUB_DELIVERY_TIMEOUT,
    ENV_PUBSUB_LEASE,
    ENV_PUBSUB_MAX_ATTEMPTS,
    ENV_PUBSUB_MAX_RETRY_DELAY,
    ENV_PUBSUB_RETRY_INTERVAL,
    SIDECAR_MAX_BODY,
)

port_type = click.IntRange(1, 65535)


@click.command("sidecar")
@click.option(
    "--app-id",
    envvar="APP_ID",
    default="app",
    show_default=True,
    help="The app's id: its state keys start with '<app id>||' (env APP_ID).",
)
@click.option(
    "--app-port",
    type=port_type,
    envvar="APP_PORT",
    help="Port of the app's own HTTP server, for subscriptions and deliveries (env APP_PORT).",
)
@click.option(
    "--app-host", default="127.0.0.1", show_default=True, help="Host of the app's HTTP server."
)
@click.option(
    "--http-port",
    type=port_type,
    envvar="DAPR_HTTP_PORT",
    default=3500,
    show_default=True,
    help="Port of Dapr's HTTP API (env DAPR_HTTP_PORT).",
)
@click.option(
    "--grpc-port",
    type=click.IntRange(0, 65535),
    envvar="DAPR_GRPC_PORT",
    default=50001,
    show_default=True,
    help="Port of Dapr's gRPC API; 0 turns it off (env DAPR_GRPC_PORT).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; another than loopback needs an API token.",
)
@click.option(
    "--resources-path",
    type=click.Path(file_okay=False),
    help="Directory of Dapr component files (default: a 'statestore' and a 'pubsub').",
)
@click.option(
    "--api-token",
    envvar="DAPR_API_TOKEN",
    help="Require this token in the dapr-api-token header (env DAPR_API_TOKEN).",
)
@click.option(
    "--app-health-check-path",
    default="/healthz",
    show_default=True,
    help="Path of the app's health probe (with --enable-app-health-check).",
)
@click.option(
    "--enable-app-health-check",
    is_flag=True,
    help="Probe the app's health path, not only its port, before delivering to it.",
)
@click.option(
    "--app-module",
    metavar="MODULE:APP",
    help="A statekeeper app whose workflows the sidecar runs and serves by Dapr's "
    "workflow API (its namespace is theirs).",
)
@click.option(
    "--max-body-size",
    type=click.IntRange(1024, 256 * 1024 * 1024),
    default=SIDECAR_MAX_BODY,
    show_default=True,
    help="Largest request body accepted, in bytes.",
)
@click.option(
    "--pubsub-max-attempts",
    type=click.IntRange(1, 1000),
    envvar=ENV_PUBSUB_MAX_ATTEMPTS,
    default=5,
    show_default=True,
    help="Deliveries of a message to the app before it is dead-lettered.",
)
@click.option(
    "--pubsub-retry-interval",
    metavar="SECONDS",
    envvar=ENV_PUBSUB_RETRY_INTERVAL,
    default=1.0,
    show_default=True,
    callback=seconds_option(),
    help="Bound of the first wait before a failed delivery is retried; doubles with each "
    "attempt, with jitter.",
)
@click.option(
    "--pubsub-max-retry-delay",
    metavar="SECONDS",
    envvar=ENV_PUBSUB_MAX_RETRY_DELAY,
    default=60.0,
    show_default=True,
    callback=seconds_option(),
    help="Longest wait between two deliveries of a message.",
)
@click.option(
    "--pubsub-delivery-timeout",
    metavar="SECONDS",
    envvar=ENV_PUBSUB_DELIVERY_TIMEOUT,
    default=60.0,
    show_default=True,
    callback=seconds_option(zero=False),
    help="Seconds the app may take to answer a delivery; then it is a failed attempt.",
)
@click.option(
    "--pubsub-concurrency",
    type=click.IntRange(1, 1000),
    envvar=ENV_PUBSUB_CONCURRENCY,
    default=16,
    show_default=True,
    help="Deliveries of one subscription in flight at once.",
)
@click.option(
    "--pubsub-lease",
    metavar="SECONDS",
    envvar=ENV_PUBSUB_LEASE,
    default=30.0,
    show_default=True,
    callback=seconds_option(zero=False, maximum=3600),
    help="Seconds a delivery holds its message, renewed while the app works; a sidecar "
    "that dies leaves it to be delivered again after this.",
)
@click.option(
    "--grace",
    metavar="SECONDS",
    default=30.0,
    show_default=True,
    callback=seconds_option(),
    help="Seconds to finish requests and deliveries in hand on SIGTERM or SIGINT.",
)
@pass_settings
def sidecar(
    settings: Settings,
    app_id: str,
    app_port: int | None,
    app_host: str,
    http_port: int,
    grpc_port: int,
    host: str,
    resources_path: str | None,
    api_token: str | None,
    app_health_check_path: str,
    enable_app_health_check: bool,
    app_module: str | None,
    max_body_size: int,
    pubsub_max_attempts: int,
    pubsub_retry_interval: float,
    pubsub_max_retry_delay: float,
    pubsub_delivery_timeout: float,
    pubsub_concurrency: int,
    pubsub_lease: float,
    grace: float,
) -> None:
    """Serve Dapr's v1.0 API to an app until SIGTERM: state and pub/sub (HTTP and gRPC),
    workflows (HTTP); with --app-module, also run that app's workflows."""
    from statekeeper.app import App

    # Imported here: other commands do not load the sidecar (its web framework).
    from statekeeper.sidecar.components import load_resources
    from statekeeper.sidecar.context import SidecarConfig
    from statekeeper.sidecar.service import run_sidecar
    from statekeeper.sidecar.subscriptions import DeliveryPolicy

    config = SidecarConfig(
        app_id=app_id,
        app_port=app_port,
        app_host=app_host,
        app_health_path=app_health_check_path,
        app_health_check=enable_app_health_check,
        host=host,
        http_port=http_port,
        grpc_port=grpc_port or None,
        api_token=api_token or None,
        max_body_bytes=max_body_size,
        resources=load_resources(resources_path, app_id),
        run_workflows=app_module is not None,
        delivery=DeliveryPolicy(
            max_attempts=pubsub_max_attempts,
            retry_interval=pubsub_retry_interval,
            max_retry_delay=pubsub_max_retry_delay,
            timeout=pubsub_delivery_timeout,
            concurrency=pubsub_concurrency,
            lease=pubsub_lease,
        ),
    )

    async def go() -> None:
        if app_module is not None:
            app = load_app(app_module, settings)
            enable_callbacks(app)  # as worker and serve do: the app's workflows run here
        else:
            app = App(settings.database, namespace=settings.namespace)
        await run_sidecar(app, config, grace=grace, announce=_say)

    run(go())


def _say(line: str) -> None:
    click.echo(line, err=True)
