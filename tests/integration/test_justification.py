"""X-Justification: UTF-8 text, raw or RFC 8187 percent-encoded, kept intact in the audit log.

Law Enforcement Directive (EU) 2016/680 Art. 25(1): the log of a consultation
must make it possible to establish its justification. A justification stored as
mojibake (``cafÃ© â\x98\x83`` for ``café ☃``) no longer says what the operator wrote.
"""

import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import ApiUser, MakeUser
from tests.factories import message
from tests.integration.requests_support import directive_request, unique_ref

TEXT = "café ☃ — Åland ärende 2026/4411"
PERCENT = "UTF-8''caf%C3%A9%20%E2%98%83%20%E2%80%94%20%C3%85land%20%C3%A4rende%202026%2F4411"
PROBLEM = "application/problem+json"

RawHeaders = list[tuple[bytes, bytes]]


def raw(user: ApiUser, *justifications: bytes) -> RawHeaders:
    """Headers as bytes: httpx sends str header values as ASCII only."""
    headers = [(b"Authorization", user.headers["Authorization"].encode())]
    return headers + [(b"X-Justification", value) for value in justifications]


@pytest.fixture
async def auditor(make_user: MakeUser) -> ApiUser:
    return await make_user("audit:read", name="dpo")


async def consultations(
    http: httpx.AsyncClient, auditor: ApiUser, user: ApiUser, event: str
) -> list[dict[str, Any]]:
    response = await http.get(
        "/v1/audit", params={"actor": f"client:{user.id}", "event": event}, headers=auditor.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def submitted(http: httpx.AsyncClient, user: ApiUser) -> str:
    # A case of its own: other tests list the example's case and page through it.
    body = message(case_ref=f"FI-JUST-{uuid.uuid4().hex[:12].upper()}")
    response = await http.post("/v1/messages", json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    message_id: str = response.json()["id"]
    return message_id


@pytest.mark.parametrize("form", ["raw", "percent"])
async def test_message_read_keeps_non_ascii_justification(
    http: httpx.AsyncClient, user: ApiUser, auditor: ApiUser, form: str
) -> None:
    """A consultation's justification (LED Art. 25) is stored as the UTF-8 text sent."""
    message_id = await submitted(http, user)
    value = TEXT.encode() if form == "raw" else PERCENT.encode()
    response = await http.get(f"/v1/messages/{message_id}", headers=raw(user, value))
    assert response.status_code == 200, response.text
    [entry] = await consultations(http, auditor, user, "message.read")
    assert entry["justification"] == TEXT


@pytest.mark.parametrize("form", ["raw", "percent"])
async def test_lookup_keeps_non_ascii_justification(
    http: httpx.AsyncClient, user: ApiUser, auditor: ApiUser, form: str
) -> None:
    """Hit checks are consultations too (LED Art. 25): same header, same decoding."""
    value = TEXT.encode() if form == "raw" else PERCENT.encode()
    body = {"queries": [{"kind": "vehicle", "vin": "WVWZZZ1KZAW000001"}]}
    response = await http.post("/v1/lookups", json=body, headers=raw(user, value))
    assert response.status_code == 200, response.text
    [entry] = await consultations(http, auditor, user, "lookup.performed")
    assert entry["justification"] == TEXT


async def test_request_read_keeps_non_ascii_justification(
    http: httpx.AsyncClient, make_user: MakeUser, auditor: ApiUser
) -> None:
    """GET /v1/requests/{id} (a consultation, LED Art. 25) decodes the header the same way."""
    manager = await make_user("requests:manage", "messages:read", name="sirene-desk")
    created = await http.post(
        "/v1/requests", json=directive_request(unique_ref()), headers=manager.headers
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    response = await http.get(f"/v1/requests/{request_id}", headers=raw(manager, PERCENT.encode()))
    assert response.status_code == 200, response.text
    response = await http.get(f"/v1/requests/{request_id}", headers=raw(manager, TEXT.encode()))
    assert response.status_code == 200, response.text
    entries = await consultations(http, auditor, manager, "request.read")
    assert [e["justification"] for e in entries] == [TEXT, TEXT]


async def test_length_is_counted_in_characters_after_decoding(
    http: httpx.AsyncClient, user: ApiUser, auditor: ApiUser
) -> None:
    """500 characters is the limit (API.md), whatever their UTF-8 length in bytes."""
    message_id = await submitted(http, user)
    longest = "☃" * 500  # 1,500 bytes raw, 4,507 percent-encoded
    encoded = "UTF-8''" + "%E2%98%83" * 500
    for value in (longest, encoded):
        response = await http.get(f"/v1/messages/{message_id}", headers=raw(user, value.encode()))
        assert response.status_code == 200, response.text
    entries = await consultations(http, auditor, user, "message.read")
    assert [e["justification"] for e in entries] == [longest, longest]
    for too_long in ("☃" * 501, "UTF-8''" + "%E2%98%83" * 501, "x" * 501):
        response = await http.get(
            f"/v1/messages/{message_id}", headers=raw(user, too_long.encode())
        )
        assert response.status_code == 422, response.text
    assert len(await consultations(http, auditor, user, "message.read")) == 2


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"caf\xe9", "justification_encoding"),  # ISO-8859-1, not UTF-8
        (b"\xed\xa0\x80 lone surrogate", "justification_encoding"),
        (b"UTF-8''caf%C3", "justification_encoding"),  # truncated UTF-8 sequence
        (b"UTF-8''caf%E9", "justification_encoding"),  # ISO-8859-1 byte, percent-encoded
        (b"UTF-8''caf%G9", "justification_encoding"),  # not a percent sequence
        (b"UTF-8''caf%C", "justification_encoding"),
        (b"UTF-8''two words", "justification_encoding"),  # space must be %20
        (b"utf-8''caf\xc3\xa9", "justification_encoding"),  # raw bytes inside an ext-value
        (b"UTF-8''line%0Abreak", "control_characters"),
        (b"UTF-8''nul%00", "control_characters"),
        (b"tab\there", "control_characters"),
        ("line\u2028separator".encode(), "control_characters"),
        (b"UTF-8''", "justification_empty"),
        (b"", "justification_empty"),
    ],
)
async def test_malformed_justification_is_422_naming_the_header(
    http: httpx.AsyncClient, user: ApiUser, value: bytes, kind: str
) -> None:
    """An unreadable justification cannot justify a consultation: 422, value not echoed."""
    message_id = await submitted(http, user)
    response = await http.get(f"/v1/messages/{message_id}", headers=raw(user, value))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    [error] = response.json()["errors"]
    assert error["loc"] == ["header", "X-Justification"]
    assert error["type"] == kind
    assert "caf" not in response.text
    assert "separator" not in response.text


async def test_repeated_header_is_422(http: httpx.AsyncClient, user: ApiUser) -> None:
    """Two justifications for one consultation: the log could only keep one of them."""
    message_id = await submitted(http, user)
    response = await http.get(
        f"/v1/messages/{message_id}", headers=raw(user, b"first reason", b"second reason")
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["header", "X-Justification"]


async def test_language_tag_and_charset_case_are_accepted(
    http: httpx.AsyncClient, user: ApiUser, auditor: ApiUser
) -> None:
    """RFC 8187 3.2.1: the charset is case-insensitive and a language tag may follow it."""
    message_id = await submitted(http, user)
    for value in (b"utf-8'fi'caf%c3%a9", b"UTF-8'sv-FI'caf%C3%A9"):
        response = await http.get(f"/v1/messages/{message_id}", headers=raw(user, value))
        assert response.status_code == 200, response.text
    entries = await consultations(http, auditor, user, "message.read")
    assert [e["justification"] for e in entries] == ["café", "café"]
