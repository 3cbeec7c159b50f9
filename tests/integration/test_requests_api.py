"""Supplementary-information requests through the API, the inbound hook and escalation.

Inbound messages are stored directly here (`store_inbound`) to test the hook on its
own; test_request_events.py runs the same scenario through POST /v1/inbound, the
dispatcher and the housekeeper, with the request.overdue event to subscribers.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from commcentre.bootstrap import open_database, open_keyring
from commcentre.config import Settings
from commcentre.db import Database
from commcentre.errors import Conflict
from commcentre.messages.schemas import MessageIn
from commcentre.requests import repository
from commcentre.requests.service import escalate_overdue, open_from_inbound
from commcentre.requests.states import RequestStatus
from commcentre.requests.transitions import Change, apply_change
from tests.conftest import ApiUser, MakeUser
from tests.integration.requests_support import (
    JUSTIFY,
    RequestsApp,
    directive_request,
    requests_app,
    sirene_hit,
    store_inbound,
    unique_ref,
)

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def ra(settings: Settings, http: httpx.AsyncClient) -> AsyncIterator[RequestsApp]:
    # `http` registers the loopback partners: se-bureau serves SE on every channel.
    async with requests_app(settings) as gateway:
        yield gateway


@pytest.fixture(scope="module")
async def manager(make_user: MakeUser) -> ApiUser:
    return await make_user("requests:manage", "messages:read", name="sirene-desk")


@pytest.fixture(scope="module")
async def auditor(make_user: MakeUser) -> ApiUser:
    return await make_user("audit:read", name="dpo")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def create(ra: RequestsApp, user: ApiUser, body: dict[str, Any]) -> dict[str, Any]:
    response = await ra.http.post("/v1/requests", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def read(ra: RequestsApp, user: ApiUser, request_id: str) -> dict[str, Any]:
    response = await ra.http.get(f"/v1/requests/{request_id}", headers=user.headers | JUSTIFY)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def move(ra: RequestsApp, user: ApiUser, request_id: str, **body: Any) -> httpx.Response:
    return await ra.http.post(
        f"/v1/requests/{request_id}/transitions", json=body, headers=user.headers
    )


async def audit_of(ra: RequestsApp, auditor: ApiUser, subject_id: str) -> list[dict[str, Any]]:
    response = await ra.http.get(
        "/v1/audit", params={"subject_id": subject_id, "limit": 500}, headers=auditor.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


# The SIRENE hit on an arrest alert, end to end.
async def test_sirene_hit_opened_answered_by_reply_and_closed(
    ra: RequestsApp, manager: ApiUser, auditor: ApiUser
) -> None:
    reference = unique_ref()
    received = ra.clock()
    hit_id, request_id = await store_inbound(ra, sirene_hit(reference), partner_id="se-bureau")
    assert request_id is not None
    rid = str(request_id)

    view = await read(ra, manager, rid)
    assert view["reference"] == reference
    assert view["form"] == "G"
    assert view["alert_article"] == 26
    assert view["requesting_state"] == "SE"
    assert view["status"] == "received"
    assert view["time_limit_rule"] == "sirene_supplementary"
    assert not view["immediate"]
    assert at(view["received_at"]) == received
    assert at(view["due_at"]) == received + timedelta(hours=12)
    assert view["linked_messages"] == [
        {"message_id": str(hit_id), "role": "request", "linked_at": iso(received)}
    ]
    assert [e["event"] for e in view["history"]] == ["opened_from_inbound"]

    ra.clock.advance(hours=2)
    response = await ra.http.post(
        f"/v1/requests/{rid}/reply",
        json={"body": "Person arrested; EAW to follow.", "note": "answered by phone too"},
        headers=manager.headers | {"Idempotency-Key": f"reply-{rid}"},
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    reply_id = accepted["message"]["id"]
    assert accepted["message"]["status"] == "accepted"
    assert [d["partner"] for d in accepted["message"]["deliveries"]] == ["se-bureau"]
    assert accepted["request"]["status"] == "answered"
    assert not accepted["request"]["answered_late"]
    assert response.headers["location"] == f"/v1/messages/{reply_id}"

    # A retry of the same reply is the same message, linked once.
    again = await ra.http.post(
        f"/v1/requests/{rid}/reply",
        json={"body": "Person arrested; EAW to follow.", "note": "answered by phone too"},
        headers=manager.headers | {"Idempotency-Key": f"reply-{rid}"},
    )
    assert again.status_code == 202, again.text
    assert again.json()["message"]["id"] == reply_id
    assert again.headers["idempotent-replayed"] == "true"

    # The reply is an ordinary accepted outbound message with a delivery.
    message = await ra.http.get(f"/v1/messages/{reply_id}", headers=manager.headers | JUSTIFY)
    assert message.status_code == 200, message.text
    content = message.json()
    assert content["type"] == "reply"
    assert content["channel"] == "sirene"
    assert content["recipients"] == ["SE"]
    assert content["in_reply_to"] == str(hit_id)
    assert content["content"]["case_ref"] == reference
    deliveries = await ra.http.get(f"/v1/messages/{reply_id}/deliveries", headers=manager.headers)
    assert deliveries.status_code == 200, deliveries.text
    assert deliveries.text.count("se-bureau") >= 1

    closed = await move(ra, manager, rid, to="closed", note="no further action")
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"
    assert closed.json()["allowed_transitions"] == []

    view = await read(ra, manager, rid)
    assert [e["event"] for e in view["history"]] == ["opened_from_inbound", "replied", "transition"]
    assert view["history"][1]["note"] == "answered by phone too"
    assert view["history"][2]["note"] == "no further action"
    assert {(m["message_id"], m["role"]) for m in view["linked_messages"]} == {
        (str(hit_id), "request"),
        (reply_id, "reply"),
    }

    trail = await audit_of(ra, auditor, rid)
    events = [(e["action"], e["event"]) for e in trail]
    assert events[:3] == [
        ("collection", "request.opened"),
        ("consultation", "request.read"),
        ("alteration", "request.answered"),
    ]
    assert ("alteration", "request.closed") in events
    answered = next(e for e in trail if e["event"] == "request.answered")
    assert answered["details"]["message_id"] == reply_id
    assert answered["details"]["late"] is False
    assert all("answered by phone" not in str(e) for e in trail)
    assert all(
        e["justification"] == JUSTIFY["X-Justification"]
        for e in trail
        if e["action"] == "consultation"
    )


async def test_unanswered_hit_becomes_overdue_and_is_escalated_once(
    ra: RequestsApp, manager: ApiUser, auditor: ApiUser
) -> None:
    _, request_id = await store_inbound(ra, sirene_hit(unique_ref()), partner_id="se-bureau")
    assert request_id is not None
    rid = str(request_id)
    listed = await ra.http.get(
        "/v1/requests",
        params={"overdue": "false", "country": "se", "limit": 500},
        headers=manager.headers,
    )
    assert rid in [item["id"] for item in listed.json()["items"]]

    now = ra.clock.advance(hours=12, seconds=1)
    overdue = await ra.http.get(
        "/v1/requests", params={"overdue": "true", "limit": 500}, headers=manager.headers
    )
    mine = [item for item in overdue.json()["items"] if item["id"] == rid]
    assert len(mine) == 1
    assert mine[0]["overdue"]
    assert not mine[0]["escalated"]

    escalated: list[uuid.UUID] = []
    for _ in range(20):  # other tests' overdue requests share the database
        batch = await escalate_overdue(ra.db, now=now, limit=100)
        escalated += batch
        if not batch:
            break
    assert escalated.count(request_id) == 1
    assert request_id not in await escalate_overdue(ra.db, now=now, limit=100)

    view = await read(ra, manager, rid)
    assert view["escalated"]
    assert at(view["escalated_at"]) == now
    assert view["overdue"]
    assert [e["event"] for e in view["history"]] == ["opened_from_inbound", "escalated"]
    trail = await audit_of(ra, auditor, rid)
    assert [e["event"] for e in trail].count("request.escalated") == 1

    # Answering it now is late: a delay reason is needed.
    late = await move(ra, manager, rid, to="answered")
    assert_problem(late, 422)
    answered = await move(ra, manager, rid, to="answered", delay_reason="Bureau overloaded")
    assert answered.status_code == 200, answered.text
    assert answered.json()["answered_late"]
    assert not answered.json()["overdue"]


async def test_directive_urgent_indirect_request_late_answer_needs_reason(
    ra: RequestsApp, manager: ApiUser, auditor: ApiUser
) -> None:
    received = ra.clock()
    created = await create(ra, manager, directive_request(unique_ref("DIR")))
    rid = created["id"]
    assert created["time_limit_rule"] == "dir_2023_977_urgent_indirect"
    assert at(created["due_at"]) == received + timedelta(days=3)
    assert "subject" not in created  # free text is never echoed (nor kept by Idempotency-Key)

    assigned = await move(ra, manager, rid, to="assigned")
    assert assigned.json()["assignee"] == f"client:{manager.id}"
    waiting = await move(ra, manager, rid, to="awaiting_information", note="asked the registry")
    assert waiting.status_code == 200, waiting.text

    ra.clock.advance(days=3, seconds=1)
    no_reason = await move(ra, manager, rid, to="answered")
    problem = assert_problem(no_reason, 422)
    assert "delay_reason" in problem["detail"]
    assert (await read(ra, manager, rid))["status"] == "awaiting_information"

    reason = "Vehicle registry offline for maintenance"
    answered = await move(ra, manager, rid, to="answered", delay_reason=reason)
    assert answered.status_code == 200, answered.text
    assert answered.json()["answered_late"] is True

    view = await read(ra, manager, rid)
    assert view["delay_reason"] == reason
    assert view["subject"] == "Registered keepers of vehicle ABC-123 since 2020"
    assert view["history"][-1]["reason"] == reason

    trail = await audit_of(ra, auditor, rid)
    late = next(e for e in trail if e["event"] == "request.answered")
    assert late["details"]["late"] is True
    assert late["details"]["delay_reason_recorded"] is True
    assert all(reason not in str(e) for e in trail)
    assert [e["event"] for e in trail if e["action"] != "consultation"] == [
        "request.created",
        "request.assigned",
        "request.awaiting_information",
        "request.answered",
    ]


async def test_late_reply_without_reason_sends_nothing(ra: RequestsApp, manager: ApiUser) -> None:
    created = await create(ra, manager, directive_request(unique_ref("DIR"), info_access="direct"))
    ra.clock.advance(hours=8, seconds=1)
    response = await ra.http.post(
        f"/v1/requests/{created['id']}/reply",
        json={"body": "Nothing found."},
        headers=manager.headers,
    )
    assert_problem(response, 422)
    view = await read(ra, manager, created["id"])
    assert view["linked_messages"] == []
    assert view["status"] == "received"
    response = await ra.http.post(
        f"/v1/requests/{created['id']}/reply",
        json={"body": "Nothing found.", "delay_reason": "Waited for the prosecutor"},
        headers=manager.headers,
    )
    assert response.status_code == 202, response.text
    assert response.json()["request"]["answered_late"] is True


async def test_two_concurrent_replies_send_one_and_refuse_the_other(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """The reply and the move to answered commit together: the loser sends nothing."""
    reference = unique_ref("TWICE")
    rid = (await create(ra, manager, directive_request(reference, urgency="normal")))["id"]
    answers = await asyncio.gather(
        *(
            ra.http.post(
                f"/v1/requests/{rid}/reply",
                json={"body": f"Answer {n}."},
                headers=manager.headers | {"Idempotency-Key": str(uuid.uuid4())},
            )
            for n in range(2)
        )
    )
    assert sorted(a.status_code for a in answers) == [202, 409], [a.text for a in answers]
    view = await read(ra, manager, rid)
    assert view["status"] == "answered"
    replies = [m for m in view["linked_messages"] if m["role"] == "reply"]
    sent = next(a for a in answers if a.status_code == 202).json()["message"]["id"]
    assert [m["message_id"] for m in replies] == [sent]
    listed = await ra.http.get(
        "/v1/messages", params={"case_ref": reference}, headers=manager.headers
    )
    assert [m["id"] for m in listed.json()["items"]] == [sent]


async def test_illegal_transitions_answer_409_with_the_allowed_ones(
    ra: RequestsApp, manager: ApiUser
) -> None:
    rid = (await create(ra, manager, directive_request(unique_ref("DIR"))))["id"]
    problem = assert_problem(await move(ra, manager, rid, to="closed"), 409)
    assert problem["allowed_transitions"] == ["assigned", "answered", "rejected"]
    assert problem["current_status"] == "received"

    assert_problem(await move(ra, manager, rid, to="rejected"), 422)  # no reason
    assert_problem(await move(ra, manager, rid, to="assigned", reason="x"), 422)
    assert_problem(await move(ra, manager, rid, to="received"), 409)
    rejected = await move(ra, manager, rid, to="rejected", reason="Outside our competence")
    assert rejected.status_code == 200, rejected.text
    problem = assert_problem(await move(ra, manager, rid, to="assigned"), 409)
    assert problem["allowed_transitions"] == []
    reply = await ra.http.post(
        f"/v1/requests/{rid}/reply", json={"body": "late"}, headers=manager.headers
    )
    assert assert_problem(reply, 409)["allowed_transitions"] == []
    assert (await read(ra, manager, rid))["rejection_reason"] == "Outside our competence"


async def test_a_stale_version_loses(ra: RequestsApp, manager: ApiUser, db: Database) -> None:
    rid = uuid.UUID((await create(ra, manager, directive_request(unique_ref("DIR"))))["id"])
    async with db.read_sessions() as session:
        stale = await repository.get(session, rid)
    assert (await move(ra, manager, str(rid), to="assigned")).status_code == 200
    async with db.write_sessions() as session, session.begin():
        with pytest.raises(Conflict, match="concurrently"):
            await apply_change(
                session,
                stale,
                Change(target=RequestStatus.REJECTED, reason="duplicate"),
                envelope=ra.vault.envelope,
                actor="test",
                now=ra.clock(),
            )
    assert (await read(ra, manager, str(rid)))["status"] == "assigned"


async def test_a_reply_by_reference_from_another_state_answers_nothing(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """Only the request's states answer it by reference; anyone else is related traffic."""
    reference = unique_ref("OTHER")
    rid = (await create(ra, manager, directive_request(reference, urgency="normal")))["id"]
    reply = {
        "type": "reply",
        "channel": "interpol",
        "legal_basis": "DIR_2023_977",
        "case_ref": reference,
        "body": "Answer from a partner that was not asked.",
    }
    message_id, linked = await store_inbound(ra, reply, partner_id="interpol-ncb")
    assert str(linked) == rid
    view = await read(ra, manager, rid)
    assert view["status"] == "received"
    assert {"message_id": str(message_id), "role": "related"} in [
        {k: m[k] for k in ("message_id", "role")} for m in view["linked_messages"]
    ]


