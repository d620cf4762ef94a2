"""``App(...)`` refuses bad numeric options at once, naming the option."""

from __future__ import annotations

from typing import Any

import pytest

from statekeeper import App
from statekeeper.errors import ConfigurationError

BAD: list[tuple[dict[str, Any], str]] = [
    ({"max_value_bytes": 0}, "max_value_bytes must be a positive integer, got 0"),
    ({"max_value_bytes": True}, "max_value_bytes must be a positive integer, got True"),
    ({"max_journal_entries": 1.5}, "max_journal_entries must be a positive integer, got 1.5"),
    ({"maintenance_interval": 0}, "maintenance_interval must be a positive number of "
     "seconds or None, got 0"),
    ({"entity_lease": -1}, "entity_lease must be a positive number of seconds, got -1"),
    ({"entity_answer_ttl": "1"}, "entity_answer_ttl must be a positive number of seconds, "
     "got '1'"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "message"), BAD)
def test_a_bad_option_is_named(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        App("sqlite:///unused.db", **options)
    assert refused.value.message == message


def test_good_options_are_taken() -> None:
    app = App("sqlite:///unused.db", maintenance_interval=None, entity_lease=2,
              entity_answer_ttl=60.0, max_journal_entries=5)  # fmt: skip
    assert app._maintenance_interval is None
