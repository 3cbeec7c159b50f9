"""Adapters that never touch the network (loopback, filedrop) and the adapter registry."""

import os
import stat
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson
import pytest
from joserfc import jwe
from joserfc.jwk import ECKey
from pydantic import BaseModel

from commcentre.adapters.base import (
    ENTRY_POINT_GROUP,
    AdapterConfigError,
    AdapterContext,
    DeliveryContext,
    DeliveryError,
    DeliveryReceipt,
    OutboundMessage,
    PartnerGoneError,
    PartnerView,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from commcentre.adapters.filedrop import FiledropAdapter, FiledropConfig
from commcentre.adapters.http import HttpPushConfig, message_data
from commcentre.adapters.loopback import LoopbackAdapter, LoopbackConfig
from commcentre.adapters.registry import AdapterRegistry, load_adapters
from commcentre.clock import utcnow
from commcentre.messages.schemas import MessageIn
from tests.factories import message

ALL_ADAPTERS = {"webhook", "interpol", "europol", "sirene", "filedrop", "loopback"}


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError("no DNS in unit tests")


@pytest.fixture
async def context() -> AsyncIterator[AdapterContext]:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("unit tests make no HTTP requests")

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        yield AdapterContext(http=client, resolver=no_dns)


def outbound(**overrides: Any) -> OutboundMessage:
    content = MessageIn.model_validate(message(**overrides))
    return OutboundMessage(id=uuid.uuid4(), created_at=utcnow(), content=content)


def attempt(delivery_id: uuid.UUID | None = None, number: int = 1) -> DeliveryContext:
    return DeliveryContext(
        delivery_id=delivery_id or uuid.uuid4(), attempt=number, timestamp=utcnow()
    )


def partner(config: BaseModel, partner_id: str = "p1", **options: Any) -> PartnerView:
    return PartnerView(id=partner_id, name=partner_id, country=None, config=config, **options)


# Loopback


async def test_loopback_keeps_every_delivery_per_partner_without_deduplicating() -> None:
    adapter = LoopbackAdapter()
    first, second = outbound(), outbound()
    retried = attempt()
    await adapter.deliver(first, partner(LoopbackConfig()), retried)
    await adapter.deliver(first, partner(LoopbackConfig()), attempt(retried.delivery_id, 2))
    receipt = await adapter.deliver(second, partner(LoopbackConfig(), "p2"), attempt())

    assert isinstance(receipt, DeliveryReceipt)
    assert adapter.received("p1") == [(retried.delivery_id, first), (retried.delivery_id, first)]
    assert [m for _, m in adapter.received("p2")] == [second]
    adapter.received("p1").clear()  # a copy: the store is not exposed
    assert len(adapter.received("p1")) == 2
    adapter.clear()
    assert adapter.received("p1") == adapter.received("p2") == []


@pytest.mark.parametrize(
    ("fail_with", "error"),
    [
        ("retryable", RetryableDeliveryError),
        ("permanent", PermanentDeliveryError),
        ("gone", PartnerGoneError),
    ],
)
async def test_loopback_fails_as_configured(fail_with: str, error: type[DeliveryError]) -> None:
    adapter = LoopbackAdapter()
    config = LoopbackConfig.model_validate({"fail_with": fail_with})
    with pytest.raises(error) as caught:
        await adapter.deliver(outbound(), partner(config), attempt())
    assert type(caught.value) is error
    assert adapter.received("p1") == []


async def test_loopback_latency_and_wrong_config() -> None:
    adapter = LoopbackAdapter()
    started = time.monotonic()
    await adapter.deliver(outbound(), partner(LoopbackConfig(latency_ms=50)), attempt())
    assert time.monotonic() - started >= 0.045
    with pytest.raises(PermanentDeliveryError, match="config"):
        await adapter.deliver(outbound(), partner(FiledropConfig(directory="/x")), attempt())


# Filedrop


@pytest.fixture
def partner_key() -> ECKey:
    return ECKey.generate_key("P-256")


def drop_partner(directory: Path, key: ECKey | None) -> PartnerView:
    jwk = None if key is None else key.as_dict(private=False)
    return partner(FiledropConfig(directory=str(directory)), public_jwk=jwk)


def decrypt(token: bytes, key: ECKey) -> Any:
    registry = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "A256GCM"])
    return orjson.loads(jwe.decrypt_compact(token, key, registry=registry).plaintext or b"")


