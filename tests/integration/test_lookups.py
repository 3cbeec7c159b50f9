"""POST /v1/lookups: hit checks through the blind index."""

import uuid

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from commcentre.db import Database
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


async def test_lookup_without_justification_is_422(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A hit check is a consultation (Law Enforcement Directive 2016/680 Art. 25(1)): its
    log must show the justification, so without X-Justification there is no lookup."""
    owner = await make_user("messages:read")
    query = {"queries": [{"kind": "vehicle", "vin": "WVWZZZ1KZAW000001"}]}
    response = await http.post("/v1/lookups", json=query, headers=owner.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["header", "X-Justification"]
    auditor = await make_user("audit:read")
    entries = (
        await http.get("/v1/audit", params={"actor": f"client:{owner.id}"}, headers=auditor.headers)
    ).json()["items"]
    assert entries == []


async def test_each_query_is_audited_with_its_digest_and_the_ids_returned(
    http: httpx.AsyncClient, app: FastAPI, make_user: MakeUser
) -> None:
    """LED 2016/680 Art. 25(1): a consultation's log shows its justification, date, time and
    who made it, and, as far as possible, what was consulted: here the keyed digest of the
    normalised query terms (the blind-index HMAC, never the terms) and the message ids it
    returned, one entry per query."""
    owner = await make_user("messages:write", "messages:read")
    auditor = await make_user("audit:read")
    number = f"AU{uuid.uuid4().int % 10**7:07d}"
    message_id = (
        await http.post(
            "/v1/messages",
            json=document_message(number, "FI", case_ref=f"FI-AUDIT-{number}"),
            headers=owner.headers,
        )
    ).json()["id"]
    queries = [
        {"kind": "document", "number": number.lower(), "issuing_country": "FIN"},
        {"kind": "person", "surname": "Nobody", "forename": "Here"},
    ]
    response = await http.post(
        "/v1/lookups", json={"queries": queries}, headers=owner.headers | WHY
    )
    assert response.status_code == 200, response.text
    entries = (
        await http.get(
            "/v1/audit",
            params={"actor": f"client:{owner.id}", "event": "lookup.performed"},
            headers=auditor.headers,
        )
    ).json()["items"]
    assert [e["action"] for e in entries] == ["consultation", "consultation"]
    assert {e["justification"] for e in entries} == {WHY["X-Justification"]}
    assert all(e["occurred_at"] for e in entries)
    index = app.state.runtime.vault.blind_index
    hit, miss = sorted(entries, key=lambda e: e["details"]["query_index"])
    assert hit["details"] == {
        "query_index": 0,
        "queries": 2,
        "kind": "document",
        "terms": [index.digest("document", f"FI|{number}").hex()],
        "matches": 1,
        "message_ids": [message_id],
    }
    assert miss["details"]["terms"] == [index.digest("person", "NOBODY|HERE|").hex()]
    assert (miss["details"]["matches"], miss["details"]["message_ids"]) == (0, [])


async def test_query_terms_never_reach_the_audit_table(
    http: httpx.AsyncClient, db: Database, make_user: MakeUser
) -> None:
    """The query terms are personal data (LED Art. 4(1)(e)/GDPR Art. 4(1) definition): the
    audit log keeps their keyed digest only. Every audit row is read back raw and searched."""
    owner = await make_user("messages:write", "messages:read")
    canary = f"QX{uuid.uuid4().hex[:10].upper()}"
    national_id = "131052-308T"
    queries = [
        {"kind": "document", "number": canary, "issuing_country": "FI"},
        {"kind": "document", "number": canary.lower()},
        {"kind": "vehicle", "plate": f"{canary}P", "registration_country": "SE"},
        {"kind": "person", "surname": f"{canary}SUR", "forename": f"{canary}FORE"},
        {"kind": "national_id", "country": "FI", "number": national_id},
    ]
    response = await http.post(
        "/v1/lookups", json={"queries": queries}, headers=owner.headers | WHY
    )
    assert response.status_code == 200, response.text
    async with db.read_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM audit_entries"))).all()
    dumped = repr(rows).upper()
    assert f"CLIENT:{owner.id}".upper() in dumped  # the entries are there
    for term in (canary, "131052", "308T"):
        assert term not in dumped
