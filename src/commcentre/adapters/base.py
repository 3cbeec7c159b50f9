"""The adapter seam: everything core code knows about partner adapters.

An adapter turns a canonical message into a partner's wire format and hands it
over. It is small on purpose (like httpx's transport): `deliver` either returns
a receipt or raises one of the errors below.

DeliveryError
 ├── PermanentDeliveryError         never retried: dead-lettered at once
 │    └── PartnerGoneError          the partner said 410 Gone: it is disabled
 └── RetryableDeliveryError         retried with backoff (retry_after honoured)
AdapterConfigError                  a partner's adapter config is invalid (422)
InboundNotSupportedError            the adapter's partners do not push messages to us

Adapters are found through the entry-point group `commcentre.adapters`; each
entry point names a class implementing `Adapter`, built once per process with
an `AdapterContext`.

Some deliveries are not a message but an event about something else (e.g.
`request.overdue`, to internal subscribers). An adapter that can send those
also implements `EventAdapter`; the dispatcher dead-letters an event handed to
an adapter that does not, rather than dressing it up as a message.
"""

import ipaddress
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, SecretStr

from commcentre.adapters.formats import ParsedInbound
from commcentre.messages.schemas import MessageIn

ENTRY_POINT_GROUP = "commcentre.adapters"

# Resolves a host name to its IP addresses (tests inject a fake; never real DNS in tests).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class DeliveryError(Exception):
    """A delivery did not succeed. `detail` must never carry payload data."""

    def __init__(self, detail: str, *, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (e.g. 400, 403, 404, 422 from the partner, bad config)."""


class PartnerGoneError(PermanentDeliveryError):
    """The partner answered 410 Gone: stop sending to it until re-enabled."""


class RetryableDeliveryError(DeliveryError):
    """Try again later (timeouts, resets, 408, 409, 429, 5xx); `retry_after` in seconds."""

    def __init__(
        self, detail: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(detail, status_code=status_code)
        self.retry_after = retry_after


class AdapterConfigError(Exception):
    """A partner's adapter configuration cannot be used; the message names the field."""


class InboundNotSupportedError(Exception):
    """`parse_inbound` of an adapter whose partners cannot push messages to us."""


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """The decrypted message an adapter delivers (it lives in memory only)."""

    id: uuid.UUID
    created_at: datetime
    content: MessageIn


@dataclass(frozen=True, slots=True)
class OutboundEvent:
    """An event that is not a message: its type and `data` (metadata only, never payload)."""

    type: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PartnerView:
    """What an adapter may know of a partner, with its config already validated."""

    id: str
    name: str
    country: str | None
    config: BaseModel
    # What deliveries to it are signed with (a partner's outbound secrets, never the
    # inbound ones it signs its own pushes with).
    signing_secrets: Sequence[SecretStr] = ()
    public_jwk: Mapping[str, Any] | None = None
    allow_loopback: bool = False
    # Internal subscribers: private networks their callback may resolve to (netguard).
    allow_networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = ()


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    """The delivery being attempted: its id is the `webhook-id`, stable across retries."""

    delivery_id: uuid.UUID
    attempt: int
    timestamp: datetime
    # The event delivered (e.g. "message.inbound" to a subscriber); None: the adapter's own.
    event_type: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """Proof of hand-over: what the partner answered."""

    status_code: int | None = None
    partner_ref: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """Shared, immutable things an adapter is built with (once per process)."""

    http: httpx.AsyncClient
    resolver: Resolver
    timeout: float = 10.0
    max_response_bytes: int = 64 * 1024
    extras: Mapping[str, Any] = field(default_factory=dict)


class Adapter(Protocol):
    """A partner adapter. Implementations hold no per-request mutable state."""

    name: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]

    async def deliver(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> DeliveryReceipt:
        """Hand the message to the partner; raise a DeliveryError subclass on failure."""
        ...

    def parse_inbound(self, document: Mapping[str, Any], partner: PartnerView) -> ParsedInbound:
        """Read a document the partner pushed into the canonical message.

        Raises `WireFormatError` (JSON paths, never values) when it does not fit, and
        `InboundNotSupportedError` when this adapter's partners cannot push to us.
        """
        ...


@runtime_checkable
class EventAdapter(Protocol):
    """An adapter that can also deliver an `OutboundEvent` (the webhook adapter does)."""

    async def deliver_event(
        self, event: OutboundEvent, partner: PartnerView, delivery: DeliveryContext
    ) -> DeliveryReceipt:
        """Hand the event over; raise a DeliveryError subclass on failure."""
        ...


class AdapterFactory(Protocol):
    def __call__(self, context: AdapterContext) -> Adapter: ...
