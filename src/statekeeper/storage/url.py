"""Database URLs: which backend, where, and its options.

``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``;
``postgresql://user@host:port/db?schema=name&pool_max=16`` (``postgres://`` too), with
libpq's TLS options (``sslmode=verify-full&sslrootcert=ca.pem``, ...) passed to the driver.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from statekeeper.constants import ENV_DATABASE_URL
from statekeeper.errors import InvalidDatabaseURL
from statekeeper.identifiers import check_schema_name

DEFAULT_URL = "sqlite:///.statekeeper/state.db"

_SQLITE_OPTIONS = {"synchronous", "busy_timeout"}
MAX_TCP_USER_TIMEOUT = 3_600_000  # an hour, in milliseconds
_POSTGRES_OPTIONS = {
    "schema",
    "pool_min",
    "pool_max",
    "connect_timeout",
    "max_staleness",
    "tcp_user_timeout",
}
# libpq's TLS options, passed to the driver as they are (after the checks below).
_POSTGRES_TLS_OPTIONS = {
    "sslmode": {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"},
    "sslnegotiation": {"postgres", "direct"},
    "ssl_min_protocol_version": {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
    "ssl_max_protocol_version": {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"},
    "sslrootcert": None,  # file names
    "sslcert": None,
    "sslkey": None,
    "sslcrl": None,
    "sslpassword": None,  # hidden in redacted()
}
# libpq's connection options for where to connect, passed to the driver as they are:
# ``host`` (a Unix socket's folder), ``port``, and which of several hosts to take.
_POSTGRES_HOST_OPTIONS: dict[str, set[str] | None] = {
    "host": None,
    "port": None,
    "target_session_attrs": {
        "any",
        "primary",
        "standby",
        "prefer-standby",
        "read-write",
        "read-only",
    },
}
_SYNCHRONOUS = {"full", "normal", "extra"}
_PASSWORD_OPTION = re.compile(r"(?i)((?:^|[?&;])(?:ssl)?password=)[^&;]*")


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed, validated database URL."""

    scheme: str  # "sqlite" or "postgres"
    path: str = ""  # SQLite file path
    dsn: str = field(default="", repr=False)  # PostgreSQL DSN (with its password), no own options
    options: dict[str, str] = field(default_factory=dict)

    def option_int(self, name: str, default: int) -> int:
        return int(self.options.get(name, default))

    def redacted(self) -> str:
        """The URL with any password hidden, for logs and errors."""
        if self.scheme == "sqlite":
            return f"sqlite:///{self.path}"
        return redact(self.dsn)

    def described(self) -> str:
        """``redacted()`` with the PostgreSQL schema, for start banners: two deployments
        on one database and different schemas say which is which."""
        schema = self.options.get("schema")
        if self.scheme == "sqlite" or not schema:
            return self.redacted()
        base = self.redacted()
        return f"{base}{'&' if '?' in base else '?'}schema={schema}"


def redact(url: str) -> str:
    """``url`` (any scheme: database, cache) with its password hidden, for logs and
    errors; works on malformed URLs too. Everything before the last ``@`` is taken as
    user information, so a password holding an unencoded ``/``, ``?``, ``#`` or ``@``
    is hidden whole (at worst, more than the password is hidden)."""
    head, sep, rest = url.partition("://")
    if not sep:  # no scheme: whatever comes before an "@" may be a password
        userinfo, at, host = url.rpartition("@")
        return _PASSWORD_OPTION.sub(r"\1***", f"***@{host}" if at else url)
    userinfo, at, after = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.split(':', 1)[0]}:***@{after}"
    return f"{head}://" + _PASSWORD_OPTION.sub(r"\1***", rest)


def at_after_host(url: str) -> bool:
    """Whether ``url`` has an ``@`` after its host part (which ends at the first ``/``,
    ``?`` or ``#`` after the scheme): a password holding one of those characters
    unencoded, which a URL parser would take for a host, port, path or query."""
    rest = url.partition("://")[2]
    end = min((rest.find(c) for c in "/?#" if c in rest), default=len(rest))
    return "@" in rest[end:]


AT_AFTER_HOST = (
    "has an '@' after its host; percent-encode '/', '?', '#' and '@' in a user name or "
    "password (%2F, %3F, %23, %40), and any other '@' (%40)"
)


def resolve(url: str | None) -> str:
    """The URL in force: the argument, else the environment, else the default."""
    return url or os.environ.get(ENV_DATABASE_URL) or DEFAULT_URL


