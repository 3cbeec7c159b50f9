"""HTTP for the audit log: list entries, verify the chain (scope audit:read)."""

from typing import Annotated

import structlog
from fastapi import APIRouter, Query

from commcentre.audit import service
from commcentre.audit.checkpoint import CheckpointError
from commcentre.audit.export import CheckpointAnchorDep, last_checkpoint
from commcentre.audit.models import AuditAction
from commcentre.audit.schemas import AuditEntryOut, AuditVerificationOut
from commcentre.auth.deps import AuditReader
from commcentre.clock import IsoDatetime
from commcentre.db import ReadSessionDep
from commcentre.errors import Forbidden, UnprocessableContent, problem_responses
from commcentre.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_CURSOR_KIND = "audit"


@router.get(
    "",
    summary="List audit entries",
    description=(
        "Audit entries (Law Enforcement Directive 2016/680 Art. 25) in chain order, "
        "oldest first. Filters combine with AND; `since` is inclusive, `until` exclusive, "
        "both on `occurred_at` and with a time zone."
    ),
    responses=problem_responses(Forbidden, UnprocessableContent),
)
async def list_audit_entries(
    _reader: AuditReader,
    session: ReadSessionDep,
    action: Annotated[AuditAction | None, Query(description="Processing category.")] = None,
    event: Annotated[str | None, Query(max_length=64, description="e.g. message.read")] = None,
    actor: Annotated[str | None, Query(max_length=128, description="e.g. client:<uuid>")] = None,
    subject_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[IsoDatetime | None, Query(description="occurred_at >= since")] = None,
    until: Annotated[IsoDatetime | None, Query(description="occurred_at < until")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Page[AuditEntryOut]:
    after_seq = _after_seq(cursor) if cursor is not None else None
    filters = service.AuditFilter(
        action=action, event=event, actor=actor, subject_id=subject_id, since=since, until=until
    )
    page = await service.list_entries(session, filters=filters, after_seq=after_seq, limit=limit)
    return Page[AuditEntryOut](
        items=[AuditEntryOut.from_entry(entry) for entry in page.entries],
        next_cursor=(
            None
            if page.next_after_seq is None
            else encode_cursor(_CURSOR_KIND, [page.next_after_seq])
        ),
    )


@router.get(
    "/verify",
    summary="Verify the audit chain",
    description=(
        "Recomputes every entry's keyed hash (HMAC-SHA256 under the audit key of its "
        "`key_id`, which only the keyring holds), checks that seqs run from 1 without gaps, "
        "that each entry links to the previous one, and that the head row matches the last "
        "entry. Then, when a checkpoint file is configured "
        "(`COMMCENTRE_AUDIT_CHECKPOINT_PATH`), checks its last signed checkpoint: the "
        "signature under our audit keys, and that the first `tree_size` entries still have "
        "its Merkle root, which catches a tail cut off with the head row moved back. "
        "A broken chain is a finding, not an error: the answer is 200 with `ok: false`, "
        "the first broken entry and the reason. Reads the whole log; expect it to take "
        "time on a large one."
    ),
    responses=problem_responses(Forbidden, UnprocessableContent),
)
async def verify_audit_chain(
    _reader: AuditReader, session: ReadSessionDep, anchor: CheckpointAnchorDep
) -> AuditVerificationOut:
    note: str | None = None
    if anchor.path is not None:
        try:
            note = await last_checkpoint(anchor.path)
        except (OSError, CheckpointError) as exc:
            # The anchor is there but unusable: an empty note is reported as an invalid
            # checkpoint, never skipped as if there were none.
            log.error(
                "audit_checkpoint_unreadable",
                path=str(anchor.path),
                error_type=type(exc).__name__,
            )
            note = ""
    result = await service.verify_chain(session, checkpoint=note, origin=anchor.origin)
    return AuditVerificationOut.from_verification(result)


def _after_seq(cursor: str) -> int:
    position = decode_cursor(_CURSOR_KIND, cursor)
    if len(position) != 1 or not isinstance(position[0], int) or position[0] < 0:
        # Same answer as any other foreign cursor.
        raise UnprocessableContent("cursor is not valid for this list")
    return position[0]
