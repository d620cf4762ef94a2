"""The statekeeper command, run as a real process: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from statekeeper import __version__
from tests.conftest import redis_url
from tests.integration.cli_support import one_line_error, statekeeper

ROOT = Path(__file__).parents[2]


def cli(
    *args: str,
    database: str | None = None,
    stdin: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    prefix = ["--database", database] if database else []
    return statekeeper(*prefix, *args, stdin=stdin, env=extra_env)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout


def test_put_get_list_delete(db: str) -> None:
    put = cli("state", "put", "user:1", '{"name": "Ada"}', database=db)
    assert put.returncode == 0, put.stderr
    item = json.loads(put.stdout)
    assert item["value"] == {"name": "Ada"} and item["etag"]
    got = json.loads(cli("state", "get", "user:1", "--json", database=db).stdout)
    assert got == item
    again = cli("state", "put", "user:1", '{"name": "Eve"}', "--if-match", "stale", database=db)
    one_line_error(again, "conflict", 5)
    updated = cli(
        "state", "put", "user:1", "[1,2]", "--if-match", item["etag"], "--ttl", "60", database=db
    )
    assert updated.returncode == 0 and json.loads(updated.stdout)["expires_at"] is not None
    cli("state", "put", "user:2", "-", database=db, stdin='"from stdin"')
    listed = json.loads(cli("state", "list", "--prefix", "user:", "--json", database=db).stdout)
    assert [i["key"] for i in listed["items"]] == ["user:1", "user:2"]
    assert listed["items"][1]["value"] == "from stdin"
    table = cli("state", "list", database=db)
    assert table.returncode == 0 and "user:2" in table.stdout
    assert cli("state", "delete", "user:2", database=db).returncode == 0
    one_line_error(cli("state", "delete", "user:2", database=db), "not_found", 6)
    one_line_error(cli("state", "get", "user:2", database=db), "not_found", 6)
    one_line_error(
        cli("state", "put", "user:1", "1", "--only-if-absent", database=db), "already_exists", 5
    )


def test_paging_with_the_cursor(db: str) -> None:
    for n in range(5):
        cli("state", "put", f"k{n}", str(n), database=db)
    first = json.loads(cli("state", "list", "--limit", "3", "--json", database=db).stdout)
    second = json.loads(
        cli(
            "state", "list", "--limit", "3", "--cursor", first["cursor"], "--json", database=db
        ).stdout
    )
    assert [i["key"] for i in first["items"] + second["items"]] == [f"k{n}" for n in range(5)]
    assert second["cursor"] is None


@pytest.mark.parametrize(
    ("args", "code", "exit_code"),
    [
        (["state", "put", "k", "{not json"], "malformed_json", 4),
        (["state", "put", "k", "1", "--ttl", "soon"], "invalid_ttl", 4),
        (["state", "put", "k", "1", "--ttl", "-3"], "invalid_ttl", 4),
        (["state", "put", "", "1"], "invalid_key", 4),
        (["state", "list", "--cursor", "@@@"], "invalid_cursor", 4),
        (["state", "reencrypt"], "encryption_error", 9),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(
    db: str, args: list[str], code: str, exit_code: int
) -> None:
    one_line_error(cli(*args, database=db), code, exit_code)
    listed = json.loads(cli("state", "list", "--json", database=db).stdout)
    assert listed["items"] == []


def test_malformed_database_url() -> None:
    line = one_line_error(
        cli("state", "get", "k", database="mysql://x/y"), "invalid_database_url", 3
    )
    assert "mysql" in line


def test_unreachable_database_is_a_clear_message() -> None:
    result = cli("state", "get", "k", database="postgresql://postgres@127.0.0.1:1/test")
    line = one_line_error(result, "database_unavailable", 8)
    assert "cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1:1/test" in line


def test_unopenable_sqlite_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = cli("state", "get", "k", database=f"sqlite:///{blocker}/x/state.db")
    one_line_error(result, "database_unavailable", 8)


def test_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a SQLite database at all" * 100)
    one_line_error(cli("state", "get", "k", database=f"sqlite:///{junk}"), "database_corrupt", 7)


def test_wrong_encryption_key(db: str) -> None:
    env_key = cli("keygen").stdout.strip()
    other_key = env_key.split(":")[0] + ":" + "A" * 43 + "="
    put = statekeeper("--database", db, "state", "put", "secret", '"x"',
                      env={"STATEKEEPER_ENCRYPTION_KEYS": env_key})  # fmt: skip
    assert put.returncode == 0, put.stderr
    got = statekeeper("--database", db, "state", "get", "secret",
                      env={"STATEKEEPER_ENCRYPTION_KEYS": other_key})  # fmt: skip
    one_line_error(got, "decryption_failed", 9)


def test_demo_runs_on_sqlite(tmp_path: Path) -> None:
    """The demo on SQLite, its cache scene on the run's Redis (the private one when
    nothing listened on 6379)."""
    result = cli(
        "demo",
        database=f"sqlite:///{tmp_path}/demo.db",
        extra_env={"STATEKEEPER_CACHE_URL": redis_url()},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "repeated reads are served from Redis" in result.stdout
    assert "every check passed" in result.stdout


def test_cart_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "cart_handler.py"), f"sqlite:///{tmp_path}/c.db"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "checkout: {'status': 201" in result.stdout


def test_configuration_errors_are_one_line(db: str) -> None:
    one_line_error(
        cli("--log-level", "bogus", "state", "list", database=db), "configuration_error", 3
    )
    bad_pool = "postgresql://postgres@127.0.0.1/test?pool_min=5&pool_max=2"
    one_line_error(cli("state", "list", database=bad_pool), "invalid_database_url", 3)
    result = statekeeper(
        "--database", db, "state", "list", env={"STATEKEEPER_CACHE_URL": "localhost:1"}
    )
    one_line_error(result, "configuration_error", 3)


def test_notification_service_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notifications.py"), f"sqlite:///{tmp_path}/n.db"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every check passed" in result.stdout


def test_travel_booking_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "travel_booking.py"),
            f"sqlite:///{tmp_path}/t.db",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compensated" in result.stdout and "every check passed" in result.stdout
