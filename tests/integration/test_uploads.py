"""Uploads through signed URLs against a real server, with curl: a 50 MiB file starts a
workflow that reads it back and checks its checksum, and downloads whole; forged and
expired URLs are 403; a file over the limit is 413 and leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.raw_sql import query
from tests.integration import cli_forkserver
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "upload-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MiB = 1 << 20


class Served:
    def __init__(self, url: str, database_url: str, pid: int) -> None:
        self.url = url
        self.database_url = database_url
        self.pid = pid

    def memory(self, field: str) -> int:
        """The server's VmRSS (now) or VmHWM (its peak so far), in bytes."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field}")


@pytest.fixture
def served(own_database_url: str, tmp_path: Path) -> Iterator[Served]:
    paths = f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests' / 'integration'}"
    env = {**os.environ, "PYTHONPATH": paths, "UPLOAD_DB_URL": own_database_url,
           "STATEKEEPER_API_TOKEN": TOKEN}  # fmt: skip
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = cli_forkserver.Forked(
            ["serve", "--app", "upload_app:app", "--port", str(port), "--grace", "2"],
            env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield Served(url, own_database_url, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]


def file_of(path: Path, size: int) -> str:
    """Write ``size`` pseudo-random bytes to ``path``; their SHA-256."""
    hashing = hashlib.sha256()
    block = hashlib.sha256(b"seed").digest() * (MiB // 32)
    with path.open("wb") as out:
        for n in range(size // MiB):
            data = bytes([n % 251]) + block[1:]
            out.write(data)
            hashing.update(data)
    return hashing.hexdigest()


def curl(*args: str) -> tuple[int, str]:
    """curl's HTTP status and body."""
    done = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    body, _, status = done.stdout.decode(errors="replace").rpartition("\n")
    return int(status or 0), body


def create(served: Served, **options: Any) -> dict[str, Any]:
    answer = httpx.post(f"{served.url}/v1/uploads", json=options, headers=AUTH, timeout=10)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def workflow_output(served: Served, id: str) -> dict[str, Any]:
    for _ in range(600):
        answer = httpx.get(f"{served.url}/v1/workflows/payroll/{id}", headers=AUTH, timeout=10)
        found: dict[str, Any] = answer.json()
        if found.get("status") == "succeeded":
            return found
        assert found.get("status") not in ("failed", "cancelled"), found
        time.sleep(0.05)
    raise AssertionError(f"workflow {id} did not finish")


def blob_rows(served: Served) -> tuple[int, int]:
    """Blobs of the uploads' namespace, and chunks of any blob."""

    async def counts() -> tuple[int, int]:
        url = served.database_url
        blobs = await query(url, "SELECT count(*) FROM sk_blobs WHERE namespace = 'uploads'")
        chunks = await query(url, "SELECT count(*) FROM sk_blob_chunks")
        return int(blobs[0][0]), int(chunks[0][0])

    return asyncio.run(counts())


def test_a_50_mib_file_starts_a_workflow_that_reads_it_back(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "payroll.bin"
    digest = file_of(path, 50 * MiB)
    created = create(served, workflow="payroll", sha256=digest, content_type="text/csv")
    assert created["max_bytes"] == 1 << 30 and created["expires_at"] > time.time()
    resident = served.memory("VmRSS")
    status, body = curl("-T", str(path), created["upload_url"])
    assert status == 201, body
    # Streamed: the server held a few chunks of the file, never the file.
    grew = served.memory("VmHWM") - resident
    assert grew < 24 * MiB, grew
    stored = httpx.Response(200, content=body).json()
    assert stored["state"] == "complete" and stored["size"] == 50 * MiB
    assert stored["sha256"] == digest and stored["started"]
    output = workflow_output(served, stored["started"])["output"]
    assert output == {"read": {"size": 50 * MiB, "sha256": digest}, "matches": True}
    # Its status has a signed download URL: the file comes back whole.
    found = httpx.get(created["status_url"], headers=AUTH, timeout=10).json()
    assert found["download_url"] and found["target"] == {"workflow": "payroll"}
    back = tmp_path / "back.bin"
    status, _ = curl("-o", str(back), found["download_url"])
    assert status == 200
    assert hashlib.sha256(back.read_bytes()).hexdigest() == digest
    # A second PUT of a complete upload: 409, and nothing more is stored.
    before = blob_rows(served)
    status, body = curl("-T", str(path), created["upload_url"])
    assert status == 409 and "upload_finished" in body
    assert blob_rows(served) == before


def test_forged_and_expired_urls_are_403(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "small.bin"
    file_of(path, MiB)
    created = create(served, queue="imports")
    url = created["upload_url"]
    forged = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    for bad in (forged, url.replace("expires=", "expires=9"), url.split("?")[0]):
        status, body = curl("-T", str(path), bad)
        assert status == 403 and "upload_url_refused" in body, (bad, body)
    # The same URL without its token works (the signature is the credential).
    status, body = curl("-T", str(path), url)
    assert status == 201, body
    short = create(served, queue="imports", expires_in=1)
    time.sleep(2.1)  # the URL's expiry is a whole second: at most 2 s away
    status, body = curl("-T", str(path), short["upload_url"])
    assert status == 403 and "expired" in body
    # A download URL is for GET only; an upload URL does not download.
    status, _ = curl(url)
    assert status == 403


def test_a_file_over_the_limit_is_413_and_leaves_nothing(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    file_of(path, 3 * MiB)
    before = blob_rows(served)
    announced = create(served, workflow="payroll", max_bytes=2 * MiB)
    status, body = curl("-T", str(path), announced["upload_url"])
    assert status == 413 and "payload_too_large" in body
    # Sent without a length (chunked): refused once past the limit, its chunks removed.
    streamed = create(served, workflow="payroll", max_bytes=2 * MiB)
    status, body = curl("-H", "Transfer-Encoding: chunked", "-T", str(path),
                        streamed["upload_url"])  # fmt: skip
    assert status == 413 and "payload_too_large" in body
    assert blob_rows(served) == before
    for upload in (announced, streamed):
        found = httpx.get(upload["status_url"], headers=AUTH, timeout=10).json()
        assert found["state"] == "pending" and found["size"] is None
    # A checksum that differs: 400, nothing kept either.
    wrong = create(served, workflow="payroll", sha256="0" * 64)
    status, body = curl("-T", str(path), wrong["upload_url"])
    assert status == 400 and "checksum_mismatch" in body
    assert blob_rows(served) == before


def test_options_are_strict_and_downloads_are_attachments(served: Served, tmp_path: Path) -> None:
    bad_options: list[dict[str, Any]] = [
        {"workflow": "payroll", "max_bytes": True}, {"queue": "imports", "max_bytes": "9"},
        {"queue": "imports", "expires_in": True}, {"queue": "imports", "expires_in": 0.5},
        {"queue": "imports", "expires_in": "900"}, {"queue": "imports", "extra": 1},
    ]  # fmt: skip
    for bad in bad_options:
        answer = httpx.post(f"{served.url}/v1/uploads", json=bad, headers=AUTH, timeout=10)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_input", bad
    path = tmp_path / "page.html"
    path.write_bytes(b"<script>alert(1)</script>")
    created = create(served, queue="imports", content_type="text/html")
    status, _ = curl("-T", str(path), created["upload_url"])
    assert status == 201
    found = httpx.get(created["status_url"], headers=AUTH, timeout=10).json()
    served_file = httpx.get(found["download_url"], timeout=10)
    assert served_file.content == path.read_bytes()
    assert served_file.headers["content-type"] == "text/html"
    assert served_file.headers["content-disposition"] == "attachment"
    assert served_file.headers["x-content-type-options"] == "nosniff"
