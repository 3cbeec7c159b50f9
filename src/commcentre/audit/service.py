"""The audit log's rules: what an entry may hold, appending to the chain, verifying it.

Services flush and never commit: `append` runs inside the caller's transaction
(the ingest batch), so an entry exists exactly when the processing it records
was committed.

The audit keys (keyring, never the database) reach every writer through the
session: `Database(session_info=audit_session_info(keyring))` puts them into each
session's `info`, so the many services that append need no extra parameter. A
session without them cannot append or verify (`AuditKeysMissingError`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit import repository
from commcentre.audit.chain import checked_details, entry_hash, entry_mac
from commcentre.audit.checkpoint import Checkpoint, CheckpointError, open_note, sign
from commcentre.audit.merkle import EMPTY_ROOT, MerkleAccumulator
from commcentre.audit.models import (
    ACTOR_MAX,
    EVENT_MAX,
    GENESIS_HASH,
    JUSTIFICATION_MAX,
    RECIPIENT_MAX,
    SUBJECT_ID_MAX,
    SUBJECT_TYPE_MAX,
    AuditAction,
    AuditEntry,
)
from commcentre.audit.repository import AuditFilter, AuditHeadMissingError
from commcentre.crypto import AuditKey, AuditKeyProvider
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

_KEYS_INFO = "commcentre.audit.keys"


class AuditKeysMissingError(RuntimeError):
    """The session carries no audit keys: its Database was built without them."""


class AuditChainBrokenError(RuntimeError):
    """A checkpoint was refused: signing a broken chain would vouch for the tampering."""

    def __init__(self, verification: "ChainVerification") -> None:
        super().__init__(
            f"audit chain broken at seq {verification.first_broken_seq}: {verification.reason}"
        )
        self.verification = verification


def audit_session_info(keys: AuditKeyProvider) -> dict[str, object]:
    """The `session_info` of a Database whose sessions append to or verify the chain."""
    return {_KEYS_INFO: keys}


def _audit_keys(session: WriteSession | AsyncSession) -> AuditKeyProvider:
    keys = session.info.get(_KEYS_INFO)
    if keys is None:
        raise AuditKeysMissingError(
            "this database handle has no audit keys (build it with audit_session_info)"
        )
    return cast(AuditKeyProvider, keys)


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


class ChainBreak(StrEnum):
    """Why verification stopped at an entry."""

    HASH_MISMATCH = "hash mismatch"  # the entry was edited (its MAC does not match)
    BROKEN_LINK = "broken link"  # its prev_hash is not the previous entry's hash: reordered
    MISSING_ENTRY = "missing entry"  # this seq is absent, later ones are there: deleted
    TRUNCATED = "truncated"  # the head or the checkpoint names entries past the last one
    HEAD_MISMATCH = "head mismatch"  # the head disagrees with the last entry: head edited
    MISSING_HEAD = "missing head"  # the head row itself is gone
    UNKNOWN_KEY = "unknown key"  # its key_id names no audit key in the keyring
    UNKEYED_ENTRY = "unkeyed entry"  # unkeyed (v1) where only keyed ones can be: forged
    CHECKPOINT_MISMATCH = "checkpoint mismatch"  # the first tree_size entries differ
    CHECKPOINT_INVALID = "checkpoint invalid"  # malformed, foreign or bad signature


@dataclass(frozen=True, slots=True)
class ChainState:
    """Where an intact verification ended: enough to resume it without rereading."""

    entries: int
    last_hash: bytes
    unkeyed: int
    tree: MerkleAccumulator = field(compare=False)


@dataclass(frozen=True, slots=True)
class ChainVerification:
    """The outcome of recomputing the chain.

    `entries_checked` counts the entries found intact before the first break;
    `first_broken_seq` names the first entry that fails (for a truncated log,
    the first missing seq, as for a deleted one). `unkeyed_entries` counts the v1 entries (written
    before the chain was keyed) among those checked; `checkpoint_tree_size` is the
    size of the checkpoint compared against (None: none given); `root_hash` is the
    RFC 9162 Merkle root of the entries checked, when the whole chain is intact.
    """

    ok: bool
    entries_checked: int
    head_seq: int | None
    first_broken_seq: int | None = None
    reason: ChainBreak | None = None
    unkeyed_entries: int = 0
    checkpoint_tree_size: int | None = None
    root_hash: bytes | None = None
    state: ChainState | None = field(default=None, compare=False, repr=False)


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
    key = _audit_keys(session).audit_key()
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


async def verify_chain(
    session: AsyncSession,
    *,
    checkpoint: str | None = None,
    origin: str | None = None,
    resume: "ChainState | None" = None,
) -> ChainVerification:
    """Recompute the whole chain and name the first broken entry.

    `checkpoint`: the last signed checkpoint exported (its note text) and the
    `origin` it must name. It must verify under one of our audit keys, and the
    first `tree_size` entries must have its root: this catches what the chain
    alone cannot, a tail cut off with the head moved back, or a chain rewritten
    in full. Pass a fresh read session: on PostgreSQL it is switched to one
    snapshot, so that appends committed meanwhile are not mistaken for tampering.

    `resume`: the `state` of an earlier intact verification in this process;
    only the entries after it are read (they must continue its chain). What came
    before is taken as verified then, so a checkpoint made from it vouches for
    the log as it was verified, never for a later edit of it.
    """
    if resume is not None and checkpoint is not None:
        raise ValueError("a resumed verification has no root to compare a checkpoint with")
    keys = _audit_keys(session)
    unkeyed_prefix = keys.audit_unkeyed_prefix()
    anchor: Checkpoint | None = None
    anchor_invalid = False
    if checkpoint is not None:
        try:
            public_keys = [key.public_key for key in keys.audit_keys()]
            anchor = open_note(checkpoint, origin=origin or "", public_keys=public_keys)
        except CheckpointError:
            anchor_invalid = True
    await repository.pin_snapshot(session)
    head = await repository.get_head(session)
    head_seq = None if head is None else head.seq
    if resume is None:
        checked = unkeyed = 0
        prev_hash = GENESIS_HASH
        tree = MerkleAccumulator()
    else:
        checked, unkeyed, prev_hash = resume.entries, resume.unkeyed, resume.last_hash
        tree = resume.tree.copy()
    anchor_root = EMPTY_ROOT if anchor is not None and anchor.tree_size == 0 else None
    known: dict[int, AuditKey] = {}

    def result(
        seq: int | None, reason: ChainBreak | None, root: bytes | None = None
    ) -> ChainVerification:
        return ChainVerification(
            reason is None,
            checked,
            head_seq,
            seq,
            reason,
            unkeyed_entries=unkeyed,
            checkpoint_tree_size=None if anchor is None else anchor.tree_size,
            root_hash=root,
            state=None if root is None else ChainState(checked, prev_hash, unkeyed, tree.copy()),
        )

    async for chunk in repository.iter_entry_chunks(session, after_seq=checked or None):
        for entry in chunk:
            seq: int = entry["seq"]
            expected = checked + 1
            if seq > expected:
                # Named by the first seq missing, as a truncation is.
                return result(expected, ChainBreak.MISSING_ENTRY)
            if seq < expected:
                return result(seq, ChainBreak.BROKEN_LINK)
            if head is not None and seq > head.seq:
                return result(seq, ChainBreak.HEAD_MISMATCH)
            if entry["prev_hash"] != prev_hash:
                return result(seq, ChainBreak.BROKEN_LINK)
            key_id = entry["key_id"]
            if key_id is None:
                if unkeyed < checked or not unkeyed_prefix:
                    # Only a log older than its audit keys begins unkeyed, and once a
                    # keyed entry is written nothing writes unkeyed ones any more.
                    return result(seq, ChainBreak.UNKEYED_ENTRY)
                recomputed = _recomputed_hash(entry, None)
            else:
                key = known.get(key_id)
                if key is None:
                    key = keys.audit_key_version(key_id)
                    if key is None:
                        return result(seq, ChainBreak.UNKNOWN_KEY)
                    known[key_id] = key
                recomputed = _recomputed_hash(entry, key)
            if recomputed != entry["hash"]:
                return result(seq, ChainBreak.HASH_MISMATCH)
            prev_hash = entry["hash"]
            tree.append(prev_hash)
            checked += 1
            unkeyed += key_id is None
            if anchor is not None and checked == anchor.tree_size:
                anchor_root = tree.root()
    if head is None:
        return result(None, ChainBreak.MISSING_HEAD)
    if head.seq > checked:
        return result(checked + 1, ChainBreak.TRUNCATED)
    if head.seq < checked:
        # Only when resumed: entries verified before are gone, the head moved back.
        return result(head.seq + 1, ChainBreak.TRUNCATED)
    if head.hash != prev_hash:
        return result(checked or None, ChainBreak.HEAD_MISMATCH)
    if anchor_invalid:
        return result(None, ChainBreak.CHECKPOINT_INVALID)
    if anchor is not None:
        if anchor.tree_size > checked:
            # Entries the checkpoint vouched for are gone, head moved back with them.
            return result(checked + 1, ChainBreak.TRUNCATED)
        if anchor_root != anchor.root_hash:
            return result(None, ChainBreak.CHECKPOINT_MISMATCH)
    return result(None, None, tree.root())


def _recomputed_hash(entry: Mapping[str, Any], key: AuditKey | None) -> bytes | None:
    try:
        return entry_hash(entry) if key is None else entry_mac(entry, key)
    except (TypeError, ValueError):
        # A value edited into something that cannot be hashed (e.g. an integer
        # beyond 64 bits in details) is an edit like any other: report it, do not crash.
        return None


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A new checkpoint, its signed note, the size of the one it follows (if one was
    given), and the verification's end state (to resume from next time)."""

    checkpoint: Checkpoint
    note: str
    previous_tree_size: int | None
    state: ChainState


