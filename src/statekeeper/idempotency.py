"""Idempotency by key: the first call runs, repeats get its stored result.

    result = await app.idempotency.run("charge:order-42", charge, order, amount)

    @app.idempotent(key=lambda order, amount: f"charge:{order}")   # App.idempotent
    async def charge(order, amount): ...

The payload (the arguments, unless given) is fingerprinted: the same key with a
different payload is refused (IdempotencyKeyReused, 422). While the first call
runs, a duplicate gets IdempotencyInProgress (409), or waits for the result with
``wait=True``. The running call holds a lease it renews; if its process dies, the
lease lapses and the next call with the key takes over and runs. A call that
raises stores nothing, so it can be retried. With a keyring the stored result is
sealed; one that cannot be opened is a DecryptionError for the repeat (the call is
not run again).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from statekeeper.blobs import Payloads
from statekeeper.errors import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    StatekeeperError,
    ValidationError,
)
from statekeeper.sealing import IDEMPOTENCY
from statekeeper.state.validation import check_key
from statekeeper.storage.contracts import Storage

log = logging.getLogger("statekeeper.idempotency")

P = ParamSpec("P")
T = TypeVar("T")
_UNSET: Any = object()
DEFAULT_TTL = 24 * 3600.0


def fingerprint(payload: Any) -> str:
    """A stable digest of a JSON-able payload (key order does not matter)."""
    try:
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=repr)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"the idempotency payload cannot be fingerprinted: {exc}") from None
    return hashlib.sha256(text.encode()).hexdigest()


class IdempotentDecorator(Protocol):
    """``@app.idempotent(key)``: the decorated function keeps its parameters and
    returns its result, awaited (an ``async def`` whether ``fn`` is one or a ``def``)."""

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]], /) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T], /) -> Callable[P, Coroutine[Any, Any, T]]: ...


class Idempotency:
    def __init__(
        self,
        backend: Storage,
        namespace: str,
        clock: Callable[[], float],
        payloads: Payloads,
        *,
        lease: float = 30.0,
    ) -> None:
        self._backend = backend
        self._namespace = namespace
        self._clock = clock
        self.lease = lease
        # Seals results; those above the threshold go out of line (blobs).
        self._payloads = payloads

    # Typed by ``fn``'s result (awaited for an ``async def``); its arguments are not
    # checked, as ``run``'s own keywords cannot sit beside a ParamSpec's.
    @overload
    async def run(
        self,
        key: str,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        payload: Any = _UNSET,
        ttl: float = DEFAULT_TTL,
        wait: bool = False,
        wait_timeout: float = 60.0,
        **kwargs: Any,
    ) -> T: ...

    @overload
    async def run(
        self,
        key: str,
        fn: Callable[..., T],
        *args: Any,
        payload: Any = _UNSET,
        ttl: float = DEFAULT_TTL,
        wait: bool = False,
        wait_timeout: float = 60.0,
        **kwargs: Any,
    ) -> T: ...

    async def run(
        self,
        key: str,
        fn: Callable[..., Any],
        *args: Any,
        payload: Any = _UNSET,
        ttl: float = DEFAULT_TTL,
        wait: bool = False,
        wait_timeout: float = 60.0,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` (``def`` or ``async def``) once for ``key``;
        repeats return its (JSON) result."""
        check_key(key)
        if not isinstance(ttl, int | float) or isinstance(ttl, bool) or ttl <= 0:
            raise ValidationError(f"ttl must be a positive number of seconds, got {ttl!r}")
        digest = fingerprint([list(args), kwargs] if payload is _UNSET else payload)
        deadline = asyncio.get_running_loop().time() + wait_timeout
        pause = 0.01
        while True:
            owner = secrets.token_hex(12)
            now = self._clock()
            claimed = await self._backend.idempotency.claim(
                self._namespace, key, fingerprint=digest, owner=owner,
                lease_expires_at=now + self.lease, expires_at=now + ttl, now=now,
            )  # fmt: skip
            if claimed:
                return await self._run_owned(key, owner, ttl, fn, args, kwargs)
            record = await self._backend.idempotency.get(self._namespace, key, self._clock())
            if record is None:
                continue  # it expired or was abandoned in between: claim again
            if record.fingerprint != digest:
                raise IdempotencyKeyReused(
                    f"idempotency key {key!r} was used before with a different payload", key=key
                )
            if record.state == "done":
                if record.result is None:
                    return None
                where = (IDEMPOTENCY, self._namespace, key, "result")
                return await self._payloads.value(record.result, None, key, *where)
            if not wait:
                raise IdempotencyInProgress(
                    f"a call with idempotency key {key!r} is still running",
                    key=key,
                    retry_after=max(0.0, (record.lease_expires_at or now) - now),
                )
            if asyncio.get_running_loop().time() > deadline:
                raise IdempotencyInProgress(
                    f"a call with idempotency key {key!r} was still running after {wait_timeout} s",
                    key=key,
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def _run_owned(
        self,
        key: str,
        owner: str,
        ttl: float,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        heartbeat = asyncio.create_task(self._keep_lease(key, owner))
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(*args, **kwargs)
            else:
                result = await asyncio.to_thread(fn, *args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            data = self._payloads.encode(f"result of idempotent call {key!r}", result)
            data = await self._payloads.seal(data, IDEMPOTENCY, self._namespace, key, "result")
        except BaseException:
            heartbeat.cancel()
            with contextlib.suppress(StatekeeperError):
                await asyncio.shield(self._backend.idempotency.abandon(self._namespace, key, owner))
            raise
        heartbeat.cancel()
        stored = await self._backend.idempotency.complete(
            self._namespace, key, owner, data, self._clock() + ttl
        )
        if not stored:
            await self._payloads.discard([data])  # its blob, if it has one
            log.warning(
                "idempotent call finished after its lease lapsed; its result was not stored",
                extra={"key": key},
            )
        return result

    async def _keep_lease(self, key: str, owner: str) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                kept = await self._backend.idempotency.extend(
                    self._namespace, key, owner, self._clock() + self.lease
                )
            except StatekeeperError as error:
                log.warning(
                    "idempotency lease not renewed", extra={"key": key, "error": error.message}
                )
                continue
            if not kept:
                return
