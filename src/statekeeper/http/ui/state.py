"""The dashboard's state pages: the keys of the state store, a page at a time, found
by prefix (``/ui/state?prefix=...&cursor=...``), and one item (``/ui/state/item?key=...``:
keys may hold slashes, so they travel as a query parameter): its value as JSON, its
ETag, its expiry and size.

An item's page edits it: the form carries the ETag the page showed, and the save is a
put with that ETag as ``if_match``; when the item changed meanwhile the page answers
409, shows the current value and keeps the text typed, so nothing is lost. Invalid JSON
or TTL is a 400 that keeps the text as well. Deleting is conditional the same way.
A value too large to show (or to send back through a form) is described, not shown.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from statekeeper.codec import decode_json, encode_value
from statekeeper.constants import MAX_KEY_BYTES
from statekeeper.errors import ConflictError, InvalidTTL, NotFound, ValidationError
from statekeeper.http.ui.shell import MAX_FORM_BYTES, Shell, to
from statekeeper.state import Item
from statekeeper.state.validation import check_key

PAGE_SIZE = 50
MAX_SHOWN_BYTES = 256 * 1024  # a value larger than this (as JSON) is described, not shown
MAX_ARG_CHARS = 4 * MAX_KEY_BYTES  # a key, a prefix or a cursor, before the store checks it
DONE = {"saved": "Saved.", "deleted": "The key was deleted."}


class StatePages:
    def __init__(self, shell: Shell) -> None:
        self.shell = shell

    def routes(self) -> list[Route]:
        route = self.shell.route
        return [
            route("/ui/state", self.keys),
            route("/ui/state/item", self.item),
            route("/ui/state/save", self.save, methods=("POST",)),
            route("/ui/state/delete", self.delete, methods=("POST",)),
        ]

    async def keys(self, request: Request, session: str) -> Response:
        prefix = _arg(request, "prefix")
        cursor = _arg(request, "cursor")
        store = self.shell.app.state
        # Keys, ETags, expiries and stored sizes: no value is read, opened or decoded.
        entries, next_cursor = await store.entries(prefix, limit=PAGE_SIZE, cursor=cursor or None)
        now = self.shell.app.clock()
        rows = [
            {"item": entry,
             "size": "out of line" if entry.out_of_line else size_text(entry.stored_bytes),
             "ttl": None if entry.expires_at is None else max(0.0, entry.expires_at - now)}
            for entry in entries
        ]  # fmt: skip
        next_page = None
        if next_cursor is not None:
            next_page = _list_path(prefix, next_cursor)
        first_page = _list_path(prefix) if cursor else None
        return self.shell.page(
            "state.html", session, title="State", current="/ui/state", prefix=prefix,
            rows=rows, next_page=next_page, first_page=first_page,
            done=DONE.get(request.query_params.get("done", ""), ""),
        )  # fmt: skip

    async def item(self, request: Request, session: str) -> Response:
        key = check_key(_arg(request, "key"))
        done = DONE.get(request.query_params.get("done", ""), "")
        entry = await self.shell.app.state.entry(key)
        if entry is not None and entry.out_of_line:  # large: its value is not read here
            unread = Item(key, None, entry.etag, entry.expires_at)
            return self._item_page(session, key, unread, done=done, out_of_line=True)
        item = await self.shell.app.state.get(key)
        if item is None:
            raise NotFound(f"there is no key {key!r} (or it has expired)")
        return self._item_page(session, key, item, done=done)

    async def save(self, request: Request, session: str) -> Response:
        """Put the form's JSON under its key if the key still has the form's ETag (an
        empty ETag: only if the key does not exist, as after it was deleted)."""
        form = await self.shell.action(request, session)
        if isinstance(form, Response):
            return form
        key = check_key(form.get("key", ""))
        text, etag = form.get("value", ""), form.get("etag", "")
        ttl_text = form.get("ttl", "").strip()
        store = self.shell.app.state
        try:
            value = decode_json(text.encode(), "the value")
            ttl = _ttl(ttl_text)
            await store.put(key, value, if_match=etag or None, only_if_absent=not etag, ttl=ttl)
        except ConflictError:
            current = await store.get(key)
            what = "changed" if current is not None else "deleted (or expired)"
            return self._item_page(
                session, key, current, status=409, text=text, ttl=ttl_text,
                conflict=f"The value was {what} since this page loaded it: nothing was saved.",
            )  # fmt: skip
        except ValidationError as error:  # bad JSON, TTL or ETag; too large a value
            current = await store.get(key)
            return self._item_page(session, key, current, status=error.http_status, text=text,
                                   ttl=ttl_text, etag=etag, error=error.message)  # fmt: skip
        return to(_item_path(key, "saved"))

    async def delete(self, request: Request, session: str) -> Response:
        """Delete the form's key if it still has the form's ETag (and the box is ticked)."""
        form = await self.shell.action(request, session)
        if isinstance(form, Response):
            return form
        key = check_key(form.get("key", ""))
        etag = form.get("etag", "")
        store = self.shell.app.state
        if form.get("confirm") != "yes":
            raise ValidationError("tick the confirmation box to delete the key (it was not)")
        if not etag:
            raise ValidationError("the form carries no ETag: open the key's page again")
        try:
            await store.delete(key, if_match=etag)
        except ConflictError:
            current = await store.get(key)
            if current is None:
                raise NotFound(f"there is no key {key!r} any more (deleted or expired)") from None
            return self._item_page(
                session, key, current, status=409,
                conflict="The value was changed since this page loaded it: nothing was deleted.",
            )  # fmt: skip
        return to(_list_path(_folder(key), done="deleted"))

    def _item_page(
        self,
        session: str,
        key: str,
        item: Item | None,
        *,
        status: int = 200,
        text: str | None = None,
        ttl: str | None = None,
        etag: str | None = None,
        done: str = "",
        conflict: str = "",
        error: str = "",
        out_of_line: bool = False,
    ) -> Response:
        """The page of ``key`` showing ``item`` (None: it is gone). The form holds
        ``text`` and ``ttl`` when given (what was typed), else the item's; and ``etag``
        when given, else the item's (the one a save must match)."""
        now = self.shell.app.clock()
        value_text, size, remaining = None, 0, None
        if item is not None and out_of_line:
            size = MAX_SHOWN_BYTES + 1  # past the blob threshold, its size unread
            if item.expires_at is not None:
                remaining = max(0.0, item.expires_at - now)
        elif item is not None:
            size = _size(item.value)
            if size <= MAX_SHOWN_BYTES:
                value_text = json.dumps(item.value, indent=2, ensure_ascii=False)
            if item.expires_at is not None:
                remaining = max(0.0, item.expires_at - now)
        form_etag = etag if etag is not None else ("" if item is None else item.etag)
        if text is None and value_text is not None:
            text = value_text
            ttl = "" if remaining is None else str(max(1, round(remaining)))
        editable = text is not None and _fits_in_form(key, form_etag, text)
        return self.shell.page(
            "state_item.html", session, status=status, title=f"State: {key[:80]}",
            current="/ui/state", key=key, item=item,
            size_label="stored out of line" if out_of_line else size_text(size) + " as JSON",
            remaining=remaining, value_text=value_text, text=text or "", ttl=ttl or "",
            form_etag=form_etag, editable=editable, max_shown=size_text(MAX_SHOWN_BYTES),
            max_form=size_text(MAX_FORM_BYTES), done=done, conflict=conflict, error=error,
            back=_list_path(_folder(key)),
        )  # fmt: skip


