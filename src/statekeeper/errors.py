"""The whole error tree of statekeeper.

Every error carries a machine-readable ``code``, the HTTP status the API answers
with, and the CLI exit code. A class's docstring is its default message.
"""

from __future__ import annotations

import json
import traceback as tracebacks
from dataclasses import dataclass
from typing import Any, ClassVar

# Bounds of a recorded error: journal entries, failure records and dead letters stay small.
MAX_ERROR_MESSAGE = 4000
MAX_ERROR_TRACEBACK = 16000


class StatekeeperError(Exception):
    """An error in statekeeper."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or self.code).strip()
        self.details = details
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON: its code, message and any details, for code that reports
        it. HTTP answers carry only the code and the message (``http/responses.py``)."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


# --- configuration --------------------------------------------------------------------


class ConfigurationError(StatekeeperError):
    """The configuration is invalid."""

    code = "configuration_error"
    exit_code = 3


class InvalidDatabaseURL(ConfigurationError):
    """The database URL is malformed."""

    code = "invalid_database_url"


class InvalidNamespace(ConfigurationError):
    """The namespace is invalid."""

    code = "invalid_namespace"


# --- bad input ------------------------------------------------------------------------


class ValidationError(StatekeeperError):
    """The input is invalid."""

    code = "invalid_input"
    http_status = 400
    exit_code = 4


class InvalidKey(ValidationError):
    """The key is invalid."""

    code = "invalid_key"


class InvalidValue(ValidationError):
    """The value cannot be stored as JSON."""

    code = "invalid_value"


class MalformedJSON(InvalidValue):
    """The input is not strict UTF-8 JSON within the limits."""

    code = "malformed_json"


class ValueTooLarge(ValidationError):
    """The value is larger than the configured limit."""

    code = "value_too_large"
    http_status = 413


class PayloadTooLarge(ValueTooLarge):
    """The request body is larger than the configured limit."""

    code = "payload_too_large"


class InvalidTTL(ValidationError):
    """The TTL must be a positive number of seconds."""

    code = "invalid_ttl"


class IdempotencyKeyReused(ValidationError):
    """The idempotency key was used before with a different payload."""

    code = "idempotency_key_reused"
    http_status = 422


class InvalidCursor(ValidationError):
    """The listing cursor is malformed."""

    code = "invalid_cursor"


class InvalidIdentifier(ValidationError):
    """The identifier is invalid."""

    code = "invalid_identifier"


class InvalidQueueName(InvalidIdentifier):
    """The queue name is invalid."""

    code = "invalid_queue_name"


class InvalidWorkflowId(InvalidIdentifier):
    """The workflow id is invalid."""

    code = "invalid_workflow_id"


class InvalidWorkflowName(InvalidIdentifier):
    """The workflow name is invalid."""

    code = "invalid_workflow_name"


class InvalidEventName(InvalidIdentifier):
    """The event name is invalid."""

    code = "invalid_event_name"


class InvalidStreamName(InvalidIdentifier):
    """A stream name that is empty, too long or holds control characters."""

    code = "invalid_stream_name"


class InvalidEvent(ValidationError):
    """An event that cannot be stored: no type, data or metadata that is not JSON."""

    code = "invalid_event"


class InvalidIdempotencyKey(InvalidIdentifier):
    """The idempotency key is invalid."""

    code = "invalid_idempotency_key"


class InvalidDefinition(ValidationError):
    """A state machine definition has problems; ``details['problems']`` lists each with
    where it is (a JSON Pointer) and what is wrong."""

    code = "invalid_definition"


class InvalidFilter(ValidationError):
    """A listing filter has a value that can match nothing."""

    code = "invalid_filter"


class QueryTooSlow(ValidationError):
    """The query read for longer than its time limit: narrow its filter or key range."""

    code = "query_too_slow"


class AttributeKindMismatch(ValidationError):
    """A searchable attribute's value is not of the kind its name has in this namespace
    (fixed by the first value set under it)."""

    code = "attribute_kind_mismatch"


# --- outcomes of conditional operations ----------------------------------------------


class ConflictError(StatekeeperError):
    """The item changed since it was read (the ETag no longer matches)."""

    code = "conflict"
    http_status = 409
    exit_code = 5


class AlreadyExists(ConflictError):
    """The key already exists."""

    code = "already_exists"


class TransactionConflict(ConflictError):
    """A condition in the transaction failed; nothing was applied."""

    code = "transaction_conflict"


class LeaseLost(ConflictError):
    """The message's lease was lost: it expired and the message went to another receiver."""

    code = "lease_lost"


