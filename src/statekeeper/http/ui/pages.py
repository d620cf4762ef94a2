"""The dashboard at ``/ui`` (docs/observability.md): server-rendered pages (Jinja2),
one style sheet, and this server's own scripts (htmx for live parts, Mermaid for
diagrams: built by ``frontend/`` and committed); nothing is fetched from elsewhere.

``GET /ui/login`` and ``POST /ui/login`` sign in with the API token (``session.py``);
``POST /ui/logout`` signs out; ``GET /ui`` is the overview of the namespace; the other
pages are in modules of their own (workflows, queues, state, ...), each given the
``Shell`` (``shell.py``) that checks sessions and renders. Every page is sent with a
strict Content Security Policy and is never cached. These routes check their session
themselves: they are not behind the API's bearer token (``http/auth.py``).
"""

from __future__ import annotations

import gzip
from importlib import resources
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.http.ui.entities import EntityPages
from statekeeper.http.ui.events import EventPages
from statekeeper.http.ui.machines import MachinePages
from statekeeper.http.ui.overview import OverviewPages
from statekeeper.http.ui.queues import QueuePages
from statekeeper.http.ui.schedules import SchedulePages
from statekeeper.http.ui.session import Sessions
from statekeeper.http.ui.shell import Shell, read_form, to
from statekeeper.http.ui.state import StatePages
from statekeeper.http.ui.workflows import WorkflowPages

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

# The files under static/ that are served, and their media types; a name ending in .gz
# is stored compressed and sent as is to a browser that takes gzip.
STATIC = {
    "ui.css": "text/css",
    "icon.svg": "image/svg+xml",
    "ui.js": "text/javascript",
    "vendor/htmx.min.js": "text/javascript",
    "vendor/mermaid.min.js": "text/javascript",
}
_STATIC_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"}


class Dashboard:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.sessions = Sessions(config.token, config.upload_key)
        self.shell = Shell(app, self.sessions)
        self._files: dict[str, tuple[bytes, bool]] = {}

    def routes(self) -> list[Route]:
        shell = self.shell
        return [
            Route("/ui/login", self.login_page, methods=["GET"]),
            Route("/ui/login", self.login, methods=["POST"]),
            Route("/ui/logout", self.logout, methods=["POST"]),
            Route("/ui/static/{path:path}", self.static, methods=["GET"]),
            *OverviewPages(shell).routes(),
            *WorkflowPages(shell).routes(),
            *QueuePages(shell).routes(),
            *StatePages(shell).routes(),
            *MachinePages(shell).routes(),
            *EventPages(shell).routes(),
            *SchedulePages(shell).routes(),
            *EntityPages(shell).routes(),
            shell.route("/ui/{rest:path}", self.missing, methods=("GET", "POST")),
        ]

    async def login_page(self, request: Request) -> Response:
        if self.sessions.open or self.sessions.valid(request) is not None:
            return to("/ui")
        return self.shell.page("login.html", None, title="Sign in", failed=False)

    async def login(self, request: Request) -> Response:
        form = await read_form(request)
        if form is None:
            return self.shell.page("login.html", None, status=400, title="Sign in", failed=True)
        if not self.sessions.open and not self.sessions.token_matches(form.get("token", "")):
            # The form again, saying so (a page, not an error: the browser shows it).
            return self.shell.page("login.html", None, title="Sign in", failed=True)
        answer = to("/ui")
        if not self.sessions.open:
            self.sessions.set_cookie(answer, request, self.sessions.new())
        return answer

    async def logout(self, request: Request) -> Response:
        session = self.sessions.valid(request)
        if session is None:
            return self.shell.refused("Refused: this form did not come from your session.")
        form = await self.shell.action(request, session)
        if isinstance(form, Response):
            return form
        answer = to("/ui/login")
        self.sessions.end(session)
        self.sessions.clear_cookie(answer, request)
        return answer

    async def missing(self, request: Request, session: str) -> Response:
        """Any other path under /ui: a page saying so (not the API's JSON)."""
        return self.shell.problem(session, 404, "There is no such page.")

    async def static(self, request: Request) -> Response:
        path = request.path_params["path"]
        media = STATIC.get(path)
        if media is None:
            return Response("not found", 404, media_type="text/plain", headers=_STATIC_HEADERS)
        data, compressed = self._file(path)
        if compressed and _takes_gzip(request.headers.get("accept-encoding", "")):
            headers = {**_STATIC_HEADERS, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
            return Response(data, media_type=media, headers=headers)
        body = gzip.decompress(data) if compressed else data
        return Response(body, media_type=media, headers=_STATIC_HEADERS)

    def _file(self, path: str) -> tuple[bytes, bool]:
        """The bytes of static file ``path`` (read once) and whether they are gzipped."""
        if path not in self._files:
            folder = resources.files("statekeeper.http.ui").joinpath("static")
            plain = folder.joinpath(path)
            if plain.is_file():
                self._files[path] = (plain.read_bytes(), False)
            else:
                self._files[path] = (folder.joinpath(path + ".gz").read_bytes(), True)
        return self._files[path]


def _takes_gzip(accepted: str) -> bool:
    """Whether an Accept-Encoding header takes gzip (``gzip;q=0`` refuses it)."""
    for part in accepted.lower().split(","):
        name, _, params = part.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            quality = params.strip().removeprefix("q=")
            try:
                return not params.strip().startswith("q=") or float(quality) > 0
            except ValueError:
                return False
    return False
