from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from statekeeper.errors import InvalidDatabaseURL
from statekeeper.storage.url import DEFAULT_URL, parse, resolve


def test_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATEKEEPER_DATABASE_URL", raising=False)
    assert resolve(None) == DEFAULT_URL
    monkeypatch.setenv("STATEKEEPER_DATABASE_URL", "sqlite:///x.db")
    assert resolve(None) == "sqlite:///x.db"
    assert resolve("sqlite:///y.db") == "sqlite:///y.db"


def test_sqlite_paths() -> None:
    assert parse("sqlite:///.statekeeper/state.db").path == ".statekeeper/state.db"
    assert parse("sqlite:////var/lib/sk.db").path == "/var/lib/sk.db"
    assert parse("sqlite:///a.db?synchronous=normal").options == {"synchronous": "normal"}


def test_postgres_url_keeps_statekeeper_options_out_of_the_dsn() -> None:
    url = parse("postgres://alice:secret@db.example:5433/app?schema=tenant_a&pool_max=4")
    assert url.scheme == "postgres"
    assert url.dsn == "postgresql://alice:secret@db.example:5433/app"
    assert url.options == {"schema": "tenant_a", "pool_max": "4", "pool_min": "2"}
    assert "secret" not in url.redacted()


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty"),
        ("state.db", "no scheme"),
        ("mysql://localhost/db", "unsupported database URL scheme 'mysql'"),
        ("sqlite://", "needs a file path"),
        ("sqlite:///:memory:", "must name a file"),
        ("sqlite:///a.db?synchronous=sometimes", "synchronous must be one of"),
        ("sqlite:///a.db?journal=off", "unknown option 'journal'"),
        ("postgresql://localhost:99999/db", "out of range"),
        ("postgresql://localhost:port/db", "malformed"),
        ("postgresql:///db", "names no host"),
        ("postgresql://h/db?schema=Robert');DROP", "lowercase SQL identifier"),
        ("postgresql://h/db?pool_max=-1", "positive integer"),
        ("sqlite:///a.db?busy_timeout=\u00b2", "positive integer"),
        ("postgresql://h/db?pool_min=20&pool_max=2", "pool_min (20"),
    ],
)
def test_malformed_urls_are_named(url: str, fragment: str) -> None:
    with pytest.raises(InvalidDatabaseURL, match=fragment.replace("(", r"\(")):
        parse(url)


def test_a_small_pool_max_lowers_the_default_pool_min() -> None:
    assert parse("postgresql://h/db?pool_max=1").options["pool_min"] == "1"


def test_postgres_tls_options_go_to_the_driver() -> None:
    url = parse(
        "postgresql://app:pw@db.internal/prod?schema=s&sslmode=verify-full"
        "&sslrootcert=/etc/ssl/ca.pem&sslcert=/c.pem&sslkey=/k.pem&sslpassword=keypass"
        "&ssl_min_protocol_version=TLSv1.3&sslnegotiation=direct"
    )
    assert url.options == {"schema": "s", "pool_min": "2"}
    base, _, query = url.dsn.partition("?")
    assert base == "postgresql://app:pw@db.internal/prod"
    assert dict(parse_qsl(query)) == {
        "sslmode": "verify-full",
        "sslrootcert": "/etc/ssl/ca.pem",
        "sslcert": "/c.pem",
        "sslkey": "/k.pem",
        "sslpassword": "keypass",
        "sslnegotiation": "direct",
        "ssl_min_protocol_version": "TLSv1.3",
    }
    redacted = url.redacted()
    assert "pw" not in redacted.replace("postgresql", "") and "keypass" not in redacted
    assert "sslpassword=***" in redacted and "sslrootcert=/etc/ssl/ca.pem" in redacted


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sslmode=verify", "option sslmode must be one of"),
        ("sslmode=", "option sslmode must be one of"),
        ("ssl_max_protocol_version=SSLv3", "option ssl_max_protocol_version must be one of"),
        ("sslnegotiation=fast", "option sslnegotiation must be one of"),
        ("sslrootcert=", "option sslrootcert needs a value"),
        ("ssl=true", "unknown option 'ssl'"),
    ],
)
def test_postgres_tls_options_are_checked(query: str, message: str) -> None:
    with pytest.raises(InvalidDatabaseURL, match=message):
        parse(f"postgresql://db.internal/prod?{query}")
