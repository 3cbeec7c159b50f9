"""Request and response bodies of the delivery API: delivery state and dead letters.

None of them carries payload data: ids, partners, counts, status codes and the
partner's error text (which adapters keep free of payload).
"""

import uuid
from datetime import datetime
from typing import Annotated, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from commcentre.clock import IsoDatetime
from commcentre.partners.schemas import PartnerId

REDRIVE_MAX_IDS = 500

_DELIVERY_ID = "0193a5b2-7c1d-7e4f-8a9b-0c1d2e3f4a5b"
_MESSAGE_ID = "0193a5b2-7b00-7c3d-9e2f-1a2b3c4d5e6f"


class DeliveryAttemptOut(BaseModel):
    """One attempt to hand a message to a partner."""

    number: int = Field(description="1 for the first attempt; counts again from 1 after a redrive.")
    started_at: datetime
    duration_ms: int
    outcome: str = Field(description="delivered | retry | permanent | gone | expired")
    status_code: int | None = Field(description="The partner's HTTP status, when it answered.")
    error: str | None


class DeliveryOut(BaseModel):
    """Where delivery of a message (or a request event) to one partner or internal
    subscriber stands."""

    id: uuid.UUID = Field(description="The delivery id: the `webhook-id` the partner sees.")
    partner: str | None = Field(description="The destination partner; null for a subscriber.")
    subscription: uuid.UUID | None = Field(
        None, description="The destination subscription (internal subscriber); null for a partner."
    )
    request: uuid.UUID | None = Field(
        None,
        description="The supplementary-information request an event is about; null for a message.",
    )
    event: str | None = Field(
        None, description="The request event carried (`request.overdue`); null for a message."
    )
    status: str = Field(description="pending | in_flight | delivered | retrying | dead")
    attempts: int = Field(description="Attempts made (since the last redrive).")
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due, while the delivery waits (pending, retrying)."
    )
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempt_history: list[DeliveryAttemptOut] = Field(
        description="Every attempt, oldest first (kept across redrives)."
    )


class MessageDeliveries(BaseModel):
    """The deliveries of one message, one per destination partner."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "message_id": _MESSAGE_ID,
                "status": "accepted",
                "deliveries": [
                    {
                        "id": _DELIVERY_ID,
                        "partner": "se-bureau",
                        "subscription": None,
                        "request": None,
                        "event": None,
                        "status": "retrying",
                        "attempts": 1,
                        "next_attempt_at": "2026-11-28T14:00:03Z",
                        "delivered_at": None,
                        "last_status_code": 503,
                        "last_error": "partner answered HTTP 503",
                        "attempt_history": [
                            {
                                "number": 1,
                                "started_at": "2026-11-28T14:00:01Z",
                                "duration_ms": 84,
                                "outcome": "retry",
                                "status_code": 503,
                                "error": "partner answered HTTP 503",
                            }
                        ],
                    }
                ],
            }
        }
    )

    message_id: uuid.UUID
    status: str = Field(
        description="The message's status: accepted | delivered | partially_delivered | failed"
    )
    deliveries: list[DeliveryOut] = Field(
        description="Partners ordered by id, then subscribers ordered by subscription id."
    )


class DeadLetterOut(BaseModel):
    """A delivery that was given up on; redrive it once the partner or subscriber is fixed.

    It carries a message (`message_id`) or an event about a request (`request`, `event`).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "id": _DELIVERY_ID,
                "message_id": _MESSAGE_ID,
                "request": None,
                "event": None,
                "partner": "se-bureau",
                "subscription": None,
                "attempts": 15,
                "last_status_code": 503,
                "last_error": "partner answered HTTP 503",
                "dead_since": "2026-11-30T09:12:44Z",
            }
        }
    )

    id: uuid.UUID = Field(description="The delivery id (`webhook-id`).")
    message_id: uuid.UUID | None = Field(
        description="The message delivered; null for a request event."
    )
    request: uuid.UUID | None = Field(
        None, description="The request a request event is about; null for a message."
    )
    event: str | None = Field(
        None, description="The request event (`request.overdue`); null for a message."
    )
    partner: str | None = Field(description="The destination partner; null for a subscriber.")
    subscription: uuid.UUID | None = Field(
        None, description="The destination subscription (internal subscriber); null for a partner."
    )
    attempts: int
    last_status_code: int | None
    last_error: str | None
    dead_since: datetime


class RequestDeliveries(BaseModel):
    """The event deliveries of one request (e.g. `request.overdue`), one per subscriber."""

    request_id: uuid.UUID
    deliveries: list[DeliveryOut] = Field(description="By event, then subscription id.")


class DeadLetterRedrive(BaseModel):
    """Body of POST /v1/dead-letters/redrive: either `ids`, or filters (at least one).

    Filters: `partner` or `subscription` (not both), `since`, `until`.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"ids": [_DELIVERY_ID]},
                {"partner": "se-bureau", "since": "2026-11-30T00:00:00Z", "dry_run": True},
            ]
        },
    )

    ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=REDRIVE_MAX_IDS)] | None = Field(
        None, description="Delivery ids to redrive; those not dead are listed as skipped."
    )
    partner: PartnerId | None = Field(None, description="Redrive this partner's dead letters.")
    subscription: uuid.UUID | None = Field(
        None, description="Redrive this subscription's dead letters (internal subscriber)."
    )
    since: IsoDatetime | None = Field(None, description="Dead since at or after (inclusive).")
    until: IsoDatetime | None = Field(None, description="Dead since before (exclusive).")
    dry_run: bool = Field(False, description="Report what would be redriven; change nothing.")

    @model_validator(mode="after")
    def _ids_or_filters(self) -> Self:
        filters = (
            self.partner is not None
            or self.subscription is not None
            or self.since is not None
            or self.until is not None
        )
        if self.ids is not None and filters:
            raise ValueError(
                "give either ids or filters (partner, subscription, since, until), not both"
            )
        if self.ids is None and not filters:
            raise ValueError(
                "give ids, or at least one filter (partner, subscription, since, until)"
            )
        if self.partner is not None and self.subscription is not None:
            raise ValueError("give partner or subscription, not both")
        return self

    def canonical(self) -> bytes:
        """The body as stable JSON (for the Idempotency-Key fingerprint)."""
        # Without an unset subscription, so keys stored before it existed still match.
        data = self.model_dump(mode="json")
        if data["subscription"] is None:
            del data["subscription"]
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


class RedriveResult(BaseModel):
    """What a redrive did (or, with `dry_run`, would do)."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "redriven": 1,
                "ids": [_DELIVERY_ID],
                "skipped": [],
                "expired": 0,
                "dry_run": False,
            }
        }
    )

    redriven: int = Field(description="Dead letters put back to pending (or that would be).")
    ids: list[uuid.UUID] = Field(description=f"Their ids; at most the first {REDRIVE_MAX_IDS}.")
    skipped: list[uuid.UUID] = Field(
        description=(
            "Ids given that are not dead letters (unknown, or not dead), or whose message's "
            "retention period has ended: left alone."
        )
    )
    expired: int = Field(
        description=(
            "Dead letters in the selection whose message's retention period has ended: never "
            "sent again (the retention job erases them)."
        )
    )
    dry_run: bool
