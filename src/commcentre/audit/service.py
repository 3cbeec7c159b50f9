"""The audit log's rules: what an entry may hold, appending to the chain, listing it.

Services flush and never commit: `append` runs inside the caller's transaction
(the ingest batch), so an entry exists exactly when the processing it records
was committed. Each entry is keyed with the current audit key, which reaches
`append` through the session (keys.py). Verification and checkpoints are in
verification.py, and exported from here too.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit import repository
from commcentre.audit.chain import checked_details, entry_mac
from commcentre.audit.keys import AuditKeysMissingError, audit_session_info, session_audit_keys
from commcentre.audit.models import (
    ACTOR_MAX,
    EVENT_MAX,
    JUSTIFICATION_MAX,
    RECIPIENT_MAX,
    SUBJECT_ID_MAX,
    SUBJECT_TYPE_MAX,
    AuditAction,
    AuditEntry,
)
from commcentre.audit.repository import AuditFilter, AuditHeadMissingError
from commcentre.audit.verification import (
    AuditChainBrokenError,
    ChainBreak,
    ChainState,
    ChainVerification,
    SignedCheckpoint,
    make_checkpoint,
    verify_chain,
)
from commcentre.db import WriteSession
from commcentre.ids import new_id

__all__ = [
    "AuditAction",
    "AuditChainBrokenError",
    "AuditEntryPage",
    "AuditFilter",
    "AuditHeadMissingError",
    "AuditKeysMissingError",
    "AuditRecord",
    "ChainBreak",
    "ChainState",
    "ChainVerification",
    "SignedCheckpoint",
    "append",
    "audit_session_info",
    "list_entries",
    "make_checkpoint",
    "verify_chain",
]

_TEXT_LIMITS = (
    ("event", EVENT_MAX, True),
    ("actor", ACTOR_MAX, True),
    ("subject_type", SUBJECT_TYPE_MAX, False),
    ("subject_id", SUBJECT_ID_MAX, False),
    ("recipient", RECIPIENT_MAX, False),
    ("justification", JUSTIFICATION_MAX, False),
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An operation to log; `append` gives it a seq, an id and its place in the chain.

    Raises ValueError at construction when a field would not fit its column or
    `details` would not hash identically after a database round trip. Never put
    payload content into `details`: identifiers and counts only.
    """

    action: AuditAction
    event: str
    actor: str
    subject_type: str | None = None
    subject_id: str | None = None
    recipient: str | None = None
    justification: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)
    occurred_at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "action", AuditAction(self.action))
        for name, limit, required in _TEXT_LIMITS:
            value = getattr(self, name)
            if value is None and not required:
                continue
            if not isinstance(value, str) or not value:
                raise ValueError(f"audit {name} must be a non-empty string")
            if len(value) > limit or "\x00" in value:
                raise ValueError(f"audit {name} must be at most {limit} characters, without NUL")
        if self.occurred_at is not None and self.occurred_at.tzinfo is None:
            raise ValueError("audit occurred_at must be timezone-aware")
        # A private copy: the caller mutating its dict later must not change what we hash.
        object.__setattr__(self, "details", MappingProxyType(checked_details(self.details)))


@dataclass(frozen=True, slots=True)
class AuditEntryPage:
    """One page of entries; `next_after_seq` is None on the last page."""

    entries: Sequence[AuditEntry]
    next_after_seq: int | None


async def append(
    session: WriteSession, records: Sequence[AuditRecord], *, now: datetime
) -> list[int]:
    """Chain `records` onto the log in the session's transaction; returns their seqs.

    Three statements whatever the number of records. Call it late in the
    transaction: the head row stays locked, and every other writer waits,
    until the transaction ends.
    """
    if not records:
        return []
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    key = session_audit_keys(session).audit_key()
    head = await repository.advance_head(session, len(records), now=now)
    first_seq = head.seq - len(records) + 1
    prev_hash = head.hash
    rows: list[dict[str, Any]] = []
    for seq, record in enumerate(records, start=first_seq):
        row: dict[str, Any] = {
            "seq": seq,
            "id": new_id(),
            "occurred_at": (record.occurred_at or now).astimezone(UTC),
            "action": record.action.value,
            "event": record.event,
            "actor": record.actor,
            "subject_type": record.subject_type,
            "subject_id": record.subject_id,
            "recipient": record.recipient,
            "justification": record.justification,
            "details": dict(record.details),
            "prev_hash": prev_hash,
            "key_id": key.version,
        }
        row["hash"] = prev_hash = entry_mac(row, key)
        rows.append(row)
    await repository.insert_entries(session, rows)
    await repository.set_head_hash(session, prev_hash)
    return list(range(first_seq, head.seq + 1))


async def list_entries(
    session: AsyncSession, *, filters: AuditFilter, after_seq: int | None, limit: int
) -> AuditEntryPage:
    """Entries matching `filters`, ascending by seq, starting after `after_seq`."""
    entries = await repository.list_entries(session, filters, after_seq=after_seq, limit=limit + 1)
    if len(entries) <= limit:
        return AuditEntryPage(entries, None)
    entries = entries[:limit]
    return AuditEntryPage(entries, entries[-1].seq)