async def test_inbound_reply_links_and_answers(ra: RequestsApp, manager: ApiUser) -> None:
    reference = unique_ref("OUT")
    rid = (await create(ra, manager, directive_request(reference, urgency="normal")))["id"]
    reply = {
        "type": "reply",
        "channel": "europol",
        "legal_basis": "DIR_2023_977",
        "case_ref": reference.lower(),
        "body": "No records found.",
    }
    message_id, linked = await store_inbound(ra, reply, partner_id="se-bureau")
    assert str(linked) == rid
    view = await read(ra, manager, rid)
    assert view["status"] == "answered"
    assert {"message_id": str(message_id), "role": "reply"} in [
        {k: m[k] for k in ("message_id", "role")} for m in view["linked_messages"]
    ]
    assert view["history"][-1]["event"] == "answered_from_inbound"
    assert view["history"][-1]["actor"] == "partner:se-bureau"

    # A reply answering the hit message itself (in_reply_to) finds the request too.
    hit_id, hit_request = await store_inbound(ra, sirene_hit(unique_ref()), partner_id="se-bureau")
    follow_up = {
        "type": "reply",
        "legal_basis": "SIS_2018_1862",
        "in_reply_to": str(hit_id),
        "body": "Thanks.",
    }
    _, linked = await store_inbound(ra, follow_up, partner_id="se-bureau")
    assert linked == hit_request
    # Unrelated traffic opens nothing.
    _, nothing = await store_inbound(
        ra, {"type": "notice", "legal_basis": "DIR_2023_977", "body": "FYI"}, partner_id="se-bureau"
    )
    assert nothing is None


