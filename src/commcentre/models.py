"""Every table, imported in one place for Alembic and the tests."""

from commcentre.audit.models import AuditEntry, AuditHead
from commcentre.auth.models import ApiClient
from commcentre.db import Base
from commcentre.delivery.models import Delivery, DeliveryAttempt
from commcentre.idempotency.models import IdempotencyRecord
from commcentre.inbound.models import InboxEntry
from commcentre.messages.models import Message, MessageIdentifier
from commcentre.partners.models import Partner
from commcentre.requests.models import (
    RequestHistoryEntry,
    RequestMessageLink,
    SupplementaryRequest,
)
from commcentre.routing.models import RoutingRule, RoutingState
from commcentre.subscriptions.models import Subscription

metadata = Base.metadata

__all__ = [
    "ApiClient",
    "AuditEntry",
    "AuditHead",
    "Delivery",
    "DeliveryAttempt",
    "IdempotencyRecord",
    "InboxEntry",
    "Message",
    "MessageIdentifier",
    "Partner",
    "RequestHistoryEntry",
    "RequestMessageLink",
    "RoutingRule",
    "RoutingState",
    "Subscription",
    "SupplementaryRequest",
    "metadata",
]
