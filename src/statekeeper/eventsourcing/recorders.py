"""The library's recorders on statekeeper's event store.

An originator's events are a stream named ``str(originator_id)``: an event's
``originator_version`` is its stream version (the recorder chooses it; a taken one is
an IntegrityError), its ``topic`` the event's type, its ``state`` the event's data, as
it is. An application sequence is a namespace's global log: notification ids are
global positions, gap-free and committed in order. A tracking position is a row of
``sk_subscriptions`` named after the upstream application, without a lease, recorded in
the same transaction as the events it led to.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    ListenNotifySubscription,
    Notification,
    ProcessRecorder,
    Recorder,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)

from statekeeper.errors import AlreadyTracked
from statekeeper.eventsourcing.runtime import Runtime
from statekeeper.eventsourcing.store import EVER
from statekeeper.sealing import STREAM_EVENT, Sealer
from statekeeper.storage import UnitOfWork
from statekeeper.storage.rows import ANY_VERSION, Checkpoint, NewEvent, StreamAppend

# Event ids are derived from where the event is: the same event, the same id.
_EVENT_IDS = uuid.UUID("6f1c3a52-9d0e-4b7a-8e21-5c4f0b9d7a13")


def category(stream: str) -> str:
    """A stream's category: its name up to the first ``-`` (the whole name without one)."""
    return stream.partition("-")[0]


def originator(stream: str, uuid_ids: bool) -> uuid.UUID | str:
    """The originator id a stream name stands for: a UUID when ids are UUIDs and the
    name is one in its canonical form, else the name."""
    if uuid_ids and len(stream) == 36:
        try:
            value = uuid.UUID(stream)
        except ValueError:
            return stream
        if str(value) == stream:
            return value
    return stream


def event_id(namespace: str, stream: str, version: int) -> str:
    """The id of an originator's event (the library's events have none of their own)."""
    return str(uuid.uuid5(_EVENT_IDS, f"{namespace}\x00{stream}\x00{version}"))


def appends(
    namespace: str, stored_events: Sequence[StoredEvent], sealer: Sealer
) -> list[StreamAppend]:
    """The events as appends with their own versions, one per run of events of one
    originator, so that global positions follow the order they were given in. Their
    state is sealed at rest as every event's data is, when statekeeper's encryption
    keys are configured (``statekeeper reencrypt`` re-seals them with the others)."""
    runs: list[StreamAppend] = []
    for stream, run in itertools.groupby(stored_events, key=lambda e: str(e.originator_id)):
        events = list(run)
        versions = [e.originator_version for e in events]
        new = []
        for e, version in zip(events, versions, strict=True):
            id = event_id(namespace, stream, version)
            data = sealer.seal(bytes(e.state), STREAM_EVENT, namespace, stream, id, "data")
            new.append(NewEvent(id, e.topic, data))
        runs.append(StreamAppend(stream, category(stream), ANY_VERSION, new, versions))
    return runs


def opened(sealer: Sealer, namespace: str, stream: str, version: int, data: bytes) -> bytes:
    """An event's state as the library stored it."""
    return sealer.open(
        data, STREAM_EVENT, namespace, stream, event_id(namespace, stream, version), "data"
    )


class StatekeeperRecorder(Recorder):
    """What every recorder holds: the runtime, its namespace, how ids read back."""

    def __init__(self, runtime: Runtime, namespace: str, *, uuid_ids: bool = True) -> None:
        self.runtime = runtime
        self.namespace = namespace
        self.uuid_ids = uuid_ids

    def _record(self, stored_events: Sequence[StoredEvent], tracking: Tracking | None) -> list[int]:
        """Commit the events (with the tracking position); their notification ids."""
        if not stored_events and tracking is None:
            return []
        new = appends(self.namespace, stored_events, self.runtime.sealer)
        point = (
            None
            if tracking is None
            else Checkpoint(tracking.application_name, None, tracking.notification_id)
        )
        unit = UnitOfWork(self.namespace, time.time(), appends=new, checkpoint=point)
        try:
            first = self.runtime.run(self._commit(unit))
        except AlreadyTracked:
            assert tracking is not None
            raise IntegrityError(
                f"notification {tracking.notification_id} of {tracking.application_name!r} "
                "is not after the tracking position recorded"
            ) from None
        return [] if first is None else list(range(first, first + len(stored_events)))

    async def _commit(self, unit: UnitOfWork) -> int | None:
        first = (await self.runtime.backend.commit(unit)).first_position
        if unit.appends:
            self.runtime.committed(unit.namespace)
        return first


