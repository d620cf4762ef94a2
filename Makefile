# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean tools hosts

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/statekeeper demo
	$(VENV)/bin/python examples/notifications.py
	$(VENV)/bin/python examples/travel_booking.py

test: $(STAMP) tools
	$(VENV)/bin/python -m pytest -q -n 3 --dist worksteal -m 'not soak and not hosts'

# The upload tests send files with curl, as a client would; the alert rules are checked
# by promtool (Debian's prometheus package) when it installs; the dashboard's browser
# tests drive Debian's Chromium (through Playwright).
tools:
	@command -v curl >/dev/null || (apt-get update -qq && apt-get install -y -qq curl)
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq \
		--no-install-recommends prometheus >/dev/null) || echo "no promtool: alert rules checked without it"
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq \
		--no-install-recommends chromium >/dev/null)

# The tests across test hosts (network namespaces; root): not part of `make test`.
# pg_auto_failover (Debian's packages) runs the failover formation; libfaketime jumps
# a worker's clock in the clock-jump scenario.
hosts: $(STAMP)
	@command -v ip >/dev/null || (apt-get update -qq && apt-get install -y -qq iproute2)
	@command -v pg_autoctl >/dev/null || (apt-get update -qq && apt-get install -y -qq \
		--no-install-recommends postgresql-15-auto-failover pg-auto-failover-cli >/dev/null)
	@ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || (apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends libfaketime >/dev/null)
	$(VENV)/bin/python -m pytest -q -m hosts tests/hosts -s

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(VENV)/bin/python bench/state_bench.py --quick

clean:
	rm -rf $(VENV) .statekeeper .pytest_cache .mypy_cache .ruff_cache
