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
    assert sorted(d["partner"] for d in message["deliveries"]) == [ARCHIVE, SPOC]
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
