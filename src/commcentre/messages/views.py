"""Response models of the messages API."""

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from commcentre.messages.schemas import MessageIn, SubjectKind
from commcentre.pagination import Page


class DeliveryRef(BaseModel):
    id: uuid.UUID
    partner: str
    status: str


class MessageAccepted(BaseModel):
    """The answer to an accepted message: it is durably stored."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": "01936f0e-8a7b-7c3d-9e2f-1a2b3c4d5e6f",
                "status": "accepted",
                "created_at": "2026-11-28T14:00:00Z",
                "deliveries": [],
            }
        }
    )

    id: uuid.UUID
    status: str
    created_at: datetime
    deliveries: list[DeliveryRef] = Field(
        default_factory=list, description="One per destination partner."
    )


class ForwardAccepted(MessageAccepted):
    """The answer to an accepted forward: the copy is stored and queued."""

    forwarded_from: uuid.UUID = Field(description="The received message that was copied.")
    markings: list[str] = Field(
        default_factory=list,
        description="Handling restrictions the copy carries in words (H1 is always named).",
    )


class MessageSummary(BaseModel):
    """Routing metadata of a message: what a listing shows; never the payload."""

    id: uuid.UUID
    direction: str
    type: str
    channel: str | None
    recipients: list[str]
    priority: str
    legal_basis: str
    handling_codes: list[str]
    subject_kinds: list[SubjectKind]
    status: str
    in_reply_to: uuid.UUID | None
    submitted_by: uuid.UUID | None = Field(description="The API client that submitted it.")
    received_from: str | None = Field(None, description="Inbound: the partner that sent it.")
    partner_ref: str | None = Field(None, description="Inbound: the partner's own id of it.")
    forwarded_from: uuid.UUID | None = Field(
        None, description="A forwarded copy: the received message it was made from."
    )
    created_at: datetime


class MessageOut(MessageSummary):
    """A message with its decrypted content (a consultation, audited)."""

    content: MessageIn


class LookupHit(BaseModel):
    query_index: int = Field(description="Position of the query in the request.")
    kind: str
    hit: bool
    matches: int = Field(description="Messages you may see that carry this identifier.")
    first_seen: datetime | None
    last_seen: datetime | None
    message_ids: list[uuid.UUID] = Field(description="The most recent matches, newest first.")


class LookupResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "results": [
                    {
                        "query_index": 0,
                        "kind": "document",
                        "hit": True,
                        "matches": 1,
                        "first_seen": "2026-11-28T14:00:00Z",
                        "last_seen": "2026-11-28T14:00:00Z",
                        "message_ids": ["01936f0e-8a7b-7c3d-9e2f-1a2b3c4d5e6f"],
                    }
                ]
            }
        }
    )

    results: list[LookupHit]


class MessagePage(Page[MessageSummary]):
    """A page of messages; with `order=asc` also where to resume for what arrives later."""

    resume_cursor: str | None = Field(
        None,
        description=(
            "order=asc only, present on every page, the last one included: pass it later to "
            "get what was committed after this page (the pull feed)."
        ),
    )
