"""Arrest-warrant follow-up on requests: consent, escalation of the decision and
surrender deadlines, new surrender dates, and the Nordic Arrest Warrant's limits.

FD 2002/584/JHA Art. 17 (decision) and Art. 23 (surrender); the Convention on
surrender procedures between the Nordic States (Nordic Arrest Warrant, 2005).
"""

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from commcentre.config import Settings
from commcentre.requests.service import escalate_overdue
from tests.conftest import ApiUser, MakeUser
from tests.integration.requests_support import JUSTIFY, RequestsApp, requests_app, unique_ref

EVENTS = ["request.eaw_decision_overdue", "request.eaw_surrender_overdue"]


@pytest.fixture(scope="module")
async def ra(settings: Settings, http: httpx.AsyncClient) -> AsyncIterator[RequestsApp]:
    async with requests_app(settings) as gateway:
        yield gateway


@pytest.fixture(scope="module")
async def manager(make_user: MakeUser) -> ApiUser:
    return await make_user("requests:manage", "messages:read", name="eaw-desk")


@pytest.fixture(scope="module")
async def auditor(make_user: MakeUser) -> ApiUser:
    return await make_user("audit:read", name="eaw-dpo")


@pytest.fixture(scope="module")
async def watch(ra: RequestsApp, manager: ApiUser) -> dict[str, Any]:
    """A subscription to both warrant events (its deliveries stay queued: no dispatcher)."""
    response = await ra.http.post(
        "/v1/subscriptions",
        json={
            "name": "Warrant deadlines",
            "url": "http://127.0.0.1:9/warrants",
            "filter": {"events": EVENTS},
        },
        headers=manager.headers,
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def warrant_request(ra: RequestsApp, user: ApiUser, legal_basis: str) -> str:
    response = await ra.http.post(
        "/v1/requests",
        json={
            "reference": unique_ref("EAW"),
            "form": "A",
            "eaw_ref": f"FI-{uuid.uuid4().hex[:8].upper()}",
            "issuing_state": "SE",
            "requesting_state": "SE",
            "legal_basis": legal_basis,
        },
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    request_id: str = response.json()["id"]
    # The SIRENE exchange is answered: the warrant's own deadlines run on regardless,
    # and the request's reply deadline is out of the way of these tests.
    answered = await ra.http.post(
        f"/v1/requests/{request_id}/transitions", json={"to": "answered"}, headers=user.headers
    )
    assert answered.status_code == 200, answered.text
    return request_id


async def step(ra: RequestsApp, user: ApiUser, request_id: str, **body: Any) -> httpx.Response:
    return await ra.http.post(f"/v1/requests/{request_id}/eaw", json=body, headers=user.headers)


async def eaw_of(ra: RequestsApp, user: ApiUser, request_id: str, **body: Any) -> dict[str, Any]:
    response = await step(ra, user, request_id, **body)
    assert response.status_code == 200, response.text
    eaw: dict[str, Any] = response.json()["eaw"]
    return eaw


async def escalate(ra: RequestsApp) -> list[uuid.UUID]:
    escalated: list[uuid.UUID] = []
    for _ in range(20):  # other tests' overdue requests share the database
        batch = await escalate_overdue(ra.db, now=ra.clock(), limit=100, vault=ra.vault)
        escalated += batch
        if not batch:
            return escalated
    return escalated


async def audit_events(ra: RequestsApp, auditor: ApiUser, request_id: str) -> list[dict[str, Any]]:
    response = await ra.http.get(
        "/v1/audit", params={"subject_id": request_id, "limit": 500}, headers=auditor.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def event_deliveries(ra: RequestsApp, user: ApiUser, request_id: str) -> list[str]:
    response = await ra.http.get(f"/v1/requests/{request_id}/deliveries", headers=user.headers)
    assert response.status_code == 200, response.text
    return [d["event"] for d in response.json()["deliveries"]]


async def test_a_consent_after_the_arrest_sets_the_decision_ten_days_later(
    ra: RequestsApp, manager: ApiUser, auditor: ApiUser
) -> None:
    """FD 2002/584 Art. 17(2): where the person consents, the final decision should be taken
    within 10 days after consent is given; 17(3): otherwise 60 days after the arrest."""
    rid = await warrant_request(ra, manager, "FD_2002_584")
    arrested = ra.clock() - timedelta(days=5)
    eaw = await eaw_of(ra, manager, rid, arrested_at=iso(arrested), consent=False)
    assert at(eaw["decision_due_at"]) == arrested + timedelta(days=60)
    consented = ra.clock() - timedelta(days=1)
    eaw = await eaw_of(ra, manager, rid, consented_at=iso(consented))
    assert eaw["consent"] is True
    assert at(eaw["consented_at"]) == consented
    assert at(eaw["decision_due_at"]) == consented + timedelta(days=10)
    assert eaw["warrant"] == "european"
    # A consent is recorded once, and not before the arrest.
    assert (await step(ra, manager, rid, consented_at=iso(consented))).status_code == 409
    other = await warrant_request(ra, manager, "FD_2002_584")
    early = await step(
        ra,
        manager,
        other,
        arrested_at=iso(arrested),
        consent=True,
        consented_at=iso(arrested - timedelta(hours=1)),
    )
    assert early.status_code == 422, early.text
    trail = [e["event"] for e in await audit_events(ra, auditor, rid)]
    assert trail[-2:] == ["request.eaw_arrest", "request.eaw_consent"]


async def test_a_late_decision_is_escalated_once_with_an_event(
    ra: RequestsApp, manager: ApiUser, auditor: ApiUser, watch: dict[str, Any]
) -> None:
    """FD 2002/584 Art. 17(2): decision within 10 days after consent. A decision still
    missing after its deadline is escalated like an overdue request: once, with a
    history entry, an audit entry and a request.eaw_decision_overdue event."""
    rid = await warrant_request(ra, manager, "SIS_2018_1862_ART26")
    arrested = ra.clock()
    await eaw_of(ra, manager, rid, arrested_at=iso(arrested), consent=True)
    ra.clock.advance(days=9)
    assert uuid.UUID(rid) not in await escalate(ra)
    ra.clock.advance(days=1, seconds=1)
    assert (await escalate(ra)).count(uuid.UUID(rid)) == 1
    assert uuid.UUID(rid) not in await escalate(ra)

    view = (await ra.http.get(f"/v1/requests/{rid}", headers=manager.headers | JUSTIFY)).json()
    assert view["eaw"]["decision_overdue"] is True
    assert view["history"][-1]["event"] == "eaw_decision_escalated"
    entry = next(
        e
        for e in await audit_events(ra, auditor, rid)
        if e["event"] == "request.eaw_decision_escalated"
    )
    assert entry["details"]["deadline"] == "decision"
    assert entry["details"]["due_at"] == iso(arrested + timedelta(days=10))
    assert entry["details"]["subscribers_notified"] >= 1
    assert await event_deliveries(ra, manager, rid) == ["request.eaw_decision_overdue"]

    # Decided: no further decision escalation; the surrender clock runs.
    eaw = await eaw_of(ra, manager, rid, decided_at=iso(ra.clock()))
    assert eaw["decision_overdue"] is False
    assert at(eaw["surrender_due_at"]) == ra.clock() + timedelta(days=10)


async def test_a_new_surrender_date_restarts_the_limit_and_a_late_surrender_escalates(
    ra: RequestsApp, manager: ApiUser, auditor: ApiUser, watch: dict[str, Any]
) -> None:
    """FD 2002/584 Art. 23(2): surrender within 10 days after the final decision; 23(3)/(4):
    if prevented (circumstances beyond control, humanitarian reasons) within 10 days of
    the new date agreed; 23(5): on expiry, a person still in custody is released. A
    surrender past its limit is escalated, and again after each new date."""
    rid = await warrant_request(ra, manager, "FD_2002_584")
    await eaw_of(ra, manager, rid, arrested_at=iso(ra.clock()), consent=True)
    decided = ra.clock() + timedelta(days=2)
    ra.clock.advance(days=2)
    eaw = await eaw_of(ra, manager, rid, decided_at=iso(decided))
    assert at(eaw["surrender_due_at"]) == decided + timedelta(days=10)

    new_date = decided + timedelta(days=12)
    eaw = await eaw_of(
        ra, manager, rid, surrender_new_date=iso(new_date), postponement="beyond_control"
    )
    assert at(eaw["surrender_agreed_at"]) == new_date
    assert eaw["postponement"] == "beyond_control"
    assert at(eaw["surrender_due_at"]) == new_date + timedelta(days=10)

    ra.clock.advance(days=11)  # past the first limit, within the new one
    assert uuid.UUID(rid) not in await escalate(ra)
    ra.clock.advance(days=11, seconds=1)  # past the new limit
    assert uuid.UUID(rid) in await escalate(ra)
    summary = await step(ra, manager, rid, note="x")
    assert summary.status_code == 422  # a note alone is no step
    view = (await ra.http.get(f"/v1/requests/{rid}", headers=manager.headers | JUSTIFY)).json()
    assert view["eaw"]["surrender_overdue"] is True
    entry = next(
        e
        for e in await audit_events(ra, auditor, rid)
        if e["event"] == "request.eaw_surrender_escalated"
    )
    assert entry["details"]["release_due"] is True

    # A second new date (humanitarian) re-arms the escalation; the subscriber is not sent
    # the same event twice, the history and audit log record both.
    again = ra.clock() + timedelta(days=1)
    await eaw_of(ra, manager, rid, surrender_new_date=iso(again), postponement="humanitarian")
    ra.clock.advance(days=11, seconds=1)
    assert uuid.UUID(rid) in await escalate(ra)
    view = (await ra.http.get(f"/v1/requests/{rid}", headers=manager.headers | JUSTIFY)).json()
    events = [e["event"] for e in view["history"]]
    assert events.count("eaw_surrender_escalated") == 2
    assert events.count("eaw_surrender_postponed") == 2
    assert (await event_deliveries(ra, manager, rid)).count("request.eaw_surrender_overdue") == 1

    # Surrendered: met, no more escalation; no new date after it.
    eaw = await eaw_of(ra, manager, rid, surrendered_at=iso(ra.clock()))
    assert eaw["surrender_overdue"] is False
    late = await step(
        ra, manager, rid, surrender_new_date=iso(ra.clock()), postponement="humanitarian"
    )
    assert late.status_code == 409, late.text


async def test_a_new_surrender_date_needs_a_decision_and_a_reason(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """FD 2002/584 Art. 23(3)/(4): a new date follows a final decision, for one of the two
    reasons the article allows."""
    rid = await warrant_request(ra, manager, "FD_2002_584")
    await eaw_of(ra, manager, rid, arrested_at=iso(ra.clock()), consent=False)
    later = iso(ra.clock() + timedelta(days=3))
    no_reason = await step(ra, manager, rid, surrender_new_date=later)
    assert no_reason.status_code == 422, no_reason.text
    no_decision = await step(
        ra, manager, rid, surrender_new_date=later, postponement="beyond_control"
    )
    assert no_decision.status_code == 409, no_decision.text


async def test_a_nordic_arrest_warrant_gets_its_own_limits(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """Nordic Arrest Warrant Convention (2005): decision within 3 days after consent, or
    30 days after the arrest without consent; surrender within 5 days after the final
    decision (or a new date agreed). A NAW_2005 request is accepted, not refused."""
    consenting = await warrant_request(ra, manager, "NAW_2005")
    arrested = ra.clock()
    eaw = await eaw_of(ra, manager, consenting, arrested_at=iso(arrested), consent=True)
    assert eaw["warrant"] == "nordic"
    assert at(eaw["decision_due_at"]) == arrested + timedelta(days=3)
    ra.clock.advance(days=2)
    eaw = await eaw_of(ra, manager, consenting, decided_at=iso(ra.clock()))
    assert at(eaw["surrender_due_at"]) == ra.clock() + timedelta(days=5)
    new_date = ra.clock() + timedelta(days=7)
    eaw = await eaw_of(
        ra, manager, consenting, surrender_new_date=iso(new_date), postponement="humanitarian"
    )
    assert at(eaw["surrender_due_at"]) == new_date + timedelta(days=5)

    refusing = await warrant_request(ra, manager, "NAW_2005")
    eaw = await eaw_of(ra, manager, refusing, arrested_at=iso(ra.clock()), consent=False)
    assert at(eaw["decision_due_at"]) == ra.clock() + timedelta(days=30)
