"""Encryption at rest of every payload, on SQLite and PostgreSQL: nothing readable in the
files or a dump, values bound to where they live, re-sealing that leaves a racing
writer's value alone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from statekeeper import App, Keyring, Retry
from statekeeper.errors import DecryptionError, EncryptionError, ValidationError
from statekeeper.http.config import HttpConfig
from statekeeper.http.server import create_http_app
from statekeeper.queues.requests import request_status
from statekeeper.reencrypt import ReencryptReport
from statekeeper.schedules import Definition, Scheduler, make_spec
from statekeeper.sealing import MESSAGE, TEXT_MAGIC, key_id_of, text_key_id_of
from statekeeper.workflows import WorkflowContext
from tests.conftest import FakeClock
from tests.contract.payloads import TOKEN, check_every_payload, drive, write_every_payload
from tests.contract.raw_sql import checkpoint, found_in, pg_dump, query, sqlite_images

K1, K2 = Keyring.generate_key(), Keyring.generate_key()
FAST = Retry(max_attempts=3, initial_interval=0.01, jitter=False)


def keys(spec: str) -> Keyring:
    return Keyring.parse(spec)


async def test_no_payload_is_readable_at_rest(
    own_database_url: str, backend_name: str, clock: FakeClock
) -> None:
    url = own_database_url
    control = "CONTROL-plaintext-9f3a1c"  # written without a keyring: must be found
    async with App(url, namespace="plain", encryption=None, purge_interval=None) as plain:
        await plain.state.put("control", {"visible": control})
        await plain.queue("plain-q").send({"visible": control})
    async with App(
        url, namespace="sealed", clock=clock, encryption=keys(f"k1:{K1}"), purge_interval=None
    ) as app:
        written = await write_every_payload(app)
        await check_every_payload(app, written)
        assert len(written.markers) >= 25
        if backend_name == "sqlite":
            images = sqlite_images(url)  # while open: the WAL holds the recent pages
            checkpoint(url)
            images |= {f"{name} after checkpoint": b for name, b in sqlite_images(url).items()}
        else:
            images = {"pg_dump": pg_dump(url)}
        # Identifiers stay readable: the dump is the real thing and the search works.
        assert any(found_in(image, control) for image in images.values())
        assert any(b"big-1" in image for image in images.values())
        for what, marker in written.markers.items():
            leaked = [name for name, image in images.items() if found_in(image, marker)]
            assert not leaked, f"{what} is readable in {leaked}"
    if backend_name == "sqlite":  # and once the last connection has checkpointed and closed
        for name, image in sqlite_images(url).items():
            assert not any(found_in(image, m) for m in written.markers.values()), name


async def test_values_written_before_the_keyring_still_read(
    database_url: str, namespace: str
) -> None:
    async with App(database_url, namespace=namespace, encryption=None) as plain:
        await plain.queue("jobs").send({"n": 1}, attributes={"a": 1})
        await plain.idempotency.run("k", lambda: {"r": 1})
    async with App(database_url, namespace=namespace, encryption=keys(f"k1:{K1}")) as app:
        [message] = await app.queue("jobs").receive()
        assert (message.body, message.attributes) == ({"n": 1}, {"a": 1})
        await message.fail("try again")  # now sealed, beside a plaintext body
        [row] = await app.backend.queues.peek(namespace, "jobs", dead=False, limit=10)
        assert key_id_of(row.body) is None and text_key_id_of(row.last_error or "") == "k1"
        [peeked] = await app.queue("jobs").peek()
        assert str(peeked.last_error) == "Error: try again" and peeked.body == {"n": 1}
        assert await app.idempotency.run("k", lambda: {}) == {"r": 1}
    async with App(database_url, namespace=namespace, encryption=None) as keyless:
        [peeked] = await keyless.queue("jobs").peek()
        assert peeked.body == {"n": 1} and peeked.last_error is None
        assert "no encryption keys are configured" in str(peeked.body_error)


async def swap(url: str, table: str, column: str, where: str, a: Any, b: Any) -> None:
    """Exchange the stored ``column`` of two rows, as someone with the files could."""
    [[first]] = await query(url, f"SELECT {column} FROM {table} WHERE {where} = $1", a)
    [[second]] = await query(url, f"SELECT {column} FROM {table} WHERE {where} = $1", b)
    await query(url, f"UPDATE {table} SET {column} = $1 WHERE {where} = $2", second, a)
    await query(url, f"UPDATE {table} SET {column} = $1 WHERE {where} = $2", first, b)


async def test_a_sealed_value_moved_to_another_row_does_not_open(
    own_database_url: str, clock: FakeClock
) -> None:
    url = own_database_url
    async with App(url, clock=clock, encryption=keys(f"k1:{K1}"), purge_interval=None) as app:
        q = app.queue("orders", retry=FAST)
        a, b, c = [(await q.send({"order": n})).id for n in range(3)]
        await swap(url, "sk_messages", "body", "id", a, b)
        [[moved]] = await query(url, "SELECT body FROM sk_messages WHERE id = $1", a)
        with pytest.raises(DecryptionError, match=r"body of message .* tampered"):
            app.sealer.open(bytes(moved), MESSAGE, app.namespace, a, "body")

        received = await q.receive(10)  # the damaged messages fail alone
        assert [m.id for m in received] == [c]
        await received[0].ack({"ok": 1})
        damaged = {m.id: m for m in await q.peek(10)}
        assert set(damaged) == {a, b}
        for message in damaged.values():
            assert message.state == "ready" and message.attempts == 1
            assert message.last_error is not None
            assert message.last_error.message.startswith("unreadable message: the body of message")

        # An archived result moved to another message: the status says so, no error.
        d = (await q.send({"order": 4})).id
        [delivered] = await q.receive()
        await delivered.ack({"ok": 4})
        await swap(url, "sk_message_archive", "result", "id", c, d)
        document = await request_status(app.backend, app.namespace, d, app.sealer)
        assert document is not None and document["status"] == "succeeded"
        assert document["result"] is None and "does not open" in document["result_error"]

        # Workflow outputs swapped: status and history show read_error, over HTTP a 200.
        @app.workflow
        async def double(ctx: WorkflowContext, n: int) -> int:
            return int(await ctx.step(twice, n))

        one = await app.workflows.start("double", 1, id="one")
        two = await app.workflows.start("double", 2, id="two")
        await drive(app)
        await swap(url, "sk_workflows", "output", "id", one, two)
        await swap(url, "sk_workflow_steps", "output", "workflow_id", one, two)
        status = await app.workflows.status(one)
        assert status.output is None and "output of workflow 'one'" in str(status.read_error)
        with pytest.raises(DecryptionError):
            await app.workflows.result(one)
        [entry] = await app.workflows.history(one)
        assert entry["output"] is None and "output of step 'one/1'" in entry["read_error"]
        http = create_http_app(app, HttpConfig(token=TOKEN))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=http), base_url="http://sk"
        ) as client:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            answer = await client.get(f"/v1/workflows/double/{one}", headers=auth)
            assert answer.status_code == 200 and "read_error" in answer.json()
            answer = await client.get(f"/v1/requests/{d}", headers=auth)
            assert answer.status_code == 200 and "result_error" in answer.json()

        # Idempotency results swapped: a repeat is a clear error, never a second run.
        await app.idempotency.run("first", lambda: 1)
        await app.idempotency.run("second", lambda: 2)
        await swap(url, "sk_idempotency", "result", "key", "first", "second")
        ran: list[int] = []
        with pytest.raises(DecryptionError, match="result of idempotency 'first'"):
            await app.idempotency.run("first", lambda: ran.append(1))
        assert ran == []


async def twice(n: int) -> int:
    return 2 * n


async def test_a_value_changed_meanwhile_is_left_alone_and_counted(
    own_database_url: str, clock: FakeClock
) -> None:
    url = own_database_url
    async with App(url, clock=clock, encryption=keys(f"k1:{K1}")) as old:
        await old.state.put("racy", "old value")
        await old.queue("jobs", retry=FAST).send({"job": 1})
        [message] = await old.queue("jobs").receive()
        await message.fail("first failure")
    rotated = keys(f"k2:{K2},k1:{K1}")
    async with App(url, clock=clock, encryption=rotated) as app:
        real = app.backend.reseal.write
        clock.advance(60)
        [message] = await app.queue("jobs", retry=FAST).receive()

        async def racing(kind: str, changes: Any) -> list[bool]:
            # Their owners rewrite them between the scan and the swap.
            if kind == "state":
                await app.state.put("racy", "new value")
            if kind == "messages":
                await message.fail("second failure")
            return await real(kind, changes)

        app.backend.reseal.write = racing  # type: ignore[method-assign]
        report: ReencryptReport = await app.reencrypt()
        app.backend.reseal.write = real  # type: ignore[method-assign]
        ours = report.kinds
        assert (ours["state"].examined, ours["state"].changed_meanwhile) == (1, 1)
        assert (ours["messages"].examined, ours["messages"].changed_meanwhile) == (1, 1)
        assert report.total("rewritten") == 0 and report.total("unreadable") == 0
        item = await app.state.get("racy")
        assert item is not None and item.value == "new value"
        [peeked] = await app.queue("jobs").peek()
        assert str(peeked.last_error) == "Error: second failure" and peeked.body == {"job": 1}
        again = await app.reencrypt()
        assert again.complete and again.kinds["state"].examined == 0
        assert again.kinds["messages"].examined == 0


async def test_every_namespace_is_walked_in_batches_and_none_is_skipped(
    own_database_url: str, clock: FakeClock
) -> None:
    """For every namespace, each table's namespaces are walked one after another in
    batches smaller than a namespace (messages: every namespace in one walk), and a value
    of one namespace that does not open leaves the later tables of the others as they
    are walked too."""
    url = own_database_url
    stranger = keys(f"x:{K1}")  # a key id this app does not have
    async with App(url, namespace="a-stranger", clock=clock, encryption=stranger) as other:
        await other.queue("jobs").send({"theirs": True})
    for name in ("b", "c", "d"):
        async with App(url, namespace=name, clock=clock, encryption=keys(f"k1:{K1}")) as old:
            for n in range(5):
                await old.state.put(f"s{n}", n)
                await old.queue("jobs").send({"n": n})
            for message in await old.queue("jobs").receive(2):
                await message.ack({"done": True})  # archived with its result
    async with App(url, namespace="b", clock=clock, encryption=keys(f"k2:{K2},k1:{K1}")) as app:
        report = await app.reencrypt(all_namespaces=True, batch_size=2)
        ours = report.kinds
        assert report.complete and report.total("unreadable") == 1
        assert (ours["state"].rewritten, ours["messages"].rewritten) == (15, 9)
        assert ours["messages"].unreadable == 1 and ours["archive"].rewritten == 6
        assert (await app.reencrypt(all_namespaces=True)).total("examined") == 1
    found = await query(url, "SELECT namespace, key_id FROM sk_state")
    for namespace, body in await query(url, "SELECT namespace, body FROM sk_messages"):
        found.append((namespace, key_id_of(bytes(body))))
    for namespace, *values in await query(
        url, "SELECT namespace, body, result FROM sk_message_archive"
    ):
        found += [(namespace, key_id_of(bytes(value))) for value in values]
    by_namespace: dict[tuple[str, str | None], int] = {}
    for namespace, key_id in found:
        by_namespace[namespace, key_id] = by_namespace.get((namespace, key_id), 0) + 1
    assert by_namespace == {  # 5 state items, 3 live messages, 2 archived (body, result)
        ("a-stranger", "x"): 1, ("b", "k2"): 12, ("c", "k2"): 12, ("d", "k2"): 12
    }  # fmt: skip


async def test_a_schedule_read_before_its_input_is_resealed_is_not_written_back(
    own_database_url: str, clock: FakeClock
) -> None:
    """A scheduler writes a schedule's whole row back (input included) under the version
    it read: re-sealing moves the version on, so that write fails (the schedule fires
    from a fresh read) instead of putting the old key's input back."""
    url = own_database_url
    async with App(url, clock=clock, encryption=keys(f"k1:{K1}")) as old:

        @old.workflow
        async def nightly(ctx: WorkflowContext, data: Any) -> Any:
            return data

        await old.schedules.create(
            Definition.checked("nightly", "nightly", make_spec(every=60), input={"n": 1})
        )
    async with App(url, clock=clock, encryption=keys(f"k2:{K2},k1:{K1}")) as app:
        app.workflow(nightly)
        ops = app.backend.schedules
        read = await ops.get(app.namespace, "nightly")  # a scheduler's read
        assert read is not None and key_id_of(read.input) == "k1"
        report = await app.reencrypt()
        assert report.kinds["schedules"].rewritten == 1
        stale = read._replace(paused=1)
        assert not await ops.write(app.namespace, stale, clock())  # the version moved on
        [[stored]] = await query(url, "SELECT input FROM sk_schedules")
        assert key_id_of(bytes(stored)) == "k2"
        clock.advance(60)
        assert await Scheduler(app.schedules).run_due() == 1
        await drive(app)
        fired = (await app.schedules.get("nightly")).last_run_id
        assert fired is not None and (await app.workflows.status(fired)).output == {"n": 1}


