"""What both adapters share: the errors of failed conditions, listing arguments,
and the positional argument orders their hot paths rely on."""

from __future__ import annotations

from typing import Any

from statekeeper.errors import AlreadyExists, ConflictError, TransactionConflict
from statekeeper.storage.base import WriteOp
from statekeeper.storage.queries import Query


def etag_mismatch(key: str, if_match: str | None) -> ConflictError:
    return ConflictError(
        f"key {key!r} does not match ETag {if_match!r}", key=key, if_match=if_match
    )


def key_exists(key: str) -> AlreadyExists:
    return AlreadyExists(f"key {key!r} already exists", key=key)


def transaction_conflict(index: int, op: WriteOp, cause: ConflictError) -> TransactionConflict:
    """The error of a transaction whose op ``index`` failed its condition with ``cause``."""
    return TransactionConflict(
        f"transaction not applied: operation {index} ({op.kind} {op.key!r}): {cause.message}",
        index=index,
        key=op.key,
        reason=cause.code,
    )


def list_args(
    query: Query,
    namespace: str,
    *,
    after: str,
    low: str,
    high: str | None,
    limit: int,
    now: float,
) -> tuple[Any, ...]:
    return query.args(
        namespace=namespace,
        after=after,
        low=low,
        high_set=0 if high is None else 1,
        high=high or "",
        now=now,
        limit=limit,
    )


def check_positional_orders(queries: dict[str, Query]) -> None:
    """The write paths pass arguments by position for speed; fail at import if a
    ``.sql`` edit changed an order they assume."""
    put = ("namespace", "key", "value", "etag", "expires_at", "key_id")
    expected = {
        "state_get": ("namespace", "key", "now"),
        "state_put": put,
        "state_put_if_absent": (*put, "now"),
        "state_put_if_match": (
            "value", "etag", "expires_at", "key_id", "namespace", "key", "if_match", "now",
        ),
        "state_delete": ("namespace", "key"),
        "state_delete_if_match": ("namespace", "key", "if_match", "now"),
    }  # fmt: skip
    for name, params in expected.items():
        if queries[name].params != params:
            raise RuntimeError(f"query {name} takes {queries[name].params}, code assumes {params}")
