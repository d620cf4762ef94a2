"""statekeeper.eventsourcing, the persistence module of the ``eventsourcing`` library:
the library's own test cases of recorders and factories, subclassed on SQLite (a file
of the run) and PostgreSQL (a schema of the run; a namespace of its own per test), live
subscriptions woken within and across processes, errors in the library's classes, and
an application with a projection whose events are statekeeper's events."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar
from unittest import TestCase
from uuid import UUID

import pytest
from eventsourcing import persistence as es
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
    StoredEvent,
    TrackingRecorder,
)
from eventsourcing.projection import EventSourcedProjectionRunner
from eventsourcing.tests import persistence as cases
from eventsourcing.utils import Environment, get_topic

from statekeeper import App, Keyring, errors
from statekeeper.eventsourcing import (
    Factory,
    StatekeeperAggregateRecorder,
    StatekeeperApplicationRecorder,
    StatekeeperProcessRecorder,
    StatekeeperTrackingRecorder,
    runtime,
)
from statekeeper.sealing import MAGIC, key_id_of
from tests.conftest import pg_url
from tests.integration.eventsourcing_app import Dog, DogSchool, TrickCount, TrickCounter

MODULE = "statekeeper.eventsourcing"


@pytest.fixture(scope="session")
def es_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('eventsourcing')}/events.db"


@pytest.fixture(scope="session")
def es_postgres_url(pg_schema_prefix: str) -> str:
    return pg_url(f"{pg_schema_prefix}_eventsourcing")


def settings(url: str) -> dict[str, str]:
    """A factory's settings: the database, and a namespace of its own (a fresh log)."""
    return {
        "PERSISTENCE_MODULE": MODULE,
        Factory.STATEKEEPER_DATABASE_URL: url,
        Factory.STATEKEEPER_ES_NAMESPACE: f"es_{secrets.token_hex(6)}",
    }


class OnSQLite:
    """Runs the test case on the run's SQLite file."""

    __test__ = True
    url: str

    @pytest.fixture(autouse=True)
    def _database(self, es_sqlite_url: str) -> None:
        self.url = es_sqlite_url


class OnPostgres:
    """Runs the test case on the run's PostgreSQL schema."""

    __test__ = True
    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.postgres]
    url: str

    @pytest.fixture(autouse=True)
    def _database(self, es_postgres_url: str) -> None:
        self.url = es_postgres_url


class Recorders(TestCase):
    """A factory per recorder, closed after the test."""

    __test__ = False
    url: str

    def factory(self) -> Factory:
        factory = InfrastructureFactory.construct(Environment("", settings(self.url)))
        assert isinstance(factory, Factory)
        self.addCleanup(factory.close)
        return factory


class AggregateCase(Recorders, cases.AggregateRecorderTestCase):
    __test__ = False

    def create_recorder(self) -> AggregateRecorder:
        return self.factory().aggregate_recorder()


class ApplicationCase(Recorders, cases.ApplicationRecorderTestCase[ApplicationRecorder]):
    __test__ = False

    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TrackingCase(Recorders, cases.TrackingRecorderTestCase):
    __test__ = False

    def create_recorder(self) -> TrackingRecorder:
        return self.factory().tracking_recorder()


class ProcessCase(Recorders, cases.ProcessRecorderTestCase):
    __test__ = False

    def create_recorder(self) -> ProcessRecorder:
        return self.factory().process_recorder()


class NonInterleavingCase(Recorders, cases.NonInterleavingNotificationIDsBaseCase):
    __test__ = False

    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()


class FactoryCase(cases.InfrastructureFactoryTestCase[Factory]):
    __test__ = False
    url: str

    class TrackingRecorderSubclass(StatekeeperTrackingRecorder):
        pass

    def setUp(self) -> None:
        self.env = Environment("TestCase", settings(self.url))
        super().setUp()

    def expected_factory_class(self) -> type[Factory]:
        return Factory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return StatekeeperAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return StatekeeperApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return StatekeeperTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return self.TrackingRecorderSubclass

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return StatekeeperProcessRecorder


class TestAggregateRecorderOnSQLite(OnSQLite, AggregateCase): ...


class TestApplicationRecorderOnSQLite(OnSQLite, ApplicationCase): ...


class TestTrackingRecorderOnSQLite(OnSQLite, TrackingCase): ...


class TestProcessRecorderOnSQLite(OnSQLite, ProcessCase): ...


class TestNonInterleavingOnSQLite(OnSQLite, NonInterleavingCase): ...


class TestFactoryOnSQLite(OnSQLite, FactoryCase): ...


class TestAggregateRecorderOnPostgres(OnPostgres, AggregateCase): ...


