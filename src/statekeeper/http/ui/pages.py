"""The dashboard at ``/ui`` (docs/observability.md): server-rendered pages, one style
sheet, no script and nothing fetched from elsewhere.

``GET /ui/login`` and ``POST /ui/login`` sign in with the API token (``session.py``);
``POST /ui/logout`` signs out; ``GET /ui`` is the overview of the namespace (queues,
workflow runs, runs due: ``observability/overview.py``). A page asked for without a
session is a redirect to the sign-in page. Every page is sent with a strict Content
Security Policy (only this server's style sheet; no script, no frame, forms only to
itself) and is never cached. These routes check their session themselves: they are
not behind the API's bearer token (``http/auth.py``).
"""

from __future__ import annotations

import urllib.parse
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from statekeeper.constants import WORKFLOW_STATUSES
from statekeeper.http.ui.session import Sessions
from statekeeper.observability.overview import overview

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

MAX_FORM_BYTES = 8 * 1024
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("statekeeper.http.ui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_CSS = resources.files("statekeeper.http.ui").joinpath("static/ui.css").read_bytes()
_ICON = resources.files("statekeeper.http.ui").joinpath("static/icon.svg").read_bytes()
_STATIC = {"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"}


class Dashboard:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.sessions = Sessions(config.token, config.upload_key)

    def routes(self) -> list[Route]:
        return [
            Route("/ui", self.overview, methods=["GET"]),
            Route("/ui/login", self.login_page, methods=["GET"]),
            Route("/ui/login", self.login, methods=["POST"]),
            Route("/ui/logout", self.logout, methods=["POST"]),
            Route("/ui/static/ui.css", self.css, methods=["GET"]),
            Route("/ui/static/icon.svg", self.icon, methods=["GET"]),
        ]

    # --- pages ------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        session = self.sessions.valid(request)
        if session is None:
            return _to("/ui/login")
        view = await overview(self.app)
        shown = {**view["workflows"]["active"], **view["workflows"]["last_hour"]}
        statuses = [status for status in WORKFLOW_STATUSES if status in shown]
        return self._page("overview.html", session, title="Overview", view=view,
                          statuses=statuses)  # fmt: skip

    async def login_page(self, request: Request) -> Response:
        if self.sessions.open or self.sessions.valid(request) is not None:
            return _to("/ui")
        return self._page("login.html", None, title="Sign in", failed=False)

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        if form is None:
            return self._page("login.html", None, status=400, title="Sign in", failed=True)
        if not self.sessions.open and not self.sessions.token_matches(form.get("token", "")):
            # The form again, saying so (a page, not an error: the browser shows it).
            return self._page("login.html", None, title="Sign in", failed=True)
        answer = _to("/ui")
        if not self.sessions.open:
            self.sessions.set_cookie(answer, request, self.sessions.new())
        return answer

    async def logout(self, request: Request) -> Response:
        session = self.sessions.valid(request)
        form = await _form(request)
        if (
            session is None
            or form is None
            or not self.sessions.csrf_matches(session, form.get("csrf", ""))
        ):
            return HTMLResponse("<!doctype html><title>Refused</title><p>Refused: this form "
                                "did not come from your session.</p>", 403, HEADERS)  # fmt: skip
        answer = _to("/ui/login")
        self.sessions.clear_cookie(answer, request)
        return answer

    async def css(self, request: Request) -> Response:
        return Response(_CSS, media_type="text/css", headers=_STATIC)

    async def icon(self, request: Request) -> Response:
        return Response(_ICON, media_type="image/svg+xml", headers=_STATIC)

    # --- rendering ----------------------------------------------------------------------

    def _page(
        self, name: str, session: str | None, *, status: int = 200, **values: Any
    ) -> Response:
        html = _TEMPLATES.get_template(name).render(
            namespace=self.app.namespace, signed_in=session is not None and not self.sessions.open,
            csrf="" if session is None else self.sessions.csrf(session), **values,
        )  # fmt: skip
        return HTMLResponse(html, status, HEADERS)


def _to(path: str) -> Response:
    return RedirectResponse(path, status_code=303, headers=HEADERS)


async def _form(request: Request) -> dict[str, str] | None:
    """An ``application/x-www-form-urlencoded`` body of at most MAX_FORM_BYTES, first
    value of each field; None when it is anything else."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = urllib.parse.parse_qs(
            body.decode("utf-8"), max_num_fields=20, strict_parsing=False
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items() if values}
