"""App: configuration and lifecycle; the entry point to every building block.

async with App("sqlite:///state.db") as app:
    await app.state.put("user:1", {"name": "Ada"})
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from statekeeper.app_options import optional_seconds, positive_int, positive_seconds
from statekeeper.asl.resources import Resources
from statekeeper.asl.workflow import KIND as ASL_KIND
from statekeeper.asl.workflow import interpreter as asl_interpreter
from statekeeper.blobs import payloads_from_options
from statekeeper.blobs.payloads import size_option
from statekeeper.constants import (
    DEFAULT_MAX_UPLOAD_BYTES,
    ENV_CACHE_URL,
    ENV_CALLBACK_SECRET,
    ENV_MAX_UPLOAD_BYTES,
    ENV_NAMESPACE,
    ENV_REPLICA_URL,
    EVENTS_CHANNEL,
    INTERNAL_QUEUE_PREFIX,
    is_internal_queue,
)
from statekeeper.declarations import Declarations
from statekeeper.entities import Entities, EntityTypes
from statekeeper.entities.context import StartAsked
from statekeeper.entities.signals import ENTITY_CALLS
from statekeeper.entities.writers import EntityWriters, WriterConfig
from statekeeper.errors import (
    ClosedError,
    ConfigurationError,
    EncryptionError,
)
from statekeeper.events.projections import Projections
from statekeeper.events.store import EventStore
from statekeeper.idempotency import Idempotency
from statekeeper.identifiers import check_namespace
from statekeeper.outbound import CallbackPolicy
from statekeeper.queues import Queue, QueueConfig, Retry, Wakeups
from statekeeper.queues.completions import CALLBACK_QUEUE, completion_builder
from statekeeper.reencrypt import ReencryptReport, reencrypt
from statekeeper.runtime.callbacks import CALLBACK_RETRY, CallbackRefused, CallbackSender
from statekeeper.runtime.consumer import Consumer
from statekeeper.runtime.supervisor import Supervisor
from statekeeper.runtime.task_http import TaskPoster
from statekeeper.runtime.upkeep import Upkeep
from statekeeper.runtime.worker import Worker
from statekeeper.schedules import Scheduler, Schedules
from statekeeper.sealing import Sealer
from statekeeper.state import Keyring, StateStore
from statekeeper.state.cache import StateCache, check_cache_url
from statekeeper.storage import Storage, create_backend, parse, resolve
from statekeeper.storage.rows import WorkflowStart
from statekeeper.uploads import Targets as UploadTargets
from statekeeper.uploads import Uploads
from statekeeper.uploads import upkeep as upload_upkeep
from statekeeper.workflows.engine import CALLBACK_FINAL, Workflows
from statekeeper.workflows.journal import DEFAULT_MAX_JOURNAL
from statekeeper.workflows.retention import Retention, Retentions
from statekeeper.workflows.versions import Versions

if TYPE_CHECKING:
    from statekeeper.storage.replica import Replica

log = logging.getLogger("statekeeper.app")
WORKFLOW_CALLBACK_QUEUE = f"{INTERNAL_QUEUE_PREFIX}workflow-callbacks"


class App(Declarations):
    """One statekeeper application: a database, a namespace, and its building blocks."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        namespace: str | None = None,
        cache_url: str | None = None,
        cache_ttl: float = 60.0,
        replica_url: str | None = None,
        encryption: Keyring | Literal["env"] | None = "env",
        max_value_bytes: int | None = None,
        clock: Callable[[], float] = time.time,
        purge_interval: float | None = 60.0,
        maintenance_interval: float | None = 15.0,
        archive_retention: float = 7 * 24 * 3600.0,
        callback_allow: str | Iterable[str] | None = None,
        max_journal_entries: int = DEFAULT_MAX_JOURNAL,
        version: str | None = None,
        version_policy: str | None = None,
        workflow_retention: Retention = None,
        entity_lease: float = 10.0,
        entity_answer_ttl: float = 24 * 3600.0,
        blob_store: str | None = None,
        blob_threshold: int | None = None,
        max_payload_bytes: int | None = None,
        max_upload_bytes: int | None = None,
    ) -> None:
        self.url = parse(resolve(database_url))
        # Workflow versions and retention (workflows/versions.py, workflows/retention.py),
        # checked here and given to every namespace's workflows.
        self._versioning = (version, version_policy, workflow_retention)
        Versions({}).configure(version, version_policy)
        Retentions().configure(workflow_retention)
        chosen = os.environ.get(ENV_NAMESPACE) or "default" if namespace is None else namespace
        self.namespace = check_namespace(chosen)
        if cache_ttl <= 0:
            raise ConfigurationError(f"cache_ttl must be positive, got {cache_ttl!r}")
        self.keyring = Keyring.from_env() if encryption == "env" else encryption
        # Non-public hosts, addresses and networks that callbacks may reach.
        self.callback_policy = (
            CallbackPolicy.from_env()
            if callback_allow is None
            else CallbackPolicy.parse(callback_allow)
        )
        # Seals every payload but state values (those the state store seals itself).
        self.sealer = Sealer(self.keyring)
        self.cache_url = cache_url or os.environ.get(ENV_CACHE_URL) or None
        if self.cache_url:
            check_cache_url(self.cache_url)
        self._cache_ttl = cache_ttl
        # A standby for reads with consistent=False (storage/replica.py): PostgreSQL.
        replica = replica_url or os.environ.get(ENV_REPLICA_URL) or None
        self.replica_url = parse(replica) if replica else None
        if self.replica_url is not None and self.replica_url.scheme != "postgres":
            raise ConfigurationError("replica_url must be a PostgreSQL URL (a hot standby)")
        self._replica: Replica | None = None
        self._max_journal_entries = positive_int("max_journal_entries", max_journal_entries)
        self.clock = clock
        # Payloads above the threshold go out of line, to the blob store (statekeeper.blobs).
        self.payloads = payloads_from_options(
            lambda: self.backend.blobs, self.sealer, self.clock,
            store=blob_store, threshold=blob_threshold, max_bytes=max_payload_bytes,
        )  # fmt: skip
        # State values, entity states and events: the payload limit unless given.
        self._max_value_bytes = (
            self.payloads.max_bytes
            if max_value_bytes is None
            else positive_int("max_value_bytes", max_value_bytes)
        )
        self._max_upload_bytes = size_option(
            "max_upload_bytes", max_upload_bytes, ENV_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES
        )
        self._purge_interval = purge_interval
        # Acknowledged messages are kept this long: replay and request status reach back so far.
        self.archive_retention = archive_retention
        self.idempotency_lease = 30.0
        self._idempotency: Idempotency | None = None
        self._backend: Storage | None = None
        self._state: StateStore | None = None
        self._cache: StateCache | None = None
        self._queues: dict[str, Queue] = {}
        self.consumers: dict[str, Consumer] = {}
        # Table upkeep (vacuum and analyze on PostgreSQL), only where purging runs too.
        self._maintenance_interval = optional_seconds("maintenance_interval", maintenance_interval)
        self._entity_config = WriterConfig(
            positive_seconds("entity_lease", entity_lease),
            positive_seconds("entity_answer_ttl", entity_answer_ttl),
            self._max_value_bytes,
        )
        # The entity types the code declares (``app.entity``), shared by every view.
        self.entity_types = EntityTypes()
        self._wakeups = Wakeups(announce=self._announce)
        # The process's background services (upkeep, and the worker and HTTP server of
        # ``statekeeper worker`` / ``serve``), shared by every namespace view.
        self._runtime: Supervisor | None = None
        self._root: App | None = None  # the app a namespace view belongs to
        self._views: dict[str, App] = {}
        self._per_namespace()
        # What the Task states of state machines run here (``task_function``), shared by
        # every namespace view.
        self._task_poster: TaskPoster | None = None
        self.task_functions = Resources(post=self._post_task)
        asl = asl_interpreter(self.task_functions.invoke, self._machine_revision)
        self.workflows.definitions.interpreter(ASL_KIND, asl)

    def _per_namespace(self) -> None:
        """The building blocks of this app's namespace (a view gets its own)."""
        self._idempotency = None
        self._state = None
        self._cache = None
        self._queues = {}
        self.consumers = {}
        self.workflows = Workflows(
            lambda: self.backend, self.namespace, self.clock, self._wakeups, sealer=self.sealer,
            state=lambda: self.state, max_journal_entries=self._max_journal_entries,
            payloads=self.payloads,
        )  # fmt: skip
        self.workflows.secret = os.environ.get(ENV_CALLBACK_SECRET) or None
        version, policy, retention = self._versioning
        self.workflows.versions.configure(version, policy)
        self.workflows.retention.configure(retention)
        # The event store of this namespace (``app.events``).
        self.events = EventStore(
            lambda: self.backend, self.namespace, clock=self.clock, payloads=self.payloads,
            max_event_bytes=self._max_value_bytes, appended=self._events_appended,
        )  # fmt: skip
        # Its projections and subscriptions, run by ``statekeeper worker`` and ``serve``.
        self.projections = Projections(
            lambda: self.backend, self.events, lambda: self.state, self.events_wake,
            self.queue, self.clock,
        )  # fmt: skip
        # Its schedules (``app.schedules``), fired by the scheduler of ``statekeeper worker``.
        self.schedules = Schedules(lambda: self.backend, self.workflows, self.clock, self._wakeups)
        # Its entities (``app.entities``), written by this process one key at a time.
        writers = EntityWriters(
            lambda: self.backend, self.namespace, self.clock, self.payloads,
            self._entity_config, outbox=self.queue, on_sent=self._notify_sent,
            types=self.entity_types, starter=self._entity_start,
        )  # fmt: skip
        self.entities = Entities(
            self.entity_types, writers, lambda: self.backend, self.namespace,
            calls=lambda: self.queue(ENTITY_CALLS),
        )  # fmt: skip
        self.workflows.entity_call = self.entities.call_with_id
        # Its uploads (``app.uploads``): files sent to signed URLs that start work.
        self.uploads = Uploads(
            lambda: self.backend, self.namespace, self.clock, self.payloads,
            UploadTargets(self.workflows, self.queue, self.has_queue),
            max_bytes=self._max_upload_bytes,
        )  # fmt: skip

    def _uploads_of(self, namespace: str) -> Uploads | None:
        """The uploads of ``namespace`` if this app serves it (its own, or a view's)."""
        return self.in_namespace(namespace).uploads if namespace in self.namespaces else None

    def _events_appended(self, namespace: str) -> None:
        """Events committed here: wake this namespace's subscriptions, here and elsewhere."""
        self._wakeups.notify(namespace, EVENTS_CHANNEL)

    def events_wake(self) -> Any:
        """The event the next append to this namespace sets (subscriptions wait on it)."""
        return self._wakeups.event(self.namespace, EVENTS_CHANNEL)

    def in_namespace(self, namespace: str) -> App:
        """A view of this app on another namespace: the same opened database (one
        connection pool; on SQLite one writer thread), keys, cache server, clock and
        background services; its own state, queues, consumers and workflows. Views are
        kept, one per namespace; they are usable while this app is open and close with
        it. ``app.in_namespace(app.namespace)`` is the app itself."""
        root = self._root or self
        name = check_namespace(namespace)
        if name == root.namespace:
            return root
        view = root._views.get(name)
        if view is None:
            view = copy.copy(root)
            view.namespace = name
            view._root = root
            view._views = {}
            view._backend = None  # the root's, through ``backend``
            view._runtime = None  # the root's services serve every view (``runtime``)
            view._per_namespace()
            view.workflows.secret = root.workflows.secret
            view.workflows.definitions.interpreters = dict(root.workflows.definitions.interpreters)
            root._views[name] = view
        return view

    @property
    def namespaces(self) -> list[str]:
        """This app's namespace and those of the views made so far."""
        root = self._root or self
        return [root.namespace, *sorted(root._views)]

    @property
    def version(self) -> str:
        """The application version: ``App(version=...)``, else a hash of the registered
        workflows' code (each run is stamped with its workflow's: ``app.workflows.versions``,
        docs/workflow-code-changes.md)."""
        return self.workflows.versions.app_version

    @property
    def wakeups(self) -> Wakeups:
        """This process's wake-ups: queues' receivers, workflow runners and the live
        streams that watch a request or a workflow (queues/wakeups.py)."""
        return self._wakeups

    @property
    def runtime(self) -> Supervisor | None:
        """The process's background services (upkeep; the worker and HTTP server of
        ``statekeeper worker`` / ``serve``), shared by every namespace view; None while
        the app is closed."""
        return (self._root or self)._runtime

    @property
    def backend(self) -> Storage:
        if self._root is not None:
            return self._root.backend
        if self._backend is None:
            raise ClosedError()
        return self._backend

    @property
    def state(self) -> StateStore:
        """The key/value state store of this app's namespace."""
        if self._state is None:
            if self._root is None or self._root._backend is None:
                raise ClosedError()
            self._open_state(self._root._backend)  # a view's, on first use
            assert self._state is not None
        return self._state

    def queue(
        self,
        name: str,
        *,
        retry: Retry | None = None,
        visibility_timeout: float | None = None,
        dedup_window: float | None = None,
        archive: bool | None = None,
        max_message_bytes: int | None = None,
        group_by: str | Callable[[Any], Any] | None = None,
    ) -> Queue:
        """The queue ``name``; options given the first time configure it for this app
        (``group_by``: a message's group when sent without one, from its body)."""
        options = {
            "retry": retry,
            "visibility_timeout": visibility_timeout,
            "dedup_window": dedup_window,
            "archive": archive,
            "max_message_bytes": max_message_bytes,
            "group_by": group_by,
        }
        chosen = {k: v for k, v in options.items() if v is not None}
        existing = self._queues.get(name)
        if existing is not None:
            differs = [k for k, v in chosen.items() if getattr(existing.config, k) != v]
            if differs:
                raise ConfigurationError(
                    f"queue {name!r} is already configured with another {differs[0]}"
                )
            return existing
        queue = self._new_queue(name, QueueConfig(**chosen))  # type: ignore[arg-type]
        self._queues[name] = queue
        return queue

    def inspect_queue(self, name: str) -> Queue:
        """Queue ``name`` to read and manage what it holds (peek, stats, redrive, purge)
        without declaring it for this app (a declared queue is itself): an operator's
        view of a queue this process does not send to or consume (the dashboard)."""
        existing = self._queues.get(name)
        return existing if existing is not None else self._new_queue(name, QueueConfig())

    def _new_queue(self, name: str, config: QueueConfig) -> Queue:
        return Queue(
            lambda: self.backend,
            self.namespace,
            name,
            config,
            clock=self.clock,
            wakeups=self._wakeups,
            completions=completion_builder(self.clock, self.namespace, self.sealer),
            callback_policy=lambda: self.callback_policy,
            sealer=self.sealer,
            spill=self.payloads.prepare,
            fill=self.payloads.fill,
        )

    @property
    def idempotency(self) -> Idempotency:
        """Run functions once per key: ``await app.idempotency.run(key, fn, *args)``."""
        if self._idempotency is None:
            self._idempotency = Idempotency(
                self.backend,
                self.namespace,
                self.clock,
                self.payloads,
                lease=self.idempotency_lease,
            )
        return self._idempotency

    async def _machine_revision(self, namespace: str, machine: str, revision: str) -> str | None:
        """The definition of a state machine's revision (the Step Functions API keeps
        one per CreateStateMachine and UpdateStateMachine)."""
        found = await self.backend.machines.get(namespace, "revision", f"{machine}:{revision}")
        return None if found is None else str(found.doc["definition"])

    async def _post_task(self, url: str, body: bytes, timeout: float | None) -> tuple[int, bytes]:
        root = self._root or self
        if root._task_poster is None:
            root._task_poster = TaskPoster(lambda: root.callback_policy)
        return await root._task_poster(url, body, timeout)

    def enable_callbacks(
        self, secret: str | None = None, *, allow: str | Iterable[str] | None = None
    ) -> bool:
        """Deliver completion callbacks from this process's worker, signed with ``secret``
        (default STATEKEEPER_CALLBACK_SECRET); False when no secret is configured.

        ``allow``: the non-public host names, addresses and CIDR networks callbacks may
        reach (replaces ``callback_allow`` / STATEKEEPER_CALLBACK_ALLOW)."""
        if allow is not None:
            self.callback_policy = CallbackPolicy.parse(allow)
        chosen = secret or os.environ.get(ENV_CALLBACK_SECRET)
        if not chosen:
            return False
        if CALLBACK_QUEUE not in self.consumers:
            self.queue(CALLBACK_QUEUE, retry=CALLBACK_RETRY)
            self.consumer(CALLBACK_QUEUE, concurrency=16, non_retryable=(CallbackRefused,))(
                CallbackSender(chosen, lambda: self.callback_policy)
            )
        return True

    def has_queue(self, name: str) -> bool:
        """Whether ``name`` is one of this app's own queues (declared or consumed)."""
        return (name in self._queues or name in self.consumers) and not is_internal_queue(name)

    def enable_workflow_callback_queue(self) -> None:
        """Let outside systems answer workflow callbacks by queue as well as by HTTP:
        a message ``{"token": ..., "status": ..., "data"/"error": ...}`` on
        ``statekeeper.workflow-callbacks`` is delivered like POST /v1/callbacks/{token}."""
        if WORKFLOW_CALLBACK_QUEUE in self.consumers:
            return

        self.consumer(WORKFLOW_CALLBACK_QUEUE, concurrency=8, non_retryable=CALLBACK_FINAL)(
            self.workflows.answer_callback_message
        )

    def with_views(self) -> list[App]:
        """This app and the namespace views opened from it so far (``in_namespace``)."""
        return [self, *self._views.values()]

    def queue_names(self) -> list[str]:
        """The queues this app declared or consumes (its own, not statekeeper's)."""
        names = set(self._queues) | set(self.consumers)
        return sorted(n for n in names if not is_internal_queue(n))

    async def reencrypt(
        self,
        *,
        all_namespaces: bool = False,
        batch_size: int = 500,
        max_batches: int | None = None,
    ) -> ReencryptReport:
        """Re-seal every stored value of this app's namespace (state and every payload;
        with ``all_namespaces``, of every namespace in the database) under the primary
        key, in batches; resumable (see reencrypt.py)."""
        if self.keyring is None:
            raise EncryptionError("no encryption keys are configured; nothing to re-encrypt with")
        return await reencrypt(
            self.backend,
            self.keyring,
            namespace=None if all_namespaces else self.namespace,
            batch_size=batch_size,
            max_batches=max_batches,
            state_resealed=self._forget_cached,
        )

    async def _forget_cached(self, namespace: str, keys: list[str]) -> None:
        """Drop re-sealed state items from the cache (they are cached as stored)."""
        if not self.cache_url:
            return
        if namespace == self.namespace and self._cache is not None:
            await self._cache.invalidate(keys)
            return
        cache = StateCache(self.cache_url, namespace, ttl=self._cache_ttl)
        try:
            await cache.invalidate(keys)
        finally:
            await cache.close()

    def _announce(self, namespace: str, queue: str) -> None:
        if self._backend is not None:
            self._backend.announce(namespace, queue)

    def _notify_sent(self, queues: set[str]) -> None:
        for name in queues:
            self._wakeups.notify(self.namespace, name)

    async def open(self) -> App:
        if self._root is not None:
            raise ConfigurationError("a namespace view opens and closes with its app")
        backend = create_backend(self.url)
        await backend.open()
        self._backend = backend
        self.entities.writers.open()
        try:
            backend.listen(self._wakeups.heard)
            for consumer in self.consumers.values():  # consumers' flow control, as declared
                await backend.flow.queue_limits(self.namespace, consumer.queue, *consumer.limits)
            if self.replica_url is not None:
                from statekeeper.storage.replica import Replica  # imports the driver

                self._replica = Replica(self.replica_url)
                await self._replica.open()
            self._open_state(backend)
            self._runtime = runtime = Supervisor()
            if self._purge_interval:
                runtime.start(
                    Upkeep(
                        purge=lambda: self.state.purge_expired(),
                        forget=self.forget_old_records,
                        maintain=backend.maintain,
                        purge_interval=self._purge_interval,
                        maintenance_interval=self._maintenance_interval,
                    )
                )
        except BaseException:
            await self.close()
            raise
        return self

    def _open_state(self, backend: Storage) -> None:
        if self.cache_url:
            self._cache = StateCache(self.cache_url, self.namespace, ttl=self._cache_ttl)
        self._state = StateStore(
            backend,
            self.namespace,
            clock=self.clock,
            max_value_bytes=self._max_value_bytes,
            keyring=self.keyring,
            cache=self._cache,
            outbox=self.queue,
            on_sent=self._notify_sent,
            spill=self.payloads.prepare,
            fill=self.payloads.fill,
            replica=self._replica,
        )

    def worker(
        self, queues: Iterable[str] | None = None, *, grace: float = 30.0, poll: float = 1.0
    ) -> Worker:
        """A worker for this app's consumers (those of ``queues``, or all) and its
        workflows; run it with ``await worker.run()`` or under ``app.runtime``."""
        consumers = list(self.consumers.values())
        if queues is not None:
            chosen = list(queues)
            unknown = sorted(set(chosen) - set(self.consumers))
            if unknown:
                raise ConfigurationError(f"no consumer for queue {unknown[0]!r}")
            consumers = [c for c in consumers if c.queue in chosen]
        return Worker(consumers, self.queue, self.workflows, grace=grace, poll=poll)

    def start_projections(self) -> list[str]:
        """Run this app's projections (and its views') under ``app.runtime``: their names."""
        runtime = self.runtime
        assert runtime is not None
        names: list[str] = []
        for app in [self, *self._views.values()]:
            projections = app.projections
            if projections.registered or projections.subscriptions:
                runtime.start(projections.service())
                names.extend([*projections.registered, *projections.subscriptions])
        return names

    async def close(self) -> None:
        """Stop the background services (within their grace), then close the database.
        A view closes only its own cache."""
        if self._runtime is not None:
            runtime, self._runtime = self._runtime, None
            await runtime.close()
        for view in list(self._views.values()):
            await view.close()
        self._views.clear()
        await self.entities.writers.close()
        self._idempotency = None
        await self.projections.close()
        if self._cache is not None:
            await self._cache.close()
            self._cache = None
        self._state = None
        if self._task_poster is not None:
            poster, self._task_poster = self._task_poster, None
            await poster.close()
        if self._replica is not None:
            replica, self._replica = self._replica, None
            await replica.close()
        if self._backend is not None:
            backend, self._backend = self._backend, None
            await backend.close()

    async def __aenter__(self) -> App:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def forget_old_records(self, batch: int = 1000) -> int:
        """Drop expired idempotency records and deduplication claims, archived messages
        older than ``archive_retention``, and finished workflow runs past their retention
        (with their journals and events), ``batch`` rows a transaction; how many."""
        total = 0
        while True:
            now = self.clock()
            forgotten = await self.backend.idempotency.forget(now, batch)
            forgotten += await self.backend.queues.forget(now, now - self.archive_retention, batch)
            # Finished workflow runs past their retention, in every namespace.
            forgotten += await self.backend.workflows.purge_expired(now, batch)
            # Answers to entity calls past entity_answer_ttl.
            forgotten += await self.backend.entities.forget(now, batch)
            # Uploads: started if their start was missed, forgotten when expired or when
            # what they started is gone (their files with them).
            forgotten += await upload_upkeep(
                self.backend, self.clock, self._uploads_of, batch, self.namespaces
            )
            # Blobs no row refers to any more (in a directory), or never did.
            forgotten += await self.payloads.blobs.sweep(limit=batch)
            total += forgotten
            if forgotten < batch:
                return total

    async def _entity_start(self, asked: StartAsked) -> WorkflowStart:
        return await self.workflows.new_start(
            asked.name, asked.input, id=asked.id, timeout=asked.timeout
        )

    def start_schedules(self, *, poll: float = 1.0) -> list[str]:
        """Run a scheduler for this app's namespace (and its views') under ``app.runtime``:
        the namespaces. Every worker may run one; the database keeps each fire to one run."""
        runtime = self.runtime
        assert runtime is not None
        namespaces: list[str] = []
        for app in [self, *self._views.values()]:
            runtime.start(Scheduler(app.schedules, poll=poll))
            namespaces.append(app.namespace)
        return namespaces
