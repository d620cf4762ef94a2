"""The dashboard's queue pages: every queue with its messages by state
(``/ui/queues``), and one queue's page (``/ui/queues/{queue}``): its counts, its live
messages and its dead letters (each with the error that dead-lettered it), seen by
``Queue.peek`` without leasing them, a bounded number at a time.

Actions (POST, CSRF-checked, answered with a redirect back to the page, which then says
what was done): redrive one dead letter or all of them, and purge the dead letters (the
form must carry its confirmation box ticked).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.constants import is_internal_queue
from statekeeper.errors import UnknownQueue, ValidationError
from statekeeper.http.ui.shell import TEMPLATES, Shell, to
from statekeeper.identifiers import check_message_id, check_queue_name
from statekeeper.observability.scrape import queue_counts
from statekeeper.queues import Queue
from statekeeper.queues.message import StoredMessage

SHOWN = 50  # messages (and dead letters) a queue's page shows
BODY_CHARS = 4000  # characters of a body's JSON a page shows; the rest is cut, and said so
# What a page says after an action (its ``done`` query parameter: these words only, so a
# link cannot make the page say anything else), given the number of messages.
DONE = {
    "redrove": "Redrove {n} dead-lettered message(s) back to the queue.",
    "purged": "Purged {n} dead-lettered message(s).",
}


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message as a queue's page lists it."""

    message: StoredMessage
    state: str  # ready, delayed, in flight, waiting or dead
    body: str  # its JSON, cut at BODY_CHARS
    cut: int  # characters of the body left out (0: shown whole)


class QueuePages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def routes(self) -> list[Route]:
        route = self.shell.route
        return [
            route("/ui/queues", self.queues),
            route("/ui/queues/{queue}", self.queue),
            route("/ui/queues/{queue}/redrive", self.redrive, methods=("POST",)),
            route("/ui/queues/{queue}/purge-dead", self.purge_dead, methods=("POST",)),
        ]

    async def queues(self, request: Request, session: str) -> Response:
        app = self.shell.app
        now = app.clock()
        rows = [
            {
                "name": name, "internal": is_internal_queue(name), "ready": c.ready,
                "in_flight": c.in_flight, "delayed": c.delayed, "waiting": c.waiting,
                "dead": c.dead,
                "oldest_age": None if c.oldest_enqueued_at is None
                else max(0.0, now - c.oldest_enqueued_at),
            }
            for name, c in await queue_counts(app)
        ]  # fmt: skip
        return self.shell.page("queues.html", session, title="Queues", current="/ui/queues",
                               rows=rows)  # fmt: skip

    async def queue(self, request: Request, session: str) -> Response:
        queue = await self._queue(request)
        now = self.shell.app.clock()
        stats = await queue.stats()
        live = [_row(m, now) for m in await queue.peek(SHOWN)]
        dead = [_row(m, now) for m in await queue.peek(SHOWN, dead=True)]
        live_total = stats.ready + stats.in_flight + stats.delayed + stats.waiting
        return self.shell.page(
            "queue.html", session, title=f"Queue {queue.name}", current="/ui/queues",
            queue=queue.name, internal=is_internal_queue(queue.name), stats=stats,
            live=live, live_more=max(0, live_total - len(live)),
            dead=dead, dead_more=max(0, stats.dead - len(dead)),
            done=_done(request), shown=SHOWN,
        )  # fmt: skip

    async def redrive(self, request: Request, session: str) -> Response:
        """One dead letter (the form's ``id``) or all of them (``all``) back to the queue."""
        form = await self.shell.action(request, session)
        if isinstance(form, Response):
            return form
        queue = await self._queue(request)
        if form.get("id"):
            moved = await queue.redrive([check_message_id(form["id"])])
        elif form.get("all") == "yes":
            moved = await queue.redrive()
        else:
            raise ValidationError("say which dead letter to redrive (id), or all of them (all)")
        return to(_page_of(queue.name, "redrove", moved))

    async def purge_dead(self, request: Request, session: str) -> Response:
        """Delete every dead letter of the queue, once the form's box says so."""
        form = await self.shell.action(request, session)
        if isinstance(form, Response):
            return form
        queue = await self._queue(request)
        if form.get("confirm") != "yes":
            raise ValidationError(
                "purging deletes every dead letter for good: tick the confirmation box "
                "to do it (nothing was deleted)"
            )
        purged = await queue.purge(dead=True)
        return to(_page_of(queue.name, "purged", purged))

    async def _queue(self, request: Request) -> Queue:
        """The queue the path names: one the app declares or consumes, or one that holds
        messages (its name checked first: a 400 names the rule; else a 404)."""
        name = check_queue_name(request.path_params["queue"])
        app = self.shell.app
        if name not in app.queue_names() and name not in await app.backend.queues.held(
            app.namespace
        ):
            raise UnknownQueue(
                f"there is no queue {name!r}: the app does not declare it and it holds no messages"
            )
        return app.inspect_queue(name)  # not declared by looking at it


def _row(message: StoredMessage, now: float) -> MessageRow:
    """``message`` as a page lists it: its state in the words of the counts, its body
    as JSON (cut when long)."""
    state = message.state
    if state == "leased":
        state = "in flight" if message.available_at > now else "ready"  # a lease run out
    elif state == "ready" and message.available_at > now:
        state = "delayed"
    body = str(TEMPLATES.filters["as_json"](message.body))
    cut = max(0, len(body) - BODY_CHARS)
    return MessageRow(message, state, body[:BODY_CHARS], cut)


def _done(request: Request) -> str:
    """What the last action did, said in the page's own words (or "")."""
    words = DONE.get(request.query_params.get("done", ""))
    count = request.query_params.get("n", "")
    if words is None or not (count.isascii() and count.isdigit()) or len(count) > 9:
        return ""
    return words.format(n=int(count))


def _page_of(name: str, done: str, count: int) -> str:
    query = urllib.parse.urlencode({"done": done, "n": count})
    return f"/ui/queues/{urllib.parse.quote(name, safe='')}?{query}"
