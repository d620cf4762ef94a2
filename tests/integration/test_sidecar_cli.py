"""``statekeeper sidecar`` as a process: what it says when it starts, its refusals
(one line each), and a clean stop on SIGTERM."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.integration.cli_support import free_port, one_line_error, statekeeper
from tests.integration.sidecar_support import running_sidecar


def test_it_says_what_it_serves_and_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "sidecar.log"
    with running_sidecar(f"sqlite:///{tmp_path}/db.sqlite", log, "--app-id", "cart",
                         grpc=False) as sidecar:  # fmt: skip
        answer = httpx.post(
            f"{sidecar.url}/v1.0/state/statestore", json=[{"key": "k", "value": {"n": 1}}]
        )
        assert answer.status_code == 204
        assert httpx.get(f"{sidecar.url}/v1.0/state/statestore/k").json() == {"n": 1}
    banner = log.read_text().splitlines()[0]
    assert banner.startswith("statekeeper sidecar for app 'cart' serving http://127.0.0.1:")
    assert "state stores: statestore" in banner and "pubsubs: pubsub" in banner
    assert f"database: sqlite:///{tmp_path}/db.sqlite" in banner


def test_other_hosts_need_a_token(tmp_path: Path) -> None:
    result = statekeeper(
        "--database", f"sqlite:///{tmp_path}/db.sqlite", "sidecar", "--host", "0.0.0.0",
        "--http-port", str(free_port()), "--grpc-port", "0", cwd=tmp_path,
    )  # fmt: skip
    line = one_line_error(result, "configuration_error", 3)
    assert "without an API token" in line


def test_a_port_in_use_and_a_bad_resources_path_are_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = statekeeper(
            "--database", f"sqlite:///{tmp_path}/db.sqlite", "sidecar", "--http-port",
            str(port), "--grpc-port", "0", cwd=tmp_path,
        )  # fmt: skip
        assert "in use" in one_line_error(result, "address_in_use", result.returncode)
    result = statekeeper(
        "sidecar", "--resources-path", str(tmp_path / "missing"), "--grpc-port", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert "is not a directory" in one_line_error(result, "configuration_error", 3)