async def test_reencrypt_needs_keys_and_a_sane_batch(database_url: str, namespace: str) -> None:
    async with App(database_url, namespace=namespace, encryption=None) as keyless:
        with pytest.raises(EncryptionError, match="nothing to re-encrypt"):
            await keyless.reencrypt()
    async with App(database_url, namespace=namespace, encryption=keys(f"k1:{K1}")) as app:
        for bad in (0, -1, 10_001, True):
            with pytest.raises(ValidationError, match="batch size"):
                await app.reencrypt(batch_size=bad)
        with pytest.raises(ValidationError, match="max batches"):
            await app.reencrypt(max_batches=0)


async def test_an_error_that_looks_sealed_still_reads_without_keys(app: App) -> None:
    looks_sealed = f"{TEXT_MAGIC}k1:AAAA"
    q = app.queue("jobs", retry=FAST)
    await q.send({"n": 1})
    [message] = await q.receive()
    await message.fail(looks_sealed)
    [peeked] = await q.peek()
    assert peeked.body_error is None and peeked.last_error is not None
    assert peeked.last_error.message == looks_sealed  # a record never starts as sealed text

    async def refuse() -> None:
        raise RuntimeError(looks_sealed)

    @app.workflow
    async def odd(ctx: WorkflowContext, _: Any) -> None:
        await ctx.step(refuse, retry=Retry(max_attempts=1))

    run = await app.workflows.start("odd")
    await drive(app)
    [entry] = await app.workflows.history(run)
    assert "read_error" not in entry and entry["error"]["message"] == looks_sealed
    status = await app.workflows.status(run)
    assert status.status == "failed" and status.read_error is None
