from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from statekeeper import App, configure_logging, correlation
from statekeeper.errors import ConfigurationError
from statekeeper.logs import correlation_id


async def test_state_mutations_are_logged_with_key_etag_and_correlation_id(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    try:
        async with App(f"sqlite:///{tmp_path}/l.db", purge_interval=None) as app:
            with correlation("req-123"):
                item = await app.state.put("k", 1)
                await app.state.delete("k")
            async with app.state.transaction() as tx:
                tx.put("t", 2)
    finally:
        configure_logging("WARNING")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    put = next(line for line in lines if line["message"] == "state put" and line["key"] == "k")
    assert put["etag"] == item.etag
    assert put["correlation_id"] == "req-123"
    assert put["level"] == "debug" and put["logger"] == "statekeeper.state"
    delete = next(line for line in lines if line["message"] == "state delete")
    assert delete["correlation_id"] == "req-123"
    tx_put = next(line for line in lines if line["message"] == "state put" and line["key"] == "t")
    assert tx_put["etag"] == tx.etags["t"]
    assert "correlation_id" not in tx_put or tx_put["correlation_id"] is None


def test_correlation_context_nests_and_resets() -> None:
    assert correlation_id.get() is None
    with correlation() as outer:
        assert len(outer) == 32
        with correlation("inner"):
            assert correlation_id.get() == "inner"
        assert correlation_id.get() == outer
    assert correlation_id.get() is None


def test_json_lines_carry_extras_and_exceptions() -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream)
    try:
        log = logging.getLogger("statekeeper.test")
        with correlation("c1"):
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("it failed", extra={"queue": "q1"})
    finally:
        configure_logging("WARNING")
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "it failed"
    assert entry["queue"] == "q1"
    assert entry["correlation_id"] == "c1"
    assert "ValueError: boom" in entry["exception"]


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def fails_holding_a_secret() -> None:
    password = "s3cret-" + "value"
    raise KeyError(f"missing {len(password)}")


def test_on_a_terminal_a_failure_is_drawn_with_its_traceback_and_no_locals() -> None:
    stream = Terminal()
    configure_logging("WARNING", stream)  # auto: text, on a terminal
    try:
        log = logging.getLogger("statekeeper.test")
        with correlation("c9"):
            try:
                fails_holding_a_secret()
            except KeyError as error:
                log.warning("workflow failed", exc_info=error, extra={"workflow_id": "w1"})
    finally:
        configure_logging("WARNING")
    shown = stream.getvalue()
    assert "\x1b[" in shown and not shown.lstrip().startswith("{")
    plain = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", shown).split())  # unwrapped
    assert "WARNING" in plain
    assert "workflow failed workflow_id=w1 correlation_id=c9 [statekeeper.test]" in plain
    assert "Traceback" in plain and "fails_holding_a_secret" in plain
    assert "KeyError: 'missing 12'" in plain
    assert "s3cret-value" not in plain


def test_the_log_format_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="unknown log format 'xml'"):
        configure_logging("INFO", io.StringIO(), "xml")
    stream = Terminal()
    configure_logging("INFO", stream, "json")  # forced, on a terminal too
    try:
        logging.getLogger("statekeeper.test").info("hello", extra={"n": 1})
    finally:
        configure_logging("WARNING")
    assert json.loads(stream.getvalue()) | {"ts": "-"} == {
        "ts": "-", "level": "info", "logger": "statekeeper.test", "message": "hello", "n": 1
    }  # fmt: skip
