"""Hostile input to the ``statekeeper`` command, as real processes: one line on stderr,
the exit code of its kind, nothing stored, and no secret in the output."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
from pathlib import Path

import asyncpg
import pytest

from statekeeper import App
from statekeeper.errors import ConfigurationError
from statekeeper.http.config import HttpConfig
from tests.conftest import pg_dsn
from tests.integration import cli_forkserver

ROOT = Path(__file__).parents[2]
PASSWORD = "hunter2-" + secrets.token_hex(4)


def run(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    chosen = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    chosen.pop("STATEKEEPER_DATABASE_URL", None)
    return cli_forkserver.run_bytes(args, chosen, None, stdin, 60)


def one_line(result: subprocess.CompletedProcess[bytes], code: str, exit_code: int) -> str:
    stderr = result.stderr.decode()
    assert result.returncode == exit_code, stderr
    assert "Traceback" not in stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith(f"error: {code}: "), line
    return line


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def stored_keys(db: str) -> bytes:
    listed = run("--database", db, "state", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_state_put_from_stdin_refuses_what_could_not_be_stored(db: str) -> None:
    """The CLI decodes VALUE with the decoder of the HTTP doors (its cases are tested
    there and in tests/unit/test_codec.py): a deep value is one line, exit 4."""
    for stdin, fragment in [
        (b"[" * 2000 + b"]" * 2000, "nested deeper than 200 levels"),
        (b'\xef\xbb\xbf{"a":1}', "byte order mark"),
    ]:
        result = run("--database", db, "state", "put", "k", "-", stdin=stdin)
        assert fragment in one_line(result, "malformed_json", 4)
    assert b'"items": []' in stored_keys(db)


def test_ids_with_a_trailing_newline_are_refused(db: str) -> None:
    one_line(run("--database", db, "state", "put", "k\n", "1"), "invalid_key", 4)
    one_line(run("--database", db, "queue", "stats", "jobs\n"), "invalid_queue_name", 4)
    one_line(run("--database", db, "workflows", "describe", "w\n"), "invalid_workflow_id", 4)
    one_line(run("--database", db, "--namespace", "ns\n", "state", "list"), "invalid_namespace", 3)
    assert b'"items": []' in stored_keys(db)


def test_invalid_filters_are_errors(db: str) -> None:
    line = one_line(
        run("--database", db, "workflows", "list", "--status", "bogus"), "invalid_filter", 4
    )
    assert "pending, running" in line
    one_line(run("--database", db, "workflows", "list", "--name", "a b"), "invalid_filter", 4)


async def test_schema_with_a_newline_is_refused_and_not_created(pg_schema_prefix: str) -> None:
    schema = f"{pg_schema_prefix}_nl"
    line = one_line(
        run("--database", f"{pg_dsn()}?schema={schema}%0A", "state", "list"),
        "invalid_database_url",
        3,
    )
    assert "lowercase SQL identifier" in line
    conn = await asyncpg.connect(pg_dsn())
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1", schema + "%"
        )
    finally:
        await conn.close()
    assert found == 0


def test_passwords_never_appear_in_errors(db: str) -> None:
    cases = [
        (["--database", f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test"], {}, 8),
        (["--database", f"postgresql://u:{PASSWORD}@/db"], {}, 3),
        (["--database", f"postgresql:u:{PASSWORD}@h/db"], {}, 3),
        (["--database", db], {"STATEKEEPER_CACHE_URL": f"redis://:{PASSWORD}@127.0.0.1:x/0"}, 3),
    ]
    # Unencoded '/', '?', '#' in a password: a URL parser takes what precedes them for
    # a host and port; neither part of the password may be shown.
    for special in "/?#":
        password = f"hun{special}{PASSWORD}"
        cases += [
            (["--database", f"postgresql://app:{password}@127.0.0.1:1/x"], {}, 3),
            (["--database", db], {"STATEKEEPER_CACHE_URL": f"redis://:{password}@127.0.0.1/0"}, 3),
        ]
    for args, env, exit_code in cases:
        result = run(*args, "state", "list", env=env)
        assert result.returncode == exit_code, result.stderr
        shown = result.stderr + result.stdout
        assert PASSWORD.encode() not in shown and b"hun" not in shown, shown
        assert b"***" in result.stderr, result.stderr


def test_padded_api_token_is_refused_at_start_up(tmp_path: Path) -> None:
    env = {
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}",
        "SCHEMA_DB_URL": f"sqlite:///{tmp_path}/api.db",
        "STATEKEEPER_API_TOKEN": " padded-token-0123456789 ",
    }
    result = run("serve", "--app", "schema_app:app", "--port", "1", env=env)
    line = one_line(result, "configuration_error", 3)
    assert "leading or trailing whitespace" in line
    assert "padded-token" not in line
    for token in ("tab\ttoken-0123456789", "caf\xe9-token-0123456789"):
        with pytest.raises(ConfigurationError):
            HttpConfig(token=token)
    assert HttpConfig(token="padded-token-0123456789").token == "padded-token-0123456789"


async def test_cache_password_never_appears_in_logs(tmp_path: Path) -> None:
    """Redis unreachable at a closed port: the cache logs that it is unavailable, and
    neither the log line nor any error carries the URL's password."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("statekeeper")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        app = App(
            f"sqlite:///{tmp_path}/cache.db",
            cache_url=f"redis://:{PASSWORD}@127.0.0.1:1/0",
            purge_interval=None,
            encryption=None,
        )
        async with app:
            await app.state.put("k", 1)
            assert (await app.state.get("k")) is not None
            await asyncio.sleep(0)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    text = " ".join(f"{r.getMessage()} {r.__dict__}" for r in records)
    assert "cache unavailable" in text
    assert PASSWORD not in text
