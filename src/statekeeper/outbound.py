"""Where outbound callbacks may go (a ground module: it knows only errors and constants).

Callback URLs come from clients, and the worker POSTs to them from inside the
network, so a callback may reach only public addresses unless the operator allows
more: loopback, private (RFC 1918, fc00::/7), link-local (169.254/16 with the cloud
metadata address, fe80::/10), shared (100.64/10), unspecified, multicast, reserved
and other non-public addresses are refused, in IPv4-mapped and other embedding
IPv6 forms too. The allow-list (``STATEKEEPER_CALLBACK_ALLOW``, or
``App(callback_allow=...)``) names host names, addresses and CIDR networks that
callbacks may reach although they are not public.

Two checks use this policy. ``check_url`` runs at the door (the ingress, the Python
API): an http(s) URL, no user information, and a literal address in a refused range
is refused at once. ``refusal`` runs at send time on every address a host name
resolves to, in the network backend that then connects to the checked address
(``statekeeper.runtime.guarded_network``), so DNS cannot answer differently in between.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from statekeeper.constants import ENV_CALLBACK_ALLOW
from statekeeper.errors import CallbackAddressRefused, ConfigurationError, InvalidCallbackURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
# What inet_aton (and so the resolver) reads as an IPv4 address: 1 to 4 parts, each
# decimal, octal (leading 0) or hexadecimal (0x): 2130706433, 0177.0.0.1, 0x7f.1.
_NUMERIC_HOST = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if (address in _IPV4_COMPATIBLE and int(address) > 1) or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def classify(address: IPAddress) -> str | None:
    """Why callbacks may not reach ``address`` ("a loopback address"), or None if public."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = classify(inner)
        return None if reason is None else f"{reason} (IPv4 {inner} in IPv6 form)"
    if address in _METADATA:
        return "the cloud metadata address (link-local)"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address in _SHARED, "a shared (carrier-grade NAT) address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` (as in a URL, brackets removed) spells, or None for a name.

    Numeric forms the resolver accepts count as addresses: 2130706433 is 127.0.0.1."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host:
        raise InvalidCallbackURL(f"the callback URL host {host!r} is not an IPv6 address")
    if not _NUMERIC_HOST.fullmatch(host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:
        raise InvalidCallbackURL(f"the callback URL host {host!r} is not an IPv4 address") from None


def _spells(host: str, address: IPAddress) -> bool:
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


def _is_host_name(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return len(text) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


@dataclass(frozen=True)
class CallbackPolicy:
    """Which non-public destinations callbacks may reach: ``hosts`` by name (any
    address they resolve to), ``networks`` by address."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> CallbackPolicy:
        """From host names, IP addresses and CIDR networks (a comma-separated string or
        a list); ConfigurationError names an entry that is none of these."""
        items = entries.split(",") if isinstance(entries, str) else list(entries)
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for item in items:
            if not isinstance(item, str):
                raise ConfigurationError(f"callback allow-list entries are strings, got {item!r}")
            entry = item.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if _NUMERIC_HOST.fullmatch(entry) or not _is_host_name(entry):
                raise ConfigurationError(
                    f"callback allow-list entry {item.strip()!r} is not a host name, "
                    f"an IP address or a CIDR network ({ENV_CALLBACK_ALLOW})"
                )
            hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    @classmethod
    def from_env(cls) -> CallbackPolicy:
        return cls.parse(os.environ.get(ENV_CALLBACK_ALLOW, ""))

    def allows(self, host: str, address: IPAddress) -> bool:
        """Whether the allow-list lets callbacks to ``host`` reach ``address``."""
        if host.lower().rstrip(".") in self.hosts:
            return True
        inner = embedded_ipv4(address)
        candidates = [address] if inner is None else [address, inner]
        return any(a in network for network in self.networks for a in candidates)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why a callback to ``host`` may not connect to ``address``, or None if it may."""
        if self.allows(host, address):
            return None
        reason = classify(address)
        if reason is None:
            return None
        if _spells(host, address):
            where = f"{address} is {reason}"
        elif ":" in host or _NUMERIC_HOST.fullmatch(host):
            where = f"{host} is {address}, {reason}"
        else:
            where = f"{host} resolves to {address}, {reason}"
        return f"refused: {where}; allow it with {ENV_CALLBACK_ALLOW}"

    def check_url(self, url: object) -> str:
        """``url`` if it may be a callback URL; else InvalidCallbackURL, or
        CallbackAddressRefused for a literal address that callbacks may not reach."""
        if not isinstance(url, str) or not url:
            raise InvalidCallbackURL(f"the callback URL must be a string, got {url!r}")
        if len(url) > MAX_URL_LENGTH:
            raise InvalidCallbackURL(f"the callback URL is longer than {MAX_URL_LENGTH} characters")
        if not all("!" <= c <= "~" for c in url) or "\\" in url:
            raise InvalidCallbackURL(
                "the callback URL must be printable ASCII without spaces or backslashes "
                "(international host names in their xn-- form)"
            )
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise InvalidCallbackURL(f"the callback URL must be an http(s) URL, got {url!r}")
        if "@" in parts.netloc:
            raise InvalidCallbackURL("the callback URL must not carry user information (user@)")
        try:
            port = parts.port
        except ValueError:
            raise InvalidCallbackURL(f"the callback URL has an invalid port: {url!r}") from None
        host = parts.hostname or ""
        if not host or port == 0 or "%" in host:
            raise InvalidCallbackURL(f"the callback URL names no valid host: {url!r}")
        address = literal_address(host)
        if address is None:
            if not _is_host_name(host):
                raise InvalidCallbackURL(f"the callback URL host {host!r} is not a host name")
            return url  # names are checked when the callback is sent, after resolving them
        refused = self.refusal(host, address)
        if refused is not None:
            raise CallbackAddressRefused(f"callback URL {refused}")
        return url
