"""Uploads (statekeeper.uploads) on both backends, below HTTP: receiving a file into a
blob, what it starts, and the upkeep (a missed start, expiry, what it started gone)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from statekeeper import App
from statekeeper.errors import (
    ChecksumMismatch,
    PayloadTooLarge,
    UnknownQueue,
    UnknownWorkflow,
    UploadFinished,
    UploadNotFound,
    ValidationError,
)
from statekeeper.uploads import FAILED_KEPT, MAX_START_ATTEMPTS, upkeep
from tests.conftest import FakeClock
from tests.support import drive


@pytest.fixture
async def upload_app(database_url: str, namespace: str, clock: FakeClock) -> AsyncIterator[App]:
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=None) as app:  # fmt: skip
        app.queue("imports")

        @app.workflow(name="ingest")
        async def ingest(ctx: Any, data: dict[str, Any]) -> int:
            async def size(id: str) -> int:
                return len(await app.uploads.read(id))

            return int(await ctx.step(size, data["upload"]["id"]))

        yield app


async def pieces(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def blob_count(app: App) -> int:
    backend: Any = app.backend
    mark = "?" if backend.dialect == "sqlite" else "$1"
    rows = await backend.blobs._db.run_many(
        (f"SELECT count(*) FROM sk_blobs WHERE namespace = {mark}", (app.namespace,)), "n"
    )
    return int(rows[0][0])


DATA = bytes(range(256)) * 10_000  # 2.56 MB: three chunks


async def test_a_file_starts_its_workflow_and_reads_back(upload_app: App) -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    created = await upload_app.uploads.create(workflow="ingest", sha256=digest)
    assert created.state == "pending" and created.max_bytes == 1 << 30
    done = await upload_app.uploads.receive(created.id, pieces(DATA), declared=len(DATA))
    assert (done.state, done.size, done.digest) == ("complete", len(DATA), digest)
    assert done.started == f"upload-{created.id}"
    await drive(upload_app)
    assert await upload_app.workflows.result(done.started, timeout=5) == len(DATA)
    assert await upload_app.uploads.read(created.id) == DATA
    with pytest.raises(UploadFinished):
        await upload_app.uploads.receive(created.id, pieces(b"again"))
    assert await blob_count(upload_app) == 1


async def test_a_queue_gets_a_message_with_the_reference(upload_app: App) -> None:
    created = await upload_app.uploads.create(queue="imports", content_type="text/csv")
    done = await upload_app.uploads.receive(created.id, pieces(b"a,b\n1,2\n"))
    [message] = await upload_app.queue("imports").receive(1)
    assert message.id == done.started
    assert message.body == {
        "upload": {
            "id": created.id,
            "size": 8,
            "content_type": "text/csv",
            "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest(),
        }
    }


async def test_refused_files_leave_nothing(upload_app: App) -> None:
    small = await upload_app.uploads.create(workflow="ingest", max_bytes=1000)
    with pytest.raises(PayloadTooLarge):
        await upload_app.uploads.receive(small.id, pieces(DATA))
    with pytest.raises(PayloadTooLarge):
        await upload_app.uploads.receive(small.id, pieces(b""), declared=1001)
    wrong = await upload_app.uploads.create(workflow="ingest", sha256="0" * 64)
    with pytest.raises(ChecksumMismatch):
        await upload_app.uploads.receive(wrong.id, pieces(DATA))
    assert await blob_count(upload_app) == 0
    assert (await upload_app.uploads.get(small.id)).state == "pending"


async def test_bad_options_and_unknown_ids(upload_app: App) -> None:
    bad: list[dict[str, Any]] = [
        {}, {"workflow": "ingest", "queue": "q"}, {"workflow": "ingest", "max_bytes": 0},
        {"workflow": "ingest", "max_bytes": (1 << 30) + 1}, {"workflow": "ingest", "sha256": "x"},
        {"workflow": "ingest", "expires_in": 0}, {"workflow": "ingest", "content_type": "\n"},
        {"queue": "bad name"},
    ]  # fmt: skip
    for options in bad:
        with pytest.raises(ValidationError):
            await upload_app.uploads.create(**options)
    with pytest.raises(UnknownWorkflow):
        await upload_app.uploads.create(workflow="no-such-workflow")
    with pytest.raises(UnknownQueue):  # undeclared, or internal
        await upload_app.uploads.create(queue="never-declared")
    with pytest.raises(UnknownQueue):
        await upload_app.uploads.create(queue="statekeeper.workflow-callbacks")
    for id in ("nope", "0" * 32, "../" * 11):
        with pytest.raises(UploadNotFound):
            await upload_app.uploads.get(id)


async def test_the_upkeep_starts_missed_starts_and_forgets_what_is_done(
    upload_app: App, clock: FakeClock
) -> None:
    backend = upload_app.backend
    # A complete upload whose start did not happen (its process stopped in between).
    missed = await upload_app.uploads.create(workflow="ingest")
    ref, size, digest = await upload_app.payloads.blobs.write_stream(
        upload_app.namespace, pieces(DATA), 1 << 30
    )
    assert await backend.uploads.complete(upload_app.namespace, missed.id, ref, size, digest,
                                          clock(), clock() + 5)  # fmt: skip
    expiring = await upload_app.uploads.create(workflow="ingest", expires_in=60)

    def uploads_of(namespace: str) -> Any:
        return upload_app.in_namespace(namespace).uploads

    clock.advance(61 + 3600)  # expired, and past the hour a PUT begun in time may take
    changed = await upkeep(backend, clock, uploads_of, 100, [upload_app.namespace])
    assert changed >= 2
    started = (await upload_app.uploads.get(missed.id)).started
    assert started == f"upload-{missed.id}"
    with pytest.raises(UploadNotFound):  # expired while pending: gone
        await upload_app.uploads.get(expiring.id)
    await drive(upload_app)
    assert await upload_app.workflows.result(started, timeout=5) == len(DATA)
    # While its workflow is there, the file stays; once purged, the upkeep removes both.
    await upkeep(backend, clock, uploads_of, 100, [upload_app.namespace])
    assert await upload_app.uploads.read(missed.id) == DATA
    await upload_app.workflows.purge(started)
    await upkeep(backend, clock, uploads_of, 100, [upload_app.namespace])
    with pytest.raises(UploadNotFound):
        await upload_app.uploads.get(missed.id)
    assert await blob_count(upload_app) == 1  # released: the upkeep's sweep takes it
    assert await upload_app.payloads.blobs.sweep() == 1
    assert await blob_count(upload_app) == 0


async def test_a_start_that_keeps_failing_is_retried_with_a_pause_then_given_up(
    upload_app: App, database_url: str, namespace: str, clock: FakeClock
) -> None:
    backend = upload_app.backend
    doomed = await upload_app.uploads.create(workflow="ingest")
    # Received by a process that does not declare the workflow: stored, start failed.
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=None) as other:  # fmt: skip
        got = await other.uploads.receive(doomed.id, pieces(DATA))
    assert (got.state, got.started, got.attempts) == ("complete", None, 1)
    assert got.start_error is not None and got.start_error.startswith("unknown_workflow")
    stored = await upload_app.uploads.get(doomed.id)
    assert (stored.attempts, stored.start_error) == (1, got.start_error)

    def uploads_of(name: str) -> Any:  # a process that does not declare it either
        return other_view

    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=None) as other_view_app:  # fmt: skip
        other_view = other_view_app.uploads
        # Not due yet (a pause of RETRY_FIRST): the upkeep leaves it.
        await upkeep(backend, clock, uploads_of, 1, [namespace])
        assert (await upload_app.uploads.get(doomed.id)).attempts == 1
        # A missed start behind it is not starved (limit 1: the failing one waits).
        later = await upload_app.uploads.create(workflow="ingest")
        ref, size, digest = await upload_app.payloads.blobs.write_stream(
            namespace, pieces(DATA), 1 << 30
        )
        assert await backend.uploads.complete(namespace, later.id, ref, size, digest, clock(),
                                              clock() + 5)  # fmt: skip
        clock.advance(6)  # both due: the failing one first (due first), then the other
        await upkeep(backend, clock, uploads_of, 1, [namespace])
        assert (await upload_app.uploads.get(later.id)).started is None
        await upkeep(backend, clock, lambda name: upload_app.uploads, 1, [namespace])
        assert (await upload_app.uploads.get(later.id)).started == f"upload-{later.id}"
        # Each failure doubles the pause (5 s, then 10 s...), up to an hour.
        assert (await upload_app.uploads.get(doomed.id)).attempts == 2  # tried at 6 s
        clock.advance(6)
        await upkeep(backend, clock, uploads_of, 10, [namespace])
        assert (await upload_app.uploads.get(doomed.id)).attempts == 2  # 10 s not over
        clock.advance(5)
        await upkeep(backend, clock, uploads_of, 10, [namespace])
        assert (await upload_app.uploads.get(doomed.id)).attempts == 3
        # After MAX_START_ATTEMPTS failures, the upload is failed.
        while (found := await upload_app.uploads.get(doomed.id)).state == "complete":
            clock.advance(3600)
            await upkeep(backend, clock, uploads_of, 10, [namespace])
        assert found.state == "failed" and found.attempts == MAX_START_ATTEMPTS
        assert found.started is None and await upload_app.uploads.read(doomed.id) == DATA
        # Kept a week (its file readable), then forgotten with its file.
        clock.advance(FAILED_KEPT + 1)
        await upkeep(backend, clock, uploads_of, 10, [namespace])
        with pytest.raises(UploadNotFound):
            await upload_app.uploads.get(doomed.id)
