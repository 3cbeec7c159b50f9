"""Encryption at rest: no plaintext in the store; tampering is a clear error."""

from pathlib import Path

import httpx
from sqlalchemy import text

from commcentre.db import Database
from commcentre.models import metadata
from tests.conftest import ApiUser
from tests.factories import message

CANARY = "CANARYQZX"


def canary_message() -> dict[str, object]:
    c = CANARY
    return message(
        case_ref=f"{c}-CASE",
        partner_ref=f"{c}-PREF",
        urgency_reason=f"{c} urgency",
        classification=f"{c}-CLASS",
        offence=f"{c}-OFF",
        handling_codes=["H3"],
        h3_text=f"{c} restriction",
        body=f"{c} body text",
        subjects=[
            {
                "kind": "person",
                "surnames": [f"{c}SUR"],
                "forenames": [f"{c}FORE"],
                "name_at_birth": f"{c}BIRTH",
                "aliases": [f"{c}ALIAS"],
                "place_of_birth": f"{c}PLACE",
                "date_of_birth": "1984-07-01",
                "national_id": f"{c}NID",
                "document_refs": [f"{c}DREF"],
                "biometric_refs": [f"{c}BREF"],
                "role": "suspect",
            },
            {
                "kind": "document",
                "number": f"{c}123",
                "type": "passport",
                "issuing_country": "FI",
                "status": "stolen",
            },
            {
                "kind": "vehicle",
                "plate": f"{c}PL",
                "registration_country": "FI",
                "make": f"{c}MAKE",
                "model": f"{c}MODEL",
                "colour": f"{c}COLOUR",
            },
            {
                "kind": "substance",
                "name": f"{c}SUBST",
                "markings": f"{c}MARK",
                "quantity": "1",
                "unit": "g",
            },
        ],
    )


def sqlite_path(url: str) -> Path:
    return Path(url.split("///", 1)[1])


async def test_no_payload_plaintext_in_the_store(
    http: httpx.AsyncClient, user: ApiUser, db: Database, database_url: str
) -> None:
    body = canary_message()
    response = await http.post(
        "/v1/messages", json=body, headers={**user.headers, "Idempotency-Key": "canary-1"}
    )
    assert response.status_code == 202, response.text
    read = await http.get(
        f"/v1/messages/{response.json()['id']}",
        headers={**user.headers, "X-Justification": "canary check"},
    )
    assert CANARY in read.text  # it is stored, just never in clear
    async with db.read_engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(table.select())).all()
            dumped = repr(rows).encode() + b"".join(
                value for row in rows for value in row if isinstance(value, bytes)
            )
            assert CANARY.encode() not in dumped, table.name
            assert CANARY.lower().encode() not in dumped, table.name
    if database_url.startswith("sqlite"):
        # The file itself, with its write-ahead log: nothing escapes into free pages either.
        path = sqlite_path(database_url)
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        assert CANARY.encode() not in raw
        assert CANARY.lower().encode() not in raw
        assert CANARY.encode("utf-16-le") not in raw


async def test_error_bodies_never_echo_payload(http: httpx.AsyncClient, user: ApiUser) -> None:
    body = canary_message()
    body["subjects"][1]["issuing_country"] = f"{CANARY}"  # type: ignore[index]
    body["info_accuracy"] = 9
    response = await http.post("/v1/messages", json=body, headers=user.headers)
    assert response.status_code == 422
    assert CANARY not in response.text


async def test_ciphertext_moved_to_another_row_fails_cleanly(
    http: httpx.AsyncClient, user: ApiUser, db: Database
) -> None:
    a = (await http.post("/v1/messages", json=message(body="first"), headers=user.headers)).json()[
        "id"
    ]
    b = (await http.post("/v1/messages", json=message(body="second"), headers=user.headers)).json()[
        "id"
    ]
    async with db.write_engine.begin() as conn:
        row = (
            await conn.execute(
                text("SELECT wrapped_key, ciphertext FROM messages WHERE id = :id"),
                {"id": _db_id(db, a)},
            )
        ).one()
        await conn.execute(
            text("UPDATE messages SET wrapped_key = :w, ciphertext = :c WHERE id = :id"),
            {"w": row.wrapped_key, "c": row.ciphertext, "id": _db_id(db, b)},
        )
    response = await http.get(
        f"/v1/messages/{b}", headers={**user.headers, "X-Justification": "integrity check"}
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert "first" not in response.text
    ok = await http.get(
        f"/v1/messages/{a}", headers={**user.headers, "X-Justification": "integrity check"}
    )
    assert ok.status_code == 200


def _db_id(db: Database, value: str) -> object:
    import uuid

    # SQLAlchemy's Uuid stores 32 hex chars on SQLite and a native uuid on PostgreSQL.
    return uuid.UUID(value).hex if db.is_sqlite else uuid.UUID(value)
