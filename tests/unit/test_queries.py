from __future__ import annotations

import pytest

from statekeeper.storage.queries import _compile, load


def test_named_parameters_compile_per_dialect() -> None:
    text = "SELECT * FROM t WHERE a = :a AND b = :b AND c = :a"
    sqlite = _compile("q", text, "sqlite")
    postgres = _compile("q", text, "postgres")
    assert sqlite.sql == "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?"
    assert sqlite.params == ("a", "b", "a")
    assert postgres.sql == "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $1"
    assert postgres.params == ("a", "b")


def test_postgres_casts_are_not_parameters() -> None:
    query = _compile("q", "SELECT :keys::text[], x::int", "postgres")
    assert query.sql == "SELECT $1::text[], x::int"
    assert query.params == ("keys",)


def test_args_orders_values_and_names_a_missing_one() -> None:
    query = _compile("q", "SELECT :b, :a", "sqlite")
    assert query.args(a=1, b=2) == (2, 1)
    with pytest.raises(TypeError, match="needs parameter 'a'"):
        query.args(b=2)


def test_dialect_files_override_common_ones() -> None:
    sqlite, postgres = load("sqlite"), load("postgres")
    assert "json_each" in sqlite["state_get_many"].sql
    assert "ANY" in postgres["state_get_many"].sql
    assert sqlite["state_get"].sql.replace("?", "") == postgres["state_get"].sql.replace(
        "$1", ""
    ).replace("$2", "").replace("$3", "")


def test_the_sqlite_append_builds_the_event_insert_s_parameters_in_order() -> None:
    """storage/event_unit.py builds ev_insert's rows as tuples, in INSERT_ORDER."""
    from statekeeper.storage.event_unit import INSERT_ORDER

    assert load("sqlite")["ev_insert"].params == INSERT_ORDER