def parse(url: str) -> DatabaseURL:
    """Parse and validate ``url``; raise InvalidDatabaseURL naming what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidDatabaseURL("the database URL is empty")
    if "://" not in url:
        raise InvalidDatabaseURL(
            f"database URL {redact(url)!r} has no scheme; expected sqlite:///PATH or "
            "postgresql://USER@HOST/DB"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        return _parse_sqlite(url)
    if scheme in ("postgres", "postgresql"):
        return _parse_postgres(url)
    raise InvalidDatabaseURL(
        f"unsupported database URL scheme {scheme!r}; use sqlite or postgresql", scheme=scheme
    )


def _options(query: str, allowed: set[str], url: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InvalidDatabaseURL(
            f"unknown option {unknown[0]!r} in database URL; allowed: {', '.join(sorted(allowed))}"
        )
    for name, value in options.items():
        if name in {"busy_timeout", "pool_min", "pool_max", "connect_timeout"} and (
            not (value.isascii() and value.isdigit()) or int(value) <= 0
        ):
            raise InvalidDatabaseURL(f"option {name} must be a positive integer, got {value!r}")
        if name == "tcp_user_timeout" and not (
            value.isascii() and value.isdigit() and int(value) <= MAX_TCP_USER_TIMEOUT
        ):
            raise InvalidDatabaseURL(
                "option tcp_user_timeout must be milliseconds, 0 (the system's) to "
                f"{MAX_TCP_USER_TIMEOUT}, got {value!r}"
            )
    return options


def _parse_sqlite(url: str) -> DatabaseURL:
    rest = url.split("://", 1)[1]
    path, _, query = rest.partition("?")
    if not path.startswith("/") or path == "/":
        raise InvalidDatabaseURL(
            f"SQLite URL {redact(url)!r} needs a file path: sqlite:///relative.db or sqlite:////abs.db"
        )
    path = path[1:]
    if path in (":memory:", "") or path.endswith("/"):
        raise InvalidDatabaseURL(
            f"SQLite URL {redact(url)!r} must name a file (in-memory is not durable)"
        )
    options = _options(query, _SQLITE_OPTIONS, url)
    sync = options.get("synchronous", "full").lower()
    if sync not in _SYNCHRONOUS:
        raise InvalidDatabaseURL(
            f"option synchronous must be one of {', '.join(sorted(_SYNCHRONOUS))}, got {sync!r}"
        )
    return DatabaseURL("sqlite", path=path, options=options)


def _check_port(host: str, url: str) -> None:
    """``host[:port]`` (one of a URL's hosts): its port, if any, a number from 1 to 65535."""
    if host.startswith("["):  # an IPv6 address
        host = host.partition("]")[2]
    port = host.partition(":")[2] if ":" in host else None
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise InvalidDatabaseURL(
            f"PostgreSQL URL {redact(url)!r} has a port that is not a number from 1 to 65535"
        )


def _parse_postgres(url: str) -> DatabaseURL:
    # The parser's own messages are never shown: they may echo part of a password.
    if at_after_host(url):
        raise InvalidDatabaseURL(f"PostgreSQL URL {redact(url)!r} {AT_AFTER_HOST}")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidDatabaseURL(
            f"PostgreSQL URL {redact(url)!r} is malformed: its host cannot be parsed"
        ) from None
    hosts = parts.netloc.rpartition("@")[2].split(",")  # several: tried in turn
    for host in hosts:
        _check_port(host, url)
    if not parts.hostname and not parts.query:
        raise InvalidDatabaseURL(f"PostgreSQL URL {redact(url)!r} names no host")
    passed = {**_POSTGRES_TLS_OPTIONS, **_POSTGRES_HOST_OPTIONS}
    options = _options(parts.query, _POSTGRES_OPTIONS | set(passed), url)
    passed_on = {name: options.pop(name) for name in passed if name in options}
    for port in passed_on["port"].split(",") if "port" in passed_on else ():  # one per host
        _check_port(f":{port}", url)
    for name, value in passed_on.items():
        allowed = passed[name]
        if allowed is not None and value not in allowed:
            raise InvalidDatabaseURL(
                f"option {name} must be one of {', '.join(sorted(allowed))}, got {value!r}"
            )
        if allowed is None and not value:
            raise InvalidDatabaseURL(f"option {name} needs a value")
    schema = options.get("schema")
    if schema is not None:
        check_schema_name(schema)
    if "max_staleness" in options:  # a replica's (storage/replica.py): seconds
        try:
            staleness = float(options["max_staleness"])
        except ValueError:
            staleness = -1.0
        if not 0 < staleness < float("inf"):
            raise InvalidDatabaseURL("option max_staleness must be a positive number of seconds")
    pool_max = int(options.get("pool_max", 16))
    pool_min = int(options.get("pool_min", min(2, pool_max)))
    if pool_min > pool_max:
        raise InvalidDatabaseURL(f"option pool_min ({pool_min}) exceeds pool_max ({pool_max})")
    options.setdefault("pool_min", str(pool_min))
    dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(passed_on, safe="/")))
    return DatabaseURL("postgres", dsn=dsn, options=options)
