"""Workflow search: listings filtered on status, name, creation time and searchable
attributes, paged newest first with keyset cursors; counts by status and by name; a
workflow's attributes (docs/workflow-search.md).

    page = await app.workflows.list(attributes={"customer": "c-7", "amount": {"gte": 10}},
                                    created_after=yesterday, status="failed")
    await app.workflows.counts(name="order")   # {"total": .., "by_status": .., "by_name": ..}

A filter on attributes is driven by one attribute's index range (an equality first,
which reads in the listing's order and stops when the page is full); every other filter
is checked on the rows found. Without attribute filters, the listing is the plain one
(``wf_list*``) with the time range folded into its cursor.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from statekeeper.constants import MAX_LIST_LIMIT, WORKFLOW_STATUSES
from statekeeper.errors import InvalidCursor, InvalidFilter, InvalidWorkflowName, StatekeeperError
from statekeeper.identifiers import check_workflow_id, check_workflow_name, shown
from statekeeper.storage.search_ops import OPEN_HIGH, OPEN_LOW, Filters
from statekeeper.workflows.attributes import compile_filters, names_of, stored, time_of

if TYPE_CHECKING:
    from statekeeper.storage.contracts import Storage

FIRST_PAGE = (math.inf, "")
MAX_CURSOR = 400  # characters: a time and a workflow id of up to 200 characters, base64
KEYS = ("id", "name", "status", "created_at", "updated_at", "version")


@dataclass(frozen=True, slots=True)
class Query:
    """A search as given (checked): what ``list``, ``counts`` and ``bulk`` select."""

    status: str | None = None
    name: str | None = None
    attributes: Mapping[str, Any] | None = None
    created_after: Any = None
    created_before: Any = None

    @property
    def empty(self) -> bool:
        """Whether it selects every workflow (no filter at all)."""
        return not self.attributes and all(
            v is None for v in (self.status, self.name, self.created_after, self.created_before)
        )


def check_query(query: Query) -> Query:
    """``query`` with its status and name checked (InvalidFilter naming the parameter)."""
    if query.status is not None and query.status not in WORKFLOW_STATUSES:
        raise InvalidFilter(
            f"invalid status filter {shown(query.status)}: a status is one of "
            f"{', '.join(WORKFLOW_STATUSES)}"
        )
    if query.name is not None:
        try:
            check_workflow_name(query.name)
        except InvalidWorkflowName as error:
            raise InvalidFilter(f"invalid name filter: {error.message}") from None
    if query.attributes is not None:
        names_of(query.attributes)
    return query


def check_limit(limit: object, maximum: int = MAX_LIST_LIMIT, what: str = "limit") -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise InvalidFilter(f"{what} must be an integer from 1 to {maximum}, got {shown(limit)}")
    return limit


def encode_cursor(created_at: float, id: str) -> str:
    """The cursor of the page after the row (created_at, id)."""
    data = json.dumps([created_at, id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (created_at, id) a cursor stands for; InvalidCursor if it is none."""
    try:
        if len(cursor) > MAX_CURSOR:
            raise ValueError("too long")
        padded = cursor + "=" * (-len(cursor) % 4)
        data = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        created_at, id = json.loads(data)
        if not isinstance(created_at, int | float) or not math.isfinite(created_at):
            raise ValueError(created_at)
        return float(created_at), check_workflow_id(id)
    except (binascii.Error, ValueError, TypeError, UnicodeError, StatekeeperError):
        raise InvalidCursor(f"cursor {shown(cursor)} is not one a workflow listing gave") from None


class WorkflowSearch:
    """``app.workflows.list`` with filters, ``counts`` and ``attributes``."""

    def __init__(self, backend: Callable[[], Storage], namespace: str) -> None:
        self._backend_of = backend
        self.namespace = namespace

    async def filters(self, query: Query) -> Filters | None:
        """The storage filters of ``query``; None when it can match nothing (an
        attribute no workflow has, or an empty time range)."""
        check_query(query)
        after = OPEN_LOW
        before = OPEN_HIGH
        if query.created_after is not None:
            after = time_of(query.created_after, "created_after")
        if query.created_before is not None:
            before = time_of(query.created_before, "created_before")
        if after >= before:
            return None
        compiled = []
        if query.attributes:
            names = names_of(query.attributes)
            kinds = await self._backend_of().search.kinds(self.namespace, names)
            found = compile_filters(query.attributes, kinds)
            if found is None:
                return None
            compiled = found
        return Filters(compiled, query.status, query.name, after, before)

    async def list(
        self, query: Query, *, limit: int = 100, before: tuple[float, str] = FIRST_PAGE
    ) -> list[dict[str, Any]]:
        """Workflows matching ``query``, newest first, created before the cursor
        ``before`` (the last row's (created_at, id))."""
        check_limit(limit)
        filters = await self.filters(query)
        if filters is None:
            return []
        start = min(before, (filters.before, ""))
        backend = self._backend_of()
        if filters.attributes:
            rows = await backend.search.list(self.namespace, filters, before=start, limit=limit)
        else:
            rows = await backend.workflows.list(
                self.namespace, status=filters.status, name=filters.name, before=start,
                limit=limit,
            )  # fmt: skip
            # Newest first: the rows created before the range's start end the listing.
            rows = [row for row in rows if row[3] >= filters.after]
        return [dict(zip(KEYS, row, strict=True)) for row in rows]

    async def counts(self, query: Query) -> dict[str, Any]:
        """How many workflows match ``query``: ``total``, ``by_status`` (every status,
        zeros included) and ``by_name`` (the names that have any)."""
        filters = await self.filters(query)
        rows = [] if filters is None else await self._backend_of().search.counts(
            self.namespace, filters
        )  # fmt: skip
        by_status = dict.fromkeys(WORKFLOW_STATUSES, 0)
        by_name: dict[str, int] = {}
        for status, name, count in rows:
            by_status[status] = by_status.get(status, 0) + count
            by_name[name] = by_name.get(name, 0) + count
        return {
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_name": dict(sorted(by_name.items())),
        }

    async def attributes(self, id: str) -> dict[str, Any]:
        """The attributes workflow ``id`` set (its last value of each), by name."""
        check_workflow_id(id)
        rows = await self._backend_of().search.attributes(self.namespace, id)
        return {name: stored(kind, text, number) for name, kind, text, number in rows}