class IdempotencyInProgress(ConflictError):
    """A call with this idempotency key is still running."""

    code = "idempotency_in_progress"


class DuplicateEvent(ConflictError):
    """The event was delivered to this workflow already."""

    code = "duplicate_event"


class WrongExpectedVersion(ConflictError):
    """An append's expected version is not the stream's version."""

    code = "wrong_expected_version"

    def __init__(self, stream: str, expected: str, actual: int) -> None:
        super().__init__(
            f"stream {stream!r} is at version {actual}, not {expected}",
            stream=stream, expected=expected, actual=actual,
        )  # fmt: skip
        self.stream = stream
        self.expected = expected
        self.actual = actual


class AlreadyTracked(ConflictError):
    """The tracking position is not after the one recorded: that event was handled."""

    code = "already_tracked"


class ProjectionBusy(ConflictError):
    """The projection is being rebuilt already; wait until its new generation has
    caught up."""

    code = "projection_busy"


class WorkflowFinished(ConflictError):
    """The workflow has finished; it cannot be changed any more."""

    code = "workflow_finished"


class WorkflowConflict(ConflictError):
    """A workflow with this id exists with another name or another input."""

    code = "workflow_conflict"


class FlowKeyBusy(ConflictError):
    """A run of this singleton key is queued or running in the workflow queue already."""

    code = "flow_key_busy"


class NotFound(StatekeeperError):
    """The item does not exist."""

    code = "not_found"
    http_status = 404
    exit_code = 6


class TooManyRetries(ConflictError):
    """The update kept conflicting with concurrent writers and gave up."""

    code = "too_many_retries"


class UnknownWorkflow(NotFound):
    """No workflow of that name is registered."""

    code = "unknown_workflow"


class WorkflowNotFound(NotFound):
    """There is no workflow with that id."""

    code = "workflow_not_found"


class UnknownEntity(NotFound):
    """No entity type of that name is registered (``@app.entity``)."""

    code = "unknown_entity"


class EntityNotFound(NotFound):
    """No call to that entity was ever committed."""

    code = "entity_not_found"


class UnknownEntityHandler(NotFound):
    """The entity type has no handler of that name."""

    code = "unknown_entity_handler"


class UnknownFlowQueue(NotFound):
    """No workflow queue of that name is declared (``app.workflow_queue``)."""

    code = "unknown_flow_queue"


class StreamNotFound(NotFound):
    """No event was ever appended to the stream."""

    code = "stream_not_found"


class SubscriptionNotFound(NotFound):
    """No subscription or projection of that name."""

    code = "subscription_not_found"


class WorkflowFailed(StatekeeperError):
    """The workflow ended without a result (failed, compensated, cancelled or timed out).

    ``status`` is how it ended and ``error`` its recorded error (``error.type``,
    ``error.message``, ``error.traceback``)."""

    code = "workflow_failed"
    http_status = 409
    exit_code = 10

    def __init__(
        self,
        message: str | None = None,
        *,
        status: str = "failed",
        error: ErrorRecord | None = None,
        **details: Any,
    ) -> None:
        if error is not None:
            details = {**details, "error_type": error.type, "error_message": error.message}
        super().__init__(message, status=status, **details)
        self.status = status
        self.error = error


