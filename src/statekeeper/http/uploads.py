"""Upload routes (docs/uploads.md).

POST /v1/uploads                       {"workflow": NAME} or {"queue": NAME}, and
                                       max_bytes, sha256, content_type, expires_in
    201: the upload's id, a signed URL to PUT the file to before it expires, and its
    status URL.
PUT  /v1/uploads/{id}/content?expires=&signature=
    the file, streamed into the blob store (open: the signature is the credential);
    201 once stored and what it starts started; 403 for a forged or expired URL; 413
    past the upload's limit; 400 when the checksum differs; nothing is left behind on
    any failure.
GET  /v1/uploads/{id}                  its status, and a signed download URL once complete
GET  /v1/uploads/{id}/content?expires=&signature=
    the file (open: the signature is the credential).

A URL's signature is an HMAC-SHA256 over the method, the namespace, the upload's id
and the expiry, with ``HttpConfig.upload_key`` (from ``STATEKEEPER_UPLOAD_SECRET``, else
derived from the API token, else a dev server's own).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from statekeeper.errors import UploadURLRefused
from statekeeper.http.body import read_json
from statekeeper.http.models import Reply, parse
from statekeeper.http.operations import Answer, Body, Operation, Param, path_param
from statekeeper.http.responses import model_response
from statekeeper.uploads import DEFAULT_EXPIRY, MAX_EXPIRY, Upload, check_upload_id

if TYPE_CHECKING:
    from statekeeper.app import App
    from statekeeper.http.config import HttpConfig

DOWNLOAD_EXPIRY = 900  # seconds a download URL of a status answer is valid


class UploadRequest(BaseModel):
    """Where an upload's file goes and what it must be."""

    model_config = {"extra": "forbid"}

    workflow: str | None = Field(default=None, description="The workflow the file starts.")
    queue: str | None = Field(default=None, description="The queue that receives the file.")
    max_bytes: int | None = Field(
        default=None, ge=1, strict=True,
        description="The largest file accepted (default and most: the server's "
        "STATEKEEPER_MAX_UPLOAD_BYTES).",
    )  # fmt: skip
    sha256: str | None = Field(
        default=None, description="The file's SHA-256 (64 lowercase hex digits): a file "
        "with another is refused (400)."
    )  # fmt: skip
    content_type: str | None = Field(default=None, description="The file's media type.")
    expires_in: float = Field(
        default=DEFAULT_EXPIRY, ge=1, le=MAX_EXPIRY, allow_inf_nan=False, strict=True,
        description="Seconds the upload URL is valid (1 to 7 days' worth).",
    )  # fmt: skip


class UploadCreated(Reply):
    """A pending upload: PUT the file to ``upload_url`` before ``expires_at``."""

    id: str = Field(description="The upload's id.")
    upload_url: str = Field(description="Signed URL to PUT the file to (no token needed).")
    status_url: str = Field(description="GET it (with the token) for the upload's status.")
    expires_at: float = Field(description="Unix time the upload URL stops working.")
    max_bytes: int = Field(description="The largest file accepted.")


class UploadStatus(Reply):
    """An upload: pending until its file is stored, then complete (failed when what it
    starts could not be started after every retry)."""

    id: str = Field(description="The upload's id.")
    state: str = Field(description="pending, complete or failed.")
    target: dict[str, str] = Field(
        description='Where it goes: {"workflow": NAME} or {"queue": NAME}.'
    )
    size: int | None = Field(default=None, description="The file's size in bytes.")
    sha256: str | None = Field(default=None, description="The file's SHA-256.")
    content_type: str | None = Field(default=None, description="The media type given.")
    started: str | None = Field(
        default=None, description="The workflow id (or message id) the file started."
    )
    start_attempts: int = Field(
        default=0, description="Starts that failed (the upkeep tries again with a growing pause)."
    )
    start_error: str | None = Field(
        default=None, description="Why the last start failed: the error's code and message."
    )
    expires_at: float = Field(description="Unix time the upload URL stops (or stopped) working.")
    download_url: str | None = Field(
        default=None, description="Signed URL to GET the file (complete or failed uploads)."
    )


def status_of(upload: Upload, download_url: str | None) -> UploadStatus:
    return UploadStatus(
        id=upload.id, state=upload.state, target={upload.target_kind: upload.target},
        size=upload.size, sha256=upload.digest, content_type=upload.content_type,
        started=upload.started, start_attempts=upload.attempts, start_error=upload.start_error,
        expires_at=upload.expires_at, download_url=download_url,
    )  # fmt: skip


def signature(key: bytes, method: str, namespace: str, id: str, expires: int) -> str:
    message = f"{method}\n{namespace}\n{id}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