class StatekeeperAggregateRecorder(StatekeeperRecorder, AggregateRecorder):
    """Originators' events (aggregate sequences)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._record(stored_events, None)
        return None

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        rows = self.runtime.run(
            self.runtime.store.stream(
                self.namespace, str(originator_id), -EVER if gt is None else gt,
                EVER if lte is None else lte, EVER if limit is None else limit, desc=desc,
            )
        )  # fmt: skip
        stream, sealer = str(originator_id), self.runtime.sealer
        return [
            StoredEvent(
                originator_id, version, type_, opened(sealer, self.namespace, stream, version, data)
            )
            for version, type_, data in rows
        ]


class StatekeeperApplicationRecorder(StatekeeperAggregateRecorder, ApplicationRecorder):
    """Originators' events and the application sequence (the namespace's log)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._record(stored_events, None)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        # Notification ids are positive: ``after`` 0 reads from the first one.
        after = 0 if start is None else start - 1 if inclusive_of_start else start
        rows = self.runtime.run(
            self.runtime.store.notifications(
                self.namespace, max(after, 0), EVER if stop is None else stop, limit, topics
            )
        )
        return [
            Notification(
                originator_id=originator(row.stream, self.uuid_ids),
                originator_version=row.version,
                topic=row.type,
                state=opened(
                    self.runtime.sealer, self.namespace, row.stream, row.version, row.data
                ),
                id=row.position,
            )
            for row in rows
        ]

    def max_notification_id(self) -> int | None:
        return self.runtime.run(self.runtime.store.head(self.namespace)) or None

    def subscribe(
        self, gt: int | None = None, topics: Sequence[str] = ()
    ) -> Subscription[ApplicationRecorder]:
        return StatekeeperSubscription(self, gt=gt, topics=topics)


class StatekeeperSubscription(ListenNotifySubscription[StatekeeperApplicationRecorder]):
    """Notifications after ``gt``, then each new one as it commits: woken by this
    process's commits, by other processes' announcements and by a slow poll."""

    def __init__(
        self,
        recorder: StatekeeperApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder=recorder, gt=gt, topics=topics)
        recorder.runtime.listen(recorder.namespace, self._has_been_notified)
        if self._has_been_stopped:  # stopped by a failure meanwhile
            recorder.runtime.unlisten(recorder.namespace, self._has_been_notified)
        self._has_been_notified.set()  # a commit between the first read and listening

    def stop(self) -> None:
        super().stop()
        self._recorder.runtime.unlisten(self._recorder.namespace, self._has_been_notified)


class StatekeeperTrackingRecorder(StatekeeperRecorder, TrackingRecorder):
    """Tracking positions: one row per upstream application, only ever moving up."""

    def insert_tracking(self, tracking: Tracking) -> None:
        self._record([], tracking)

    def max_tracking_id(self, application_name: str) -> int | None:
        return self.runtime.run(self.runtime.store.tracked(self.namespace, application_name))


class StatekeeperProcessRecorder(
    StatekeeperTrackingRecorder, StatekeeperApplicationRecorder, ProcessRecorder
):
    """An application sequence with tracking: new events and the position of the
    notification that led to them are committed together, or not at all."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        tracking = kwargs.get("tracking")
        return self._record(stored_events, tracking if isinstance(tracking, Tracking) else None)
