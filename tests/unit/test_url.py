from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from statekeeper import App
from statekeeper.errors import ConfigurationError, InvalidDatabaseURL, StatekeeperError
from statekeeper.storage.url import DEFAULT_URL, parse, redact, resolve


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
    bounded = parse("postgresql://db.example/app?tcp_user_timeout=0")
    assert bounded.options["tcp_user_timeout"] == "0"  # 0: the system's own
    assert "tcp_user_timeout" not in bounded.dsn


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
        ("postgresql://localhost:99999/db", "not a number from 1 to 65535"),
        ("postgresql://localhost:0/db", "not a number from 1 to 65535"),
        ("postgresql://localhost:port/db", "not a number from 1 to 65535"),
        ("postgresql://[::1/db", "its host cannot be parsed"),
        (
            "postgresql://app:hun/ter2@db/x",
            "'postgresql://app:\\*\\*\\*@db/x' has an '@' after its host",
        ),
        ("postgresql://db/x?sslrootcert=/a@b.pem", "percent-encode"),
        ("postgresql:///db", "names no host"),
        ("postgresql://h/db?schema=Robert');DROP", "lowercase SQL identifier"),
        ("postgresql://h/db?pool_max=-1", "positive integer"),
        ("sqlite:///a.db?busy_timeout=\u00b2", "positive integer"),
        ("postgresql://h/db?pool_min=20&pool_max=2", "pool_min (20"),
        ("postgresql://h/db?tcp_user_timeout=-5", "tcp_user_timeout must be milliseconds"),
        ("postgresql://h/db?tcp_user_timeout=5s", "tcp_user_timeout must be milliseconds"),
        ("postgresql://h/db?tcp_user_timeout=99999999999", "to 3600000, got"),
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


MARKER = "Zq7Kx"  # in every generated password: a piece of it shown anywhere is a leak
# Any printable text: visible ASCII with '/', '?', '#', '@', ':', '%' and '&', spaces,
# letters of any script; no control characters.
PRINTABLE = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12)


def url_forms(password: str) -> list[str]:
    return [
        f"postgresql://app:{password}@127.0.0.1:1/db",
        f"postgres://app:{password}@db.internal:5433/prod?schema=s&sslmode=require",
        f"redis://:{password}@127.0.0.1:1/0",
        f"rediss://app:{password}@cache.internal:6380/0?ssl_cert_reqs=required",
    ]


def leaked(text: str, password: str) -> bool:
    return MARKER in text or password in text


@settings(max_examples=300, deadline=None)
@given(before=PRINTABLE, after=PRINTABLE)
@example(before="hun/ter", after="2")
@example(before="a?sslmode=bogus&", after="")
@example(before="1?schema=", after="")
@example(before="p@ss/", after="#frag")
@example(before="", after=":99999")
def test_no_password_reaches_a_message(before: str, after: str) -> None:
    """For passwords of any printable characters (unencoded delimiters included) in
    database and cache URLs: redact() hides them, and no error of parse() or App()
    shows any of them."""
    password = before + MARKER + after
    for url in url_forms(password):
        assert not leaked(redact(url), password), redact(url)
        if url.startswith("postgres"):
            try:
                parsed = parse(url)
            except InvalidDatabaseURL as error:
                assert not leaked(error.message, password), error.message
            else:
                assert not leaked(parsed.redacted(), password)
                assert not leaked(repr(parsed), password)
        database, cache = (url, None) if url.startswith("postgres") else ("sqlite:///x.db", url)
        try:
            App(database, cache_url=cache, purge_interval=None, encryption=None)
        except StatekeeperError as error:
            assert isinstance(error, ConfigurationError)
            assert not leaked(error.message, password), error.message
            assert not leaked(str(error), password)


def test_redact_takes_everything_before_the_last_at_as_user_information() -> None:
    assert redact("postgresql://app:hun/ter2@db/x") == "postgresql://app:***@db/x"
    assert redact("redis://:a#b?c@h:1/0") == "redis://:***@h:1/0"
    assert redact("postgresql://me@corp:p@ss@db/x") == "postgresql://me@corp:***@db/x"
    assert redact("postgresql://app@db/x?sslpassword=a#b&x=1") == (
        "postgresql://app@db/x?sslpassword=***&x=1"
    )
    assert redact("postgresql://db:5432/x?schema=s") == "postgresql://db:5432/x?schema=s"


def test_an_at_after_the_host_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidDatabaseURL, match="percent-encode"):
        parse("postgresql://app:/123@db/x")  # would be host 'app', database '123@db/x'
    assert parse("postgresql://app:%2F123@db/x").dsn == "postgresql://app:%2F123@db/x"
    assert parse("postgresql://app:p@ss@db/x").dsn == "postgresql://app:p@ss@db/x"
    with pytest.raises(ConfigurationError, match="percent-encode") as caught:
        App("sqlite:///x.db", cache_url="redis://:hun/ter@h:1/0", encryption=None)
    assert "hun" not in caught.value.message


def test_banners_name_the_schema_with_the_password_hidden() -> None:
    url = parse("postgresql://app:secret@db:5432/x?schema=billing&pool_max=4")
    assert url.described() == "postgresql://app:***@db:5432/x?schema=billing"
    assert parse("postgresql://app@db/x?sslmode=require&schema=s").described() == (
        "postgresql://app@db/x?sslmode=require&schema=s"
    )
    assert parse("postgresql://app@db/x").described() == "postgresql://app@db/x"
    assert parse("sqlite:///x.db").described() == parse("sqlite:///x.db").redacted()


def test_where_to_connect_goes_to_the_driver() -> None:
    """Several hosts (tried in turn), a Unix socket's folder, a port and the kind of
    server to take are libpq's connection options, passed on as they are."""
    url = parse(
        "postgresql://app@db1:5432,db2:5433,[::1]:5434/prod?target_session_attrs=read-write"
        "&schema=s"
    )
    assert url.options == {"schema": "s", "pool_min": "2"}
    assert url.dsn == (
        "postgresql://app@db1:5432,db2:5433,[::1]:5434/prod?target_session_attrs=read-write"
    )
    socket = parse("postgresql://app@/prod?host=/run/postgresql&port=5433")
    assert dict(parse_qsl(socket.dsn.partition("?")[2])) == {
        "host": "/run/postgresql", "port": "5433"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://db1:5432,db2:99999/x", "not a number from 1 to 65535"),
        ("postgresql://db1:5432,db2:x/x", "not a number from 1 to 65535"),
        ("postgresql://db1/x?port=0", "not a number from 1 to 65535"),
        ("postgresql://db1,db2/x?port=5432,x", "not a number from 1 to 65535"),
        ("postgresql://db1/x?target_session_attrs=leader", "target_session_attrs must be one"),
        ("postgresql://db1/x?host=", "option host needs a value"),
    ],
)
def test_where_to_connect_is_checked(url: str, message: str) -> None:
    with pytest.raises(InvalidDatabaseURL, match=message):
        parse(url)