async def make_checkpoint(
    session: AsyncSession,
    *,
    origin: str,
    now: datetime,
    previous: str | None = None,
    resume: ChainState | None = None,
) -> SignedCheckpoint:
    """Verify the chain, then sign a checkpoint of it.

    `previous` is the last checkpoint exported: the new one is only signed when
    the log still holds what that one vouched for (a log never signs two
    inconsistent tree heads). AuditChainBrokenError otherwise. `resume`: see
    verify_chain (then the caller vouches that `previous` was made from it).
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    verification = await verify_chain(session, checkpoint=previous, origin=origin, resume=resume)
    if not verification.ok or verification.root_hash is None or verification.state is None:
        raise AuditChainBrokenError(verification)
    checkpoint = Checkpoint(origin, verification.entries_checked, verification.root_hash, now)
    note = sign(checkpoint, _audit_keys(session).audit_key())
    return SignedCheckpoint(checkpoint, note, verification.checkpoint_tree_size, verification.state)


async def list_entries(
    session: AsyncSession, *, filters: AuditFilter, after_seq: int | None, limit: int
) -> AuditEntryPage:
    """Entries matching `filters`, ascending by seq, starting after `after_seq`."""
    entries = await repository.list_entries(session, filters, after_seq=after_seq, limit=limit + 1)
    if len(entries) <= limit:
        return AuditEntryPage(entries, None)
    entries = entries[:limit]
    return AuditEntryPage(entries, entries[-1].seq)
