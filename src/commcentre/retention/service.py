"""Crypto-shredding of expired messages (DOMAIN.md, Retention).

Each run takes a batch of messages past `purge_after` that have no delivery
still to be made and no open supplementary-information request, then:

1. destroys their data keys (the wrapped key and the ciphertext are overwritten)
   and commits: from this moment the content is unreadable everywhere;
2. removes the rows and their blind-index entries, and appends one erasure
   entry per message to the audit log, without any of its content.

A crash between the two steps leaves shredded rows that the next run removes.
"""

from dataclasses import dataclass
from datetime import datetime

import structlog

from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.db import Database
from commcentre.retention import repository

log = structlog.get_logger(__name__)

ACTOR = "system:retention"


@dataclass(frozen=True, slots=True)
class PurgeResult:
    erased: int


async def purge_expired(db: Database, *, now: datetime, limit: int = 200) -> PurgeResult:
    """Erase up to `limit` expired messages; how many were erased."""
    async with db.write_sessions() as session, session.begin():
        rows = await repository.expired(session, now=now, limit=limit, lock=not db.is_sqlite)
        if not rows:
            return PurgeResult(erased=0)
        ids = [row.id for row in rows]
        await repository.shred(session, ids)
    async with db.write_sessions() as session, session.begin():
        # Read again: a message may have gained work meanwhile (a redrive); it stays
        # shredded, but only what is still expired and idle is removed now.
        idle = await repository.expired(
            session, now=now, limit=len(ids), lock=not db.is_sqlite, among=ids
        )
        await repository.remove(session, [row.id for row in idle])
        await append(
            session,
            [
                AuditRecord(
                    action=AuditAction.ERASURE,
                    event="message.erased",
                    actor=ACTOR,
                    subject_type="message",
                    subject_id=str(row.id),
                    details={
                        "reason": "retention period ended",
                        "direction": row.direction,
                        "legal_basis": row.legal_basis,
                        "purge_after": row.purge_after.isoformat(),
                    },
                    occurred_at=now,
                )
                for row in idle
            ],
            now=now,
        )
    if idle:
        log.info("messages_erased", count=len(idle))
    return PurgeResult(erased=len(idle))
