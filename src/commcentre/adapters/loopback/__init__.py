"""Loopback adapter: keeps deliveries in memory. For tests and demos only.

This is the one adapter allowed to hold mutable state: a per-instance store
of what it received, keyed by partner id. Nothing is deduplicated, so the
at-least-once nature of delivery stays visible (a retried delivery shows up
twice). It can be told, per partner, to fail in each way the dispatcher must
handle, and to take its time. What a loopback partner pushes to us is read as
the webhook event (`{"type", "id", "timestamp", "data"}`), so tests and demos
can play the partner's side too.
"""

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

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
from commcentre.adapters.formats import ParsedInbound
from commcentre.adapters.webhook import parse_event

__all__ = ["LoopbackAdapter", "LoopbackConfig"]


class LoopbackConfig(BaseModel):
    """How the loopback partner behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fail_with: Literal["none", "retryable", "permanent", "gone"] = "none"
    latency_ms: int = Field(default=0, ge=0, le=60_000)


class LoopbackAdapter:
    """An in-memory partner: `received(partner_id)` lists what it was handed, in order."""

    name: ClassVar[str] = "loopback"
    config_model: ClassVar[type[BaseModel]] = LoopbackConfig

    def __init__(self, context: AdapterContext | None = None) -> None:
        self._received: dict[str, list[tuple[uuid.UUID, OutboundMessage]]] = {}

    def received(self, partner_id: str) -> list[tuple[uuid.UUID, OutboundMessage]]:
        """The (delivery id, message) pairs delivered to `partner_id`, oldest first (a copy)."""
        return list(self._received.get(partner_id, ()))

    def clear(self) -> None:
        """Forget everything received."""
        self._received.clear()

    async def deliver(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> DeliveryReceipt:
        """Store the message, or fail as the partner's config says."""
        config = partner.config
        if not isinstance(config, LoopbackConfig):
            raise PermanentDeliveryError("partner config is not a loopback config")
        if config.latency_ms:
            await asyncio.sleep(config.latency_ms / 1000)
        if config.fail_with == "retryable":
            raise RetryableDeliveryError("loopback partner configured to fail (retryable)")
        if config.fail_with == "permanent":
            raise PermanentDeliveryError("loopback partner configured to fail (permanent)")
        if config.fail_with == "gone":
            raise PartnerGoneError("loopback partner configured to be gone", status_code=410)
        self._received.setdefault(partner.id, []).append((delivery.delivery_id, message))
        return DeliveryReceipt(partner_ref=str(delivery.delivery_id), detail="stored in memory")

    def parse_inbound(self, document: Mapping[str, Any], partner: PartnerView) -> ParsedInbound:
        """Read a pushed webhook event (the shape the webhook adapter sends)."""
        return parse_event(document)