class TestApplicationRecorderOnPostgres(OnPostgres, ApplicationCase): ...


class TestTrackingRecorderOnPostgres(OnPostgres, TrackingCase): ...


class TestProcessRecorderOnPostgres(OnPostgres, ProcessCase): ...


class TestNonInterleavingOnPostgres(OnPostgres, NonInterleavingCase): ...


class TestFactoryOnPostgres(OnPostgres, FactoryCase): ...


# --- live subscriptions ----------------------------------------------------------------


@pytest.fixture
def opened(own_database_url: str) -> Iterator[Factory]:
    factory = Factory(Environment("", settings(own_database_url)))
    yield factory
    factory.close()


def event(originator: UUID | str, version: int = 1) -> StoredEvent:
    return StoredEvent(originator, version, "topic", b"{}")


class Later(threading.Timer):
    """Insert events in a moment, from another thread; ``join()`` gives the time of
    the commit."""

    def __init__(self, recorder: ApplicationRecorder, events: list[StoredEvent]) -> None:
        super().__init__(0.1, self._insert, [recorder, events])
        self.committed = 0.0
        self.start()

    def _insert(self, recorder: ApplicationRecorder, events: list[StoredEvent]) -> None:
        recorder.insert_events(events)
        self.committed = time.monotonic()

    def commit_time(self) -> float:
        self.join()
        return self.committed


def arrival(subscription: es.Subscription[ApplicationRecorder]) -> tuple[int, float]:
    """The next notification's id and when it came; StopIteration after 5 s without."""
    watchdog = threading.Timer(5.0, subscription.stop)
    watchdog.start()
    try:
        notification = next(subscription)
    finally:
        watchdog.cancel()
    return notification.id, time.monotonic()


def without_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runtimes opened from now on do not poll: only wake-ups bring new events."""
    monkeypatch.setattr(runtime, "POLL_INTERVAL", 600.0)


def elsewhere(url: str) -> str:
    """The same database under another URL: a runtime of its own, as in another process."""
    if url.startswith("sqlite"):
        return f"{url}?busy_timeout=29999"
    return f"{url}&pool_max=15"  # the test schema's URL has a query already


def test_a_subscription_wakes_at_the_commit_of_this_process(
    own_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_polls(monkeypatch)
    factory = Factory(Environment("", settings(own_database_url)))
    try:
        recorder = factory.application_recorder()
        recorder.insert_events([event(UUID(int=1))])
        with recorder.subscribe(gt=None) as subscription:
            assert arrival(subscription)[0] == 1
            for version in (2, 3, 4):
                insert = Later(recorder, [event(UUID(int=1), version)])
                position, arrived = arrival(subscription)
                assert position == version and arrived - insert.commit_time() < 0.5
    finally:
        factory.close()


def test_a_subscription_hears_other_processes(
    own_database_url: str, backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: another process's commit is announced (NOTIFY) and heard at once,
    with no poll to fall back on; SQLite: it arrives by the poll, within a second."""
    if backend_name == "postgres":
        without_polls(monkeypatch)
    environment = settings(own_database_url)
    reader = Factory(Environment("", environment))
    other = {**environment, Factory.STATEKEEPER_DATABASE_URL: elsewhere(own_database_url)}
    writer = Factory(Environment("", other))
    try:
        assert reader.runtime is not writer.runtime
        if backend_name == "postgres":  # the listener connection is up
            backend: Any = reader.runtime.backend
            reader.runtime.run(asyncio.wait_for(backend.wait_listening(), 10))
        recorder = reader.application_recorder()
        with recorder.subscribe(gt=None) as subscription:
            insert = Later(writer.application_recorder(), [event("elsewhere")])
            position, arrived = arrival(subscription)
        assert position == 1
        assert recorder.select_notifications(1, 1)[0].originator_id == "elsewhere"
        limit = 0.5 if backend_name == "postgres" else runtime.POLL_INTERVAL + 0.5
        assert arrived - insert.commit_time() < limit
    finally:
        writer.close()
        reader.close()


