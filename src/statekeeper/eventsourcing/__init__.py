"""statekeeper as a persistence module of the ``eventsourcing`` library (9.5).

An application keeps its events in statekeeper with the library's setting
``PERSISTENCE_MODULE=statekeeper.eventsourcing``. Settings, read through the library's
environment (so ``<APPLICATION NAME>_<SETTING>`` wins over ``<SETTING>``):

- ``STATEKEEPER_DATABASE_URL``: the database (``DOGSCHOOL_STATEKEEPER_DATABASE_URL``
  for the application DogSchool alone); else statekeeper's default,
  ``sqlite:///.statekeeper/state.db``.
- ``STATEKEEPER_ES_NAMESPACE``: the namespace of the application's events (its own
  global log, the application sequence); else the application's name.
- ``ORIGINATOR_ID_TYPE``: ``uuid`` (the default: ids read back as UUIDs) or ``text``.

docs/eventsourcing.md tells what maps to what, and the limits.
"""

from __future__ import annotations

from typing import TypeVar

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    ProcessRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic

from statekeeper.constants import ENV_DATABASE_URL, ENV_ES_NAMESPACE
from statekeeper.errors import InvalidDatabaseURL, InvalidNamespace
from statekeeper.eventsourcing.recorders import (
    StatekeeperAggregateRecorder,
    StatekeeperApplicationRecorder,
    StatekeeperProcessRecorder,
    StatekeeperRecorder,
    StatekeeperSubscription,
    StatekeeperTrackingRecorder,
)
from statekeeper.eventsourcing.runtime import Runtime, acquire, release
from statekeeper.identifiers import check_namespace
from statekeeper.storage import parse, resolve

__all__ = [
    "Factory",
    "StatekeeperAggregateRecorder",
    "StatekeeperApplicationRecorder",
    "StatekeeperProcessRecorder",
    "StatekeeperSubscription",
    "StatekeeperTrackingRecorder",
]

DEFAULT_NAMESPACE = "eventsourcing"  # an application without a name (a bare factory)
R = TypeVar("R", bound=StatekeeperRecorder)


class Factory(InfrastructureFactory[StatekeeperTrackingRecorder]):
    """The recorders of one application, on the database its settings name."""

    STATEKEEPER_DATABASE_URL = ENV_DATABASE_URL
    STATEKEEPER_ES_NAMESPACE = ENV_ES_NAMESPACE
    ORIGINATOR_ID_TYPE = "ORIGINATOR_ID_TYPE"

    aggregate_recorder_class = StatekeeperAggregateRecorder
    application_recorder_class = StatekeeperApplicationRecorder
    tracking_recorder_class = StatekeeperTrackingRecorder
    process_recorder_class = StatekeeperProcessRecorder

    def __init__(self, env: Environment | EnvType | None):
        super().__init__(env)
        url = self.env.get(self.STATEKEEPER_DATABASE_URL) or resolve(None)
        try:
            parse(url)
        except InvalidDatabaseURL as error:
            raise OSError(f"setting {self.STATEKEEPER_DATABASE_URL}: {error}") from error
        self.namespace = self._namespace(
            self.env.get(self.STATEKEEPER_ES_NAMESPACE) or self.env.name or DEFAULT_NAMESPACE
        )
        id_type = (self.env.get(self.ORIGINATOR_ID_TYPE) or "uuid").lower()
        if id_type not in ("uuid", "text"):
            raise OSError(
                f"setting {self.ORIGINATOR_ID_TYPE} must be 'uuid' or 'text', got {id_type!r}"
            )
        self.uuid_ids = id_type == "uuid"
        self._runtime: Runtime | None = acquire(url)

    def _namespace(self, namespace: str) -> str:
        try:
            return check_namespace(namespace)
        except InvalidNamespace as error:
            raise OSError(f"setting {self.STATEKEEPER_ES_NAMESPACE}: {error}") from error

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise OSError("the statekeeper persistence module's factory is closed")
        return self._runtime

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """Originators' events; another ``purpose`` (snapshots) keeps its own in the
        namespace ``<namespace>/<purpose>``."""
        namespace = self.namespace if purpose == "events" else f"{self.namespace}/{purpose}"
        return self.aggregate_recorder_class(
            self.runtime, self._namespace(namespace), uuid_ids=self.uuid_ids
        )

    def application_recorder(self) -> ApplicationRecorder:
        cls = self._topic(self.APPLICATION_RECORDER_TOPIC, self.application_recorder_class)
        return cls(self.runtime, self.namespace, uuid_ids=self.uuid_ids)

    def tracking_recorder(
        self, tracking_recorder_class: type[StatekeeperTrackingRecorder] | None = None
    ) -> StatekeeperTrackingRecorder:
        cls = tracking_recorder_class or self._topic(
            self.TRACKING_RECORDER_TOPIC, self.tracking_recorder_class
        )
        return cls(self.runtime, self.namespace, uuid_ids=self.uuid_ids)

    def process_recorder(self) -> ProcessRecorder:
        cls = self._topic(self.PROCESS_RECORDER_TOPIC, self.process_recorder_class)
        return cls(self.runtime, self.namespace, uuid_ids=self.uuid_ids)

    def _topic(self, setting: str, default: type[R]) -> type[R]:
        """The recorder class a setting names (a subclass of ``default``), or ``default``."""
        topic = self.env.get(setting)
        if not topic:
            return default
        cls = resolve_topic(topic)
        if not (isinstance(cls, type) and issubclass(cls, default)):
            raise OSError(f"setting {setting}: {topic!r} is not a subclass of {default.__name__}")
        return cls

    def close(self) -> None:
        """Release the database (closed when no other factory of this process uses it)."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            release(runtime)
