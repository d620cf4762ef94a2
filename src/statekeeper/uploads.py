"""Uploads: a file sent to a signed URL (``http/uploads.py``) lands in the blob store,
then starts a workflow or sends a message that carries a reference to it.

``create`` records a pending upload: where it goes (a workflow name or a queue), its
size limit, the SHA-256 it must have (if given) and when its URL expires. ``receive``
streams the file into a blob (bounded memory: a few chunks), checks size and checksum,
records it complete (the row now refers to the blob), then starts the workflow (id
``upload-<id>``) or sends the message (dedup id ``upload-<id>``) with the input
``{"upload": {"id", "size", "sha256", "content_type"}}``. The start is idempotent: if the
process stops between the two, the upkeep starts it. A file that is too large, whose
checksum differs, or whose upload is gone or done meanwhile leaves nothing behind.

The file stays while what it started exists: the upkeep forgets an upload (and its
blob) once its workflow was purged or its message left the archive. Read it with
``app.uploads.open(id)`` (chunks) or ``read(id)``, from a step.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from statekeeper.blobs import Payloads
from statekeeper.errors import (
    ChecksumMismatch,
    PayloadTooLarge,
    StatekeeperError,
    UnknownQueue,
    UploadFinished,
    UploadNotFound,
    ValidationError,
)
from statekeeper.identifiers import check_queue_name, check_workflow_name
from statekeeper.queues import Queue
from statekeeper.storage.contracts import Storage
from statekeeper.storage.upload_ops import UploadRow
from statekeeper.workflows.engine import Workflows

log = logging.getLogger("statekeeper.uploads")

DEFAULT_EXPIRY = 900.0  # seconds an upload URL is valid by default
MAX_EXPIRY = 7 * 24 * 3600.0
# Seconds after which the upkeep starts a complete upload not started yet (a start that
# races with the one its PUT makes is harmless: starts are idempotent by id).
RESTART_AFTER = 5.0
# A start that fails is tried again after RETRY_FIRST seconds, the pause doubling up to
# RETRY_MOST; after MAX_START_ATTEMPTS failures (about a day) the upload is failed, and
# kept FAILED_KEPT seconds (its file can be read and downloaded) before it is forgotten.
RETRY_FIRST = 5.0
RETRY_MOST = 3600.0
MAX_START_ATTEMPTS = 32
FAILED_KEPT = 7 * 24 * 3600.0
# Seconds a pending upload is kept after its URL expired: a PUT that began in time may
# still be sending its file (the URL is checked when a PUT begins).
EXPIRED_KEPT = 3600.0
# How long the dedup id of an upload's message is remembered (a week).
UPLOAD_DEDUP_WINDOW = 7 * 24 * 3600.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Upload:
    """An upload as stored: ``state`` pending, complete or failed (its start given up);
    ``sha256`` the checksum it must have (if given), ``digest`` the one it has;
    ``started`` the workflow id or message id it started; ``attempts`` the starts that
    failed, the last with ``start_error``."""

    id: str
    state: str
    target_kind: str
    target: str
    max_bytes: int
    sha256: str | None
    content_type: str | None
    created_at: float
    expires_at: float
    size: int | None
    digest: str | None
    completed_at: float | None
    started: str | None
    attempts: int = 0
    start_error: str | None = None

    @classmethod
    def of(cls, row: UploadRow) -> Upload:
        return cls(
            row.id, row.state, row.target_kind, row.target, row.max_bytes, row.sha256,
            row.content_type, row.created_at, row.expires_at, row.size, row.digest,
            row.completed_at, row.started, row.attempts, row.start_error,
        )  # fmt: skip

    def reference(self) -> dict[str, Any]:
        """What the workflow or the message receives (as ``{"upload": ...}``)."""
        return {"id": self.id, "size": self.size, "sha256": self.digest,
                "content_type": self.content_type}  # fmt: skip


def check_upload_id(id: object) -> str:
    if not isinstance(id, str) or not _UPLOAD_ID.fullmatch(id):
        raise UploadNotFound(f"there is no upload {str(id)[:80]!r}")
    return id


class Targets:
    """What an upload starts: a workflow of the namespace's ``workflows`` (id
    ``upload-<id>``), or a message on one of its declared queues (``queue``,
    ``has_queue``: the app's)."""

    def __init__(
        self,
        workflows: Workflows,
        queue: Callable[[str], Queue],
        has_queue: Callable[[str], bool],
    ) -> None:
        self._workflows = workflows
        self._queue = queue
        self._has_queue = has_queue

    async def check(self, kind: str, target: str) -> None:
        """UnknownWorkflow or UnknownQueue now, not when the file has arrived."""
        if kind == "workflow":
            await self._workflows.known(target)
        elif not self._has_queue(target):
            raise UnknownQueue(f"there is no queue {target!r} here (declare it: app.queue)")

    async def start(self, kind: str, target: str, body: Any, key: str) -> str:
        """Start it, once whatever the number of calls: the workflow by its id, the
        message by its dedup id (remembered for a week: the upkeep may send it again
        after a stop). The workflow's or message's id."""
        if kind == "workflow":
            return str(await self._workflows.start(target, body, id=key))
        queue = self._queue(target)
        message = queue.new_message(body, dedup_id=key, dedup_window=UPLOAD_DEDUP_WINDOW)
        return (await queue.send_message(message)).id


class Uploads:
    """The uploads of one namespace."""

    def __init__(
        self,
        backend: Callable[[], Storage],
        namespace: str,
        clock: Callable[[], float],
        payloads: Payloads,
        targets: Targets,
        *,
        max_bytes: int,
    ) -> None:
        self._backend = backend
        self.namespace = namespace
        self._clock = clock
        self._payloads = payloads
        self._targets = targets
        self.max_bytes = max_bytes

    async def create(
        self,
        *,
        workflow: str | None = None,
        queue: str | None = None,
        max_bytes: int | None = None,
        sha256: str | None = None,
        content_type: str | None = None,
        expires_in: float = DEFAULT_EXPIRY,
    ) -> Upload:
        """A pending upload whose file starts ``workflow`` or goes to ``queue``."""
        if (workflow is None) == (queue is None):
            raise ValidationError("an upload goes to a workflow or to a queue: give one of them")
        kind, target = (
            ("workflow", check_workflow_name(workflow)) if workflow is not None
            else ("queue", check_queue_name(str(queue)))
        )  # fmt: skip
        limit = self.max_bytes if max_bytes is None else max_bytes
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= self.max_bytes:
            raise ValidationError(
                f"max_bytes must be an integer from 1 to {self.max_bytes}, got {max_bytes!r}"
            )
        if sha256 is not None and (not isinstance(sha256, str) or not _SHA256.fullmatch(sha256)):
            raise ValidationError("sha256 must be 64 lowercase hex digits (a SHA-256)")
        if content_type is not None and (
            not isinstance(content_type, str)
            or not 0 < len(content_type) <= 255
            or not content_type.isascii()
            or not content_type.isprintable()
        ):
            raise ValidationError("content_type must be 1-255 printable ASCII characters")
        if (
            isinstance(expires_in, bool)
            or not isinstance(expires_in, int | float)
            or not 1 <= expires_in <= MAX_EXPIRY
        ):
            raise ValidationError(
                f"expires_in must be a number of seconds from 1 to {MAX_EXPIRY:g}, "
                f"got {expires_in!r}"
            )
        await self._targets.check(kind, target)
        now = self._clock()
        row = UploadRow(
            secrets.token_hex(16), "pending", kind, target, limit, sha256, content_type, now,
            now + float(expires_in), None, None, None, None, None,
        )  # fmt: skip
        await self._backend().uploads.create(self.namespace, row, now)
        return Upload.of(row)

    async def get(self, id: str) -> Upload:
        row = await self._backend().uploads.get(self.namespace, check_upload_id(id))
        if row is None:
            raise UploadNotFound(f"there is no upload {id!r}")
        return Upload.of(row)

    async def receive(
        self, id: str, chunks: AsyncIterable[bytes], *, declared: int | None = None
    ) -> Upload:
        """Store the file of pending upload ``id`` from ``chunks`` (``declared``: its
        announced length), then start what it starts. The completed upload."""
        upload = await self.get(id)
        if upload.state != "pending":
            raise UploadFinished(f"upload {id!r} is complete already")
        if declared is not None and declared > upload.max_bytes:
            raise _too_large(upload.max_bytes)
        blobs = self._payloads.blobs
        ref, size, digest = await blobs.write_stream(self.namespace, chunks, upload.max_bytes)
        try:
            if upload.sha256 is not None and digest != upload.sha256:
                raise ChecksumMismatch(
                    f"the file's SHA-256 is {digest}, not the {upload.sha256} the upload expects"
                )
            now = self._clock()
            done = await self._backend().uploads.complete(
                self.namespace, id, ref, size, digest, now, now + RESTART_AFTER
            )
            if not done:
                if await self._backend().uploads.get(self.namespace, id) is None:
                    raise UploadNotFound(
                        f"upload {id!r} was removed while its file arrived (it had expired "
                        f"{EXPIRED_KEPT:g} s before)"
                    )
                raise UploadFinished(f"upload {id!r} was completed meanwhile by another PUT")
        except BaseException:
            await blobs.discard(ref)  # nothing refers to it: nothing left behind
            raise
        completed = replace(upload, state="complete", size=size, digest=digest, completed_at=now)
        return await self.start(completed)

    async def start(self, upload: Upload) -> Upload:
        """Start what complete ``upload`` starts (idempotent, by its id) and record it.
        A start that fails (its workflow unknown in this process, the database...) is
        counted, logged and left to the upkeep, which tries again with a growing pause
        and gives up after MAX_START_ATTEMPTS: the upload as it is then."""
        body = {"upload": upload.reference()}
        try:
            started = await self._targets.start(
                upload.target_kind, upload.target, body, f"upload-{upload.id}"
            )
        except StatekeeperError as error:
            return await self._start_failed(upload, error)
        await self._backend().uploads.started(self.namespace, upload.id, started, self._clock())
        return replace(upload, started=started)

    async def _start_failed(self, upload: Upload, error: StatekeeperError) -> Upload:
        attempts = upload.attempts + 1
        failed = attempts >= MAX_START_ATTEMPTS
        wait = FAILED_KEPT if failed else min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_MOST)
        log.warning(
            "starting what an upload starts failed; "
            + ("it is given up" if failed else f"the upkeep tries again in {wait:g} s"),
            exc_info=error,
            extra={"upload": upload.id, "namespace": self.namespace, "error": error.message,
                   "attempts": attempts},
        )  # fmt: skip
        text = f"{error.code}: {error.message}"
        try:
            recorded = await self._backend().uploads.start_failed(
                self.namespace, upload.id, text, self._clock() + wait, failed=failed
            )
            if not recorded:  # started (or forgotten) by another process meanwhile
                return await self.get(upload.id)
        except StatekeeperError:  # the database too: the upkeep finds it as it was
            log.warning("could not record an upload's failed start", exc_info=True,
                        extra={"upload": upload.id})  # fmt: skip
            return upload
        state = "failed" if failed else upload.state
        return replace(upload, state=state, attempts=attempts, start_error=text)

    async def open(self, id: str) -> AsyncIterator[bytes]:
        """The file of complete upload ``id``, chunk by chunk."""
        row = await self._backend().uploads.get(self.namespace, check_upload_id(id))
        if row is None or row.blob is None:
            raise UploadNotFound(f"there is no complete upload {id!r}")
        async for chunk in self._payloads.blobs.chunks(self.namespace, row.blob):
            yield chunk

    async def read(self, id: str) -> bytes:
        """The whole file of complete upload ``id``."""
        return b"".join([chunk async for chunk in self.open(id)])

    async def forget(self, id: str) -> None:
        """Remove upload ``id`` and its file now."""
        if not await self._backend().uploads.forget(self.namespace, check_upload_id(id)):
            raise UploadNotFound(f"there is no upload {id!r}")
        await self._payloads.blobs.sweep()  # its file, released