async def test_filedrop_writes_an_encrypted_private_file_and_retries_overwrite(
    tmp_path: Path, partner_key: ECKey
) -> None:
    adapter = FiledropAdapter()
    msg, delivery = outbound(), attempt()
    target = drop_partner(tmp_path, partner_key)
    receipt = await adapter.deliver(msg, target, delivery)

    path = tmp_path / f"{delivery.delivery_id}.jwe"
    assert receipt.partner_ref == path.name
    first = path.read_bytes()
    assert b"XP1234567" not in first
    assert decrypt(first, partner_key) == message_data(msg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    await adapter.deliver(msg, target, attempt(delivery.delivery_id, 2))  # a retry
    assert os.listdir(tmp_path) == [path.name]  # overwritten in place, no .tmp left behind
    assert path.read_bytes() != first  # a fresh JWE (new ephemeral key) replaced it
    assert decrypt(path.read_bytes(), partner_key) == message_data(msg)


async def test_filedrop_refuses_without_partner_key(tmp_path: Path) -> None:
    with pytest.raises(PermanentDeliveryError, match="public key"):
        await FiledropAdapter().deliver(outbound(), drop_partner(tmp_path, None), attempt())
    assert os.listdir(tmp_path) == []


async def test_filedrop_missing_directory_is_retryable(tmp_path: Path, partner_key: ECKey) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    for directory in (tmp_path / "absent", not_a_dir):
        with pytest.raises(RetryableDeliveryError, match="not a directory"):
            await FiledropAdapter().deliver(
                outbound(), drop_partner(directory, partner_key), attempt()
            )


async def test_filedrop_failed_rename_leaves_nothing_behind(
    tmp_path: Path, partner_key: ECKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(source: Any, destination: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(RetryableDeliveryError, match="No space left"):
        await FiledropAdapter().deliver(outbound(), drop_partner(tmp_path, partner_key), attempt())
    assert os.listdir(tmp_path) == []


# Registry


class ExplodingAdapter:
    name: ClassVar[str] = "exploding"
    config_model: ClassVar[type[BaseModel]] = LoopbackConfig

    def __init__(self, context: AdapterContext) -> None:
        raise RuntimeError("plugin bug")


class MisnamedAdapter(LoopbackAdapter):
    name: ClassVar[str] = "something-else"


class NotAnAdapter:
    name: ClassVar[str] = "not-an-adapter"
    config_model: ClassVar[type[BaseModel]] = LoopbackConfig

    def __init__(self, context: AdapterContext) -> None:
        pass


def entry_point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


async def test_registry_discovers_the_package_entry_points(context: AdapterContext) -> None:
    registry = load_adapters(context)
    assert {"webhook", "filedrop", "loopback"} <= set(registry.names())
    # interpol/europol/sirene may still be missing in a work tree: then they are reported.
    assert set(registry.names()) | set(registry.failed()) == ALL_ADAPTERS
    assert not set(registry.names()) & set(registry.failed())
    assert registry.get("webhook").name == "webhook"


async def test_registry_skips_and_reports_broken_plugins(context: AdapterContext) -> None:
    here = "tests.unit.test_adapters_local"
    registry = load_adapters(
        context,
        discovered=[
            entry_point("loopback", "commcentre.adapters.loopback:LoopbackAdapter"),
            entry_point("loopback", f"{here}:MisnamedAdapter"),  # duplicate: first one wins
            entry_point("missing", "commcentre.adapters.not_there:Missing"),
            entry_point("exploding", f"{here}:ExplodingAdapter"),
            entry_point("misnamed", f"{here}:MisnamedAdapter"),
            entry_point("not-an-adapter", f"{here}:NotAnAdapter"),
        ],
    )
    assert registry.names() == ["loopback"]
    assert isinstance(registry.get("loopback"), LoopbackAdapter)
    failed = registry.failed()
    assert set(failed) == {"missing", "exploding", "misnamed", "not-an-adapter"}
    assert failed["missing"].startswith("ModuleNotFoundError")
    assert failed["exploding"] == "RuntimeError: plugin bug"
    assert "name" in failed["misnamed"]
    assert "deliver" in failed["not-an-adapter"]
    with pytest.raises(AdapterConfigError, match="unknown adapter"):
        registry.get("exploding")


async def test_registry_from_adapters_builds_each_instance_once(context: AdapterContext) -> None:
    loopback = LoopbackAdapter(context)
    registry = AdapterRegistry.from_adapters([loopback, FiledropAdapter(context)])
    assert registry.names() == ["filedrop", "loopback"]
    assert registry.get("loopback") is loopback
    assert registry.failed() == {}
    with pytest.raises(ValueError, match="two adapters"):
        AdapterRegistry.from_adapters([loopback, LoopbackAdapter(context)])


async def test_validate_config_names_fields_never_values(context: AdapterContext) -> None:
    registry = load_adapters(context)
    config = registry.validate_config("webhook", {"url": "https://partner.example/hook"})
    assert isinstance(config, HttpPushConfig)
    assert config.timeout_seconds is None

    with pytest.raises(AdapterConfigError) as caught:
        registry.validate_config(
            "webhook",
            {
                "url": "ftp://canary-host.example/x",
                "timeout_seconds": -1,
                "ed25519_private_key": "canary-secret-key",
                "surplus": "canary-surplus",
            },
        )
    detail = str(caught.value)
    for field in ("url", "timeout_seconds", "ed25519_private_key", "surplus"):
        assert f"{field}:" in detail
    assert "canary" not in detail

    with pytest.raises(AdapterConfigError, match="fail_with") as caught:
        registry.validate_config("loopback", {"fail_with": "canary-mode"})
    assert "canary" not in str(caught.value)
    with pytest.raises(AdapterConfigError, match=r"directory: .*absolute"):
        registry.validate_config("filedrop", {"directory": "relative/canary"})
    with pytest.raises(AdapterConfigError, match="unknown adapter"):
        registry.validate_config("nope", {})
