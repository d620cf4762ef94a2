"""AWS Signature Version 4, checked: the credential of the Step Functions API.

AWS SDKs sign every request: ``Authorization: AWS4-HMAC-SHA256 Credential=<key id>/
<date>/<region>/<service>/aws4_request, SignedHeaders=..., Signature=<hex>`` with an
``X-Amz-Date``. ``check`` rebuilds the canonical request from what arrived, derives
the signing key from the secret of the key id, and compares the signature in
constant time; a request more than 15 minutes from now is refused (a replayed
request goes stale). Credentials are pairs ``<key id>:<secret>``
(``STATEKEEPER_AWS_CREDENTIALS``, comma-separated); the secret never appears in a
message.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote

from statekeeper.errors import ConfigurationError

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "states"  # the service AWS SDKs sign Step Functions requests for
SKEW = 15 * 60  # seconds a signed request may be from now
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request\s*,"
    r"\s*SignedHeaders=([a-z0-9;._-]+)\s*,\s*Signature=([0-9a-f]{64})\s*$"
)


def parse_credentials(text: str) -> dict[str, str]:
    """``KEY:SECRET[,KEY:SECRET...]`` as {key id: secret}."""
    found: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key, colon, secret = entry.partition(":")
        if not colon or not re.fullmatch(r"[A-Za-z0-9_.-]{1,128}", key) or len(secret) < 8:
            raise ConfigurationError(
                "AWS credentials are KEY_ID:SECRET pairs (a key id of letters, digits, '_', "
                "'.' or '-'; a secret of 8 or more characters), comma-separated"
            )
        found[key] = secret
    return found


def check(
    method: str,
    path: str,
    query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    credentials: Mapping[str, str],
    now: float,
) -> str | None:
    """Why the request is not signed by one of ``credentials``, or None if it is.
    ``headers``: (lower-case name, value) as received."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value)
    given = values.get("authorization", [""])[0]
    found = _AUTHORIZATION.match(given)
    if found is None:
        return "the request is not signed with AWS Signature Version 4"
    key, day, region, service, signed, signature = found.groups()
    secret = credentials.get(key)
    if secret is None:
        shown = key if len(key) <= 128 else key[:125] + "..."
        return f"the access key id {shown!r} is not one this service knows"
    if service != SERVICE:
        return f"the request's credential is scoped to service {service[:64]!r}, not {SERVICE!r}"
    stamp = (values.get("x-amz-date") or [""])[0]
    try:
        moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "the request has no valid X-Amz-Date (YYYYMMDDTHHMMSSZ)"
    if not stamp.startswith(day):
        return f"the request's credential date {day} is not the day of its X-Amz-Date"
    if abs(moment.timestamp() - now) > SKEW:
        return "the request's X-Amz-Date is more than 15 minutes from now"
    names = signed.split(";")
    if "host" not in names or any(name not in values for name in names):
        return "the request's signed headers are missing"
    canonical_headers = "".join(
        f"{name}:{','.join(' '.join(v.split()) for v in values[name])}\n" for name in names
    )
    payload = (values.get("x-amz-content-sha256") or [hashlib.sha256(body).hexdigest()])[0]
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return "the request's body does not match its signed hash"
    canonical = "\n".join([method, _uri(path), _query(query), canonical_headers, signed, payload])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signing = _hmac(("AWS4" + secret).encode(), day)
    for part in (region, service, "aws4_request"):
        signing = _hmac(signing, part)
    expected = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "the request's signature does not match (check the access key's secret)"
    return None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _uri(path: str) -> str:
    return quote(path or "/", safe="/~")


def _query(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
