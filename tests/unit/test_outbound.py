"""The callback policy: which addresses callbacks may reach, and URL checks at the door."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statekeeper import App
from statekeeper.errors import (
    CallbackAddressRefused,
    ConfigurationError,
    InvalidCallbackURL,
    InvalidQueueName,
)
from statekeeper.outbound import CallbackPolicy, classify

NONE = CallbackPolicy()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.1", "private"),  # documentation range
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64
        ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_classify(address: str, reason: str | None) -> None:
    found = classify(ipaddress.ip_address(address))
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_the_ipv6_forms_of_an_ipv4_address_are_judged_like_it(value: int) -> None:
    plain = ipaddress.IPv4Address(value)
    mapped = ipaddress.IPv6Address(f"::ffff:{plain}")
    assert (classify(plain) is None) == (classify(mapped) is None)
    assert NONE.allows("x", mapped) is False


@given(st.integers(min_value=0, max_value=2**24 - 1))
def test_every_spelling_of_loopback_is_refused_at_the_door(low: int) -> None:
    address = ipaddress.IPv4Address((127 << 24) | low)
    a, b, c, d = address.packed
    for host in (
        str(int(address)),
        f"0{a:o}.{b}.{c}.{d}",
        f"0x{a:x}.{(b << 16) | (c << 8) | d}",
        f"[::ffff:{address}]",
        f"{address}.",
    ):
        with pytest.raises(CallbackAddressRefused, match="loopback"):
            NONE.check_url(f"http://{host}:8080/hook")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "javascript:alert(1)",
        "http:///path-only",
        "http://user@example.com/",
        "http://user:secret@example.com/",
        "http://example.com@127.0.0.1/",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://example.com/\r\nX-Injected: 1",
        "http://ex\\ample.com/",
        "http://éxample.com/",
        "http://a..b/",
        "http://999999999999/",
        "http://[fe80::1%25eth0]/",
        "http://" + "a" * 2050 + ".com/",
        "",
        None,
        42,
    ],
)
def test_malformed_callback_urls(url: object) -> None:
    with pytest.raises(InvalidCallbackURL):
        NONE.check_url(url)


def test_public_and_named_hosts_pass_the_door() -> None:
    for url in ("https://example.com/hook?t=1", "http://8.8.8.8:8080/", "http://localhost/"):
        assert NONE.check_url(url) == url  # names are checked when sent, after resolving


def test_allow_list() -> None:
    policy = CallbackPolicy.parse(" 127.0.0.1 , hooks.internal., 10.0.0.0/8,[::1],")
    assert policy.hosts == {"hooks.internal"}
    assert policy.check_url("http://127.0.0.1:8199/") == "http://127.0.0.1:8199/"
    assert policy.check_url("http://[::ffff:127.0.0.1]/")  # the mapped form of an allowed one
    assert policy.check_url("http://10.9.8.7/") and policy.check_url("http://[::1]/")
    with pytest.raises(CallbackAddressRefused, match=r"127\.0\.0\.2 is a loopback"):
        policy.check_url("http://127.0.0.2/")
    loopback = ipaddress.ip_address("127.0.0.1")
    assert policy.refusal("HOOKS.internal", ipaddress.ip_address("192.168.0.9")) is None
    assert policy.refusal("other.internal", ipaddress.ip_address("192.168.0.9")) is not None
    assert NONE.refusal("localhost", loopback) == (
        "refused: localhost resolves to 127.0.0.1, a loopback address; "
        "allow it with STATEKEEPER_CALLBACK_ALLOW"
    )
    for bad in ("1.2.3.4/33", "*.example.com", "a b", "2130706433", "http://x"):
        with pytest.raises(ConfigurationError, match="STATEKEEPER_CALLBACK_ALLOW"):
            CallbackPolicy.parse(bad)


def test_the_python_api_checks_reply_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEKEEPER_CALLBACK_ALLOW", "192.168.0.0/16")
    app = App("sqlite:///unused.db", encryption=None)  # not opened: nothing is sent
    queue = app.queue("orders")
    assert queue.new_message(1, reply_to={"url": "http://192.168.1.2/"}).reply_to
    with pytest.raises(CallbackAddressRefused):
        queue.new_message(1, reply_to={"url": "http://127.0.0.1:8199/"})
    with pytest.raises(InvalidCallbackURL):
        queue.new_message(1, reply_to={"url": "http://example.com@127.0.0.1:8199/"})
    with pytest.raises(InvalidQueueName, match="internal"):
        queue.new_message(1, reply_to={"queue": "statekeeper.callbacks"})
    allowed = App("sqlite:///unused.db", encryption=None, callback_allow=["127.0.0.1"])
    assert allowed.queue("orders").new_message(1, reply_to={"url": "http://127.0.0.1:1/"})
    allowed.enable_callbacks(allow="")  # no secret: no sender, but the allow-list changes
    with pytest.raises(CallbackAddressRefused):
        allowed.queue("orders").new_message(1, reply_to={"url": "http://127.0.0.1:1/"})
    with pytest.raises(ConfigurationError):
        App("sqlite:///unused.db", encryption=None, callback_allow="not a host")
