"""The one place where driver errors become statekeeper errors.

Errors are mapped by SQLite result code name and PostgreSQL SQLSTATE, never by
message text; the driver's exception stays attached as ``__cause__``.
"""

from __future__ import annotations

import sqlite3

from statekeeper import errors

# SQLite primary result codes (the part before the first "_" after "SQLITE_"),
# from the name that sqlite3 puts on every error.
_SQLITE_PRIMARY: dict[str, type[errors.StatekeeperError]] = {
    "SQLITE_BUSY": errors.DatabaseBusy,
    "SQLITE_LOCKED": errors.DatabaseBusy,
    "SQLITE_FULL": errors.StorageFull,
    "SQLITE_CANTOPEN": errors.DatabaseUnavailable,
    "SQLITE_PERM": errors.DatabaseUnavailable,
    "SQLITE_READONLY": errors.DatabaseUnavailable,
    "SQLITE_IOERR": errors.StorageError,
    "SQLITE_CORRUPT": errors.DatabaseCorrupt,
    "SQLITE_NOTADB": errors.DatabaseCorrupt,
    "SQLITE_CONSTRAINT": errors.ConflictError,
    "SQLITE_TOOBIG": errors.ValueTooLarge,
}

# PostgreSQL SQLSTATE classes (first two characters), then exact codes.
_PG_CLASS: dict[str, type[errors.StatekeeperError]] = {
    "08": errors.DatabaseUnavailable,  # connection exception
    "28": errors.DatabaseUnavailable,  # invalid authorization
    "3D": errors.DatabaseUnavailable,  # database does not exist
    "53": errors.StorageFull,  # insufficient resources
    "57": errors.DatabaseUnavailable,  # operator intervention (shutdown)
    "40": errors.ConflictError,  # serialization failure, deadlock
    "23": errors.ConflictError,  # integrity constraint violation
    "42": errors.SchemaError,  # syntax error or missing object
    "XX": errors.DatabaseCorrupt,  # internal error, data corrupted
}
_PG_EXACT: dict[str, type[errors.StatekeeperError]] = {
    "SK409": errors.ConflictError,  # sk_state_apply: an ETag condition failed
    "SK412": errors.AlreadyExists,  # sk_state_apply: an only-if-absent key exists
    "SK410": errors.LeaseLost,  # sk_commit: a lease or fence is no longer held
    "SK411": errors.ConflictError,  # sk_events_append: a wrong expected version
    "SK413": errors.AlreadyTracked,  # sk_commit_events: a tracking position not moving up
    "53300": errors.DatabaseUnavailable,  # too many connections
    "55P03": errors.DatabaseBusy,  # lock not available
    "57014": errors.StorageError,  # query cancelled (statement timeout)
}


def sqlite_error(exc: sqlite3.Error, what: str) -> errors.StatekeeperError:
    """A statekeeper error for a sqlite3 error raised while doing ``what``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    primary = "_".join(name.split("_")[:2])
    kind = _SQLITE_PRIMARY.get(name) or _SQLITE_PRIMARY.get(primary) or errors.StorageError
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError) and not name:
        kind = errors.StorageError
    error = kind(f"{what}: {exc}", driver_code=name or type(exc).__name__)
    error.__cause__ = exc
    return error


def postgres_error(exc: BaseException, what: str) -> errors.StatekeeperError:
    """A statekeeper error for an asyncpg or socket error raised while doing ``what``."""
    sqlstate = getattr(exc, "sqlstate", None)
    kind: type[errors.StatekeeperError]
    if isinstance(sqlstate, str) and sqlstate:
        kind = _PG_EXACT.get(sqlstate) or _PG_CLASS.get(sqlstate[:2]) or errors.StorageError
        code = sqlstate
    elif isinstance(exc, OSError | TimeoutError | ConnectionError):
        kind, code = errors.DatabaseUnavailable, type(exc).__name__
    elif type(exc).__module__.startswith("asyncpg") and (
        "Connection" in (name := type(exc).__name__)
        or name in ("TargetServerAttributeNotMatched", "InternalClientError")
    ):
        # asyncpg raises these client-side, without a SQLSTATE, when a connection drops
        # or is left in a broken state by its server's crash, or no host of a multi-host
        # URL is of the kind asked for (target_session_attrs).
        kind, code = errors.DatabaseUnavailable, type(exc).__name__
    else:
        kind, code = errors.StorageError, type(exc).__name__
    details: dict[str, object] = {"driver_code": code}
    if getattr(exc, "detail", None):
        details["detail"] = exc.detail  # type: ignore[attr-defined]
    error = kind(f"{what}: {exc}", **details)
    error.__cause__ = exc
    return error
