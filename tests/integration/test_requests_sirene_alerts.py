"""SIRENE requests keep their form and alert; "immediate" is a priority, not a deadline.

Issue 14, items 3 and 4: the form letter, alert article (and Art. 32(1) category), SIS
alert id and EAW reference of a SIRENE exchange are kept from the message into the
request; a form that cannot go with its alert is refused (422 naming the fields) or, from
a partner, stored without opening a request; and the "act immediately" of Reg. (EU)
2018/1862 Art. 8(3) orders the work queue while due_at stays the 12-hour limit.
"""

import base64
import os
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from commcentre.adapters.base import OutboundMessage
from commcentre.adapters.sirene import format as sirene_format
from commcentre.config import Settings
from commcentre.messages.schemas import MessageIn
from tests.conftest import ApiUser, MakeUser
from tests.inbound_support import signed_headers
from tests.integration.requests_support import (
    JUSTIFY,
    RequestsApp,
    requests_app,
    sirene_hit,
    store_inbound,
    unique_ref,
)


@pytest.fixture(scope="module")
async def ra(settings: Settings, http: httpx.AsyncClient) -> AsyncIterator[RequestsApp]:
    # `http` registers the loopback partners: se-bureau serves SE on every channel.
    async with requests_app(settings) as gateway:
        yield gateway


@pytest.fixture(scope="module")
async def manager(make_user: MakeUser) -> ApiUser:
    return await make_user("requests:manage", "messages:read", name="sirene-desk-2")


@pytest.fixture(scope="module")
async def sender(make_user: MakeUser) -> ApiUser:
    return await make_user("messages:write", name="sirene-sender")


@pytest.fixture(scope="module")
async def auditor(make_user: MakeUser) -> ApiUser:
    return await make_user("audit:read", name="dpo-2")


@pytest.fixture(scope="module")
async def partners_admin(make_user: MakeUser) -> ApiUser:
    return await make_user("partners:manage", name="partner-desk")


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def sirene_request(**overrides: Any) -> dict[str, Any]:
    """A SIRENE request for supplementary information on an Art. 26 arrest alert."""
    body: dict[str, Any] = {
        "reference": unique_ref(),
        "form": "G",
        "requesting_state": "SE",
        "legal_basis": "SIS_2018_1862_ART26",
        "subject": "Hit on the arrest alert: confirm the EAW.",
    }
    body.update(overrides)
    return body


async def read(ra: RequestsApp, user: ApiUser, request_id: object) -> dict[str, Any]:
    response = await ra.http.get(f"/v1/requests/{request_id}", headers=user.headers | JUSTIFY)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


