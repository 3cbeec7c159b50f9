"""Generic webhook adapter: the canonical message as a Standard Webhooks JSON event."""

from typing import Any, ClassVar

from commcentre.adapters.base import DeliveryContext, OutboundMessage, PartnerView
from commcentre.adapters.http import HttpPushAdapter, message_data

__all__ = ["WebhookAdapter"]


class WebhookAdapter(HttpPushAdapter):
    """Push `{"type", "id", "timestamp", "data"}` to a partner or subscriber URL."""

    name: ClassVar[str] = "webhook"
    event_type: ClassVar[str] = "message.outbound"

    def build_body(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> dict[str, Any]:
        """The event envelope: `id` is the delivery id, equal to the `webhook-id` header."""
        return {
            "type": self.event_type,
            "id": str(delivery.delivery_id),
            "timestamp": delivery.timestamp.isoformat(),
            "data": message_data(message),
        }