class UploadRoutes:
    def __init__(self, app: App, config: HttpConfig) -> None:
        self.app = app
        self.config = config

    def operations(self) -> list[Operation]:
        id = path_param("id", "The upload's id (32 hex digits).", max_length=32)
        signed = (
            Param("expires", "query", "The URL's expiry (Unix seconds), as given."),
            Param("signature", "query", "The URL's signature, as given."),
        )
        return [
            Operation(
                "POST",
                "/v1/uploads",
                self.create,
                "Create an upload: a signed URL to PUT a file to",
                {
                    201: Answer("Created", UploadCreated),
                    400: Answer("Malformed JSON or option"),
                    404: Answer("No workflow of that name"),
                    413: Answer("Body too large"),
                },
                (),
                Body("Where the file goes and what it must be", UploadRequest, required=True),
            ),
            Operation(
                "PUT",
                "/v1/uploads/{id}/content",
                self.put,
                "Upload the file (the signed URL is the credential)",
                {
                    201: Answer(
                        "Stored, and what it starts started (or, if that failed, left to "
                        "the upkeep: start_error says why)",
                        UploadStatus,
                    ),
                    400: Answer("The checksum differs"),
                    403: Answer("Forged or expired URL"),
                    404: Answer("No such upload"),
                    409: Answer("The upload is complete already"),
                    413: Answer("The file is larger than the upload's limit"),
                },
                (id, *signed),
                Body(
                    "The file's bytes", None, required=True, media_type="application/octet-stream"
                ),
            ),
            Operation(
                "GET",
                "/v1/uploads/{id}",
                self.status,
                "An upload's status (and a signed download URL once complete)",
                {200: Answer("Its status", UploadStatus), 404: Answer("No such upload")},
                (id,),
            ),
            Operation(
                "GET",
                "/v1/uploads/{id}/content",
                self.download,
                "Download the file (the signed URL is the credential)",
                {
                    200: Answer("The file", None),
                    403: Answer("Forged or expired URL"),
                    404: Answer("No such upload, or not complete"),
                },
                (id, *signed),
            ),
        ]

    def _key(self) -> bytes:
        return self.config.upload_key

    def _check(self, request: Request, method: str, id: str) -> None:
        """403 unless the URL carries a valid, unexpired signature for ``method``."""
        key = self._key()
        given = request.query_params.get("signature", "")
        expires_text = request.query_params.get("expires", "")
        if not expires_text.isascii() or not expires_text.isdigit() or len(expires_text) > 12:
            raise UploadURLRefused("the URL's expires is not a Unix time in seconds")
        expires = int(expires_text)
        wanted = signature(key, method, self.app.namespace, id, expires)
        if not hmac.compare_digest(given.encode(), wanted.encode()):
            raise UploadURLRefused("the URL's signature does not match: use the URL as given")
        if self.app.clock() > expires:
            raise UploadURLRefused("the URL has expired: create another upload")

    async def create(self, request: Request) -> Response:
        _, body = await read_json(request, self.config.max_body_bytes, required=True)
        options = parse(UploadRequest, body, "the request body")
        upload = await self.app.uploads.create(
            workflow=options.workflow, queue=options.queue, max_bytes=options.max_bytes,
            sha256=options.sha256, content_type=options.content_type,
            expires_in=options.expires_in,
        )  # fmt: skip
        expires = math.ceil(upload.expires_at)  # what the URL says is what holds
        created = UploadCreated(
            id=upload.id, upload_url=self._absolute(request, "PUT", upload.id, expires),
            status_url=f"{_base(request)}/v1/uploads/{upload.id}", expires_at=expires,
            max_bytes=upload.max_bytes,
        )  # fmt: skip
        return model_response(created, status=201)

    def _absolute(self, request: Request, method: str, id: str, expires: int) -> str:
        query = urlencode({"expires": expires,
                           "signature": signature(self._key(), method, self.app.namespace, id,
                                                  expires)})  # fmt: skip
        return f"{_base(request)}/v1/uploads/{id}/content?{query}"

    async def put(self, request: Request) -> Response:
        id = check_upload_id(request.path_params["id"])
        self._check(request, "PUT", id)
        declared = request.headers.get("content-length")
        size = int(declared) if declared and declared.isascii() and declared.isdigit() else None
        upload = await self.app.uploads.receive(id, request.stream(), declared=size)
        return model_response(status_of(upload, None), status=201)

    async def status(self, request: Request) -> Response:
        upload = await self.app.uploads.get(request.path_params["id"])
        url = None
        if upload.state != "pending":
            expires = math.ceil(self.app.clock() + DOWNLOAD_EXPIRY)
            url = self._absolute(request, "GET", upload.id, expires)
        return model_response(status_of(upload, url))

    async def download(self, request: Request) -> Response:
        id = check_upload_id(request.path_params["id"])
        self._check(request, "GET", id)
        upload = await self.app.uploads.get(id)
        chunks = self.app.uploads.open(id)
        first = await anext(chunks, b"")  # a missing blob fails here, before the headers

        async def body() -> Any:
            yield first
            async for chunk in chunks:
                yield chunk

        # A file, never a page of this origin: no sniffing, saved rather than shown, and
        # its media type as given (no charset added).
        headers = {
            "Content-Length": str(upload.size or 0),
            "Content-Type": upload.content_type or "application/octet-stream",
            "Content-Disposition": "attachment",
            "X-Content-Type-Options": "nosniff",
        }
        if upload.digest:
            headers["ETag"] = f'"{upload.digest}"'
        return StreamingResponse(body(), headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")
