"""The dashboard's event store pages (being written)."""

from __future__ import annotations

from starlette.routing import Route

from statekeeper.http.ui.shell import Shell


class EventPages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def routes(self) -> list[Route]:
        return []
