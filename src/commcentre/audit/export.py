"""Exporting signed checkpoints to a file outside the database, and reading the last one.

Used by the periodic job of every dispatcher process (`COMMCENTRE_AUDIT_CHECKPOINT_PATH`),
by `commcentre audit checkpoint` and by the verification endpoint.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import structlog
from fastapi import Depends, Request

from commcentre.audit import checkpoint as notes
from commcentre.audit.verification import AuditChainBrokenError, ChainState, make_checkpoint
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


class CheckpointExporter:
    """Appends signed checkpoints to one file, reading only the new entries each time.

    The first run, and the first after `full_every`, verifies the whole chain
    against the file's last checkpoint. The runs in between resume from where
    this process's previous run ended: they read the entries appended since
    (and check the file's last checkpoint on the way, whoever wrote it), so a
    process can anchor a long log often. An edit of older entries meanwhile is
    not signed over (the tree is the one verified), and the next full run, or
    any `audit verify`, reports it.
    """

    def __init__(
        self,
        db: Database,
        path: Path,
        *,
        origin: str,
        full_every: timedelta = timedelta(hours=24),
    ) -> None:
        self._db = db
        self._path = path
        self._origin = origin
        self._full_every = full_every
        self._state: ChainState | None = None
        self._full_due: datetime | None = None

    async def export(self, now: datetime) -> int:
        """Append a checkpoint when the log has grown; 1 when one was written, else 0.

        Nothing is signed when the chain does not verify against the file's last
        checkpoint (logged as an error: signing it would vouch for the tampering).
        """
        previous = await last_checkpoint(self._path)
        full = self._state is None or self._full_due is None or now >= self._full_due
        async with self._db.read_sessions() as session:
            try:
                signed = await make_checkpoint(
                    session,
                    origin=self._origin,
                    now=now,
                    previous=previous,
                    resume=None if full else self._state,
                )
            except AuditChainBrokenError as exc:
                self._state = None
                found = exc.verification
                log.error(
                    "audit_chain_broken",
                    first_broken_seq=found.first_broken_seq,
                    reason=None if found.reason is None else found.reason.value,
                )
                return 0
        if full:
            self._full_due = now + self._full_every
        self._state = signed.state
        size = signed.checkpoint.tree_size
        if signed.previous_tree_size == size:
            return 0  # verified against it: same size means the same tree
        await asyncio.to_thread(notes.append_to_file, self._path, signed.note)
        log.info("audit_checkpoint_exported", tree_size=size, full=full)
        return 1


async def export_checkpoint(db: Database, path: Path, *, origin: str, now: datetime) -> int:
    """One full verification and, when the log has grown, one checkpoint appended."""
    return await CheckpointExporter(db, path, origin=origin).export(now)
