"""``python -m statekeeper`` runs the CLI."""

from statekeeper.cli import main

main(prog_name="statekeeper")