async def test_child_hit_is_immediate_within_the_12_hour_limit(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """Reg. (EU) 2018/1862 Art. 8(3): act immediately on an Art. 32(1)(c) child alert, and
    reply within 12 hours. An Art. 32 hit on a child whose category the message does not
    give may be such an alert: it is marked immediate, and due 12 hours after receipt."""
    child = sirene_hit(
        unique_ref(),
        legal_basis="SIS_2018_1862_ART32",
        subjects=[
            {"kind": "person", "surnames": ["NIEMI"], "date_of_birth": "2015", "role": "missing"}
        ],
    )
    _, request_id = await store_inbound(ra, child, partner_id="se-bureau")
    view = await read(ra, manager, str(request_id))
    assert view["immediate"]
    assert view["alert_flags"] == ["child"]
    assert at(view["due_at"]) == at(view["received_at"]) + timedelta(hours=12)
    assert view["time_limit_rule"] == "sirene_supplementary"
    assert view["alert_article"] == 32


async def test_eaw_follow_up_deadlines(ra: RequestsApp, manager: ApiUser) -> None:
    body = directive_request(
        unique_ref("EAW"),
        form="A",
        legal_basis="FD_2002_584",
        eaw_ref="EAW-2026-77",
        urgency="normal",
        info_access=None,
    )
    rid = (await create(ra, manager, body))["id"]
    url = f"/v1/requests/{rid}/eaw"
    arrested = ra.clock() - timedelta(hours=1)
    assert_problem(await ra.http.post(url, json={"extension": True}, headers=manager.headers), 409)
    assert_problem(await ra.http.post(url, json={"consent": False}, headers=manager.headers), 422)
    response = await ra.http.post(
        url, json={"arrested_at": iso(arrested), "consent": False}, headers=manager.headers
    )
    assert response.status_code == 200, response.text
    eaw = response.json()["eaw"]
    assert at(eaw["decision_due_at"]) == arrested + timedelta(days=60)
    assert eaw["surrender_due_at"] is None
    again = await ra.http.post(
        url, json={"arrested_at": iso(arrested), "consent": True}, headers=manager.headers
    )
    assert_problem(again, 409)
    extended = await ra.http.post(url, json={"extension": True}, headers=manager.headers)
    assert at(extended.json()["eaw"]["decision_due_at"]) == arrested + timedelta(days=90)
    assert_problem(await ra.http.post(url, json={"extension": True}, headers=manager.headers), 409)
    decided = ra.clock()
    early = await ra.http.post(
        url, json={"decided_at": iso(arrested - timedelta(days=1))}, headers=manager.headers
    )
    assert_problem(early, 422)
    response = await ra.http.post(url, json={"decided_at": iso(decided)}, headers=manager.headers)
    assert response.status_code == 200, response.text
    assert at(response.json()["eaw"]["surrender_due_at"]) == decided + timedelta(days=10)
    view = await read(ra, manager, rid)
    assert [e["event"] for e in view["history"]] == [
        "created",
        "eaw_arrest",
        "eaw_extension",
        "eaw_decision",
    ]
    # A request that is not about an EAW has no arrest to record.
    other = (await create(ra, manager, directive_request(unique_ref("DIR"))))["id"]
    response = await ra.http.post(
        f"/v1/requests/{other}/eaw",
        json={"arrested_at": iso(arrested), "consent": True},
        headers=manager.headers,
    )
    assert_problem(response, 409)


async def test_listing_filters_and_pages_most_urgent_first(
    ra: RequestsApp, manager: ApiUser
) -> None:
    now = ra.clock()
    country = "MT"  # only this test files requests from Malta
    bodies = [
        directive_request(unique_ref("DIR"), requesting_state="MLT", urgency="normal"),  # 7 d
        directive_request(unique_ref("DIR"), requesting_state=country),  # 3 d
        directive_request(unique_ref("DIR"), requesting_state=country, info_access="direct"),
    ]
    ids = [(await create(ra, manager, body))["id"] for body in bodies]
    expected = [ids[2], ids[1], ids[0]]
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        params: dict[str, Any] = {"country": country, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = await ra.http.get("/v1/requests", params=params, headers=manager.headers)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    filtered = await ra.http.get(
        "/v1/requests",
        params={
            "country": country,
            "due_before": iso(now + timedelta(days=4)),
            "form": "M",
            "status": "received",
        },
        headers=manager.headers,
    )
    assert [item["id"] for item in filtered.json()["items"]] == expected[:2]


async def test_create_is_idempotent(ra: RequestsApp, manager: ApiUser) -> None:
    body = directive_request(unique_ref("DIR"))
    headers = manager.headers | {"Idempotency-Key": f"create-{body['reference']}"}
    first = await ra.http.post("/v1/requests", json=body, headers=headers)
    second = await ra.http.post("/v1/requests", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["idempotent-replayed"] == "true"
    other = await ra.http.post("/v1/requests", json={**body, "form": "Q"}, headers=headers)
    assert_problem(other, 422)


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status"),
    [
        ("POST", "/v1/requests", {"unknown": 1}, None, 422),
        ("POST", "/v1/requests", "not-json", None, 422),
        ("POST", "/v1/requests", {"extra_field": True, **directive_request("R1")}, None, 422),
        ("POST", "/v1/requests", directive_request("R1", requesting_state="XX"), None, 422),
        ("POST", "/v1/requests", directive_request("R1", form="Z"), None, 422),
        ("POST", "/v1/requests", directive_request("R1", info_access=None), None, 422),
        ("POST", "/v1/requests", directive_request("R1", legal_basis="GDPR"), None, 422),
        ("POST", "/v1/requests", directive_request("R1", alert_article=27), None, 422),
        (
            "POST",
            "/v1/requests",
            directive_request("R1", received_at="2026-01-01T00:00"),
            None,
            422,
        ),
        (
            "POST",
            "/v1/requests",
            directive_request("R1", received_at="9999-12-31T23:59Z"),
            None,
            422,
        ),
        (
            "POST",
            "/v1/requests",
            directive_request("R1", received_at="1970-01-01T00:00Z"),
            None,
            422,
        ),
        ("POST", "/v1/requests", directive_request("a\x00b"), None, 422),
        (
            "POST",
            "/v1/requests",
            directive_request("R1", linked_messages=[{"message_id": str(uuid.uuid4())}]),
            None,
            422,
        ),
        ("GET", "/v1/requests", None, {"cursor": "garbage"}, 422),
        ("GET", "/v1/requests", None, {"due_before": "2026-01-01T00:00"}, 422),
        ("GET", "/v1/requests", None, {"country": "QQQ"}, 422),
        ("GET", "/v1/requests", None, {"status": "overdue"}, 422),
        ("GET", "/v1/requests", None, {"limit": 0}, 422),
        ("GET", "/v1/requests/not-a-uuid", None, None, 422),
        ("GET", f"/v1/requests/{uuid.uuid4()}", None, None, 404),
        ("POST", f"/v1/requests/{uuid.uuid4()}/transitions", {"to": "assigned"}, None, 404),
        ("POST", f"/v1/requests/{uuid.uuid4()}/transitions", {"to": "sideways"}, None, 422),
        ("POST", f"/v1/requests/{uuid.uuid4()}/transitions", {"to": "closed", "x": 1}, None, 422),
        ("POST", f"/v1/requests/{uuid.uuid4()}/eaw", {}, None, 422),
        (
            "POST",
            f"/v1/requests/{uuid.uuid4()}/eaw",
            {"extension": True, "decided_at": "2026-01-01T00:00Z"},
            None,
            422,
        ),
        ("POST", f"/v1/requests/{uuid.uuid4()}/reply", {"body": "x", "type": "hit"}, None, 422),
        ("POST", f"/v1/requests/{uuid.uuid4()}/reply", {"body": "x"}, None, 404),
    ],
)
async def test_bad_input_is_a_4xx_problem(
    ra: RequestsApp,
    manager: ApiUser,
    method: str,
    path: str,
    body: Any,
    params: dict[str, Any] | None,
    status: int,
) -> None:
    headers = manager.headers | JUSTIFY
    if isinstance(body, str):
        response = await ra.http.request(
            method, path, content=body, headers=headers | {"content-type": "application/json"}
        )
    else:
        response = await ra.http.request(method, path, json=body, params=params, headers=headers)
    problem = assert_problem(response, status)
    if isinstance(body, dict) and "reference" in body:
        assert str(body["reference"]) not in str(problem.get("detail"))


async def test_scope_and_justification_are_required(
    ra: RequestsApp, manager: ApiUser, make_user: MakeUser
) -> None:
    reader = await make_user("messages:read", "messages:write")
    assert_problem(await ra.http.get("/v1/requests", headers=reader.headers), 403)
    assert_problem(await ra.http.get("/v1/requests"), 401)
    rid = (await create(ra, manager, directive_request(unique_ref("DIR"))))["id"]
    assert_problem(await ra.http.get(f"/v1/requests/{rid}", headers=manager.headers), 422)


# PostgreSQL: concurrency between sessions and workers.
@pytest.mark.postgres
async def test_concurrent_transitions_one_wins(ra: RequestsApp, manager: ApiUser) -> None:
    rid = (await create(ra, manager, directive_request(unique_ref("DIR"))))["id"]
    responses = await asyncio.gather(
        # Either order alone leaves the other illegal: the loser is 409 whether it lost the
        # version race or came second.
        move(ra, manager, rid, to="answered"),
        move(ra, manager, rid, to="rejected", reason="duplicate of another request"),
    )
    assert sorted(r.status_code for r in responses) == [200, 409]


@pytest.mark.postgres
async def test_concurrent_sessions_one_update_wins(
    ra: RequestsApp, manager: ApiUser, settings: Settings
) -> None:
    rid = uuid.UUID((await create(ra, manager, directive_request(unique_ref("DIR"))))["id"])
    keys = open_keyring(settings)  # the app's: both sessions append to its audit chain
    first, second = open_database(settings, keys), open_database(settings, keys)
    try:
        async with (
            first.write_sessions() as a,
            a.begin(),
            second.write_sessions() as b,
            b.begin(),
        ):
            row_a = await repository.get(a, rid)
            row_b = await repository.get(b, rid)
            await apply_change(
                a,
                row_a,
                Change(target=RequestStatus.ASSIGNED),
                envelope=ra.vault.envelope,
                actor="a",
                now=ra.clock(),
            )
            loser = asyncio.create_task(
                apply_change(
                    b,
                    row_b,
                    Change(target=RequestStatus.REJECTED, reason="dup"),
                    envelope=ra.vault.envelope,
                    actor="b",
                    now=ra.clock(),
                )
            )
            await asyncio.sleep(0.2)  # b waits on a's row lock
            assert not loser.done()
            await a.commit()
            with pytest.raises(Conflict):
                await loser
            await b.rollback()
    finally:
        await first.dispose()
        await second.dispose()
    assert (await read(ra, manager, str(rid)))["status"] == "assigned"


@pytest.mark.postgres
async def test_concurrent_escalation_records_once(
    ra: RequestsApp, manager: ApiUser, auditor: ApiUser, settings: Settings
) -> None:
    _, request_id = await store_inbound(ra, sirene_hit(unique_ref()), partner_id="se-bureau")
    assert request_id is not None
    now = ra.clock() + timedelta(hours=13)
    keys = open_keyring(settings)
    workers = [open_database(settings, keys) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(escalate_overdue(worker, now=now, limit=500) for worker in workers)
        )
    finally:
        for worker in workers:
            await worker.dispose()
    flat = [rid for batch in results for rid in batch]
    assert flat.count(request_id) == 1
    assert len(flat) == len(set(flat))
    trail = await audit_of(ra, auditor, str(request_id))
    assert [e["event"] for e in trail].count("request.escalated") == 1
    view = await read(ra, manager, str(request_id))
    assert [e["event"] for e in view["history"]].count("escalated") == 1


async def test_open_from_inbound_repeat_links_to_the_open_request(ra: RequestsApp) -> None:
    reference = unique_ref()
    _, first = await store_inbound(ra, sirene_hit(reference), partner_id="se-bureau")
    second_id, second = await store_inbound(
        ra, sirene_hit(reference, type="request"), partner_id="se-bureau"
    )
    assert first is not None
    assert second == first
    async with ra.db.read_sessions() as session:
        links = await repository.links_of(session, first)
    assert (second_id, "related") in [(link.message_id, link.role) for link in links]
    # Called again for the same message (a replayed hook) it changes nothing.
    async with ra.db.write_sessions() as session, session.begin():
        again = await open_from_inbound(
            session,
            message_id=second_id,
            content=MessageIn.model_validate(sirene_hit(reference, type="reply")),
            source_partner_id="se-bureau",
            received_at=ra.clock(),
            envelope=ra.vault.envelope,
        )
    assert again == first
