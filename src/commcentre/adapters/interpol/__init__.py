"""Interpol-like adapter: `commcentre.interpol-like/1` documents pushed over HTTP.

commcentre's own I-24/7-like format (see `format`); it claims no conformance to
Interpol's I-24/7, for which no public schema exists.
"""

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, Field, StringConstraints

from commcentre.adapters.base import (
    DeliveryContext,
    OutboundMessage,
    PartnerView,
    PermanentDeliveryError,
)
from commcentre.adapters.formats import ParsedInbound
from commcentre.adapters.http import HttpPushAdapter, HttpPushConfig
from commcentre.adapters.interpol.format import from_wire, to_wire

__all__ = ["InterpolAdapter", "InterpolConfig"]


class InterpolConfig(HttpPushConfig):
    """An Interpol-like partner: the HTTP push settings and our NCB's name."""

    ncb_code: Annotated[str, StringConstraints(pattern=r"^[A-Z](?:[A-Z0-9 -]{0,62}[A-Z0-9])?$")] = (
        Field(description="The sending National Central Bureau, e.g. HELSINKI")
    )


class InterpolAdapter(HttpPushAdapter):
    """Push each message to the partner as an interpol-like document."""

    name: ClassVar[str] = "interpol"
    event_type: ClassVar[str] = "message.outbound"
    config_model: ClassVar[type[BaseModel]] = InterpolConfig

    def build_body(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> dict[str, Any]:
        """The interpol-like document, sent as our NCB."""
        config = partner.config
        if not isinstance(config, InterpolConfig):
            raise PermanentDeliveryError("partner config is not an interpol config")
        return to_wire(message, delivery_id=delivery.delivery_id, sender=config.ncb_code)

    def parse_inbound(self, document: Mapping[str, Any], partner: PartnerView) -> ParsedInbound:
        """Read an interpol-like document the partner pushed; `WireFormatError` names paths."""
        return from_wire(document)
