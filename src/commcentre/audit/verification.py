"""Verifying the audit chain and signing checkpoints of it.

Verification recomputes every entry's MAC (or, for entries written before the
chain was keyed, its SHA-256), checks the seqs, the links and the head row, and
then the last exported checkpoint: its signature under one of our audit keys,
and the Merkle root of the entries it covers. It streams the log in chunks and
keeps the Merkle tree's frontier only: memory stays flat on a long log.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit import repository
from commcentre.audit.chain import entry_hash, entry_mac
from commcentre.audit.checkpoint import Checkpoint, CheckpointError, open_note, sign
from commcentre.audit.keys import session_audit_keys
from commcentre.audit.merkle import MerkleAccumulator
from commcentre.audit.models import GENESIS_HASH
from commcentre.crypto import AuditKey


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
    `first_broken_seq` names the first entry that fails (for deleted or truncated
    entries, the first missing seq). `unkeyed_entries` counts the v1 entries
    (written before the chain was keyed) among those checked;
    `checkpoint_tree_size` is the size of the checkpoint compared against (None:
    none given); `root_hash` is the RFC 9162 Merkle root of the entries checked,
    when the whole chain is intact, and `state` what a later run resumes from.
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


class AuditChainBrokenError(RuntimeError):
    """A checkpoint was refused: signing a broken chain would vouch for the tampering."""

    def __init__(self, verification: ChainVerification) -> None:
        super().__init__(
            f"audit chain broken at seq {verification.first_broken_seq}: {verification.reason}"
        )
        self.verification = verification


async def verify_chain(
    session: AsyncSession,
    *,
    checkpoint: str | None = None,
    origin: str | None = None,
    resume: ChainState | None = None,
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
    the log as it was verified, never for a later edit of it. A checkpoint
    smaller than `resume` cannot be compared from there: the whole log is read.
    """
    keys = session_audit_keys(session)
    unkeyed_prefix = keys.audit_unkeyed_prefix()
    anchor: Checkpoint | None = None
    anchor_invalid = False
    if checkpoint is not None:
        try:
            public_keys = [key.public_key for key in keys.audit_keys()]
            anchor = open_note(checkpoint, origin=origin or "", public_keys=public_keys)
        except CheckpointError:
            anchor_invalid = True
    if resume is not None and anchor is not None and anchor.tree_size < resume.entries:
        resume = None
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
    anchor_root = tree.root() if anchor is not None and anchor.tree_size == checked else None
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
    verify_chain.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    verification = await verify_chain(session, checkpoint=previous, origin=origin, resume=resume)
    if not verification.ok or verification.root_hash is None or verification.state is None:
        raise AuditChainBrokenError(verification)
    checkpoint = Checkpoint(origin, verification.entries_checked, verification.root_hash, now)
    note = sign(checkpoint, session_audit_keys(session).audit_key())
    return SignedCheckpoint(checkpoint, note, verification.checkpoint_tree_size, verification.state)
