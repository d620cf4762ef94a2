"""Names spelled in one place: cache keys, environment variables, limits."""

from __future__ import annotations

# Environment variables (each is documented in README.md or docs/; a unit test checks).
ENV_DATABASE_URL = "STATEKEEPER_DATABASE_URL"
ENV_CACHE_URL = "STATEKEEPER_CACHE_URL"
ENV_REPLICA_URL = "STATEKEEPER_REPLICA_URL"
# The chaos harness's workload app (chaos/workload_app.py), on each worker host.
ENV_CHAOS_HOST = "STATEKEEPER_CHAOS_HOST"
ENV_CHAOS_DSN = "STATEKEEPER_CHAOS_DSN"
ENV_CHAOS_LEASE = "STATEKEEPER_CHAOS_LEASE"
ENV_CHAOS_STEP_SECONDS = "STATEKEEPER_CHAOS_STEP_SECONDS"
ENV_ENCRYPTION_KEYS = "STATEKEEPER_ENCRYPTION_KEYS"
ENV_ENCRYPTION_KEYS_FILE = "STATEKEEPER_ENCRYPTION_KEYS_FILE"
ENV_NAMESPACE = "STATEKEEPER_NAMESPACE"
ENV_LOG_LEVEL = "STATEKEEPER_LOG_LEVEL"
ENV_LOG_FORMAT = "STATEKEEPER_LOG_FORMAT"
ENV_CALLBACK_ALLOW = "STATEKEEPER_CALLBACK_ALLOW"
ENV_CALLBACK_SECRET = "STATEKEEPER_CALLBACK_SECRET"
ENV_API_TOKEN = "STATEKEEPER_API_TOKEN"
ENV_DEV = "STATEKEEPER_DEV"
ENV_APP = "STATEKEEPER_APP"
ENV_TLS_CERT = "STATEKEEPER_TLS_CERT"
ENV_TLS_KEY = "STATEKEEPER_TLS_KEY"
ENV_HEADER_TIMEOUT = "STATEKEEPER_HEADER_TIMEOUT"
ENV_BODY_TIMEOUT = "STATEKEEPER_BODY_TIMEOUT"
ENV_MAX_STREAMS = "STATEKEEPER_MAX_STREAMS"
ENV_BLOB_STORE = "STATEKEEPER_BLOB_STORE"
ENV_BLOB_THRESHOLD = "STATEKEEPER_BLOB_THRESHOLD"
ENV_MAX_PAYLOAD_BYTES = "STATEKEEPER_MAX_PAYLOAD_BYTES"
ENV_MAX_UPLOAD_BYTES = "STATEKEEPER_MAX_UPLOAD_BYTES"
ENV_UPLOAD_SECRET = "STATEKEEPER_UPLOAD_SECRET"
ENV_METRICS = "STATEKEEPER_METRICS"
# OpenTelemetry's own (observability/tracing.py), read as its SDK reads them.
ENV_OTEL_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
ENV_OTEL_SERVICE_NAME = "OTEL_SERVICE_NAME"
ENV_AWS_CREDENTIALS = "STATEKEEPER_AWS_CREDENTIALS"
ENV_AWS_REGION = "STATEKEEPER_AWS_REGION"
ENV_AWS_ACCOUNT = "STATEKEEPER_AWS_ACCOUNT"
# The sidecar's pub/sub deliveries to its app (statekeeper sidecar --pubsub-*).
ENV_PUBSUB_MAX_ATTEMPTS = "STATEKEEPER_PUBSUB_MAX_ATTEMPTS"
ENV_PUBSUB_RETRY_INTERVAL = "STATEKEEPER_PUBSUB_RETRY_INTERVAL"
ENV_PUBSUB_MAX_RETRY_DELAY = "STATEKEEPER_PUBSUB_MAX_RETRY_DELAY"
ENV_PUBSUB_DELIVERY_TIMEOUT = "STATEKEEPER_PUBSUB_DELIVERY_TIMEOUT"
ENV_PUBSUB_CONCURRENCY = "STATEKEEPER_PUBSUB_CONCURRENCY"
ENV_PUBSUB_LEASE = "STATEKEEPER_PUBSUB_LEASE"
# The namespace of an eventsourcing application's events (statekeeper.eventsourcing),
# read through that library's environment (the application's name may prefix it).
ENV_ES_NAMESPACE = "STATEKEEPER_ES_NAMESPACE"

