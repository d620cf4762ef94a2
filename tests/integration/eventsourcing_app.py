"""A small application of the ``eventsourcing`` library, for the persistence module's
end-to-end test: dogs that learn tricks (snapshots every 2 events), and a projection
that counts each dog's tricks (an event-sourced projection: its events and tracking
positions are recorded together)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate, event
from eventsourcing.projection import EventSourcedProjection
from eventsourcing.utils import get_topic


class Dog(Aggregate):
    class Registered(Aggregate.Created):
        name: str

    class TrickAdded(Aggregate.Event):
        trick: str

    @event(Registered)
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @event(TrickAdded)
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class DogSchool(Application[UUID]):
    snapshotting_intervals = {Dog: 2}  # noqa: RUF012 (the library's class setting)

    def register_dog(self, name: str) -> UUID:
        dog = Dog(name)
        self.save(dog)
        return dog.id

    def add_trick(self, dog_id: UUID, trick: str) -> None:
        dog: Dog = self.repository.get(dog_id)
        dog.add_trick(trick)
        self.save(dog)

    def get_dog(self, dog_id: UUID) -> dict[str, Any]:
        dog: Dog = self.repository.get(dog_id)
        return {"name": dog.name, "tricks": list(dog.tricks), "version": dog.version}


class TrickCount(Aggregate):
    class Counted(Aggregate.Event):
        pass

    def __init__(self, dog_id: UUID) -> None:
        self.dog_id = dog_id
        self.count = 0

    @staticmethod
    def create_id(dog_id: UUID) -> UUID:
        return uuid5(NAMESPACE_URL, f"/trick-counts/{dog_id}")

    @event(Counted)
    def increment(self) -> None:
        self.count += 1


class TrickCounter(EventSourcedProjection[UUID]):
    """Counts the tricks of each dog of a DogSchool (only TrickAdded events reach it)."""

    topics = (get_topic(Dog.TrickAdded),)

    @singledispatchmethod
    def policy(self, domain_event: Any, processing_event: ProcessingEvent[UUID]) -> None:
        """Other events: nothing to do."""

    @policy.register
    def _(self, domain_event: Dog.TrickAdded, processing_event: ProcessingEvent[UUID]) -> None:
        try:
            count: TrickCount = self.repository.get(
                TrickCount.create_id(domain_event.originator_id)
            )
        except AggregateNotFoundError:
            count = TrickCount(domain_event.originator_id)
        count.increment()
        processing_event.collect_events(count)
