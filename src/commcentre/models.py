"""Every table, imported in one place for Alembic and the tests."""

from commcentre.audit.models import AuditEntry, AuditHead
from commcentre.auth.models import ApiClient
from commcentre.db import Base
from commcentre.idempotency.models import IdempotencyRecord
from commcentre.messages.models import Message, MessageIdentifier

metadata = Base.metadata

__all__ = [
    "ApiClient",
    "AuditEntry",
    "AuditHead",
    "IdempotencyRecord",
    "Message",
    "MessageIdentifier",
    "metadata",
]
