"""HTTP push: the transport shared by the webhook and partner-style adapters.

One POST per delivery, Standard Webhooks signed (`v1` HMAC for each of the
partner's secrets, `v1a` Ed25519 when configured), the body optionally a
compact JWE for the partner's public key. The host is vetted and pinned by
`netguard`; redirects are never followed; at most `max_response_bytes` of the
answer is read. The answer maps onto the `base` error tree (API.md).
"""

import abc
import asyncio
import base64
import binascii
import email.utils
import hashlib
import hmac
import math
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

import httpx
import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwe, jwk
from joserfc.errors import JoseError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from commcentre.adapters.base import (
    AdapterContext,
    DeliveryContext,
    DeliveryReceipt,
    OutboundMessage,
    PartnerGoneError,
    PartnerView,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from commcentre.adapters.netguard import PinnedTarget, resolve_pinned

MAX_RETRY_AFTER = 24 * 3600.0
_JWE_REGISTRY = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "RSA-OAEP-256", "A256GCM"])
_DELTA_SECONDS = re.compile(r"^[0-9]{1,12}$")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]+")


def load_ed25519_key(text: str) -> Ed25519PrivateKey:
    """Parse a PKCS#8 PEM Ed25519 private key, or base64 of its 32 raw bytes."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        # Never echo the text: it is a secret.
        raise ValueError("not an Ed25519 private key (PEM, or base64 of 32 raw bytes)")
    return key


class HttpPushConfig(BaseModel):
    """Adapter config of an HTTP push partner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(max_length=2048)
    timeout_seconds: float | None = Field(default=None, gt=0, le=300)
    ed25519_private_key: SecretStr | None = None
    # Partners may echo our payload in their error bodies; excerpts are opt-in for that reason,
    # and never taken from a loopback or private-network target (they would read it out).
    error_excerpt_chars: int = Field(default=0, ge=0, le=200)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        # https, or http for local partners: netguard refuses http unless allow_loopback.
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("must be an absolute http(s) URL") from None
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an absolute https URL (http only for local partners)")
        if "@" in parts.netloc:
            raise ValueError("must not contain credentials")
        return value

    @field_validator("ed25519_private_key")
    @classmethod
    def _check_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            load_ed25519_key(value.get_secret_value())
        return value

    def signing_key(self) -> Ed25519PrivateKey | None:
        """The Ed25519 key for `v1a` signatures, if configured."""
        key = self.ed25519_private_key
        return None if key is None else load_ed25519_key(key.get_secret_value())


def message_data(message: OutboundMessage) -> dict[str, Any]:
    """The canonical JSON form of a message, as partners receive it."""
    return {
        "message_id": str(message.id),
        "created_at": message.created_at.isoformat(),
        **message.content.model_dump(mode="json", exclude_none=True),
    }


def encrypt_for_partner(plaintext: bytes, public_jwk: Mapping[str, Any]) -> str:
    """Compact JWE for the partner key: ECDH-ES+A256KW (EC/OKP) or RSA-OAEP-256, A256GCM."""
    try:
        key = jwk.import_key(dict(public_jwk))
        alg = "RSA-OAEP-256" if key.key_type == "RSA" else "ECDH-ES+A256KW"
        header: dict[str, Any] = {"alg": alg, "enc": "A256GCM"}
        if isinstance(public_jwk.get("kid"), str):
            header["kid"] = public_jwk["kid"]
        return jwe.encrypt_compact(header, plaintext, key, registry=_JWE_REGISTRY)
    except (JoseError, ValueError, TypeError) as exc:
        raise PermanentDeliveryError(
            f"partner public key cannot be used for JWE ({type(exc).__name__})"
        ) from None


def _secret_key(secret: SecretStr) -> bytes:
    # Decoded exactly as the standardwebhooks reference does, so both sides derive one key.
    text = secret.get_secret_value().removeprefix("whsec_")
    try:
        key = base64.b64decode(text + "==")
    except binascii.Error:
        key = b""
    if not key:
        raise PermanentDeliveryError("partner signing secret is empty or not base64")
    return key


