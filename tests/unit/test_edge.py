"""The server's edge without a server: options, TLS files, warnings, the start line."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from statekeeper.errors import AddressInUse, CannotListen, InvalidOption, InvalidTLSFiles
from statekeeper.http.edge import (
    Edge,
    bound_address,
    check_tls,
    describe,
    exposure_warnings,
    listen,
)
from tests.integration.certs import free_port, self_signed


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": 0}, "--port must be 1 to 65535, got 0"),
        ({"port": 65536}, "--port must be 1 to 65535, got 65536"),
        ({"port": -1}, "--port must be 1 to 65535"),
        ({"tls_cert": "c.pem"}, "both --tls-cert and --tls-key"),
        ({"tls_key": "k.pem"}, "both --tls-cert and --tls-key"),
        ({"header_timeout": 0.0}, "--header-timeout"),
        ({"body_timeout": float("nan")}, "--body-timeout"),
        ({"body_timeout": 1e9}, "--body-timeout"),
    ],
)
def test_options_out_of_range(options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidOption, match=message.replace(".", r"\.")) as raised:
        Edge(**options)  # type: ignore[arg-type]
    assert raised.value.exit_code == 2


def test_tls_files(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, names=["localhost"])
    check_tls(str(cert), str(key))
    other_cert, other_key = self_signed(tmp_path, names=["other"], stem="other")
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cases = [
        (tmp_path / "missing.crt", key, "cannot read the TLS certificate file"),
        (cert, tmp_path / "missing.key", "cannot read the TLS key file"),
        (tmp_path, key, "cannot read the TLS certificate file"),
        (key, key, "holds no PEM certificate"),
        (cert, cert, "holds no PEM private key"),
        (cert, encrypted, "is encrypted"),
        (cert, other_key, "does not belong to the certificate"),
        (other_cert, key, "does not belong to the certificate"),
    ]
    for cert_file, key_file, message in cases:
        with pytest.raises(InvalidTLSFiles, match=message) as raised:
            check_tls(str(cert_file), str(key_file))
        assert raised.value.exit_code == 3
        assert "secret" not in raised.value.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_tls_file(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, names=["localhost"])
    key.chmod(0)
    with pytest.raises(InvalidTLSFiles, match="Permission denied"):
        check_tls(str(cert), str(key))


def test_warnings_for_servers_other_hosts_can_reach() -> None:
    for host in ("0.0.0.0", "::", "10.1.2.3", "192.168.0.4"):
        no_auth, plain = exposure_warnings([(host, 8000)], tls=False, auth=False)
        assert no_auth.startswith("warning: auth is off") and "other hosts can reach" in no_auth
        assert plain.startswith("warning: ") and "plain HTTP" in plain
        assert exposure_warnings([(host, 8000)], tls=True, auth=True) == []
        assert exposure_warnings([(host, 8000)], tls=True, auth=False) == [no_auth]
        both = exposure_warnings([("127.0.0.1", 8000), (host, 8000)], tls=False, auth=False)
        assert len(both) == 2 and "127.0.0.1:8000" not in both[0]
    loopback = [("127.0.0.1", 8000), ("127.0.0.2", 8000), ("::1", 8000)]
    assert exposure_warnings(loopback, tls=False, auth=False) == []


def test_start_line() -> None:
    line = describe(
        [("127.0.0.1", 8443), ("::1", 8443)],
        tls=True,
        auth=False,
        consumers=["orders", "mail"],
        workflows=[],
    )
    assert line == (
        "statekeeper serving https://127.0.0.1:8443, https://[::1]:8443; auth off (dev mode); "
        "consumers: orders, mail; workflows: none"
    )


def test_listen_binds_every_address_and_reports_one_in_use() -> None:
    first = listen("127.0.0.1", free_port())
    try:
        port = bound_address(first[0])[1]
        with pytest.raises(AddressInUse, match=f"^127\\.0\\.0\\.1:{port} is in use$"):
            listen("127.0.0.1", port)
        with pytest.raises(CannotListen, match=r"cannot listen on no-such-host\.invalid"):
            listen("no-such-host.invalid", port)
    finally:
        for sock in first:
            sock.close()
    expected = {a[4][0] for a in socket.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)}
    everywhere = listen("localhost", free_port())
    try:
        assert {bound_address(sock)[0] for sock in everywhere} == expected
    finally:
        for sock in everywhere:
            sock.close()


async def test_connections_accepted_on_the_listening_sockets_send_at_once() -> None:
    """Nagle's algorithm is off (TCP_NODELAY) on every connection a listening socket of
    ``listen`` accepts: a kept-alive client does not wait ~40 ms for a delayed ACK before
    each response's last segment."""
    import asyncio

    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    [sock] = listen("127.0.0.1", free_port())
    port = bound_address(sock)[1]
    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert seen and seen[0] != 0
