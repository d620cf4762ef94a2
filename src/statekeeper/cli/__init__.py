"""The ``statekeeper`` command: one module per verb group (state, queues, workflows,
serve and worker, keys, demo); ``common`` holds the root settings and the one place
errors become ``error: <code>: <message>`` and an exit code. docs/cli.md is the
reference of every command and option (written by ``statekeeper.cli.reference``)."""

from statekeeper.cli.main import main

__all__ = ["main"]
