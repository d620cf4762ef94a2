"""The ``statekeeper`` group: the root options, and every verb group added to it."""

from __future__ import annotations

import click
from click.core import ParameterSource

from statekeeper import __version__
from statekeeper.cli import workflow_messages  # noqa: F401  (adds its verbs to workflows)
from statekeeper.cli.chaos import chaos
from statekeeper.cli.common import CommandGroup, Settings
from statekeeper.cli.demo import demo
from statekeeper.cli.entities import entities
from statekeeper.cli.events import events
from statekeeper.cli.keys import keygen, reencrypt
from statekeeper.cli.queues import queue
from statekeeper.cli.schedules import schedules
from statekeeper.cli.services import serve, worker
from statekeeper.cli.sfn import sfn
from statekeeper.cli.sidecar import sidecar
from statekeeper.cli.state import state
from statekeeper.cli.top import top
from statekeeper.cli.workflow_versions import COMMANDS as WORKFLOW_VERSION_COMMANDS
from statekeeper.cli.workflows import workflows
from statekeeper.constants import ENV_DATABASE_URL, ENV_LOG_FORMAT, ENV_LOG_LEVEL, ENV_NAMESPACE
from statekeeper.logs import LOG_FORMATS, configure_logging


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="statekeeper")
@click.option(
    "--database",
    envvar=ENV_DATABASE_URL,
    metavar="URL",
    help="Database URL (default sqlite:///.statekeeper/state.db).",
)
@click.option(
    "--namespace", envvar=ENV_NAMESPACE, metavar="NAME", help="Namespace (default 'default')."
)
@click.option(
    "--log-level",
    envvar=ENV_LOG_LEVEL,
    metavar="LEVEL",
    default="WARNING",
    show_default=True,
    help="Level of the logs on stderr: debug, info, warning or error.",
)
@click.option(
    "--log-format",
    envvar=ENV_LOG_FORMAT,
    metavar="FORMAT",
    default="auto",
    show_default=True,
    help=f"Logs as {', '.join(LOG_FORMATS)}: auto is coloured text on a terminal, "
    "JSON lines otherwise.",
)
@click.pass_context
def main(
    ctx: click.Context,
    database: str | None,
    namespace: str | None,
    log_level: str,
    log_format: str,
) -> None:
    """statekeeper: durable state for stateless functions."""
    configure_logging(log_level, format=log_format)
    given = frozenset(
        name
        for name in ("database", "namespace")
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    )
    ctx.obj = Settings(database, namespace, given)


for command in (
    state,
    queue,
    workflows,
    events,
    sfn,
    serve,
    worker,
    sidecar,
    reencrypt,
    keygen,
    demo,
    schedules,
    entities,
    top,
    chaos,
):
    main.add_command(command)
# ``workflows version / move-version / fork`` (cli/workflow_versions.py).
for command in WORKFLOW_VERSION_COMMANDS:
    workflows.add_command(command)
