"""``statekeeper demo``: the state store at work on the configured database."""

from __future__ import annotations

import click

from statekeeper.cli.common import Settings, pass_settings, run


@click.command("demo")
@pass_settings
def demo(settings: Settings) -> None:
    """Walk through the state store on the configured database."""
    from statekeeper.demo import run_demo

    run(run_demo(settings.database))
