"""Requests answered on their own channel, and SPOC requests opened from SIENA.

Dir. (EU) 2023/977 Art. 12 makes SIENA (our `europol` channel) the default
channel of exchanges under the directive; SIS alerts and the arrest warrants they
carry are exchanged between SIRENE Bureaux (Reg. (EU) 2018/1862 Art. 7-8).
"""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from commcentre.adapters.base import OutboundMessage
from commcentre.adapters.europol.format import to_wire
from commcentre.config import Settings
from commcentre.messages.schemas import MessageIn
from tests.conftest import ApiUser, MakeUser
from tests.inbound_support import signed_headers
from tests.integration.requests_support import (
    JUSTIFY,
    RequestsApp,
    directive_request,
    requests_app,
    unique_ref,
)

# Luxembourg's SPOC speaks SIENA only; a rule copies SIENA traffic to LU to an archive.
SPOC = "lu-spoc"
ARCHIVE = "lu-siena-archive"


@pytest.fixture(scope="module")
async def ra(settings: Settings, http: httpx.AsyncClient) -> AsyncIterator[RequestsApp]:
    async with requests_app(settings) as gateway:
        yield gateway


@pytest.fixture(scope="module")
async def manager(make_user: MakeUser) -> ApiUser:
    return await make_user("requests:manage", "messages:read", name="spoc-desk")


