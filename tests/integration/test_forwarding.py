"""POST /v1/messages/{id}/forward: handling codes H0-H3 decide, and leave audit entries."""

import copy
import uuid
from typing import Any

import httpx
import pytest

from commcentre.partners.schemas import generate_signing_secret
from tests.conftest import ApiUser, MakeUser, wait_delivered
from tests.factories import EXAMPLE_MESSAGE
from tests.inbound_support import receive

WHY = {"X-Justification": "case 2026/4411: pass the hit on to Europol"}


async def _partner(http: httpx.AsyncClient, admin: ApiUser, secret: str) -> str:
    partner_id = f"fwd-{uuid.uuid4().hex[:10]}"
    response = await http.post(
        "/v1/partners",
        json={
            "id": partner_id,
            "name": "forwarding test partner (loopback)",
            "adapter": "loopback",
            "allow_loopback": True,
            "signing_secrets": [secret],
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return partner_id


def _content(codes: list[str]) -> dict[str, Any]:
    content = copy.deepcopy(EXAMPLE_MESSAGE)
    content["recipients"] = ["FI"]
    content["handling_codes"] = codes
    if "H3" in codes:
        content["h3_text"] = "not for use outside the Nordic states"
    return content


@pytest.fixture
async def parties(http: httpx.AsyncClient, admin: ApiUser) -> tuple[str, str, str]:
    """(originator, its secret, a third partner)."""
    secret = generate_signing_secret()
    originator = await _partner(http, admin, secret)
    third = await _partner(http, admin, generate_signing_secret())
    return originator, secret, third


async def _audit(http: httpx.AsyncClient, admin: ApiUser, subject_id: str) -> list[dict[str, Any]]:
    response = await http.get("/v1/audit", params={"subject_id": subject_id}, headers=admin.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


@pytest.mark.parametrize("code", ["H2", "H3"])
async def test_h2_and_h3_refuse_forwarding_to_anyone_but_the_originator(
    http: httpx.AsyncClient,
    admin: ApiUser,
    make_user: MakeUser,
    parties: tuple[str, str, str],
    code: str,
) -> None:
    originator, secret, third = parties
    received = await receive(http, originator, secret, _content([code]))
    operator = await make_user("messages:read", "messages:write")
    response = await http.post(
        f"/v1/messages/{received}/forward",
        json={"partners": [third]},
        headers={**operator.headers, **WHY},
    )
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    assert f"handling code {code}" in detail
    assert third in detail
    assert originator in detail
    refused = [
        e for e in await _audit(http, admin, received) if e["event"] == "message.forward_refused"
    ]
    assert len(refused) == 1
    entry = refused[0]
    assert entry["action"] == "disclosure"
    assert entry["actor"] == f"client:{operator.id}"
    assert entry["justification"] == WHY["X-Justification"]
    assert entry["details"]["blocked_by"] == code
    assert entry["details"]["refused_partners"] == [third]
    # No copy was made.
    listing = await http.get("/v1/messages", headers=operator.headers)
    assert all(m.get("forwarded_from") != received for m in listing.json()["items"])
    # Back to the originator is allowed.
    back = await http.post(
        f"/v1/messages/{received}/forward",
        json={"partners": [originator]},
        headers={**operator.headers, **WHY},
    )
    assert back.status_code == 202, back.text


@pytest.mark.parametrize(("codes", "markings"), [([], []), (["H0"], []), (["H0", "H1"], ["H1"])])
async def test_h0_and_h1_forward_and_the_copy_keeps_its_codes(
    http: httpx.AsyncClient,
    app: Any,
    admin: ApiUser,
    make_user: MakeUser,
    parties: tuple[str, str, str],
    codes: list[str],
    markings: list[str],
) -> None:
    originator, secret, third = parties
    received = await receive(http, originator, secret, _content(codes))
    operator = await make_user("messages:read", "messages:write")
    response = await http.post(
        f"/v1/messages/{received}/forward",
        json={"partners": [third]},
        headers={**operator.headers, **WHY, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["forwarded_from"] == received
    assert [m.split(":")[0] for m in body["markings"]] == markings
    assert [d["partner"] for d in body["deliveries"]] == [third]
    copy_id = body["id"]
    copy_view = await http.get(f"/v1/messages/{copy_id}", headers={**operator.headers, **WHY})
    assert copy_view.status_code == 200, copy_view.text
    view = copy_view.json()
    assert view["direction"] == "outbound"
    assert view["forwarded_from"] == received
    assert view["handling_codes"] == codes
    assert view["content"]["recipients"] == [third]
    assert view["content"]["body"] == EXAMPLE_MESSAGE["body"]
    # The copy is in the original's thread.
    thread = await http.get(
        "/v1/messages",
        params={"case_ref": EXAMPLE_MESSAGE["case_ref"], "order": "asc"},
        headers=admin.headers,
    )
    ids = [m["id"] for m in thread.json()["items"]]
    assert ids.index(received) < ids.index(copy_id)
    entries = await _audit(http, admin, copy_id)
    forwarded = [e for e in entries if e["event"] == "message.forwarded"]
    assert len(forwarded) == 1
    assert forwarded[0]["details"]["forwarded_from"] == received
    assert forwarded[0]["details"]["handling_codes"] == codes
    assert forwarded[0]["justification"] == WHY["X-Justification"]
    # The partner receives the copy with its handling codes.
    await wait_delivered(http, operator.headers, copy_id)
    loopback = app.state.runtime.adapters.get("loopback")
    delivered = [m for _, m in loopback.received(third) if str(m.id) == copy_id]
    assert len(delivered) == 1
    assert [c.value for c in delivered[0].content.handling_codes] == codes


async def test_forward_refuses_what_is_not_a_received_message(
    http: httpx.AsyncClient, user: ApiUser, parties: tuple[str, str, str]
) -> None:
    _, _, third = parties
    submitted = await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=user.headers)
    outbound = submitted.json()["id"]
    response = await http.post(
        f"/v1/messages/{outbound}/forward",
        json={"partners": [third]},
        headers={**user.headers, **WHY},
    )
    assert response.status_code == 409, response.text
    missing = await http.post(
        f"/v1/messages/{uuid.uuid4()}/forward",
        json={"partners": [third]},
        headers={**user.headers, **WHY},
    )
    assert missing.status_code == 404


async def test_forward_input_errors_are_4xx(
    http: httpx.AsyncClient,
    make_user: MakeUser,
    parties: tuple[str, str, str],
) -> None:
    originator, secret, third = parties
    received = await receive(http, originator, secret, _content([]))
    operator = await make_user("messages:read", "messages:write")
    url = f"/v1/messages/{received}/forward"
    cases: list[tuple[dict[str, str], Any, int]] = [
        (WHY, {"partners": ["no-such-partner"]}, 422),
        (WHY, {"partners": []}, 422),
        (WHY, {"partners": [third], "handling_codes": []}, 422),
        (WHY, {"partners": ["Bad Id!"]}, 422),
        ({}, {"partners": [third]}, 422),  # no justification
    ]
    for extra, body, status in cases:
        response = await http.post(url, json=body, headers={**operator.headers, **extra})
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    reader_only = await make_user("messages:read")
    response = await http.post(
        url, json={"partners": [third]}, headers={**reader_only.headers, **WHY}
    )
    assert response.status_code == 403
