"""The Node.js example (examples/sidecar-node/cart.js) against a real ``statekeeper
sidecar``: concurrent invocations keep every update through ETags, checkout is one
state transaction, and what they leave is read back through the sidecar."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.cli_support import ROOT, free_port
from tests.integration.sidecar_support import SidecarProcess, running_sidecar

NODE = shutil.which("node")
CART_JS = ROOT / "examples" / "sidecar-node" / "cart.js"
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not on PATH")


def node(*args: str) -> list[str]:
    assert NODE is not None
    return [NODE, str(CART_JS), *args]


def node_env(sidecar: SidecarProcess) -> dict[str, str]:
    return {**os.environ, "DAPR_HTTP_PORT": str(sidecar.http_port)}


def state(sidecar: SidecarProcess, key: str) -> httpx.Response:
    return httpx.get(f"{sidecar.url}/v1.0/state/statestore/{key}")


def test_the_node_cart_keeps_every_concurrent_update_and_checks_out(
    database_url: str, tmp_path: Path
) -> None:
    app_id = f"cart{secrets.token_hex(4)}"
    with running_sidecar(
        database_url, tmp_path / "sidecar.log", "--app-id", app_id, grpc=False
    ) as sidecar:
        done = subprocess.run(
            node("demo", "c1"), env=node_env(sidecar), capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr.decode()
        report = json.loads(done.stdout.decode().strip().splitlines()[-1])
        items = {"apple": 5, "pear": 5, "plum": 5, "fig": 5}
        assert report["checkout"]["order"]["items"] == items
        assert report["retries"] > 0  # twenty at once: some wrote first, the others retried

        order = state(sidecar, "order-c1")
        assert order.status_code == 200 and order.headers["etag"]
        assert order.json() == {"id": "order-c1", "items": items}
        assert state(sidecar, "cart-c1").status_code == 204  # deleted in the same transaction
        # The publish step either reached the pub/sub API or said it is not there.
        assert report["checkout"]["published"] in (True, False)
        if not report["checkout"]["published"]:
            assert "publishing is not available" in done.stderr.decode()


def test_the_node_cart_served_over_http_writes_through_the_sidecar(
    database_url: str, tmp_path: Path
) -> None:
    app_id = f"cart{secrets.token_hex(4)}"
    port = free_port()
    with running_sidecar(
        database_url, tmp_path / "sidecar.log", "--app-id", app_id, grpc=False
    ) as sidecar:
        function = subprocess.Popen(
            node("serve", str(port)), env=node_env(sidecar),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}/carts/k9"
            deadline = time.monotonic() + 15
            while True:
                try:
                    added = httpx.post(f"{url}/items", json={"sku": "tea", "quantity": 2})
                    break
                except httpx.ConnectError:
                    assert time.monotonic() < deadline and function.poll() is None
                    time.sleep(0.05)
            assert added.status_code == 200, added.text
            assert httpx.post(f"{url}/items", json={"sku": "tea"}).status_code == 200
            assert httpx.post(f"{url}/items", json={"sku": 5}).status_code == 400
            assert httpx.get(url).json()["items"] == {"tea": 3}
            stored = state(sidecar, "cart-k9")
            assert stored.json() == {"items": {"tea": 3}, "updates": 2}
        finally:
            function.terminate()
            function.wait(timeout=10)
