"""Audit API bodies: entries as stored, and the chain verification report."""

import uuid
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from commcentre.audit.models import AuditAction, AuditEntry
from commcentre.audit.service import ChainBreak, ChainVerification

_HEX_SHA256 = "^[0-9a-f]{64}$"


class AuditEntryOut(BaseModel):
    """One audit entry, exactly as chained (hashes in lower-case hex)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "seq": 4812,
                "id": "0193a0c2-7d1e-7c3a-9f0e-2b7f1c9d4e51",
                "occurred_at": "2026-11-28T14:00:00.123456Z",
                "action": "consultation",
                "event": "message.read",
                "actor": "client:0193a0b1-1f2e-7a4b-8c9d-0e1f2a3b4c5d",
                "subject_type": "message",
                "subject_id": "0193a0c1-0a1b-7c2d-8e3f-4a5b6c7d8e9f",
                "recipient": None,
                "justification": "case 2026/4411, border check follow-up",
                "details": {"fields": ["subjects", "body"]},
                "prev_hash": "5f1c" + "0" * 60,
                "hash": "9a7e" + "0" * 60,
                "key_id": 1,
            }
        }
    )

    seq: int = Field(description="Position in the chain, from 1, without gaps.")
    id: uuid.UUID
    occurred_at: datetime
    action: AuditAction = Field(description="Processing category (LED 2016/680 Art. 25).")
    event: str = Field(description='What happened, e.g. "message.ingested", "message.read".')
    actor: str = Field(description='Who did it: "client:<uuid>", "cli:<user>" or "system".')
    subject_type: str | None = None
    subject_id: str | None = None
    recipient: str | None = Field(None, description="Who the data was disclosed to.")
    justification: str | None = Field(None, description="Stated reason for a consultation.")
    details: dict[str, Any] = Field(description="Identifiers and counts; never payload data.")
    prev_hash: str = Field(
        pattern=_HEX_SHA256, description="The previous entry's hash (zeros for entry 1)."
    )
    hash: str = Field(
        pattern=_HEX_SHA256,
        description=(
            "HMAC-SHA256 under audit key `key_id` over this entry's fields and prev_hash "
            "(plain SHA-256 for an entry written before the chain was keyed)."
        ),
    )
    key_id: int | None = Field(
        description="Version of the audit key that keyed `hash`; null: unkeyed (older) entry."
    )

    @classmethod
    def from_entry(cls, entry: AuditEntry) -> Self:
        """The API form of a stored entry."""
        return cls(
            seq=entry.seq,
            id=entry.id,
            occurred_at=entry.occurred_at,
            action=AuditAction(entry.action),
            event=entry.event,
            actor=entry.actor,
            subject_type=entry.subject_type,
            subject_id=entry.subject_id,
            recipient=entry.recipient,
            justification=entry.justification,
            details=entry.details,
            prev_hash=entry.prev_hash.hex(),
            hash=entry.hash.hex(),
            key_id=entry.key_id,
        )


class AuditVerificationOut(BaseModel):
    """The result of recomputing the audit chain; `ok` is false when it is broken."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ok": True,
                    "entries_checked": 48120,
                    "head_seq": 48120,
                    "first_broken_seq": None,
                    "reason": None,
                    "unkeyed_entries": 0,
                    "checkpoint_tree_size": 48000,
                    "root_hash": "3c1f" + "0" * 60,
                },
                {
                    "ok": False,
                    "entries_checked": 4811,
                    "head_seq": 48120,
                    "first_broken_seq": 4812,
                    "reason": "hash mismatch",
                    "unkeyed_entries": 0,
                    "checkpoint_tree_size": 48000,
                    "root_hash": None,
                },
                {
                    "ok": False,
                    "entries_checked": 47990,
                    "head_seq": 47990,
                    "first_broken_seq": 47991,
                    "reason": "truncated",
                    "unkeyed_entries": 0,
                    "checkpoint_tree_size": 48000,
                    "root_hash": None,
                },
            ]
        }
    )

    ok: bool
    entries_checked: int = Field(description="Entries found intact before the first break.")
    head_seq: int | None = Field(description="Last seq the head row records; null if missing.")
    first_broken_seq: int | None = Field(
        None,
        description=(
            "First entry that fails verification (the first missing seq if entries were "
            "deleted or truncated)."
        ),
    )
    reason: ChainBreak | None = Field(
        None,
        description=(
            "hash mismatch: entry edited, or rewritten without the audit key (its MAC does "
            "not verify); broken link: entries reordered or replaced; missing entry: an "
            "earlier entry deleted; truncated: entries at the end deleted (as the head row or "
            "the checkpoint shows); head mismatch / missing head: the head row altered; "
            "unknown key: the entry names an audit key the keyring does not hold; unkeyed "
            "entry: an unkeyed entry where only keyed ones can be (after a keyed one, or in a "
            "log keyed from its start); checkpoint mismatch: the entries the checkpoint "
            "covers no longer have its root; checkpoint invalid: the checkpoint is malformed, "
            "another log's, or its signature does not verify under our audit keys."
        ),
    )
    unkeyed_entries: int = Field(
        0, description="Entries checked that predate the keyed chain (plain SHA-256)."
    )
    checkpoint_tree_size: int | None = Field(
        None, description="Size of the signed checkpoint checked against; null: none."
    )
    root_hash: str | None = Field(
        None,
        pattern=_HEX_SHA256,
        description="RFC 9162 Merkle root of all entries (hex), when the chain is intact.",
    )

    @classmethod
    def from_verification(cls, result: ChainVerification) -> Self:
        """The API form of a verification result."""
        return cls(
            ok=result.ok,
            entries_checked=result.entries_checked,
            head_seq=result.head_seq,
            first_broken_seq=result.first_broken_seq,
            reason=result.reason,
            unkeyed_entries=result.unkeyed_entries,
            checkpoint_tree_size=result.checkpoint_tree_size,
            root_hash=None if result.root_hash is None else result.root_hash.hex(),
        )
