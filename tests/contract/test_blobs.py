"""Payloads stored out of line (statekeeper.blobs), on both backends: what goes out of
line and comes back, how references are counted (copies, overwrites, purges), sealing,
damage found on reading, the sweep, and the directory store."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from statekeeper import App, Keyring
from statekeeper.errors import (
    BlobMissing,
    BlobUnavailable,
    ConfigurationError,
    DecryptionError,
    StatekeeperError,
    ValueTooLarge,
)
from tests.conftest import FakeClock
from tests.servers import free_port
from tests.support import drive

THRESHOLD = 64  # bytes: anything bigger goes out of line here
BIG = "x" * 500
HUGE = "y" * 3_000_000  # three chunks (a chunk holds a MiB)


@pytest.fixture
async def blob_app(database_url: str, namespace: str, clock: FakeClock) -> AsyncIterator[App]:
    async with App(
        database_url, namespace=namespace, clock=clock, purge_interval=None, encryption=None,
        blob_threshold=THRESHOLD,
    ) as opened:  # fmt: skip
        declare(opened)
        yield opened


def declare(app: App) -> None:
    async def make(size: int) -> str:
        return "r" * size

    @app.workflow(name="echo")
    async def echo(ctx: Any, data: Any) -> Any:
        made = await ctx.step(make, 300)
        await ctx.sleep(1)  # the run ends: what it made comes back from the journal
        again = await ctx.step(make, 300)
        return {"data": data, "made": made, "same": made == again}

    @app.workflow(name="listener")
    async def listener(ctx: Any, _: Any) -> Any:
        return await ctx.wait_for_event("big")


async def blobs(app: App) -> list[tuple[Any, ...]]:
    """Every blob of the app's namespace: (refs, size, chunks, store)."""
    backend: Any = app.backend
    rows = await backend.blobs._db.run_many(
        ("SELECT refs, size, chunks, store, id FROM sk_blobs WHERE namespace = "
         + ("?" if backend.dialect == "sqlite" else "$1") + " ORDER BY size, created_at",
         (app.namespace,)), "blobs",
    )  # fmt: skip
    return [tuple(row) for row in rows]


async def finish(app: App, clock: FakeClock, run: str) -> Any:
    await drive(app)
    clock.advance(2)
    await drive(app)
    return await app.workflows.result(run, timeout=5)


async def test_big_payloads_go_out_of_line_and_come_back(blob_app: App, clock: FakeClock) -> None:
    run = await blob_app.workflows.start("echo", {"text": BIG}, id="e1")
    assert await finish(blob_app, clock, run) == {"data": {"text": BIG}, "made": "r" * 300,
                                                  "same": True}  # fmt: skip
    assert await blob_app.workflows.input(run) == {"text": BIG}
    # Two step results, the input and the output (by size): each referred to once.
    assert [row[:2] for row in await blobs(blob_app)] == [(1, 302), (1, 302), (1, 511),
                                                          (1, 842)]  # fmt: skip
    history = await blob_app.workflows.history(run)
    assert [e.get("out_of_line") for e in history] == [["output"], None, ["output"]]
    await blob_app.workflows.purge(run)
    assert await blobs(blob_app) == []


async def test_small_payloads_stay_inline(blob_app: App, clock: FakeClock) -> None:
    run = await blob_app.workflows.start("listener", "x" * 10, id="s1")
    await drive(blob_app)
    await blob_app.workflows.send_event(run, "big", "y" * 10)
    await drive(blob_app)
    assert await blob_app.workflows.result(run, timeout=5) == "y" * 10
    assert await blobs(blob_app) == []


async def test_an_event_shares_its_blob_with_the_journal(blob_app: App) -> None:
    run = await blob_app.workflows.start("listener", None, id="ev1")
    await drive(blob_app)
    await blob_app.workflows.send_event(run, "big", {"payload": BIG})
    await drive(blob_app)
    assert await blob_app.workflows.result(run, timeout=5) == {"payload": BIG}
    # The event's blob is the journal's too (two references), and the output has its own.
    assert sorted(row[0] for row in await blobs(blob_app)) == [1, 2]
    await blob_app.workflows.purge(run)
    assert await blobs(blob_app) == []


async def test_a_fork_keeps_the_blobs_it_copied_when_its_source_goes(
    blob_app: App, clock: FakeClock
) -> None:
    run = await blob_app.workflows.start("echo", BIG, id="f1")
    await finish(blob_app, clock, run)
    forked = await blob_app.workflows.fork(run, from_position=2, new_id="f1-fork")
    await blob_app.workflows.purge(run)
    assert await finish(blob_app, clock, forked) == {"data": BIG, "made": "r" * 300,
                                                     "same": True}  # fmt: skip
    await blob_app.workflows.purge(forked)
    assert await blobs(blob_app) == []


