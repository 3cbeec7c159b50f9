"""Europol-like adapter: `commcentre.siena-like/1` documents pushed over HTTP.

commcentre's own SIENA-like format with UMF-like labels (see `format`); it
claims no conformance to Europol's SIENA or to UMF, for which no public schema
exists.
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
from commcentre.adapters.europol.format import from_wire, to_wire
from commcentre.adapters.formats import ParsedInbound
from commcentre.adapters.http import HttpPushAdapter, HttpPushConfig

__all__ = ["EuropolAdapter", "EuropolConfig"]


class EuropolConfig(HttpPushConfig):
    """A SIENA-like partner: the HTTP push settings and our sending unit."""

    sender_unit: Annotated[
        str, StringConstraints(pattern=r"^[A-Z0-9](?:[A-Z0-9 ._-]{0,62}[A-Z0-9])?$")
    ] = Field(description="The sending unit, e.g. FI-ENU (the Finnish Europol National Unit)")


class EuropolAdapter(HttpPushAdapter):
    """Push each message to the partner as a SIENA-like document."""

    name: ClassVar[str] = "europol"
    event_type: ClassVar[str] = "message.outbound"
    config_model: ClassVar[type[BaseModel]] = EuropolConfig

    def build_body(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> dict[str, Any]:
        """The SIENA-like document, sent as our unit."""
        config = partner.config
        if not isinstance(config, EuropolConfig):
            raise PermanentDeliveryError("partner config is not a europol config")
        return to_wire(message, delivery_id=delivery.delivery_id, sender=config.sender_unit)

    def parse_inbound(self, document: Mapping[str, Any], partner: PartnerView) -> ParsedInbound:
        """Read a SIENA-like document the partner pushed; `WireFormatError` names the JSON paths."""
        return from_wire(document)