def test_racing_processes_process_a_notification_once(own_database_url: str) -> None:
    """Two processes record the same tracking positions, each with its own events, at
    the same moments: for each position one commits its events, the other gets an
    IntegrityError and writes nothing."""
    environment = settings(own_database_url)
    other = {**environment, Factory.STATEKEEPER_DATABASE_URL: elsewhere(own_database_url)}
    factories = [Factory(Environment("", environment)), Factory(Environment("", other))]
    try:
        recorders = [f.process_recorder() for f in factories]
        start = threading.Barrier(2)

        def process(index: int, position: int) -> bool:
            start.wait()
            try:
                recorders[index].insert_events(
                    [event(UUID(int=index + 1), position)], tracking=es.Tracking("up", position)
                )
            except es.IntegrityError:
                return False
            return True

        with ThreadPoolExecutor(2) as pool:
            for position in range(1, 21):
                won = list(pool.map(process, [0, 1], [position, position]))
                assert sorted(won) == [False, True]
        log = recorders[0].select_notifications(None, 100)
        assert [n.id for n in log] == list(range(1, 21))
        assert sorted(n.originator_version for n in log) == list(range(1, 21))
        assert recorders[1].max_tracking_id("up") == 20
    finally:
        for factory in factories:
            factory.close()


# --- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.ConflictError("a taken version"), es.IntegrityError),
        (errors.WrongExpectedVersion("s", "version 1", 2), es.IntegrityError),
        (errors.DatabaseUnavailable("down"), es.OperationalError),
        (errors.DatabaseBusy("locked"), es.OperationalError),
        (errors.StorageFull("full"), es.OperationalError),
        (errors.SchemaError("no table"), es.ProgrammingError),
        (errors.ValueTooLarge("too big"), es.DataError),
        (errors.ClosedError("closed"), es.InterfaceError),
        (errors.DatabaseCorrupt("corrupt"), es.DatabaseError),
        (errors.StorageError("I/O"), es.DatabaseError),
    ],
)
def test_statekeeper_errors_are_the_librarys(
    error: errors.StatekeeperError, expected: type[es.PersistenceError]
) -> None:
    with pytest.raises(expected) as raised, runtime.library_errors():
        raise error
    assert type(raised.value) is expected and raised.value.__cause__ is error