async def test_continuing_as_new_releases_the_old_input(database_url: str, namespace: str,
                                                       clock: FakeClock) -> None:  # fmt: skip
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD) as app:  # fmt: skip

        @app.workflow(name="looper")
        async def looper(ctx: Any, data: Any) -> Any:
            if data["round"] < 3:
                await ctx.continue_as_new({"round": data["round"] + 1, "pad": BIG})
            return data["round"]

        run = await app.workflows.start("looper", {"round": 0, "pad": BIG}, id="c1")
        await drive(app)
        assert await app.workflows.result(run, timeout=5) == 3
        # Each new input replaced the last: released, and gone at the sweep.
        assert sorted(row[0] for row in await blobs(app)) == [0, 0, 0, 1]
        assert await app.payloads.blobs.sweep() == 3
        assert [row[0] for row in await blobs(app)] == [1]


async def test_chunks_are_sealed_and_damage_is_found(database_url: str, namespace: str,
                                                     clock: FakeClock) -> None:  # fmt: skip
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   encryption=keyring, blob_threshold=THRESHOLD) as app:  # fmt: skip
        declare(app)
        run = await app.workflows.start("echo", {"text": HUGE}, id="k1")
        assert (await finish(app, clock, run))["data"] == {"text": HUGE}
        backend: Any = app.backend
        rows = await blobs(app)
        [input_blob] = [row for row in rows if row[1] == len(HUGE) + 11]  # {"text": HUGE}
        assert input_blob[2] == 3
        chunks = await backend.blobs.chunks(input_blob[4], 0, 3)
        assert all(b"yyyy" not in data for _, data in chunks)  # sealed
        # A chunk of another blob in its place does not open; nor does a blob cut short.
        other = (await backend.blobs.chunks(rows[1][4], 0, 1))[0][1]
        await set_chunk(app, input_blob[4], 0, other)
        with pytest.raises(DecryptionError):
            await app.workflows.input(run)
        await set_chunk(app, input_blob[4], 0, chunks[0][1])
        assert await app.workflows.input(run) == {"text": HUGE}
        await delete_chunk(app, input_blob[4], 2)
        with pytest.raises(BlobMissing):
            await app.workflows.input(run)


async def set_chunk(app: App, blob_id: bytes, seq: int, data: bytes) -> None:
    backend: Any = app.backend
    marks = ("?", "?", "?") if backend.dialect == "sqlite" else ("$1", "$2", "$3")
    sql = (
        f"UPDATE sk_blob_chunks SET data = {marks[0]} "
        f"WHERE blob_id = {marks[1]} AND seq = {marks[2]}"
    )
    await backend.run_write((sql, (data, blob_id, seq)), "damage", "rowcount")


async def delete_chunk(app: App, blob_id: bytes, seq: int) -> None:
    backend: Any = app.backend
    marks = ("?", "?") if backend.dialect == "sqlite" else ("$1", "$2")
    sql = f"DELETE FROM sk_blob_chunks WHERE blob_id = {marks[0]} AND seq = {marks[1]}"
    await backend.run_write((sql, (blob_id, seq)), "damage", "rowcount")


async def test_the_sweep_removes_blobs_never_referred_to(blob_app: App, clock: FakeClock) -> None:
    # A writer that stopped after its blob and before its row: nothing refers to it.
    await blob_app.payloads.blobs.write(blob_app.namespace, b'"' + b"z" * 100 + b'"')
    assert await blob_app.payloads.blobs.sweep() == 0  # within the grace period: kept
    clock.advance(3601)
    assert await blob_app.payloads.blobs.sweep() == 1
    assert await blobs(blob_app) == []


async def test_a_directory_store(database_url: str, namespace: str, clock: FakeClock,
                                 tmp_path: Path) -> None:  # fmt: skip
    store = tmp_path / "blobs"
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD, blob_store=f"file:{store}") as app:  # fmt: skip
        declare(app)
        run = await app.workflows.start("echo", HUGE, id="d1")
        assert (await finish(app, clock, run))["data"] == HUGE
        rows = await blobs(app)
        assert {row[3] for row in rows} == {"dir"}
        files = sorted(p for p in store.rglob("*") if p.is_file())
        assert len(files) == 3 + 1 + 1 + 3  # input, two results, output (3 chunks each big)
        await app.workflows.purge(run)  # released, and swept: rows and files
        assert await blobs(app) == []
        assert not any(p.is_file() for p in store.rglob("*"))