async def upkeep(
    backend: Storage,
    clock: Callable[[], float],
    uploads_of: Callable[[str], Uploads | None],
    limit: int,
    namespaces: Sequence[str],
) -> int:
    """One round: start complete uploads whose start did not happen (in the namespaces
    ``uploads_of`` serves: their workflows are this process's), forget expired pending
    ones and those whose workflow or message is gone (every namespace; ``limit`` of
    each). ``namespaces``: those ``uploads_of`` serves. How many uploads changed."""
    store, now, changed = backend.uploads, clock(), 0
    for namespace, id, _ in await store.unstarted(namespaces, now, limit):
        uploads = uploads_of(namespace)
        if uploads is None:
            continue
        try:
            tried = await uploads.start(await uploads.get(id))
        except StatekeeperError as error:  # forgotten meanwhile, the database...: the next
            log.warning("an upload's start could not be tried", exc_info=error,
                        extra={"upload": id, "namespace": namespace})  # fmt: skip
            continue
        changed += int(tried.started is not None or tried.state == "failed")
    changed += await store.forget_expired(now - EXPIRED_KEPT, limit)
    changed += await store.forget_failed(now, limit)
    for namespace, id, kind, started in await store.least_checked(limit):
        if kind == "workflow":
            there = await backend.workflows.get(namespace, started) is not None
        else:
            there = await backend.queues.find(namespace, started) is not None
        if there:
            await store.checked(namespace, id, now)
        else:
            changed += int(await store.forget(namespace, id))
    return changed


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the file is larger than the upload's limit of {limit} bytes",
                           limit=limit)  # fmt: skip