def problem_fields(response: httpx.Response) -> set[tuple[str | int, ...]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return {tuple(error["loc"]) for error in response.json()["errors"]}


# --- item 4: immediate is a priority ------------------------------------------------------


async def test_terrorism_request_answered_a_minute_after_receipt_is_not_late(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """Reg. (EU) 2018/1862 Art. 8(3): reply "as soon as possible but not later than 12
    hours after the receipt"; on alerts for terrorist offences the SIRENE Bureau "shall act
    immediately". Acting immediately cannot make a reply late: due_at is the 12-hour
    limit, and an answer one minute after receipt is on time (no delay reason needed)."""
    received = ra.clock() - timedelta(minutes=1)
    body = sirene_request(alert_flags=["terrorism"], received_at=iso(received))
    created = await ra.http.post("/v1/requests", json=body, headers=manager.headers)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["immediate"] is True
    assert view["alert_flags"] == ["terrorism"]
    assert view["time_limit_rule"] == "sirene_supplementary"
    assert at(view["due_at"]) == received + timedelta(hours=12)
    assert view["overdue"] is False

    answered = await ra.http.post(
        f"/v1/requests/{view['id']}/transitions", json={"to": "answered"}, headers=manager.headers
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["answered_late"] is False


async def test_an_art_26_hit_on_a_15_year_old_is_not_a_child_alert(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """Reg. (EU) 2018/1862 Art. 8(3) names "alerts on children referred to in point (c) of
    Article 32(1)" (children at risk of parental abduction): an Art. 26 arrest alert on a
    minor is not one. It keeps the 12-hour limit and no immediate flag."""
    born = (ra.clock() - timedelta(days=15 * 365 + 30)).date().isoformat()
    hit = sirene_hit(
        unique_ref(),
        subjects=[{"kind": "person", "surnames": ["LAHTI"], "date_of_birth": born}],
    )
    _, request_id = await store_inbound(ra, hit, partner_id="se-bureau")
    view = await read(ra, manager, request_id)
    assert view["alert_article"] == 26
    assert view["alert_flags"] == []
    assert view["immediate"] is False
    assert at(view["due_at"]) == at(view["received_at"]) + timedelta(hours=12)


@pytest.mark.parametrize(
    ("category", "child"),
    [("a", False), ("b", False), ("c", True), ("d", False), ("e", False)],
)
async def test_only_art_32_1_c_alerts_are_child_alerts(
    ra: RequestsApp, manager: ApiUser, category: str, child: bool
) -> None:
    """Reg. (EU) 2018/1862 Art. 8(3) and 32(1): of the Art. 32 alerts, only point (c)
    (children at risk of abduction by a parent, family member or guardian) calls for
    immediate action; points (a), (b), (d) and (e) keep the 12-hour limit alone, even on
    a child."""
    hit = sirene_hit(
        unique_ref(),
        legal_basis="SIS_2018_1862_ART32",
        subjects=[{"kind": "person", "surnames": ["NIEMI"], "date_of_birth": "2016"}],
        sirene={"form": "G", "alert_article": 32, "alert_category": category},
    )
    _, request_id = await store_inbound(ra, hit, partner_id="se-bureau")
    view = await read(ra, manager, request_id)
    assert view["alert_category"] == category
    assert view["alert_flags"] == (["child"] if child else [])
    assert view["immediate"] is child
    assert at(view["due_at"]) == at(view["received_at"]) + timedelta(hours=12)


async def test_immediate_requests_come_first_in_the_work_queue(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """Reg. (EU) 2018/1862 Art. 8(3): the SIRENE Bureau acts immediately on terrorism and
    Art. 32(1)(c) child alerts, so the work queue lists them before requests whose
    12-hour limit runs out sooner."""
    state = "CY"  # only this test files requests from Cyprus
    now = ra.clock()
    earlier = sirene_request(requesting_state=state, received_at=iso(now - timedelta(hours=3)))
    child = sirene_request(
        requesting_state=state,
        form="M",
        legal_basis="SIS_2018_1862_ART32",
        alert_category="c",
    )
    ids = []
    for body in (earlier, child):
        response = await ra.http.post("/v1/requests", json=body, headers=manager.headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    assert response.json()["alert_flags"] == ["child"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"country": state, "limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        page = await ra.http.get("/v1/requests", params=params, headers=manager.headers)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [ids[1], ids[0]]
    only = await ra.http.get(
        "/v1/requests", params={"country": state, "immediate": "true"}, headers=manager.headers
    )
    assert [item["id"] for item in only.json()["items"]] == [ids[1]]


# --- item 3: form, alert and references are kept -------------------------------------


async def test_an_inbound_j_form_on_an_art_32_alert_opens_a_request_that_keeps_it(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """A J form (data error, SIRENE Manual) about an Art. 32 alert (Reg. (EU) 2018/1862
    Art. 32) opens a J request on that Art. 32 alert, with the SIS alert id and EAW
    reference the partner sent, and the J form's 10-day limit."""
    message = sirene_hit(
        unique_ref(),
        type="request",
        legal_basis="SIS_2018_1862",
        sirene={
            "form": "J",
            "alert_article": 32,
            "alert_category": "b",
            "sis_alert_ref": "SE0000123456789",
            "eaw_ref": "SE-EAW-2026-12",
        },
    )
    _, request_id = await store_inbound(ra, message, partner_id="se-bureau")
    view = await read(ra, manager, request_id)
    assert (view["form"], view["alert_article"], view["alert_category"]) == ("J", 32, "b")
    assert (view["sis_alert_ref"], view["eaw_ref"]) == ("SE0000123456789", "SE-EAW-2026-12")
    assert view["time_limit_rule"] == "sirene_data_error"


async def test_a_j_form_pushed_in_the_sirene_format_opens_a_request_that_keeps_it(
    ra: RequestsApp, manager: ApiUser, partners_admin: ApiUser
) -> None:
    """End to end through POST /v1/inbound and the sirene adapter: a SIRENE bureau's J
    form (data error, SIRENE Manual) on an Art. 32 alert (Reg. (EU) 2018/1862 Art. 32)
    opens a J request on that Art. 32 alert with the SIS alert id and EAW reference."""
    # Liechtenstein: a country no other test routes to, so this partner takes no one
    # else's traffic.
    partner_id = f"li-sirene-{uuid.uuid4().hex[:8]}"
    secret = f"whsec_{base64.b64encode(os.urandom(32)).decode()}"
    created = await ra.http.post(
        "/v1/partners",
        json={
            "id": partner_id,
            "name": "SIRENE Liechtenstein",
            "adapter": "sirene",
            "country": "LI",
            "config": {"url": "https://sirene.li.example/forms", "sirene_bureau": "LI"},
            "signing_secrets": [secret],
        },
        headers=partners_admin.headers,
    )
    assert created.status_code == 201, created.text
    reference = unique_ref()
    content = MessageIn.model_validate(
        sirene_hit(
            reference,
            type="request",
            legal_basis="SIS_2018_1862",
            sirene={
                "form": "J",
                "alert_article": 32,
                "sis_alert_ref": "LI0000555555555",
                "eaw_ref": "LI-EAW-2026-31",
            },
        )
    )
    document = sirene_format.to_wire(
        OutboundMessage(uuid.uuid4(), ra.clock(), content), delivery_id=uuid.uuid4(), sender="LI"
    )
    body = orjson.dumps(document)
    pushed = await ra.http.post(
        f"/v1/inbound/{partner_id}",
        content=body,
        headers=signed_headers(body, secret, at=ra.clock()),
    )
    assert pushed.status_code == 202, pushed.text
    listed = await ra.http.get(
        "/v1/requests", params={"country": "LI", "limit": 500}, headers=manager.headers
    )
    [request] = [item for item in listed.json()["items"] if item["reference"] == reference]
    assert (request["form"], request["alert_article"]) == ("J", 32)
    assert (request["sis_alert_ref"], request["eaw_ref"]) == ("LI0000555555555", "LI-EAW-2026-31")
    assert request["time_limit_rule"] == "sirene_data_error"


async def test_the_reply_to_a_sirene_request_is_about_the_same_form_and_alert(
    ra: RequestsApp, manager: ApiUser
) -> None:
    """A SIRENE exchange is about one SIS alert (Reg. (EU) 2018/1862 Art. 8(1), SIRENE
    Manual): the reply to a J form on an Art. 32 alert goes out as a J form on that
    Art. 32 alert, with the SIS alert id the partner gave."""
    message = sirene_hit(
        unique_ref(),
        type="request",
        legal_basis="SIS_2018_1862_ART32",
        sirene={"form": "J", "alert_category": "a", "sis_alert_ref": "SE0000987654321"},
    )
    _, request_id = await store_inbound(ra, message, partner_id="se-bureau")
    response = await ra.http.post(
        f"/v1/requests/{request_id}/reply",
        json={"body": "Date of birth corrected in our copy."},
        headers=manager.headers,
    )
    assert response.status_code == 202, response.text
    reply_id = response.json()["message"]["id"]
    reply = await ra.http.get(f"/v1/messages/{reply_id}", headers=manager.headers | JUSTIFY)
    assert reply.status_code == 200, reply.text
    assert reply.json()["content"]["sirene"] == {
        "form": "J",
        "alert_article": 32,
        "alert_category": "a",
        "sis_alert_ref": "SE0000987654321",
        "eaw_ref": None,
    }


async def test_an_inbound_form_that_cannot_go_with_its_alert_is_kept_but_opens_nothing(
    ra: RequestsApp, auditor: ApiUser
) -> None:
    """An A form carries EAW data (FD 2002/584 Art. 8(1); Reg. (EU) 2018/1862 Art. 27-29)
    and goes with Art. 26 arrest alerts only. A partner's A form on an Art. 32 alert is
    its data error: the message is stored (never lost), no request with a made-up time
    limit is opened, and the audit log says which fields contradict each other."""
    message = sirene_hit(unique_ref(), type="request", sirene={"form": "A", "alert_article": 32})
    message["legal_basis"] = "SIS_2018_1862"
    message_id, request_id = await store_inbound(ra, message, partner_id="se-bureau")
    assert request_id is None
    response = await ra.http.get(
        "/v1/audit", params={"subject_id": str(message_id)}, headers=auditor.headers
    )
    assert response.status_code == 200, response.text
    entries = {entry["event"]: entry for entry in response.json()["items"]}
    assert "message.received" in entries
    refused = entries["request.not_opened"]
    assert refused["details"]["fields"] == ["form"]
    assert "Art. 32" in refused["details"]["problems"][0]


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"form": "A", "legal_basis": "SIS_2018_1862_ART32"}, {"form", "alert_article"}),
        ({"form": "F", "alert_article": 38, "legal_basis": "SIS_2018_1862"}, {"form"}),
        ({"form": "Q", "legal_basis": "SIS_2018_1862_ART40"}, {"form"}),
        ({"form": "L", "legal_basis": "SIS_2018_1862_ART38"}, {"form"}),
        ({"alert_article": 32}, {"legal_basis", "alert_article"}),
        ({"legal_basis": "SIS_2018_1861_ART26"}, {"legal_basis"}),
        ({"legal_basis": "SIS_2018_1860", "alert_article": 24}, {"alert_article"}),
        ({"alert_category": "c"}, {"alert_category"}),
        ({"alert_flags": ["child"]}, {"alert_flags"}),
        (
            {"legal_basis": "SIS_2018_1862_ART32", "alert_category": "d", "alert_flags": ["child"]},
            {"alert_flags", "alert_category"},
        ),
    ],
)
async def test_a_request_whose_form_and_alert_do_not_fit_is_422_naming_the_fields(
    ra: RequestsApp, manager: ApiUser, overrides: dict[str, Any], fields: set[str]
) -> None:
    """Form/alert pairs (SIRENE Manual; Reg. (EU) 2018/1862 Art. 24-25 flags on Art. 26,
    32, 36 alerts; Art. 27-29 EAW data with Art. 26; Art. 62 misused identity on known
    persons), the alert articles of each SIS regulation (2018/1862 Art. 26-40, 2018/1861
    Art. 24, 2018/1860 Art. 3), the Art. 32(1) categories and the Art. 8(3) child alerts
    of Art. 32(1)(c): a contradiction is refused with the fields named, nothing stored."""
    response = await ra.http.post(
        "/v1/requests", json=sirene_request(**overrides), headers=manager.headers
    )
    named = {loc[-1] for loc in problem_fields(response)}
    assert fields <= named, response.text


@pytest.mark.parametrize(
    ("basis", "form", "article"),
    [
        ("SIS_2018_1862_ART40", "L", 40),
        ("SIS_2018_1861_ART24", "G", 24),
        ("SIS_2018_1861", "Q", None),
        ("SIS_2018_1860_ART3", "H", 3),
    ],
)
async def test_the_art_40_refusal_of_entry_and_return_bases_have_the_12_hour_limit(
    ra: RequestsApp, manager: ApiUser, basis: str, form: str, article: int | None
) -> None:
    """Reg. (EU) 2018/1862 Art. 40 (unknown wanted persons) and Art. 8(3); Reg. (EU)
    2018/1861 Art. 24 (refusal of entry and stay) and Art. 8(3); Reg. (EU) 2018/1860
    Art. 3 (return), to which its Art. 19 applies Reg. 2018/1861 Art. 8: SIRENE replies
    are due 12 hours after receipt."""
    received = ra.clock()
    response = await ra.http.post(
        "/v1/requests",
        json=sirene_request(legal_basis=basis, form=form, received_at=iso(received)),
        headers=manager.headers,
    )
    assert response.status_code == 201, response.text
    view = response.json()
    assert view["time_limit_rule"] == "sirene_supplementary"
    assert at(view["due_at"]) == received + timedelta(hours=12)
    assert view["alert_article"] == article


async def test_an_outbound_message_whose_form_does_not_fit_its_alert_is_422(
    ra: RequestsApp, sender: ApiUser
) -> None:
    """A flag (F form) can be added only to Art. 26, 32 and 36 alerts (Reg. (EU)
    2018/1862 Art. 24(1)): an F form on an Art. 38 object alert is refused before
    anything is stored or sent, naming the SIRENE fields."""
    message = sirene_hit(
        unique_ref(),
        type="request",
        recipients=["SE"],
        legal_basis="SIS_2018_1862_ART38",
        sirene={"form": "F"},
    )
    response = await ra.http.post("/v1/messages", json=message, headers=sender.headers)
    assert problem_fields(response) == {
        ("body", "sirene", "form"),
        ("body", "sirene", "alert_article"),
    }
    message["sirene"] = {"form": "F", "alert_article": 36}
    message["legal_basis"] = "SIS_2018_1862"
    accepted = await ra.http.post("/v1/messages", json=message, headers=sender.headers)
    assert accepted.status_code == 202, accepted.text