def test_settings_that_cannot_work_are_refused(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    for bad in (
        {Factory.STATEKEEPER_DATABASE_URL: "mysql://db/x"},
        {Factory.STATEKEEPER_DATABASE_URL: url, Factory.STATEKEEPER_ES_NAMESPACE: "n" * 200},
        {Factory.STATEKEEPER_DATABASE_URL: url, Factory.ORIGINATOR_ID_TYPE: "int"},
    ):
        with pytest.raises(OSError, match="setting"):
            Factory(Environment("", bad))


def test_a_database_that_does_not_answer_is_an_operational_error() -> None:
    url = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"
    with pytest.raises(es.OperationalError, match="cannot connect"):
        Factory(Environment("", {Factory.STATEKEEPER_DATABASE_URL: url}))


def test_a_closed_factory_s_recorders_refuse_work(opened: Factory) -> None:
    recorder = opened.application_recorder()
    recorder.insert_events([event(UUID(int=7))])
    opened.close()
    opened.close()  # twice is fine
    with pytest.raises(es.InterfaceError, match="closed"):
        recorder.max_notification_id()
    with pytest.raises(OSError, match="closed"):
        opened.application_recorder()


def test_factories_of_one_database_share_one_runtime(own_database_url: str) -> None:
    first = Factory(Environment("", settings(own_database_url)))
    second = Factory(Environment("", settings(own_database_url)))
    shared = first.runtime
    assert second.runtime is shared and shared.users == 2
    first.close()
    assert not shared.closed
    second.application_recorder().insert_events([event(UUID(int=8))])
    second.close()
    assert shared.closed


async def close_on_the_loop(factory: Factory) -> None:
    factory.close()  # as when an application is collected on the loop's thread


def test_a_runtime_closed_from_its_own_loop_does_not_wait_for_itself(
    own_database_url: str,
) -> None:
    factory = Factory(Environment("", settings(own_database_url)))
    shared = factory.runtime
    shared.run(close_on_the_loop(factory))
    shared._thread.join(10)
    assert shared.closed and not shared._thread.is_alive()
    with pytest.raises(es.InterfaceError, match="closed"):
        shared.run(asyncio.sleep(0))


# --- an application, end to end --------------------------------------------------------


async def read_back(url: str, namespace: str, stream: str) -> dict[str, Any]:
    """What statekeeper's own storage holds of an application's events."""
    async with App(url, namespace=namespace, purge_interval=None, encryption=None) as app:
        events = app.backend.events
        return {
            "stream": await events.read_stream(namespace, stream, 1, 100),
            "log": await events.read_log(namespace, 0, 100),
            "head": await events.head(namespace),
            "category": await events.read_category(namespace, stream.partition("-")[0], 0, 100),
            "snapshots": await events.read_log(f"{namespace}/snapshots", 0, 100),
            "tracking": await app.backend.subscriptions.get("TrickCounter", "DogSchool"),
            "counted": await events.read_log("TrickCounter", 0, 100),
        }


def test_an_application_keeps_its_events_in_statekeeper(
    own_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERSISTENCE_MODULE", MODULE)
    monkeypatch.setenv("DOGSCHOOL_STATEKEEPER_DATABASE_URL", own_database_url)  # the app's own
    monkeypatch.setenv("TRICKCOUNTER_STATEKEEPER_DATABASE_URL", own_database_url)
    monkeypatch.setenv("STATEKEEPER_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/unused")
    with EventSourcedProjectionRunner(
        application_class=DogSchool, projection_class=TrickCounter
    ) as runner:
        school = runner.app
        fido = school.register_dog("Fido")
        school.add_trick(fido, "roll over")
        school.add_trick(fido, "play dead")
        runner.wait(school.recorder.max_notification_id(), timeout=10)
        count: TrickCount = runner.projection.repository.get(TrickCount.create_id(fido))
        assert count.count == 2
    again = DogSchool()  # a new process, as far as the application can tell
    try:
        assert again.get_dog(fido) == {
            "name": "Fido", "tricks": ["roll over", "play dead"], "version": 3
        }  # fmt: skip
        assert [n.id for n in again.notification_log.select(start=1, limit=10)] == [1, 2, 3]
    finally:
        again.close()

    probe = Factory(Environment("", {Factory.STATEKEEPER_DATABASE_URL: own_database_url}))
    assert probe.runtime.users == 1  # every factory of the applications was closed
    probe.close()

    held = asyncio.run(read_back(own_database_url, "DogSchool", str(fido)))
    stream = held["stream"]
    assert [e.version for e in stream] == [1, 2, 3]
    assert [e.position for e in stream] == [1, 2, 3] and held["head"] == 3
    assert [e.type for e in stream] == [
        get_topic(Dog.Registered), get_topic(Dog.TrickAdded), get_topic(Dog.TrickAdded)
    ]  # fmt: skip
    states = [json.loads(e.data) for e in stream]  # the library's JSON, as it is
    assert states[0]["name"] == "Fido" and states[2]["trick"] == "play dead"
    assert held["log"] == stream and held["category"] == stream
    assert len({e.id for e in stream}) == 3
    assert [e.version for e in held["snapshots"]] == [2]  # every 2 events
    assert held["tracking"].position == 3  # TrickCounter tracks DogSchool's log
    assert [e.type for e in held["counted"]] == [
        get_topic(TrickCount.Created), get_topic(TrickCount.Counted), get_topic(TrickCount.Counted)
    ]  # fmt: skip


def test_states_are_sealed_with_statekeepers_keys_and_survive_reencrypt(
    own_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With STATEKEEPER_ENCRYPTION_KEYS, an originator's states are sealed at rest like
    every event's data; after a key rotation ``reencrypt`` re-seals them and the
    library still reads what it stored."""
    old, new = Keyring.generate_key(), Keyring.generate_key()
    monkeypatch.setenv("STATEKEEPER_ENCRYPTION_KEYS", f"k1:{old}")
    chosen = settings(own_database_url)
    namespace = chosen[Factory.STATEKEEPER_ES_NAMESPACE]
    factory = Factory(Environment("", chosen))
    try:
        recorder = factory.application_recorder()
        secret = b'{"secret":"MARKER-es-state"}'
        recorder.insert_events([StoredEvent("cart-1", 1, "topic", secret)])
        [raw] = asyncio.run(stored_data(own_database_url, namespace))
        assert raw.startswith(MAGIC) and b"MARKER" not in raw and key_id_of(raw) == "k1"
        [again] = recorder.select_events("cart-1")
        assert again.state == secret
    finally:
        factory.close()

    async def rotate() -> None:
        keyring = Keyring.parse(f"k2:{new},k1:{old}")
        async with App(own_database_url, namespace=namespace, encryption=keyring) as app:
            report = await app.reencrypt()
            assert report.kinds["stream_events"].rewritten == 1

    asyncio.run(rotate())
    [raw] = asyncio.run(stored_data(own_database_url, namespace))
    assert key_id_of(raw) == "k2"
    monkeypatch.setenv("STATEKEEPER_ENCRYPTION_KEYS", f"k2:{new},k1:{old}")
    factory = Factory(Environment("", chosen))
    try:
        [again] = factory.application_recorder().select_events("cart-1")
        assert again.state == secret
    finally:
        factory.close()


async def stored_data(url: str, namespace: str) -> list[bytes]:
    async with App(url, namespace=namespace, encryption=None) as app:
        rows = await app.backend.events.read_log(namespace, 0, 10)
        return [row.data for row in rows]