@pytest.fixture(scope="module")
async def network(ra: RequestsApp, make_user: MakeUser) -> ApiUser:
    """The LU partners and the archive rule; the admin that made them."""
    admin = await make_user("admin", name="channels-admin")
    for partner in (
        {"id": SPOC, "name": "LU SPOC (SIENA)", "country": "LU", "channels": ["europol"]},
        {"id": ARCHIVE, "name": "SIENA archive", "channels": ["europol"]},
    ):
        response = await ra.http.post(
            "/v1/partners",
            json={**partner, "adapter": "loopback", "allow_loopback": True},
            headers=admin.headers,
        )
        assert response.status_code in (201, 409), response.text
    response = await ra.http.post(
        "/v1/routing-rules",
        json={
            "name": f"siena copies to LU {uuid.uuid4().hex[:6]}",
            "position": 20,
            "match": {"channels": ["europol"], "countries": ["LU"]},
            "partners": [ARCHIVE],
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return admin


async def reply(ra: RequestsApp, user: ApiUser, request_id: str, **body: Any) -> httpx.Response:
    return await ra.http.post(
        f"/v1/requests/{request_id}/reply",
        json={"body": "Registered keeper: see attached.", **body},
        headers=user.headers,
    )


async def test_a_directive_request_is_answered_over_siena_through_the_routing_rules(
    ra: RequestsApp, manager: ApiUser, network: ApiUser
) -> None:
    """Dir. (EU) 2023/977 Art. 12: SIENA is the default channel under the directive.

    The reply to a DIR_2023_977 request goes on the europol (SIENA) channel to the
    requesting state, routed like any outbound message (a rule adds the archive),
    where it used to go on sirene and fail with 422 when the SPOC speaks SIENA only.
    """
    created = await ra.http.post(
        "/v1/requests",
        json=directive_request(unique_ref("LU"), requesting_state="LU", urgency="normal"),
        headers=manager.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["channel"] == "europol"
    response = await reply(ra, manager, created.json()["id"])
    assert response.status_code == 202, response.text
    message = response.json()["message"]
    # LU's SPOC by country and channel, the archive by the rule (and any other LU SIENA
    # partner the module registered).
    assert {ARCHIVE, SPOC} <= {d["partner"] for d in message["deliveries"]}
    sent = await ra.http.get(f"/v1/messages/{message['id']}", headers=manager.headers | JUSTIFY)
    assert sent.json()["channel"] == "europol"
    assert sent.json()["recipients"] == ["LU"]


async def test_a_sirene_request_is_answered_on_sirene(
    ra: RequestsApp, manager: ApiUser, network: ApiUser
) -> None:
    """Reg. (EU) 2018/1862 Art. 8: supplementary information goes between SIRENE Bureaux.

    A request under a SIS basis keeps the sirene channel: LU has no SIRENE partner
    here, so the reply routes nowhere (422) and nothing is sent or answered.
    """
    body = directive_request(unique_ref("SIS"), requesting_state="LU", urgency="normal")
    body.update(legal_basis="SIS_2018_1862_ART36", form="M", info_access=None)
    created = await ra.http.post("/v1/requests", json=body, headers=manager.headers)
    assert created.status_code == 201, created.text
    assert created.json()["channel"] == "sirene"
    response = await reply(ra, manager, created.json()["id"])
    assert response.status_code == 422, response.text
    assert "on channel sirene" in response.json()["detail"]


async def test_a_request_can_name_the_channel_it_came_in_on(
    ra: RequestsApp, manager: ApiUser, network: ApiUser
) -> None:
    """Dir. (EU) 2023/977 Art. 12(1): another channel may be used where the law allows;
    the reply then goes back on that channel."""
    body = directive_request(unique_ref("BIL"), requesting_state="SE", channel="bilateral")
    created = await ra.http.post("/v1/requests", json=body, headers=manager.headers)
    assert created.status_code == 201, created.text
    response = await reply(ra, manager, created.json()["id"])
    assert response.status_code == 202, response.text
    sent = await ra.http.get(
        f"/v1/messages/{response.json()['message']['id']}", headers=manager.headers | JUSTIFY
    )
    assert sent.json()["channel"] == "bilateral"


def siena_document(content: dict[str, Any]) -> bytes:
    message = MessageIn.model_validate(content)
    outbound = OutboundMessage(id=uuid.uuid4(), created_at=datetime.now(UTC), content=message)
    return orjson.dumps(to_wire(outbound, delivery_id=uuid.uuid4(), sender="LU-ENU"))


async def siena_partner(ra: RequestsApp, admin: ApiUser) -> tuple[str, str]:
    """A europol-adapter partner of LU that pushes to us: (id, signing secret)."""
    partner_id, secret = f"lu-enu-{uuid.uuid4().hex[:8]}", "whsec_" + "QUJD" * 8
    response = await ra.http.post(
        "/v1/partners",
        json={
            "id": partner_id,
            "name": "LU ENU (SIENA-like)",
            "adapter": "europol",
            "country": "LU",
            "channels": ["europol"],
            "config": {"url": "https://lu-enu.example/in", "sender_unit": "FI-ENU"},
            "signing_secrets": [secret],
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return partner_id, secret


async def find(ra: RequestsApp, user: ApiUser, reference: str) -> dict[str, Any] | None:
    listed = await ra.http.get(
        "/v1/requests", params={"country": "LU", "limit": 500}, headers=user.headers
    )
    assert listed.status_code == 200, listed.text
    found = [r for r in listed.json()["items"] if r["reference"] == reference]
    return found[0] if found else None


@pytest.mark.parametrize(
    ("priority", "info_access", "rule", "limit"),
    [
        ("urgent", "direct", "dir_2023_977_urgent_direct", timedelta(hours=8)),
        ("urgent", "indirect", "dir_2023_977_urgent_indirect", timedelta(days=3)),
        ("normal", None, "dir_2023_977_other", timedelta(days=7)),
    ],
)
async def test_an_inbound_spoc_request_over_siena_opens_a_request(
    ra: RequestsApp,
    manager: ApiUser,
    network: ApiUser,
    priority: str,
    info_access: str | None,
    rule: str,
    limit: timedelta,
) -> None:
    """Dir. (EU) 2023/977 Art. 5(1): 8 hours (urgent, directly accessible), 3 calendar
    days (urgent, indirectly accessible), 7 calendar days (other requests), from receipt.

    A SPOC request pushed by a europol-adapter partner (the document names no
    channel: the adapter's is taken) opens a request like a SIRENE one, due by the
    limit its urgency and its `info_access` give, answered back over SIENA.
    """
    partner_id, secret = await siena_partner(ra, network)
    reference = unique_ref("LU-SPOC")
    content: dict[str, Any] = {
        "type": "request",
        "priority": priority,
        "legal_basis": "DIR_2023_977",
        "case_ref": reference,
        "body": "Registered keepers of vehicle LU-4411 since 2024.",
    }
    if info_access is not None:
        content["info_access"] = info_access
    body = siena_document(content)
    received = ra.clock()
    pushed = await ra.http.post(
        f"/v1/inbound/{partner_id}", content=body, headers=signed_headers(body, secret, at=received)
    )
    assert pushed.status_code == 202, pushed.text
    opened = await find(ra, manager, reference)
    assert opened is not None
    assert opened["legal_basis"] == "DIR_2023_977"
    assert opened["channel"] == "europol"
    assert opened["time_limit_rule"] == rule
    assert (
        datetime.fromisoformat(opened["due_at"]) - datetime.fromisoformat(opened["received_at"])
        == limit
    )
    response = await reply(ra, manager, opened["id"])
    assert response.status_code == 202, response.text
    destinations = {d["partner"] for d in response.json()["message"]["deliveries"]}
    assert partner_id in destinations


async def test_an_info_access_outside_the_directive_is_refused() -> None:
    """Dir. (EU) 2023/977 Art. 5(1): direct/indirect access is the directive's distinction."""
    with pytest.raises(ValueError, match="only for DIR_2023_977"):
        MessageIn.model_validate(
            {
                "type": "request",
                "legal_basis": "SIS_2018_1862_ART36",
                "info_access": "direct",
                "body": "x",
            }
        )


# --- delay notices (Dir. (EU) 2023/977 Art. 5(2)) -----------------------------------------


async def notify(ra: RequestsApp, user: ApiUser, request_id: str, **body: Any) -> httpx.Response:
    return await ra.http.post(
        f"/v1/requests/{request_id}/delay-notice", json=body, headers=user.headers
    )


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_a_delay_notice_is_sent_to_the_requester_and_recorded(
    ra: RequestsApp, manager: ApiUser, network: ApiUser, make_user: MakeUser
) -> None:
    """Dir. (EU) 2023/977 Art. 5(2): where the requested SPOC cannot keep the time limit it
    informs the requesting SPOC immediately of the expected delay and the reasons.

    The notice goes to the requester on the request's channel through the routing
    (type notice), and the request records the reason (sealed) and the expected date,
    in its history and the audit log (without the reason's text). A reply after the
    limit then has its reason on record; without a notice the delay shows as
    unexplained until a reason is given.
    """
    reference = unique_ref("LU-LATE")
    created = await ra.http.post(
        "/v1/requests",
        json=directive_request(reference, requesting_state="LU", info_access="direct"),
        headers=manager.headers,
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    assert created.json()["delay_notice"] is None

    ra.clock.advance(hours=2)
    expected = ra.clock() + timedelta(days=1)
    reason = "The registry answers only after a prosecutor's authorisation."
    notice = {"reason": reason, "expected_at": iso(expected), "note": "called LU"}
    key = {"Idempotency-Key": f"notice-{rid}"}
    response = await ra.http.post(
        f"/v1/requests/{rid}/delay-notice", json=notice, headers=manager.headers | key
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    # A retry under the same key is the same notice, recorded once.
    again = await ra.http.post(
        f"/v1/requests/{rid}/delay-notice", json=notice, headers=manager.headers | key
    )
    assert again.status_code == 202, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["message"]["id"] == accepted["message"]["id"]
    assert accepted["request"]["delay_notice"] == {
        "notified_at": iso(ra.clock()),
        "expected_at": iso(expected),
    }
    assert accepted["request"]["status"] == "received"
    assert {ARCHIVE, SPOC} <= {d["partner"] for d in accepted["message"]["deliveries"]}
    sent = await ra.http.get(
        f"/v1/messages/{accepted['message']['id']}", headers=manager.headers | JUSTIFY
    )
    assert sent.json()["type"] == "notice"
    assert sent.json()["channel"] == "europol"
    assert sent.json()["recipients"] == ["LU"]
    assert sent.json()["content"]["case_ref"] == reference
    assert reason in sent.json()["content"]["body"]
    assert iso(expected) in sent.json()["content"]["body"]

    view = (await ra.http.get(f"/v1/requests/{rid}", headers=manager.headers | JUSTIFY)).json()
    assert view["delay_reason"] == reason
    assert [e["event"] for e in view["history"]].count("delay_notified") == 1
    notified = view["history"][-1]
    assert (notified["event"], notified["reason"], notified["note"]) == (
        "delay_notified",
        reason,
        "called LU",
    )
    assert (accepted["message"]["id"], "related") in {
        (m["message_id"], m["role"]) for m in view["linked_messages"]
    }
    auditor = await make_user("audit:read", name="dpo-notices")
    trail = (
        await ra.http.get(
            "/v1/audit", params={"subject_id": rid, "limit": 100}, headers=auditor.headers
        )
    ).json()["items"]
    entry = next(e for e in trail if e["event"] == "request.delay_notified")
    assert entry["details"]["expected_at"] == iso(expected)
    assert entry["details"]["past_due"] is False
    assert all(reason not in str(e) for e in trail)

    # Past the 8 h limit: overdue, but the delay is explained; the late reply needs no
    # further delay_reason.
    ra.clock.advance(hours=7)
    summary = (
        await ra.http.get(
            "/v1/requests", params={"limit": 500, "overdue": "true"}, headers=manager.headers
        )
    ).json()["items"]
    mine = next(item for item in summary if item["id"] == rid)
    assert mine["overdue"]
    assert not mine["unexplained_delay"]
    answered = await reply(ra, manager, rid)
    assert answered.status_code == 202, answered.text
    assert answered.json()["request"]["answered_late"] is True

    # A notice is for an open request only.
    assert (
        await notify(ra, manager, rid, reason=reason, expected_at=iso(expected))
    ).status_code == 409


async def test_a_delay_without_a_notice_is_unexplained_and_notices_are_checked(
    ra: RequestsApp, manager: ApiUser, network: ApiUser
) -> None:
    """Dir. (EU) 2023/977 Art. 5(2) and DOMAIN.md: a delay past a time limit must be
    recorded with its reason; until it is, the request shows an unexplained delay."""
    created = await ra.http.post(
        "/v1/requests",
        json=directive_request(
            unique_ref("LU-UNEXPL"), requesting_state="LU", info_access="direct"
        ),
        headers=manager.headers,
    )
    rid = created.json()["id"]
    assert created.json()["unexplained_delay"] is False
    ra.clock.advance(hours=8, seconds=1)
    listed = await ra.http.get(
        "/v1/requests", params={"limit": 500, "overdue": "true"}, headers=manager.headers
    )
    mine = next(item for item in listed.json()["items"] if item["id"] == rid)
    assert mine["unexplained_delay"] is True

    past = await notify(ra, manager, rid, reason="Late.", expected_at=iso(ra.clock()))
    assert past.status_code == 422, past.text
    no_reason = await notify(ra, manager, rid, expected_at=iso(ra.clock() + timedelta(days=1)))
    assert no_reason.status_code == 422, no_reason.text
    missing = await notify(
        ra, manager, str(uuid.uuid4()), reason="x", expected_at=iso(ra.clock() + timedelta(days=1))
    )
    assert missing.status_code == 404, missing.text

    late = await notify(
        ra,
        manager,
        rid,
        reason="Night shift short-staffed.",
        expected_at=iso(ra.clock() + timedelta(hours=4)),
    )
    assert late.status_code == 202, late.text
    assert late.json()["request"]["unexplained_delay"] is False
