"""Identity data of subjects through the API: ICAO 9303 codes, MRZ, Finnish identity codes.

The rules themselves are tested in tests/unit/test_identity_rules.py; these tests
check that the API accepts, stores, indexes and refuses them end to end.
"""

import uuid

import httpx

from tests.conftest import MakeUser
from tests.factories import message

WHY = {"X-Justification": "identity check, case 2026/4411"}


def own_case() -> str:
    """A case of its own: other tests list the example's case and page through it."""
    return f"FI-IDENT-{uuid.uuid4().hex[:12].upper()}"


async def test_lookup_by_finnish_identity_code_respects_the_century_sign(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """Government Decree 128/2010 s. 2 as amended from 1 January 2023: the century sign
    distinguishes people, so 010190-... and 010190Y... (same digits and check character)
    are two people and a lookup for one must not find the other."""
    owner = await make_user("messages:write", "messages:read")
    individual = f"{2 + uuid.uuid4().int % 898:03d}"
    check = "0123456789ABCDEFHJKLMNPRSTUVWXY"[int("010190" + individual) % 31]
    minus, why = f"010190-{individual}{check}", f"010190Y{individual}{check}"
    person = {
        "kind": "person",
        "surnames": ["KORHONEN"],
        "forenames": ["AINO"],
        "national_id": minus,
        "national_id_country": "FIN",
    }
    created = await http.post(
        "/v1/messages", json=message(subjects=[person], case_ref=own_case()), headers=owner.headers
    )
    assert created.status_code == 202, created.text
    queries = [
        {"kind": "national_id", "country": "FI", "number": minus.lower()},
        {"kind": "national_id", "country": "FI", "number": why},
    ]
    results = (
        await http.post("/v1/lookups", json={"queries": queries}, headers=owner.headers | WHY)
    ).json()["results"]
    assert [r["message_ids"] for r in results] == [[created.json()["id"]], []]


async def test_special_icao_codes_and_mrz_through_the_api(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """ICAO Doc 9303 Part 3 s. 5: a stateless (XXA) person with a travel document issued by
    the EU (EUE) and its MRZ (Part 4, check digits per Part 3 s. 4.9) is accepted, stored as
    sent, and found by the document number."""
    owner = await make_user("messages:write", "messages:read")
    mrz = [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    ]
    subjects = [
        {"kind": "person", "surnames": ["ERIKSSON"], "nationalities": ["XXA", "RKS"],
         "interpol_notice": {"colour": "yellow", "reference": "A-1/1-2026"}},
        {"kind": "document", "number": "L898902C3", "type": "passport",
         "issuing_country": "EUE", "status": "lost", "mrz": mrz},
    ]  # fmt: skip
    created = await http.post(
        "/v1/messages", json=message(subjects=subjects, case_ref=own_case()), headers=owner.headers
    )
    assert created.status_code == 202, created.text
    read = (
        await http.get(f"/v1/messages/{created.json()['id']}", headers=owner.headers | WHY)
    ).json()["content"]["subjects"]
    assert read[0]["nationalities"] == ["XXA", "XK"]
    assert read[0]["interpol_notice"] == {"colour": "yellow", "reference": "A-1/1-2026"}
    assert (read[1]["issuing_country"], read[1]["mrz"]) == ("EUE", mrz)
    query = {"queries": [{"kind": "document", "number": "L898902C3", "issuing_country": "EUE"}]}
    result = (await http.post("/v1/lookups", json=query, headers=owner.headers | WHY)).json()[
        "results"
    ][0]
    assert created.json()["id"] in result["message_ids"]


async def test_bad_identity_data_is_422_naming_the_field(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    """A wrong MRZ check digit (ICAO Doc 9303 Part 3 s. 4.9) or Finnish check character
    (Decree 128/2010 s. 2) is a 422 that names the field and the check, without the value."""
    owner = await make_user("messages:write", "messages:read")
    mrz = [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408123F1204159ZE184226B<<<<<10",  # birth date changed, digit not
    ]
    document = {"kind": "document", "number": "L898902C3", "type": "passport",
                "issuing_country": "FI", "status": "lost", "mrz": mrz}  # fmt: skip
    response = await http.post(
        "/v1/messages",
        json=message(subjects=[document], case_ref=own_case()),
        headers=owner.headers,
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", "subjects", 0, "mrz"]
    assert "check digit of the date of birth" in error["msg"]
    assert "ERIKSSON" not in response.text
    person = {"kind": "person", "surnames": ["X"], "national_id": "131052-308U",
              "national_id_country": "FI"}  # fmt: skip
    response = await http.post(
        "/v1/messages", json=message(subjects=[person], case_ref=own_case()), headers=owner.headers
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["loc"], error["type"]) == (
        ["body", "subjects", 0, "national_id"],
        "fi_identity_code_check",
    )
    assert "308U" not in response.text
