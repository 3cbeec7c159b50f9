"""SIRENE-like adapter: `commcentre.sirene-like/1` forms pushed over HTTP.

commcentre's own SIRENE-like format (see `format`); it claims no conformance to
the SIRENE forms of the SIRENE Manual, for which no public schema exists.
"""

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from commcentre.adapters.base import (
    DeliveryContext,
    OutboundMessage,
    PartnerView,
    PermanentDeliveryError,
)
from commcentre.adapters.formats import ParsedInbound
from commcentre.adapters.http import HttpPushAdapter, HttpPushConfig
from commcentre.adapters.sirene.format import SireneForm, from_wire, to_wire
from commcentre.messages.schemas import CountryCode

__all__ = ["SireneAdapter", "SireneConfig"]


class SireneConfig(HttpPushConfig):
    """A SIRENE-like partner: the HTTP push settings, our bureau and the default form."""

    sirene_bureau: CountryCode = Field(description="Our SIRENE bureau's country, e.g. FI")
    default_form: SireneForm = Field(
        default="M", description="Form of messages other than hits (hits are always G)"
    )


class SireneAdapter(HttpPushAdapter):
    """Push each message to the partner as a SIRENE-like form."""

    name: ClassVar[str] = "sirene"
    event_type: ClassVar[str] = "message.outbound"
    config_model: ClassVar[type[BaseModel]] = SireneConfig

    def build_body(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> dict[str, Any]:
        """The SIRENE-like form, sent as our bureau."""
        config = partner.config
        if not isinstance(config, SireneConfig):
            raise PermanentDeliveryError("partner config is not a sirene config")
        return to_wire(
            message,
            delivery_id=delivery.delivery_id,
            sender=config.sirene_bureau,
            default_form=config.default_form,
        )

    def parse_inbound(self, document: Mapping[str, Any], partner: PartnerView) -> ParsedInbound:
        """Read a SIRENE-like form the partner pushed; `WireFormatError` names the JSON paths."""
        return from_wire(document)
