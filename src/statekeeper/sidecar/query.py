"""Dapr's state query API (alpha1) on statekeeper's store, the same for HTTP and gRPC.

A query document ``{"filter": ..., "sort": [...], "page": {"limit", "token"}}`` is
checked here and run by the database (``StateStore.query``; the typing rules are in
``storage/state_query.py``), over this app's keys only (``<app id>||...``, as the
store's ``keyPrefix`` says): the answer's keys come without the prefix.

- filter: one of ``EQ``, ``NEQ``, ``GT``, ``GTE``, ``LT``, ``LTE`` ``{"a.b": value}``,
  ``IN`` ``{"a.b": [values]}``, ``AND`` / ``OR`` ``[filters]``; a key is a dotted path
  into the JSON value (``person.org``, no ``value.`` in front), each part a member name;
- sort: ``[{"key": "a.b", "order": "ASC" | "DESC"}]``, then by key;
- page: ``limit`` (1 to 1000; 0 or none: 1000) and ``token``: the answer carries a
  token while more results follow. The token holds the last row's position (keyset
  paging): a page never repeats or skips a row that stayed put, whatever is written
  meanwhile; a row whose sort value changed between pages is seen where it now is.

Values stored as bytes (``{"$bytes": ...}``) and values wrapped as ``{"$json": v}``
match no field filter; paths that start with ``$bytes`` or ``$json`` are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from statekeeper.codec import decode_value
from statekeeper.errors import InvalidCursor, InvalidFilter, StatekeeperError
from statekeeper.sidecar.errors import DaprError, Grpc
from statekeeper.sidecar.state import DaprState
from statekeeper.sidecar.values import BYTES, JSON
from statekeeper.storage.state_query import (
    AnyOf,
    Combined,
    Compare,
    Filter,
    Position,
    SortKey,
    SortValue,
    StateQuery,
)

CODE = "ERR_STATE_QUERY"
MAX_PAGE_LIMIT = 1000
MAX_FILTER_DEPTH = 8
MAX_CONDITIONS = 100
MAX_IN_VALUES = 1000
MAX_SORT_KEYS = 4
MAX_PATH_CHARS = 512
MAX_TOKEN_CHARS = 1 << 20
_COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE")
_TOKEN_VERSION = 1


@dataclass
class QueryItem:
    """One result: the key without its prefix, the value as stored, its ETag."""

    key: str
    value: Any
    etag: str
    error: str = ""


@dataclass
class QueryResult:
    results: list[QueryItem] = field(default_factory=list)
    token: str | None = None


async def run_query(
    state: DaprState, store: str, query: dict[str, Any], metadata: Mapping[str, str]
) -> QueryResult:
    """One page of ``query`` on ``store`` for ``state``'s app (metadata is accepted
    and, as Dapr's SQL stores do, not used)."""
    component = state.component(store)
    if not isinstance(query, dict):
        raise failed(store, "the query must be a JSON object")
    filter_ = _filter_of(store, query.get("filter"))
    sort = _sort_of(store, query.get("sort"))
    limit, token = _page_of(store, query.get("page"))
    prefix = component.key_prefix(state.app_id)
    fingerprint = _fingerprint(store, prefix, query.get("filter"), sort)
    after = None if token is None else _decode_token(store, token, fingerprint, prefix)
    request = StateQuery(filter_, sort, limit + 1, after)
    try:
        rows = await state.store(component).query(request, prefix=prefix)
    except (InvalidFilter, InvalidCursor) as problem:
        raise failed(store, problem.message) from None
    except StatekeeperError as problem:
        status = 400 if problem.http_status < 500 else 500
        raise failed(store, problem.message, status) from None
    more = len(rows) > limit
    rows = rows[:limit]
    try:
        results = [
            QueryItem(r.key[len(prefix) :], decode_value(r.key, r.value), r.etag) for r in rows
        ]
    except StatekeeperError as problem:
        raise failed(store, problem.message, 500) from None
    next_token = _encode_token(fingerprint, prefix, rows[-1].position) if more and rows else None
    return QueryResult(results, next_token)


def failed(store: str, detail: str, status: int = 400) -> DaprError:
    """Dapr's query error: ``state store <name> query failed: <detail>``."""
    return DaprError(
        CODE, f"state store {store} query failed: {detail}", http_status=status,
        grpc=Grpc.INVALID_ARGUMENT if status < 500 else Grpc.INTERNAL,
    )  # fmt: skip


# --- the query document -------------------------------------------------------------


def _filter_of(store: str, document: object) -> Filter | None:
    if document is None:
        return None
    budget = [0, 0]  # conditions, IN values
    return _node(store, document, 0, budget)