def sign(
    msg_id: str,
    timestamp: int,
    body: bytes,
    secrets: Sequence[SecretStr],
    ed25519_key: Ed25519PrivateKey | None = None,
) -> str:
    """The `webhook-signature` header: `v1,` per secret, then `v1a,` when a key is given."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signatures = [
        "v1," + base64.b64encode(hmac.new(_secret_key(s), signed, hashlib.sha256).digest()).decode()
        for s in secrets
    ]
    if ed25519_key is not None:
        signatures.append("v1a," + base64.b64encode(ed25519_key.sign(signed)).decode())
    return " ".join(signatures)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta or HTTP-date), capped at 24 h."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.match(value):
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000" zone: RFC 5322 says UTC, source unknown
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _printable(data: bytes, limit: int) -> str:
    text = _UNPRINTABLE.sub(" ", data[: limit * 4].decode("utf-8", "replace"))
    return " ".join(text.split())[:limit]


def _partner_ref(head: bytes) -> str | None:
    try:
        document = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    for field in ("id", "reference"):
        value = document.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool):
            return _printable(str(value).encode(), 128) or None
    return None


def outcome(
    status: int, headers: httpx.Headers, head: bytes, *, now: datetime, excerpt_chars: int = 0
) -> DeliveryReceipt:
    """Map the partner's answer to a receipt, or raise the matching DeliveryError."""
    detail = f"partner answered HTTP {status}"
    if excerpt_chars and not 200 <= status < 300 and head:
        detail += f": {_printable(head, excerpt_chars)}"
    if 200 <= status < 300:
        return DeliveryReceipt(status_code=status, partner_ref=_partner_ref(head))
    if status == 410:
        raise PartnerGoneError(detail, status_code=status)
    if status in (429, 503):
        retry_after = parse_retry_after(headers.get("retry-after"), now=now)
        raise RetryableDeliveryError(detail, status_code=status, retry_after=retry_after)
    if status in (408, 409, 425) or 500 <= status < 600:
        raise RetryableDeliveryError(detail, status_code=status)
    if 300 <= status < 400:
        raise PermanentDeliveryError(f"{detail}; redirects are not followed", status_code=status)
    raise PermanentDeliveryError(detail, status_code=status)


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    """At most `cap` bytes of the body; the rest is never read."""
    head = bytearray()
    # aiter_raw: no decompression, so a small compressed answer cannot expand in memory.
    chunks = cast(AsyncGenerator[bytes, None], response.aiter_raw())
    try:
        async for chunk in chunks:
            head += chunk[: cap - len(head)]
            if len(head) >= cap:
                break
    finally:
        await chunks.aclose()
    return bytes(head)


class HttpPushAdapter(abc.ABC):
    """Base of HTTP push adapters: subclasses set `name`, `event_type` and `build_body`."""

    name: ClassVar[str]
    event_type: ClassVar[str]
    config_model: ClassVar[type[BaseModel]] = HttpPushConfig

    def __init__(self, context: AdapterContext) -> None:
        self._context = context

    @abc.abstractmethod
    def build_body(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> dict[str, Any]:
        """The JSON document the partner receives (before any encryption)."""

    def _config(self, partner: PartnerView) -> HttpPushConfig:
        config = partner.config
        if not isinstance(config, self.config_model) or not isinstance(config, HttpPushConfig):
            raise PermanentDeliveryError(f"partner config is not a {self.name} config")
        return config

    async def deliver(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> DeliveryReceipt:
        """POST the signed (and, with a partner key, encrypted) body to the pinned partner."""
        self._config(partner)  # another adapter's config fails before anything is built
        document = self.build_body(message, partner, delivery)
        return await self.send_document(document, partner, delivery)

    async def send_document(
        self, document: Mapping[str, Any], partner: PartnerView, delivery: DeliveryContext
    ) -> DeliveryReceipt:
        """POST `document` as JSON, signed (and, with a partner key, encrypted), to the partner."""
        config = self._config(partner)
        if not partner.signing_secrets:
            # A partner registered before each direction had its own secrets: an operator
            # gives it an outbound secret (docs/partners.md), then this delivery goes out.
            raise RetryableDeliveryError(
                "partner has no outbound signing secret; refusing to send unsigned "
                "(set one with PATCH /v1/partners/{id} outbound_secrets)"
            )
        body = orjson.dumps(document)
        content_type = "application/json"
        if partner.public_jwk is not None:
            body = encrypt_for_partner(body, partner.public_jwk).encode("ascii")
            content_type = "application/jose"
        now = delivery.timestamp
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        msg_id, timestamp = str(delivery.delivery_id), math.floor(now.timestamp())
        signature = sign(msg_id, timestamp, body, partner.signing_secrets, config.signing_key())
        target = await resolve_pinned(
            config.url,
            resolver=self._context.resolver,
            allow_loopback=partner.allow_loopback,
            allow_networks=partner.allow_networks,
        )
        headers = {
            "host": target.host_header,
            "content-type": content_type,
            "accept-encoding": "identity",
            "user-agent": "commcentre",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }
        timeout = config.timeout_seconds or self._context.timeout
        response, head = await self._post(target, body, headers, timeout)
        return outcome(
            response.status_code,
            response.headers,
            head,
            now=now,
            # An internal target's answer is never echoed into last_error: status only.
            excerpt_chars=0 if target.internal else config.error_excerpt_chars,
        )

    async def _post(
        self, target: PinnedTarget, body: bytes, headers: dict[str, str], seconds: float
    ) -> tuple[httpx.Response, bytes]:
        """Send to the pinned IP; return the response and at most the capped body."""
        extensions: dict[str, Any] = {}
        if target.scheme == "https":
            # TLS and its certificate check use the name. The shared transport's pool keys
            # connections by this name too, so a connection verified for another name on
            # the same IP never carries this request (adapters/transport.py).
            extensions["sni_hostname"] = target.host
        http = self._context.http
        request = http.build_request(
            "POST",
            target.connect_url,
            content=body,
            headers=headers,
            timeout=httpx.Timeout(seconds),
            extensions=extensions,
        )
        try:
            # One overall deadline: httpx's timeouts are per read, so a slow drip could last.
            async with asyncio.timeout(seconds):
                response = await http.send(request, stream=True, follow_redirects=False)
                try:
                    return response, await _read_capped(response, self._context.max_response_bytes)
                finally:
                    await response.aclose()
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise RetryableDeliveryError(f"partner did not answer within {seconds:g} s") from exc
        except httpx.HTTPError as exc:
            raise RetryableDeliveryError(f"transport error: {type(exc).__name__}") from exc