async def test_limits(database_url: str, namespace: str, clock: FakeClock,
                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD, max_payload_bytes=1000) as app:  # fmt: skip
        declare(app)
        with pytest.raises(ValueTooLarge, match="input of workflow 'echo' is 1002 bytes"):
            await app.workflows.start("echo", "a" * 1000)
    with pytest.raises(ConfigurationError, match="blob_threshold"):
        App(database_url, blob_threshold=0)
    with pytest.raises(ConfigurationError, match="max_payload_bytes"):
        App(database_url, max_payload_bytes=-1)
    with pytest.raises(ConfigurationError, match="blob store"):
        App(database_url, blob_store="s4://nowhere")
    monkeypatch.setenv("STATEKEEPER_BLOB_THRESHOLD", "12k")
    with pytest.raises(ConfigurationError, match="STATEKEEPER_BLOB_THRESHOLD"):
        App(database_url)


async def test_a_long_write_is_not_swept_and_a_swept_blob_is_never_referred_to(
    blob_app: App, clock: FakeClock
) -> None:
    blobs_of = blob_app.payloads.blobs

    async def slow_source() -> Any:
        for _ in range(40):  # five batches of eight 1 MiB chunks, 20 minutes apart
            yield b"s" * (1 << 20)
            clock.advance(150)
            assert await blobs_of.sweep() == 0  # touched with every batch: left alone

    ref, size, _ = await blobs_of.write_stream(blob_app.namespace, slow_source(), 1 << 30)
    assert size == 40 << 20 and [row[:3] for row in await blobs(blob_app)] == [(0, size, 40)]
    clock.advance(3601)  # nothing came to refer to it: swept after the grace period
    assert await blobs_of.sweep() == 1
    # A row that refers to a blob that is gone is refused by the database itself.
    backend: Any = blob_app.backend
    marks = "?, ?, ?, ?, ?, ?, ?" if backend.dialect == "sqlite" else "$1, $2, $3, $4, $5, $6, $7"
    with pytest.raises(StatekeeperError):
        await backend.run_write((
            "INSERT INTO sk_workflows (namespace, id, name, status, input, created_at, "
            f"updated_at) VALUES ({marks})",
            (blob_app.namespace, "dangling", "echo", "pending", ref, clock(), clock()),
        ), "dangling", "rowcount")  # fmt: skip


async def test_the_sweep_leaves_another_stores_blobs(
    database_url: str, namespace: str, clock: FakeClock, tmp_path: Path
) -> None:
    store = tmp_path / "blobs"
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD, blob_store=f"file:{store}") as app:  # fmt: skip
        await app.payloads.blobs.write(app.namespace, b'"' + b"d" * 100 + b'"')
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD) as other:  # fmt: skip
        clock.advance(3601)
        await other.payloads.blobs.sweep()  # the database store's process: not its files
        assert [row[3] for row in await blobs(other)] == ["dir"]
    assert any(p.is_file() for p in store.rglob("*"))


async def test_a_state_machines_history_reads_records_stored_out_of_line(blob_app: App) -> None:
    from statekeeper.asl.workflow import execution_events

    machine = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
                                          "B": {"Type": "Pass", "End": True}}}  # fmt: skip
    await blob_app.workflows.define("passes", "asl", machine)
    run = await blob_app.workflows.start("passes", {"text": BIG})
    await drive(blob_app)
    assert await blob_app.workflows.result(run, timeout=5) == {"text": BIG}
    history = await blob_app.workflows.history(run)
    assert any(entry.get("out_of_line") for entry in history)  # the transitions' records
    events = [event["type"] for event in await execution_events(blob_app.workflows, run)]
    assert events == ["ExecutionStarted", "PassStateEntered", "PassStateExited",
                      "PassStateEntered", "PassStateExited", "ExecutionSucceeded"]  # fmt: skip


async def test_a_process_without_the_store_gives_the_run_back(
    database_url: str, namespace: str, clock: FakeClock, tmp_path: Path
) -> None:
    store = f"file:{tmp_path / 'blobs'}"
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD, blob_store=store) as app:  # fmt: skip
        declare(app)
        run = await app.workflows.start("echo", BIG, id="w1")
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD) as other:  # fmt: skip
        declare(other)
        await drive(other)  # its input is in a store this process lacks: not failed
        assert (await other.workflows.status(run)).status not in ("failed", "succeeded")
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD, blob_store=store) as app:  # fmt: skip
        declare(app)
        clock.advance(60)  # past the lease the other process gave back
        assert (await finish(app, clock, run))["data"] == BIG


