"""What every dashboard page shares: the session check, the templates, the headers, the
CSRF check of actions and the error pages.

A page is ``async def page(request, session) -> Response``; ``Shell.route`` wraps it so
that a request without a session is sent to the sign-in page, and a statekeeper error
(a bad filter, an unknown run) becomes a page with the error's status and message
instead of the API's JSON. An action (a form that changes something) is a ``POST``
whose fields ``Shell.action`` reads and checks (CSRF) before the handler does anything.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from statekeeper.errors import StatekeeperError, ValidationError
from statekeeper.http.ui.session import Sessions

if TYPE_CHECKING:
    from statekeeper.app import App

log = logging.getLogger("statekeeper.http.ui")

MAX_FORM_BYTES = 64 * 1024  # a state value edited in a form fits
# Scripts are this server's own (htmx, Mermaid, ui.js), styles its own style sheet;
# htmx fetches from this server only.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A page with diagrams: Mermaid writes the style of what it draws into the SVG (style
# elements and attributes), which only 'unsafe-inline' lets through; those pages alone
# take it (scripts stay this server's own).
DIAGRAM_HEADERS = {
    **HEADERS,
    "Content-Security-Policy": POLICY.replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    ),
}
PAGES = (  # the navigation: path, title
    ("/ui", "Overview"),
    ("/ui/workflows", "Workflows"),
    ("/ui/queues", "Queues"),
    ("/ui/state", "State"),
    ("/ui/machines", "State machines"),
    ("/ui/events", "Event streams"),
    ("/ui/schedules", "Schedules"),
    ("/ui/entities", "Entities"),
)

Page = Callable[[Request, str], Awaitable[Response]]


def _when(seconds: float | None) -> str:
    """A time as the pages show it: UTC, to the millisecond."""
    if seconds is None:
        return "-"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int(seconds * 1000) % 1000:03d}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def _json(value: Any, limit: int = 64_000) -> str:
    """A value as indented JSON for a ``<pre>`` (anything JSON cannot say, as text), cut
    after ``limit`` characters, and said so: a page never carries a whole large value."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=repr)
    except ValueError:  # a circular structure
        text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit:,} more characters not shown)"


def _quoted(text: str) -> str:
    """A path segment (an id, a key) for a link."""
    return urllib.parse.quote(text, safe="")


TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("statekeeper.http.ui", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
TEMPLATES.filters.update(when=_when, duration=_duration, as_json=_json, q=_quoted)


class Shell:
    """The dashboard's pages of ``app``: sessions (``session.py``) and rendering."""

    def __init__(self, app: App, sessions: Sessions) -> None:
        self.app = app
        self.sessions = sessions

    def route(self, path: str, page: Page, methods: tuple[str, ...] = ("GET",)) -> Route:
        """``page`` at ``path``, for a signed-in session only; statekeeper errors shown."""

        async def guarded(request: Request) -> Response:
            session = self.sessions.valid(request)
            if session is None:
                if request.method != "GET" or request.headers.get("hx-request"):
                    return self.refused("Your session has ended: sign in again.", 401)
                return to("/ui/login")
            try:
                return await page(request, session)
            except StatekeeperError as error:
                if error.http_status >= 500:
                    log.exception("dashboard page %s failed", request.url.path)
                return self.problem(session, error.http_status, error.message)
            except Exception:  # a fault here: logged, and the dashboard's own page
                log.exception("dashboard page %s failed", request.url.path)
                return self.problem(session, 500, "This page failed; the server logged why.")

        return Route(path, guarded, methods=list(methods))

    def page(
        self,
        name: str,
        session: str | None,
        *,
        status: int = 200,
        diagrams: bool = False,
        **values: Any,
    ) -> Response:
        """Template ``name`` in the layout, for ``session`` (None: signed out);
        ``diagrams``: the page draws Mermaid diagrams (DIAGRAM_HEADERS)."""
        html = TEMPLATES.get_template(name).render(
            namespace=self.app.namespace, signed_in=session is not None and not self.sessions.open,
            csrf="" if session is None else self.sessions.csrf(session), pages=PAGES,
            diagrams=diagrams, **values,
        )  # fmt: skip
        return HTMLResponse(html, status, DIAGRAM_HEADERS if diagrams else HEADERS)

    def problem(self, session: str, status: int, message: str) -> Response:
        """A page that says what is wrong with the request (its status: 4xx)."""
        return self.page("problem.html", session, status=status, title="Not possible",
                         message=message)  # fmt: skip

    def refused(self, message: str, status: int = 403) -> Response:
        """An action refused before anything was done (no session, a forged form)."""
        body = TEMPLATES.get_template("refused.html").render(message=message)
        return HTMLResponse(body, status, HEADERS)

    async def action(self, request: Request, session: str) -> dict[str, str] | Response:
        """The fields of an action's form once its CSRF token is found to be the
        session's; otherwise the page that refuses it."""
        form = await read_form(request)
        if form is None:
            return self.refused("Refused: not a form this page sends, or too large.", 400)
        if not self.sessions.csrf_matches(session, form.get("csrf", "")):
            return self.refused("Refused: this form did not come from your session.")
        return form


def to(path: str) -> Response:
    """A redirect (303: the browser follows it with a GET)."""
    return RedirectResponse(path, status_code=303, headers=HEADERS)


async def read_form(request: Request) -> dict[str, str] | None:
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
            body.decode("utf-8"), max_num_fields=40, keep_blank_values=True
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items() if values}


def text_arg(request: Request, name: str, limit: int = 400) -> str:
    """Query parameter ``name`` stripped ("" when absent); longer than ``limit``
    characters is a 400 naming it."""
    value = request.query_params.get(name, "").strip()
    if len(value) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters")
    return value
