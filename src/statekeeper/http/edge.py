"""The server's edge: where ``serve`` listens, with which TLS files, and what it says.

``serve`` binds its listening socket itself (a port in use is one line, not a
traceback), checks the TLS files before it starts (a missing, unreadable,
encrypted or mismatched file is one line), warns when it is reachable from other
hosts without auth or without TLS, and says in one line what it runs.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from statekeeper.constants import (
    ENV_BODY_TIMEOUT,
    ENV_HEADER_TIMEOUT,
    ENV_TLS_CERT,
    ENV_TLS_KEY,
)
from statekeeper.errors import AddressInUse, CannotListen, InvalidOption, InvalidTLSFiles

_MAX_TIMEOUT = 3600.0
_BACKLOG = 2048


@dataclass(frozen=True)
class Edge:
    """Where and how ``serve`` listens.

    ``tls_cert``/``tls_key``: PEM files; with both, it serves HTTPS only.
    ``header_timeout``: seconds a request's headers may take to arrive, from the
    connection (or the request's first byte on a kept-alive one); ``body_timeout``:
    seconds its body may take after the headers. Slower clients are disconnected
    (a body that is late gets 408 first)."""

    host: str = "127.0.0.1"
    port: int = 8000
    tls_cert: str | None = None
    tls_key: str | None = None
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    def __post_init__(self) -> None:
        port = self.port
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise InvalidOption(f"--port must be 1 to 65535, got {port!r}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidOption(
                f"TLS needs both --tls-cert and --tls-key ({ENV_TLS_CERT}, {ENV_TLS_KEY})"
            )
        for option, env, value in (
            ("--header-timeout", ENV_HEADER_TIMEOUT, self.header_timeout),
            ("--body-timeout", ENV_BODY_TIMEOUT, self.body_timeout),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 < value <= _MAX_TIMEOUT
            ):
                raise InvalidOption(
                    f"{option} ({env}) must be more than 0 and at most {_MAX_TIMEOUT:g} "
                    f"seconds, got {value!r}"
                )

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert and self.tls_key)


def check_tls(cert: str, key: str) -> None:
    """Raise InvalidTLSFiles, naming the file and the reason, unless ``cert`` and
    ``key`` are a readable PEM certificate chain and its unencrypted private key."""
    cert_pem = _read("certificate", cert)
    key_pem = _read("key", key)
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise InvalidTLSFiles(f"the TLS certificate file {cert} holds no PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise InvalidTLSFiles(
            f"the TLS key file {key} is encrypted; serve needs an unencrypted key "
            "(readable only by the server's user)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidTLSFiles(f"the TLS key file {key} holds no PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if leaf.public_key().public_bytes(encoding, public) != private.public_key().public_bytes(
        encoding, public
    ):
        raise InvalidTLSFiles(f"the TLS key {key} does not belong to the certificate {cert}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise InvalidTLSFiles(f"the TLS certificate {cert} cannot be used: {exc}") from None


def _read(what: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read(1 << 20)
    except OSError as exc:
        raise InvalidTLSFiles(f"cannot read the TLS {what} file {path}: {exc.strerror}") from None


def shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on every address ``host`` resolves to (``localhost`` may be
    both 127.0.0.1 and ::1), at ``port``; AddressInUse or CannotListen otherwise."""
    where = shown(host, port)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {where}: {exc.strerror or exc}") from None
    except UnicodeError:
        raise CannotListen(f"cannot listen on {where}: not a host name") from None
    sockets: list[socket.socket] = []
    addresses = list(dict.fromkeys((family, address) for family, _, _, _, address in found))
    for family, address in addresses:
        # IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
        # connections of sockets that say they are TCP. Without it a kept-alive client
        # waits for a delayed ACK (about 40 ms) before each response's last segment.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sockets.append(sock)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and len(addresses) > 1:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(_BACKLOG)
        except OSError as exc:
            for opened in sockets:
                opened.close()
            bound = shown(str(address[0]), port)
            if exc.errno == errno.EADDRINUSE:
                raise AddressInUse(f"{bound} is in use") from None
            raise CannotListen(f"cannot listen on {bound}: {exc.strerror or exc}") from None
    return sockets


def bound_address(sock: socket.socket) -> tuple[str, int]:
    """The host and port ``sock`` listens on."""
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def describe(
    addresses: list[tuple[str, int]],
    *,
    tls: bool,
    auth: bool,
    consumers: list[str],
    workflows: list[str],
    namespace: str | None = None,
    database: str | None = None,
) -> str:
    """The one line ``serve`` prints when it starts (``database`` with its password
    masked already), alike the one of ``statekeeper worker``."""
    scheme = "https" if tls else "http"
    where = ", ".join(f"{scheme}://{shown(*address)}" for address in addresses)
    return "; ".join(
        [
            f"statekeeper serving {where}",
            "auth on" if auth else "auth off (dev mode)",
            "consumers: " + (", ".join(consumers) or "none"),
            "workflows: " + (", ".join(workflows) or "none"),
            *([f"namespace: {namespace}"] if namespace is not None else []),
            *([f"database: {database}"] if database is not None else []),
        ]
    )


def exposure_warnings(addresses: list[tuple[str, int]], *, tls: bool, auth: bool) -> list[str]:
    """Warnings for a server that other hosts can reach without auth or without TLS."""
    exposed = [shown(*address) for address in addresses if not is_loopback(address[0])]
    if not exposed:
        return []
    where = ", ".join(exposed)
    warnings = []
    if not auth:
        warnings.append(
            f"warning: auth is off (dev mode) on {where}, which other hosts can reach: "
            "anyone who reaches it can read and write; serve on 127.0.0.1 or set a token"
        )
    if not tls:
        warnings.append(
            f"warning: {where} serves plain HTTP to other hosts: tokens and payloads cross "
            "the network unencrypted; use --tls-cert and --tls-key (or a TLS proxy)"
        )
    return warnings