# statekeeper's own queues (callbacks, workflow callback answers, wake-up channels)
# start with this; clients can neither post to them nor name them as a reply queue.
INTERNAL_QUEUE_PREFIX = "statekeeper."
# The wake-up channel of a namespace's event log: announced after events commit, by
# the event store and the eventsourcing module alike (a name no queue can take).
EVENTS_CHANNEL = f"{INTERNAL_QUEUE_PREFIX}events"


def is_internal_queue(name: str) -> bool:
    return name.startswith(INTERNAL_QUEUE_PREFIX)


# Limits.
# Payloads above the threshold are stored out of line as blobs (statekeeper.blobs);
# those that go through the blob store may be this large.
DEFAULT_BLOB_THRESHOLD = 256 * 1024
# What a row holds for a payload stored out of line: these bytes and the blob's 16-byte
# id. The triggers that count references (storage migration ``blobs``) read this form.
REF_MAGIC = b"\xffSKR"
REF_SIZE = len(REF_MAGIC) + 16
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 30
# The largest file an upload takes (POST /v1/uploads may ask for less).
DEFAULT_MAX_UPLOAD_BYTES = 1 << 30
MAX_KEY_BYTES = 1024
MAX_NAMESPACE_BYTES = 128
MAX_LIST_LIMIT = 1000
SIDECAR_MAX_BODY = 4 * 1024 * 1024  # the sidecar's default request body limit (as Dapr's)
MAX_TRANSACTION_OPS = 1000
MAX_VALUE_DEPTH = 200
MAX_TTL_SECONDS = 100 * 365 * 24 * 3600
MAX_DELAY_SECONDS = 365 * 24 * 3600  # of a message's delivery and of a retry


# A workflow's statuses: active ones, then the ends.
WORKFLOW_ACTIVE = ("pending", "running", "sleeping", "waiting")
WORKFLOW_STATUSES = (
    *WORKFLOW_ACTIVE, "succeeded", "failed", "cancelled", "compensated", "timed_out",
)  # fmt: skip
# What was asked of a workflow that has not finished (sk_workflows.cancel_requested):
# nothing, a cancel, or a pause. A cancel replaces a pause.
WORKFLOW_CANCEL_REQUESTED = 1
WORKFLOW_PAUSED = 2

# Events the workflow engine delivers to itself: a child's end to its parent, an outside
# system's answer to a callback. Clients can neither send nor wait for these names.
CHILD_EVENT_PREFIX = "child:"
CALLBACK_EVENT_PREFIX = "callback:"
RESERVED_EVENT_PREFIXES = (CHILD_EVENT_PREFIX, CALLBACK_EVENT_PREFIX)


def child_event(child_id: str) -> str:
    """The event that delivers child workflow ``child_id``'s end to its parent."""
    return f"{CHILD_EVENT_PREFIX}{child_id}"


def callback_event(position: int | str) -> str:
    """The event that delivers the answer to the callback made at journal ``position``."""
    return f"{CALLBACK_EVENT_PREFIX}{position}"


def heartbeat_event(event: str) -> str:
    """Where a callback's last heartbeat is kept (a name no client can send)."""
    return f"{event}:heartbeat"


# Redis keys of the state cache. Every key of a namespace carries the namespace's
# epoch: bumping the epoch drops the namespace's whole cache at once.
def cache_epoch_key(namespace: str) -> str:
    return f"sk:{{{namespace}}}:epoch"


def cache_item_prefix(namespace: str) -> str:
    """Item keys are this prefix, then the epoch, then ``:`` and the state key."""
    return f"sk:{{{namespace}}}:item:"


def cache_lease_prefix(namespace: str) -> str:
    """Fill-lease keys: like item keys, under their own prefix so no key collides."""
    return f"sk:{{{namespace}}}:lease:"


# Workflow versions and retention (workflows/versions.py, workflows/retention.py).
ENV_APP_VERSION = "STATEKEEPER_APP_VERSION"
ENV_VERSION_POLICY = "STATEKEEPER_VERSION_POLICY"
ENV_WORKFLOW_RETENTION = "STATEKEEPER_WORKFLOW_RETENTION"
