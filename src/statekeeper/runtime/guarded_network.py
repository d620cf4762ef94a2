"""A network backend for outbound callbacks that connects only to addresses it checked.

The HTTP client (httpcore) asks its network backend for a TCP connection to a
host and port. This backend resolves the host itself, checks every address it
resolves to against the callback policy, and refuses the connection if any is
refused; otherwise it connects to a checked address, never resolving the name
again, so DNS cannot answer differently between the check and the connection
(rebinding). TLS is started by the client on the returned stream with the URL's
host name, so certificates are still verified against the name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpcore

from statekeeper.errors import CallbackAddressRefused
from statekeeper.outbound import CallbackPolicy, IPAddress


async def resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order."""
    loop = asyncio.get_running_loop()
    try:
        found = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]))  # with an IPv6 zone, if any
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return addresses


class GuardedNetwork(httpcore.AsyncNetworkBackend):
    """Connects to ``host`` only if the policy lets callbacks reach every address
    it resolves to; raises CallbackAddressRefused (and sends nothing) otherwise."""

    def __init__(
        self,
        policy: Callable[[], CallbackPolicy],
        backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve(host, port, timeout)
        policy = self._policy()
        for address in addresses:
            refused = policy.refusal(host, address)
            if refused is not None:
                raise CallbackAddressRefused(refused)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise CallbackAddressRefused("refused: callbacks never use Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)