def _node(store: str, node: object, depth: int, budget: list[int]) -> Filter:
    if depth >= MAX_FILTER_DEPTH:
        raise failed(store, f"the filter is nested deeper than {MAX_FILTER_DEPTH} levels")
    if not isinstance(node, dict) or len(node) != 1:
        raise failed(store, 'a filter is an object with one operator, like {"EQ": {...}}')
    ((op, operand),) = node.items()
    if op in ("AND", "OR"):
        if not isinstance(operand, list) or not operand:
            raise failed(store, f"{op} takes a non-empty array of filters")
        parts = tuple(_node(store, part, depth + 1, budget) for part in operand)
        return Combined(op, parts)
    if op not in (*_COMPARISONS, "IN"):
        raise failed(
            store,
            f"unsupported filter operator {str(op)[:40]!r}: "
            "EQ, NEQ, GT, GTE, LT, LTE, IN, AND or OR",
        )
    if not isinstance(operand, dict) or len(operand) != 1:
        raise failed(store, f"{op} takes an object of one key and its value")
    ((key, value),) = operand.items()
    path = _path(store, key)
    budget[0] += 1
    if budget[0] > MAX_CONDITIONS:
        raise failed(store, f"a filter holds at most {MAX_CONDITIONS} conditions")
    if op == "IN":
        if not isinstance(value, list) or not value:
            raise failed(store, f"IN takes a non-empty array of values for {key!r}")
        budget[1] += len(value)
        if budget[1] > MAX_IN_VALUES:
            raise failed(store, f"the IN filters hold at most {MAX_IN_VALUES} values in all")
        return AnyOf(path, tuple(value))
    return Compare(op, path, value)


def _path(store: str, key: object) -> tuple[str, ...]:
    """A dotted key (``a.b``) as the member names it walks."""
    if not isinstance(key, str) or not key or len(key) > MAX_PATH_CHARS:
        raise failed(store, f"a key is a dotted path of 1 to {MAX_PATH_CHARS} characters")
    path = tuple(key.split("."))
    if any(not part for part in path):
        raise failed(store, f"key {key[:80]!r} has an empty part")
    if path[0] in (BYTES, JSON):
        raise failed(store, f"key {key[:80]!r}: {path[0]} is how values are wrapped, not data")
    return path


def _sort_of(store: str, document: object) -> tuple[SortKey, ...]:
    if document is None:
        return ()
    if not isinstance(document, list) or len(document) > MAX_SORT_KEYS:
        raise failed(store, f"sort is an array of at most {MAX_SORT_KEYS} keys")
    keys = []
    for entry in document:
        if not isinstance(entry, dict):
            raise failed(store, 'a sort entry is {"key": "a.b", "order": "ASC" or "DESC"}')
        order = entry.get("order")
        if order in (None, ""):
            order = "ASC"
        if not isinstance(order, str) or order.upper() not in ("ASC", "DESC"):
            raise failed(store, f"sort order {str(order)[:40]!r}: ASC or DESC")
        keys.append(SortKey(_path(store, entry.get("key")), order.upper() == "DESC"))
    return tuple(keys)


def _page_of(store: str, document: object) -> tuple[int, str | None]:
    if document is None:
        return MAX_PAGE_LIMIT, None
    if not isinstance(document, dict):
        raise failed(store, 'page is {"limit": n, "token": "..."}')
    limit = document.get("limit")
    if limit is None or limit == 0:
        limit = MAX_PAGE_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise failed(store, f"page limit is an integer from 0 to {MAX_PAGE_LIMIT}")
    token = document.get("token")
    if token in (None, ""):
        return limit, None
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise failed(store, "page token is a string this API returned")
    return limit, token


# --- page tokens --------------------------------------------------------------------


def _fingerprint(store: str, prefix: str, filter_doc: object, sort: tuple[SortKey, ...]) -> str:
    """What a token is bound to: the store, the app's keys, the filter and the sort."""
    shape = [store, prefix, filter_doc, [[list(k.path), k.descending] for k in sort]]
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _encode_token(fingerprint: str, prefix: str, position: Position) -> str:
    body = [
        _TOKEN_VERSION,
        fingerprint,
        position.key[len(prefix) :],
        [list(value) for value in position.sort_values],
    ]
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(store: str, token: str, fingerprint: str, prefix: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeError, RecursionError):
        raise failed(store, "the page token is not one this API returned") from None
    if not (isinstance(body, list) and len(body) == 4 and body[0] == _TOKEN_VERSION):
        raise failed(store, "the page token is not one this API returned")
    _, bound_to, key, values = body
    if bound_to != fingerprint:
        raise failed(store, "the page token belongs to another query (filter or sort)")
    if not isinstance(key, str) or not isinstance(values, list):
        raise failed(store, "the page token is not one this API returned")
    sort_values: list[SortValue] = []
    for value in values:
        if not (isinstance(value, list) and len(value) == 3):
            raise failed(store, "the page token is not one this API returned")
        sort_values.append((value[0], value[1], value[2]))
    return Position(prefix + key, tuple(sort_values))  # checked again by storage
