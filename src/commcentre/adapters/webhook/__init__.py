"""Generic webhook adapter: the canonical message (or a request event) as a Standard
Webhooks JSON event."""

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from commcentre.adapters.base import (
    DeliveryContext,
    DeliveryReceipt,
    OutboundEvent,
    OutboundMessage,
    PartnerView,
)
from commcentre.adapters.formats import ParsedInbound, WireModel, validate_wire
from commcentre.adapters.http import HttpPushAdapter, message_data
from commcentre.messages.schemas import MessageIn, Reference

__all__ = ["WebhookAdapter", "parse_event"]


class WebhookEvent(WireModel):
    """The event envelope; `data` is checked on its own (below)."""

    type: str = Field(min_length=1, max_length=128)
    id: str = Field(min_length=1, max_length=255)
    timestamp: str = Field(min_length=1, max_length=64)
    data: dict[str, Any]


class EventIds(WireModel):
    """The sender's id of the message and its creation time, beside the canonical fields."""

    message_id: Reference
    created_at: str | None = None


def parse_event(document: Mapping[str, Any]) -> ParsedInbound:
    """Read a `{"type", "id", "timestamp", "data"}` event, as `WebhookAdapter` sends it.

    `data` is the canonical message plus `message_id` (the sender's id of it, kept as
    `partner_ref`) and `created_at`; problems are reported at their JSON paths.
    """
    event = validate_wire(WebhookEvent, document)
    data = dict(event.data)
    ids = {name: data.pop(name) for name in ("message_id", "created_at") if name in data}
    refs = validate_wire(EventIds, ids, at=("data",))
    message = validate_wire(MessageIn, data, at=("data",))
    return ParsedInbound(message=message, partner_ref=refs.message_id)


class WebhookAdapter(HttpPushAdapter):
    """Push `{"type", "id", "timestamp", "data"}` to a partner or subscriber URL."""

    name: ClassVar[str] = "webhook"
    event_type: ClassVar[str] = "message.outbound"

    def build_body(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> dict[str, Any]:
        """The event envelope: `id` is the delivery id, equal to the `webhook-id` header."""
        return {
            "type": delivery.event_type or self.event_type,
            "id": str(delivery.delivery_id),
            "timestamp": delivery.timestamp.isoformat(),
            "data": message_data(message),
        }

    async def deliver_event(
        self, event: OutboundEvent, partner: PartnerView, delivery: DeliveryContext
    ) -> DeliveryReceipt:
        """Push an event that is not a message (e.g. `request.overdue`) in the same envelope,
        signed the same way: `data` is the event's metadata as given."""
        document = {
            "type": event.type,
            "id": str(delivery.delivery_id),
            "timestamp": delivery.timestamp.isoformat(),
            "data": dict(event.data),
        }
        return await self.send_document(document, partner, delivery)

    def parse_inbound(self, document: Mapping[str, Any], partner: PartnerView) -> ParsedInbound:
        """Read the event a partner pushed, in the shape `build_body` sends."""
        return parse_event(document)