class EntityCallFailed(StatekeeperError):
    """The entity's handler raised: the call changed nothing (its state and messages were
    discarded). ``error`` is its recorded error (``error.type``, ``error.message``)."""

    code = "entity_call_failed"
    http_status = 409
    exit_code = 10

    def __init__(
        self, message: str | None = None, *, error: ErrorRecord | None = None, **details: Any
    ) -> None:
        if error is not None:
            details = {**details, "error_type": error.type, "error_message": error.message}
        super().__init__(message, **details)
        self.error = error


class WorkflowNotFinished(StatekeeperError):
    """The workflow has not finished yet."""

    code = "workflow_not_finished"
    http_status = 409
    exit_code = 11


class CallbacksDisabled(NotFound):
    """Workflow callbacks are not enabled here (no callback secret is configured)."""

    code = "callbacks_disabled"


class UnknownQueue(NotFound):
    """No queue of that name is declared here (``app.queue`` or a consumer)."""

    code = "unknown_queue"


class UploadNotFound(NotFound):
    """There is no such upload (or it is not complete, where a file is needed)."""

    code = "upload_not_found"


class UploadURLRefused(StatekeeperError):
    """The upload or download URL is forged, altered or expired."""

    code = "upload_url_refused"
    http_status = 403
    exit_code = 4


class UploadFinished(ConflictError):
    """The upload is complete already (or was removed while its file arrived)."""

    code = "upload_finished"


class ChecksumMismatch(ValidationError):
    """The uploaded file's SHA-256 is not the one the upload expects."""

    code = "checksum_mismatch"


class NonDeterminismError(StatekeeperError):
    """The workflow's code took another path than the one its journal records."""

    code = "non_determinism"
    http_status = 500


class JournalTooLong(StatekeeperError):
    """The workflow's journal reached its limit of entries (see ctx.continue_as_new)."""

    code = "journal_too_long"
    http_status = 500


# --- storage --------------------------------------------------------------------------


class StorageError(StatekeeperError):
    """The database failed."""

    code = "storage_error"
    http_status = 500
    exit_code = 7


class BlobMissing(StorageError):
    """A payload stored out of line (a blob) is missing, incomplete or damaged."""

    code = "blob_missing"


class BlobUnavailable(StorageError):
    """A payload stored out of line cannot be read here now: its store is not configured
    in this process, or the store failed (it stays; another try may read it)."""

    code = "blob_unavailable"
    http_status = 503


class DatabaseUnavailable(StorageError):
    """The database cannot be reached."""

    code = "database_unavailable"
    http_status = 503
    exit_code = 8


class DatabaseBusy(StorageError):
    """The database stayed locked by another writer for too long."""

    code = "database_busy"
    http_status = 503


class StorageFull(StorageError):
    """The database is out of space."""

    code = "storage_full"
    http_status = 507


class DatabaseCorrupt(StorageError):
    """The database file is corrupt or is not a statekeeper database."""

    code = "database_corrupt"


class SchemaError(StorageError):
    """The database schema is newer than this version of statekeeper or is broken."""

    code = "schema_error"


class ClosedError(StatekeeperError):
    """The app is closed; open it with `async with App(...)` first."""

    code = "closed"
    exit_code = 1


# --- encryption -----------------------------------------------------------------------


class EncryptionError(StatekeeperError):
    """Encryption is misconfigured."""

    code = "encryption_error"
    exit_code = 9


class DecryptionError(EncryptionError):
    """A stored value cannot be decrypted with the configured keys."""

    code = "decryption_failed"


# --- outbound callbacks ---------------------------------------------------------------


class InvalidCallbackURL(ValidationError):
    """The callback URL must be an http(s) URL without user information."""

    code = "invalid_callback_url"


class CallbackAddressRefused(InvalidCallbackURL):
    """The callback URL points at an address that callbacks may not reach."""

    code = "callback_address_refused"


# --- serving --------------------------------------------------------------------------


class InvalidOption(ConfigurationError):
    """A command-line option or setting is out of range."""

    code = "invalid_option"
    exit_code = 2


