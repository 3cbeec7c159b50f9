"""An app on a fake clock for the requests tests, and inbound messages stored directly.

`store_inbound` writes what the inbound endpoint stores (an inbound message row
and its collection entry) and calls the request hook in the same transaction,
for the unit-ish tests of the hook. The issue 5 scenario goes through the real
endpoint and workers in test_request_events.py.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from commcentre.app import create_app
from commcentre.audit.service import AuditAction, AuditRecord, append
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.db import Database
from commcentre.messages import repository as messages_repository
from commcentre.messages.schemas import MessageIn
from commcentre.messages.service import MessageVault, sealed_message
from commcentre.requests.service import open_from_inbound

JUSTIFY = {"X-Justification": "SIRENE follow-up, case under test"}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = (start or utcnow()).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass
class RequestsApp:
    app: FastAPI
    http: httpx.AsyncClient
    clock: FakeClock

    @property
    def vault(self) -> MessageVault:
        vault: MessageVault = self.app.state.runtime.vault
        return vault

    @property
    def db(self) -> Database:
        db: Database = self.app.state.runtime.db
        return db


@asynccontextmanager
async def requests_app(settings: Settings) -> AsyncIterator[RequestsApp]:
    clock = FakeClock()
    app = create_app(settings.model_copy(update={"dispatcher_enabled": False}), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as c:
            yield RequestsApp(app, c, clock)


async def store_inbound(
    ra: RequestsApp, content: dict[str, Any], *, partner_id: str
) -> tuple[uuid.UUID, uuid.UUID | None]:
    """Store an inbound message from `partner_id` now; (message id, request id of the hook)."""
    message = MessageIn.model_validate(content)
    now = ra.clock()
    vault = ra.vault
    stored = sealed_message(
        message,
        vault=vault,
        direction="inbound",
        status="received",
        now=now,
        thread=vault.case_ref_digest(message.case_ref) if message.case_ref else None,
        source_partner_id=partner_id,
        partner_ref=message.partner_ref,
    )
    message_id, row = stored.id, stored.row
    audit = AuditRecord(
        action=AuditAction.COLLECTION,
        event="message.received",
        actor=f"partner:{partner_id}",
        subject_type="message",
        subject_id=str(message_id),
        details={"direction": "inbound", "type": message.type.value, "partner": partner_id},
        occurred_at=now,
    )
    async with ra.db.write_sessions() as session, session.begin():
        (row["seq"],) = await append(session, [audit], now=now)
        await messages_repository.insert_messages(session, [row])
        request_id = await open_from_inbound(
            session,
            message_id=message_id,
            content=message,
            source_partner_id=partner_id,
            received_at=now,
            envelope=vault.envelope,
        )
    return message_id, request_id


def unique_ref(prefix: str = "SIR") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12].upper()}"


def sirene_hit(reference: str, **overrides: Any) -> dict[str, Any]:
    """A SIRENE G form (hit) on an arrest alert (Art. 26)."""
    body: dict[str, Any] = {
        "type": "hit",
        "channel": "sirene",
        "priority": "urgent",
        "legal_basis": "SIS_2018_1862_ART26",
        "case_ref": reference,
        "subjects": [
            {
                "kind": "person",
                "surnames": ["KORHONEN"],
                "forenames": ["JUHA"],
                "date_of_birth": "1979-03-02",
                "role": "wanted",
            }
        ],
        "body": "Hit at the border crossing; person held pending information.",
    }
    body.update(overrides)
    return body


def directive_request(reference: str, **overrides: Any) -> dict[str, Any]:
    """A Dir. 2023/977 urgent request for indirectly accessible information."""
    body: dict[str, Any] = {
        "reference": reference,
        "form": "M",
        "requesting_state": "SE",
        "urgency": "urgent",
        "legal_basis": "DIR_2023_977",
        "info_access": "indirect",
        "subject": "Registered keepers of vehicle ABC-123 since 2020",
    }
    body.update(overrides)
    return body
