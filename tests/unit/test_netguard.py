"""SSRF guard: every vector is refused before any connection is attempted.

A fake resolver answers for invented names; nothing here opens a socket.
"""

import uuid
from collections.abc import Sequence

import httpx
import pytest
from pydantic import SecretStr

from commcentre.adapters.base import (
    AdapterContext,
    DeliveryContext,
    OutboundMessage,
    PartnerView,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from commcentre.adapters.netguard import resolve_pinned
from commcentre.adapters.webhook import WebhookAdapter
from commcentre.clock import utcnow
from commcentre.messages.schemas import MessageIn
from tests.factories import message

PUBLIC = "93.184.216.34"


class FakeResolver:
    """Answers from a fixed table and counts the lookups."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append((host, port))
        if host not in self.table:
            raise OSError("name not known")
        return self.table[host]


INTERNAL = [
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "127.0.0.1",
    "169.254.169.254",
    "0.0.0.0",  # noqa: S104 (an address to refuse, not a bind)
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "100.64.0.1",
    "224.0.0.1",
    "ff02::1",
    "2002:a00:1::1",  # 6to4 wrapping 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 wrapping 169.254.169.254
    "::",
    "240.0.0.1",
]


@pytest.mark.parametrize("address", INTERNAL)
async def test_names_resolving_to_internal_addresses_are_refused(address: str) -> None:
    resolver = FakeResolver({"partner.test": [address]})
    with pytest.raises(PermanentDeliveryError) as caught:
        await resolve_pinned("https://partner.test/hook", resolver=resolver, allow_loopback=False)
    assert "refused" in caught.value.detail
    assert address not in caught.value.detail  # internal layout is not disclosed
    assert resolver.calls == [("partner.test", 443)]


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://127.0.0.1/",
        "http://[::ffff:7f00:1]/",
        "http://[::1]/",
        "https://10.0.0.1/",
        "https://[fe80::1%25eth0]/",
        "https://169.254.169.254/latest/meta-data/",
    ],
)
async def test_literal_internal_ips_are_refused_without_resolving(url: str) -> None:
    resolver = FakeResolver({})
    with pytest.raises(PermanentDeliveryError):
        await resolve_pinned(url, resolver=resolver, allow_loopback=False)
    assert resolver.calls == []


@pytest.mark.parametrize(
    "url", ["http://2130706433/", "http://0x7f000001/", "http://127.1/", "http://[::ffff:7f00:1]/"]
)
async def test_obfuscated_loopback_is_refused_even_when_loopback_is_allowed(url: str) -> None:
    with pytest.raises(PermanentDeliveryError):
        await resolve_pinned(url, resolver=FakeResolver({}), allow_loopback=True)


async def test_one_private_answer_among_public_ones_refuses_the_name() -> None:
    resolver = FakeResolver({"partner.test": [PUBLIC, "10.1.2.3"]})
    with pytest.raises(PermanentDeliveryError, match="private"):
        await resolve_pinned("https://partner.test/", resolver=resolver, allow_loopback=False)


@pytest.mark.parametrize(
    ("url", "allow_loopback", "reason"),
    [
        ("http://partner.test/hook", False, "https"),
        ("ftp://partner.test/hook", True, "https"),
        ("https://user:pw@partner.test/hook", False, "credentials"),
        ("https://user@partner.test/hook", False, "credentials"),
        ("https://partner.test:0/hook", False, "port"),
        ("https://partner.test:65536/hook", False, "port"),
        ("https://partner.test\\@evil.test/", False, "backslash"),
        ("https://part%6eer.test/", False, "percent"),
        ("https:///hook", False, "no host"),
        ("https://bad_label-.test/", False, "malformed"),
    ],
)
async def test_malformed_urls_are_refused(url: str, allow_loopback: bool, reason: str) -> None:
    with pytest.raises(PermanentDeliveryError, match=reason):
        await resolve_pinned(url, resolver=FakeResolver({}), allow_loopback=allow_loopback)


async def test_public_name_is_resolved_once_and_pinned() -> None:
    resolver = FakeResolver({"partner.test": [PUBLIC, "2606:4700::1"]})
    target = await resolve_pinned(
        "https://Partner.Test:8443/in/hook?x=%2F", resolver=resolver, allow_loopback=False
    )
    assert resolver.calls == [("partner.test", 8443)]
    assert (target.scheme, target.host, target.port, target.ip) == (
        "https",
        "partner.test",
        8443,
        PUBLIC,
    )
    assert target.path == "/in/hook?x=%2F"
    assert target.connect_url == f"https://{PUBLIC}:8443/in/hook?x=%2F"
    assert target.host_header == "partner.test:8443"


async def test_ipv6_pin_is_bracketed() -> None:
    resolver = FakeResolver({"partner.test": ["2606:4700::1"]})
    target = await resolve_pinned("https://partner.test/", resolver=resolver, allow_loopback=False)
    assert target.connect_url == "https://[2606:4700::1]:443/"
    assert target.host_header == "partner.test"


async def test_loopback_allowed_only_for_loopback() -> None:
    resolver = FakeResolver({"local.test": ["127.0.0.2"], "lan.test": ["192.168.1.1"]})
    target = await resolve_pinned("http://local.test:8080/", resolver=resolver, allow_loopback=True)
    assert (target.scheme, target.ip) == ("http", "127.0.0.2")
    assert (await resolve_pinned("http://[::1]:1/", resolver=resolver, allow_loopback=True)).ip == (
        "::1"
    )
    with pytest.raises(PermanentDeliveryError, match="private"):
        await resolve_pinned("http://lan.test/", resolver=resolver, allow_loopback=True)


async def test_resolver_failure_is_retryable() -> None:
    resolver = FakeResolver({"empty.test": []})
    for url in ("https://unknown.test/", "https://empty.test/"):
        with pytest.raises(RetryableDeliveryError):
            await resolve_pinned(url, resolver=resolver, allow_loopback=False)


async def test_adapter_never_connects_to_a_refused_target() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"connected to {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as client:
        resolver = FakeResolver({"internal.test": ["10.0.0.1"]})
        adapter = WebhookAdapter(AdapterContext(http=client, resolver=resolver))
        partner = PartnerView(
            id="p",
            name="P",
            country=None,
            config=adapter.config_model.model_validate({"url": "https://internal.test/hook"}),
            signing_secrets=[SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
        )
        outbound = OutboundMessage(
            id=uuid.uuid4(), created_at=utcnow(), content=MessageIn.model_validate(message())
        )
        delivery = DeliveryContext(delivery_id=uuid.uuid4(), attempt=1, timestamp=utcnow())
        with pytest.raises(PermanentDeliveryError, match="private"):
            await adapter.deliver(outbound, partner, delivery)
