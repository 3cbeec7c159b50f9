"""Forwarding a received message to other partners, as its handling codes allow.

Europol/SIENA handling codes (DOMAIN.md) are restrictions the provider put on
its information, and they travel with it:

- H0 (use only to prevent and combat crime) and H1 (no use in judicial
  proceedings without the provider's consent) do not stop a forward; the copy
  keeps them, and H1 is named in the copy's markings so the recipient sees it.
- H2 (no dissemination without the provider's consent) and H3 (other
  restriction) stop every forward except back to the originator: there is no
  consent workflow here, so the provider's consent must be obtained and the
  information sent anew by a human decision, not by this endpoint.
"""

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from commcentre.audit.service import AuditAction, AuditRecord
from commcentre.auth.deps import Principal
from commcentre.idempotency.headers import fingerprint
from commcentre.messages.ingest import PendingMessage
from commcentre.messages.schemas import HandlingCode, MessageIn
from commcentre.messages.service import MessageVault, prepare_outbound

FORWARD_OPERATION = "POST /v1/messages/{id}/forward"

HANDLING_MEANING: Mapping[HandlingCode, str] = {
    HandlingCode.H0: "use only to prevent and combat crime",
    HandlingCode.H1: "no use in judicial proceedings without the provider's consent",
    HandlingCode.H2: "no dissemination without the provider's consent",
    HandlingCode.H3: "other restriction set by the provider",
}
# Codes that allow no forward except back to the originator.
_BLOCKING = (HandlingCode.H2, HandlingCode.H3)
# Codes the copy carries as a visible marking.
_MARKED = (HandlingCode.H1,)

PartnerId = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$", max_length=63)
]


class ForwardRequest(BaseModel):
    """Body of POST /v1/messages/{id}/forward."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"partners": ["europol-siena"]}},
    )

    partners: list[PartnerId] = Field(
        min_length=1, max_length=20, description="Partner ids to send a copy to."
    )


class ForwardRefused(BaseModel):
    """Why a forward was refused (also written to the audit log)."""

    code: HandlingCode
    meaning: str
    refused_partners: list[str]
    originator: str | None


@dataclass(frozen=True, slots=True)
class Refusal:
    code: HandlingCode
    refused_partners: list[str]
    originator: str | None

    @property
    def detail(self) -> str:
        allowed = (
            f"only the originator '{self.originator}' may receive it"
            if self.originator
            else "it may not be forwarded to any partner"
        )
        text = f"handling code {self.code.value} ({HANDLING_MEANING[self.code]})"
        return (
            f"{text} forbids forwarding to {', '.join(self.refused_partners)}; {allowed}. "
            "Obtain the provider's consent and send the information as a new message."
        )


def forwarding_refusal(
    codes: Sequence[str], *, originator: str | None, destinations: Sequence[str]
) -> Refusal | None:
    """The handling code that forbids this forward, or None when it is allowed."""
    others = sorted({d for d in destinations if d != originator})
    if not others:
        return None
    for code in _BLOCKING:
        if code.value in codes:
            return Refusal(code=code, refused_partners=others, originator=originator)
    return None


def markings(codes: Sequence[str]) -> list[str]:
    """What the forwarded copy is marked with, in words."""
    return [f"{c.value}: {HANDLING_MEANING[c]}" for c in _MARKED if c.value in codes]


def refusal_record(
    refusal: Refusal,
    *,
    message_id: uuid.UUID,
    principal: Principal,
    justification: str,
    now: datetime,
) -> AuditRecord:
    """The audit entry of a refused forward: an attempted disclosure that did not happen."""
    return AuditRecord(
        action=AuditAction.DISCLOSURE,
        event="message.forward_refused",
        actor=principal.actor,
        subject_type="message",
        subject_id=str(message_id),
        recipient=",".join(refusal.refused_partners)[:200],
        justification=justification,
        details={
            "blocked_by": refusal.code.value,
            "refused_partners": refusal.refused_partners,
            "originator": refusal.originator,
        },
        occurred_at=now,
    )


def prepare_forward(
    content: MessageIn,
    *,
    original_id: uuid.UUID,
    thread: bytes | None,
    partners: Sequence[str],
    principal: Principal,
    justification: str,
    idempotency_key: str | None,
    vault: MessageVault,
    now: datetime,
) -> PendingMessage:
    """The outbound copy of a received message, addressed to `partners`.

    The copy keeps the content and the handling codes of the original, joins its
    thread, and names it in `forwarded_from`.
    """
    copy = content.model_copy(update={"recipients": list(partners)})
    pending = prepare_outbound(
        copy,
        principal=principal,
        idempotency_key=idempotency_key,
        vault=vault,
        destinations=partners,
        now=now,
        thread=thread,
    )
    operation = FORWARD_OPERATION.replace("{id}", str(original_id))
    request = ",".join(sorted(partners)).encode()
    marks = markings([code.value for code in content.handling_codes])
    copy_id = pending.message_row["id"]
    return dataclasses.replace(
        pending,
        operation=operation,
        fingerprint=fingerprint(operation, request),
        message_row={**pending.message_row, "forwarded_from": original_id},
        audit=AuditRecord(
            action=AuditAction.COLLECTION,
            event="message.forwarded",
            actor=principal.actor,
            subject_type="message",
            subject_id=str(copy_id),
            justification=justification,
            details={
                "forwarded_from": str(original_id),
                "partners": list(partners),
                "handling_codes": [code.value for code in content.handling_codes],
                "markings": [m.split(":")[0] for m in marks],
            },
            occurred_at=now,
        ),
        response={**pending.response, "forwarded_from": str(original_id), "markings": marks},
    )
