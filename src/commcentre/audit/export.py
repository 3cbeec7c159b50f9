"""Exporting signed checkpoints to a file outside the database, and reading the last one.

Used by the periodic job of every dispatcher process (`COMMCENTRE_AUDIT_CHECKPOINT_PATH`),
by `commcentre audit checkpoint` and by the verification endpoint.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import structlog
from fastapi import Depends, Request

from commcentre.audit import checkpoint as notes
from commcentre.audit.service import AuditChainBrokenError, make_checkpoint
from commcentre.db import Database

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CheckpointAnchor:
    """Where the last exported checkpoint is read from, and the origin it must name."""

    path: Path | None
    origin: str


async def get_checkpoint_anchor(request: Request) -> CheckpointAnchor:
    """The app's anchor (set in the lifespan, like `app.state.db`)."""
    anchor: CheckpointAnchor = request.app.state.audit_anchor
    return anchor


CheckpointAnchorDep = Annotated[CheckpointAnchor, Depends(get_checkpoint_anchor)]


async def last_checkpoint(path: Path) -> str | None:
    """The last checkpoint in the file at `path`; None when the file is absent or empty.

    A file that cannot be read or is not text raises (OSError, CheckpointError):
    an anchor that is there but unusable is a finding, not "no anchor".
    """
    try:
        return await asyncio.to_thread(notes.read_last, path)
    except FileNotFoundError:
        return None


async def export_checkpoint(db: Database, path: Path, *, origin: str, now: datetime) -> int:
    """Append a new signed checkpoint to `path`; 1 when one was written, else 0.

    Nothing is written when the log has not changed since the file's last
    checkpoint, nor when the chain does not verify against it (that is logged
    as an error: signing it would vouch for the tampering).
    """
    previous = await last_checkpoint(path)
    async with db.read_sessions() as session:
        try:
            signed = await make_checkpoint(session, origin=origin, now=now, previous=previous)
        except AuditChainBrokenError as exc:
            found = exc.verification
            log.error(
                "audit_chain_broken",
                first_broken_seq=found.first_broken_seq,
                reason=None if found.reason is None else found.reason.value,
            )
            return 0
    if signed.previous_tree_size == signed.checkpoint.tree_size:
        return 0  # verified against it: same size means the same tree
    await asyncio.to_thread(notes.append_to_file, path, signed.note)
    log.info("audit_checkpoint_exported", tree_size=signed.checkpoint.tree_size)
    return 1
