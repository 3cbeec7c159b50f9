"""POST /v1/lookups: hit checks through the blind index."""

import uuid

import httpx

from tests.conftest import MakeUser
from tests.factories import EXAMPLE_MESSAGE, document_message

WHY = {"X-Justification": "border check, case 2026/4411"}


async def test_lookup_finds_normalised_identifiers(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    owner = await make_user("messages:write", "messages:read")
    number = f"XX{uuid.uuid4().int % 10**7:07d}"
    spaced = f"{number[:2].lower()} {number[2:5]}-{number[5:]}"
    message_id = (
        await http.post("/v1/messages", json=document_message(number, "FI"), headers=owner.headers)
    ).json()["id"]
    queries = [
        {"kind": "document", "number": spaced, "issuing_country": "FIN"},
        {"kind": "document", "number": spaced},
        {"kind": "document", "number": spaced, "issuing_country": "SE"},
    ]
    response = await http.post(
        "/v1/lookups", json={"queries": queries}, headers=owner.headers | WHY
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["hit"] for r in results] == [True, True, False]
    assert results[0]["message_ids"] == [message_id]
    assert results[0]["matches"] == 1
    assert results[0]["first_seen"] is not None


async def test_lookup_vehicle_and_person(http: httpx.AsyncClient, make_user: MakeUser) -> None:
    owner = await make_user("messages:write", "messages:read")
    await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=owner.headers)
    queries = [
        {"kind": "vehicle", "vin": "wvwzzz1kzaw000001"},
        {"kind": "vehicle", "plate": "abc 123", "registration_country": "FIN"},
        {"kind": "person", "surname": "Virtanen", "forename": "Matti", "date_of_birth": "1984"},
        {"kind": "person", "surname": "Virtanen", "forename": "Matti", "date_of_birth": "1984-07"},
        {"kind": "person", "surname": "Virtanen", "forename": "Maija"},
    ]
    results = (
        await http.post("/v1/lookups", json={"queries": queries}, headers=owner.headers | WHY)
    ).json()["results"]
    assert [r["hit"] for r in results] == [True, True, True, True, False]


async def test_lookup_sees_only_visible_messages(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    owner = await make_user("messages:write", "messages:read")
    stranger = await make_user("messages:read")
    number = f"ZZ{uuid.uuid4().int % 10**7:07d}"
    await http.post("/v1/messages", json=document_message(number), headers=owner.headers)
    query = {"queries": [{"kind": "document", "number": number, "issuing_country": "FI"}]}
    result = (await http.post("/v1/lookups", json=query, headers=stranger.headers | WHY)).json()[
        "results"
    ][0]
    assert result == {**result, "hit": False, "matches": 0, "message_ids": []}


async def test_lookup_is_audited_without_identifiers(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    owner = await make_user("messages:write", "messages:read")
    auditor = await make_user("audit:read")
    number = f"QQ{uuid.uuid4().int % 10**7:07d}"
    query = {"queries": [{"kind": "document", "number": number, "issuing_country": "FI"}]}
    await http.post(
        "/v1/lookups", json=query, headers={**owner.headers, "X-Justification": "hit check"}
    )
    entries = (
        await http.get(
            "/v1/audit",
            params={"actor": f"client:{owner.id}", "event": "lookup.performed"},
            headers=auditor.headers,
        )
    ).json()["items"]
    assert len(entries) == 1
    assert entries[0]["justification"] == "hit check"
    assert number not in str(entries[0])


async def test_bad_lookups_are_422(http: httpx.AsyncClient, make_user: MakeUser) -> None:
    owner = await make_user("messages:read")
    for body in (
        {"queries": []},
        {"queries": [{"kind": "vehicle", "plate": "ABC123"}]},
        {"queries": [{"kind": "spaceship", "number": "1"}]},
        {"queries": [{"kind": "document", "number": "X1", "extra": 1}]},
        {"queries": [{"kind": "document", "number": "X1"}] * 101},
    ):
        response = await http.post("/v1/lookups", json=body, headers=owner.headers | WHY)
        assert response.status_code == 422, body