def _arg(request: Request, name: str) -> str:
    """Query parameter ``name`` as given ("" when absent: keys may begin or end with
    spaces, so it is not stripped); a 400 when far longer than any key."""
    value = request.query_params.get(name, "")
    if len(value) > MAX_ARG_CHARS:
        raise ValidationError(f"{name} is longer than {MAX_ARG_CHARS} characters")
    return value


def _ttl(text: str) -> float | None:
    """A TTL typed in seconds ("" for none); the store checks its range."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidTTL(f"the TTL must be a number of seconds, got {text[:40]!r}") from None


def _size(value: Any) -> int:
    """Bytes of ``value`` as the store keeps it (compact JSON)."""
    return len(encode_value("", value, sys.maxsize))


def size_text(size: int) -> str:
    """A size in bytes as people read it."""
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    unit = "KiB" if size < 1024 * 1024 else "MiB"
    scaled = size / 1024 if unit == "KiB" else size / (1024 * 1024)
    return f"{scaled:.1f} {unit} ({size:,} bytes)"


def _fits_in_form(key: str, etag: str, text: str) -> bool:
    """Whether the edit form holding ``text`` is small enough to be sent back (a
    browser sends the textarea's line breaks as CR LF, and ``~`` escaped)."""
    fields = {"csrf": "0" * 64, "key": key, "etag": etag, "ttl": "0" * 24,
              "value": text.replace("\n", "\r\n")}  # fmt: skip
    encoded = urllib.parse.urlencode(fields, encoding="utf-8", errors="surrogatepass")
    return len(encoded) + 2 * text.count("~") <= MAX_FORM_BYTES


def _item_path(key: str, done: str = "") -> str:
    query = {"key": key, **({"done": done} if done else {})}
    return "/ui/state/item?" + urllib.parse.urlencode(query)


def _list_path(prefix: str, cursor: str = "", done: str = "") -> str:
    """The listing of the keys starting with ``prefix`` (from ``cursor``)."""
    query = {"prefix": prefix, "cursor": cursor, "done": done}
    given = urllib.parse.urlencode({name: value for name, value in query.items() if value})
    return "/ui/state" + (f"?{given}" if given else "")


def _folder(key: str) -> str:
    """The prefix of the keys beside ``key``: its part up to its last slash ("" if none)."""
    folder, slash, _ = key.rpartition("/")
    return folder + slash
