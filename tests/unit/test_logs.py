from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from statekeeper import App, configure_logging, correlation
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