class InvalidTLSFiles(ConfigurationError):
    """The TLS certificate or key cannot be used."""

    code = "invalid_tls_files"


class CannotListen(ConfigurationError):
    """The server cannot listen on the address it was given."""

    code = "cannot_listen"


class AddressInUse(CannotListen):
    """Another process is listening on the address already."""

    code = "address_in_use"


# --- messages to running workflows (workflows/mailbox.py, updates.py, messaging.py) ---


class UpdateRejected(StatekeeperError):
    """The workflow's update handler rejected the update (it raised)."""

    code = "update_rejected"
    http_status = 422
    exit_code = 5


class UnknownUpdate(UpdateRejected):
    """The workflow has no handler registered for that update."""

    code = "unknown_update"
    http_status = 404
    exit_code = 6


class UpdateNotApplied(WorkflowFinished):
    """The workflow finished before it applied the update."""

    code = "update_not_applied"


class UpdateNotFinished(StatekeeperError):
    """The workflow has not applied the update yet (the wait for it timed out)."""

    code = "update_not_finished"
    http_status = 409
    exit_code = 11


class ValueNotPublished(NotFound):
    """The workflow published no value under that key."""

    code = "value_not_published"


# --- recorded errors --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A failure as statekeeper records it (a step's journal entry, a workflow's end, a
    message's last attempt): the error's type name, its message and its traceback,
    kept apart, so a catch can match the type and a person can read the traceback.

    Stored as one JSON object ``{"type", "message", "traceback"}`` (sealed as a whole
    when encryption is on)."""

    type: str
    message: str
    traceback: str | None = None

    @classmethod
    def of(cls, error: BaseException, *, name: str | None = None) -> ErrorRecord:
        """The record of a raised ``error``: its class name (or ``name``), its message
        and its traceback (the last MAX_ERROR_TRACEBACK characters)."""
        lines = tracebacks.format_exception(error) if error.__traceback__ is not None else []
        message = error.message if isinstance(error, StatekeeperError) else str(error)
        return cls.made(name or error.__class__.__name__, message, "".join(lines) or None)

    @classmethod
    def made(cls, name: str, message: str, traceback: str | None = None) -> ErrorRecord:
        """A record within the size bounds (a long message keeps its start, a long
        traceback its end, where the error was raised)."""
        if len(message) > MAX_ERROR_MESSAGE:
            message = message[: MAX_ERROR_MESSAGE - 3] + "..."
        if traceback is not None and len(traceback) > MAX_ERROR_TRACEBACK:
            traceback = "..." + traceback[-(MAX_ERROR_TRACEBACK - 3) :]
        return cls(name[:200], message, traceback)

    def to_json(self) -> str:
        return json.dumps(
            {"type": self.type, "message": self.message, "traceback": self.traceback},
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> ErrorRecord:
        """A stored record. Text that is not one (written before records were JSON and
        still sealed then, so no migration could convert it) is the message of an
        ``Error``."""
        if text.startswith("{"):
            try:
                found = json.loads(text)
            except ValueError:
                found = None
            if isinstance(found, dict) and isinstance(found.get("type"), str):
                message, trace = found.get("message"), found.get("traceback")
                return cls(
                    found["type"],
                    message if isinstance(message, str) else "",
                    trace if isinstance(trace, str) else None,
                )
        return cls("Error", text)

    def to_dict(self, *, traceback: bool = True) -> dict[str, Any]:
        shown = {"type": self.type, "message": self.message}
        return {**shown, "traceback": self.traceback} if traceback else shown

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


# --- schedules (issue 12, item 2) -----------------------------------------------------


class InvalidSchedule(ValidationError):
    """The schedule is invalid (its spec, overlap policy, jitter, catch-up window, or its
    workflow queue, key or priority)."""

    code = "invalid_schedule"


class ScheduleNotFound(NotFound):
    """There is no schedule with that id."""

    code = "schedule_not_found"


class ScheduleExists(ConflictError):
    """A schedule with that id exists already."""

    code = "schedule_exists"