async def test_message_bodies_go_out_of_line_with_their_message(
    blob_app: App, clock: FakeClock
) -> None:
    queue = blob_app.queue("big", max_message_bytes=10 << 20)
    body = {"rows": ["r" * 1000] * 3000}  # about 3 MB: three chunks
    sent = await queue.send(body)
    rows = await blobs(blob_app)
    assert [row[:3] for row in rows] == [(1, len(json_of(body)), 3)]  # inserted with it
    [message] = await queue.receive(1)
    assert message.id == sent.id and message.body == body
    await message.ack({"ok": True})  # into the archive: the blob moves with the row
    assert [row[0] for row in await blobs(blob_app)] == [1]
    # In a transaction's outbox too; a dead letter is peeked and redriven whole.
    tx = blob_app.state.transaction()
    tx.put("k", 1)
    tx.send("big", {"second": "s" * 5000})
    await tx.commit()
    [second] = await queue.receive(1)
    await second.fail("no", retryable=False)
    [dead] = await queue.peek(dead=True)
    assert dead.body == {"second": "s" * 5000}
    assert await queue.redrive() == 1
    [again] = await queue.receive(1)
    assert again.body == {"second": "s" * 5000}
    await again.ack()
    # Archived messages forgotten: their blobs released and swept.
    clock.advance(8 * 24 * 3600)
    await blob_app.forget_old_records()
    assert await blobs(blob_app) == []


def json_of(value: Any) -> bytes:
    import json

    return json.dumps(value, separators=(",", ":")).encode()


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """An S3-compatible server on loopback (moto's), a bucket in it: (endpoint, client)."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):  # fmt: skip
        monkeypatch.setenv(name, value)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="payloads")
    try:
        yield endpoint, client
    finally:
        server.stop()


async def test_an_s3_compatible_store(
    database_url: str, namespace: str, clock: FakeClock, s3_bucket: tuple[str, Any]
) -> None:
    endpoint, client = s3_bucket
    store = f"s3://payloads/blobs/{namespace}?endpoint_url={endpoint}&region=us-east-1"
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD, blob_store=store) as app:  # fmt: skip
        declare(app)
        run = await app.workflows.start("echo", HUGE, id="s1")
        assert (await finish(app, clock, run))["data"] == HUGE
        assert {row[3] for row in await blobs(app)} == {"s3"}

        def keys() -> list[str]:
            listed = client.list_objects_v2(Bucket="payloads", Prefix=f"blobs/{namespace}/")
            return [item["Key"] for item in listed.get("Contents", [])]

        assert len(keys()) == 3 + 1 + 1 + 3  # input, two results, output: as in a directory
        await app.workflows.purge(run)  # released and swept: rows and objects
        assert await blobs(app) == [] and keys() == []
    # The store unreachable (a closed port): the run is given back, not failed.
    closed = f"s3://payloads/x?endpoint_url=http://127.0.0.1:{free_port()}&region=us-east-1"
    async with App(database_url, namespace=namespace, clock=clock, purge_interval=None,
                   blob_threshold=THRESHOLD, blob_store=closed) as app:  # fmt: skip
        declare(app)
        with pytest.raises(BlobUnavailable):
            await app.workflows.start("echo", HUGE, id="s2")
    with pytest.raises(ConfigurationError, match="takes endpoint_url and region"):
        App(database_url, blob_store="s3://bucket/p?secret=1")
    with pytest.raises(ConfigurationError, match="needs a bucket"):
        App(database_url, blob_store="s3:///p")


async def test_messages_values_and_streams_of_a_workflow_go_out_of_line(
    blob_app: App, clock: FakeClock
) -> None:
    @blob_app.workflow(name="mailroom")
    async def mailroom(ctx: Any, _: Any) -> Any:
        got = await ctx.receive("docs")
        await ctx.publish("latest", {"copy": got})
        await ctx.write_stream("feed", {"streamed": got})
        return len(got["text"])

    run = await blob_app.workflows.start("mailroom", None, id="m1")
    await drive(blob_app)
    await blob_app.workflows.send_message(run, "docs", {"text": BIG})
    await drive(blob_app)
    assert await blob_app.workflows.result(run, timeout=5) == len(BIG)
    assert await blob_app.workflows.get(run, "latest") == {"copy": {"text": BIG}}
    assert await blob_app.workflows.values(run) == {"latest": {"copy": {"text": BIG}}}
    read = [entry async for entry in blob_app.workflows.read_stream(run, "feed")]
    assert read == [{"streamed": {"text": BIG}}]
    # The message, the value and the stream value share their blobs with the journal.
    assert sorted(row[0] for row in await blobs(blob_app)) == [2, 2, 2]
    await blob_app.workflows.purge(run)
    assert await blobs(blob_app) == []
