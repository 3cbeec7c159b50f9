"""POST/GET /v1/messages: shapes, validation, ownership, consultation audit."""

import uuid

import httpx
import orjson

from tests.conftest import ApiUser, MakeUser
from tests.factories import EXAMPLE_MESSAGE, message

READ = {"X-Justification": "case 2026/4411, border check follow-up"}


async def submit(
    http: httpx.AsyncClient, user: ApiUser, body: object, **headers: str
) -> httpx.Response:
    return await http.post("/v1/messages", json=body, headers={**user.headers, **headers})


async def test_submit_answers_202_with_location(http: httpx.AsyncClient, user: ApiUser) -> None:
    response = await submit(http, user, EXAMPLE_MESSAGE)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert [(d["partner"], d["status"]) for d in body["deliveries"]] == [
        ("interpol-ncb", "pending"),
        ("se-bureau", "pending"),
    ]
    assert len({d["id"] for d in body["deliveries"]}) == 2
    uuid.UUID(body["id"])
    assert uuid.UUID(body["id"]).version == 7
    assert response.headers["location"] == f"/v1/messages/{body['id']}"


async def test_read_returns_decrypted_content(http: httpx.AsyncClient, user: ApiUser) -> None:
    message_id = (await submit(http, user, EXAMPLE_MESSAGE)).json()["id"]
    response = await http.get(f"/v1/messages/{message_id}", headers={**user.headers, **READ})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == message_id
    assert body["direction"] == "outbound"
    assert body["subject_kinds"] == ["person", "document", "vehicle", "substance"]
    assert body["submitted_by"] == str(user.id)
    content = body["content"]
    assert content["case_ref"] == "FI-NBI-2026-004411"
    assert content["subjects"][1]["number"] == "XP1234567"
    assert content["subjects"][3]["quantity"] == "12.5"
    assert content["body"] == EXAMPLE_MESSAGE["body"]


async def test_read_without_justification_is_422(http: httpx.AsyncClient, user: ApiUser) -> None:
    message_id = (await submit(http, user, EXAMPLE_MESSAGE)).json()["id"]
    response = await http.get(f"/v1/messages/{message_id}", headers=user.headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert any("X-Justification" in err["loc"] for err in response.json()["errors"])


async def test_read_is_audited_as_consultation(
    http: httpx.AsyncClient, user: ApiUser, make_user: MakeUser
) -> None:
    auditor = await make_user("audit:read")
    message_id = (await submit(http, user, EXAMPLE_MESSAGE)).json()["id"]
    await http.get(f"/v1/messages/{message_id}", headers={**user.headers, **READ})
    entries = (
        await http.get("/v1/audit", params={"subject_id": message_id}, headers=auditor.headers)
    ).json()["items"]
    # Disclosures to partners interleave as the dispatcher delivers; look at ours.
    entries = [e for e in entries if e["action"] != "disclosure"]
    actions = [(e["action"], e["event"]) for e in entries]
    assert actions == [("collection", "message.ingested"), ("consultation", "message.read")]
    consultation = entries[1]
    assert consultation["actor"] == f"client:{user.id}"
    assert consultation["justification"] == READ["X-Justification"]
    verify = (await http.get("/v1/audit/verify", headers=auditor.headers)).json()
    assert verify["ok"] is True


async def test_other_clients_message_is_404(
    http: httpx.AsyncClient, user: ApiUser, make_user: MakeUser
) -> None:
    other = await make_user("messages:read", "messages:write")
    message_id = (await submit(http, user, EXAMPLE_MESSAGE)).json()["id"]
    response = await http.get(f"/v1/messages/{message_id}", headers={**other.headers, **READ})
    assert response.status_code == 404
    assert "XP1234567" not in response.text
    listing = (await http.get("/v1/messages", headers=other.headers)).json()
    assert message_id not in {m["id"] for m in listing["items"]}


async def test_admin_sees_every_message(
    http: httpx.AsyncClient, user: ApiUser, admin: ApiUser
) -> None:
    message_id = (await submit(http, user, EXAMPLE_MESSAGE)).json()["id"]
    response = await http.get(f"/v1/messages/{message_id}", headers={**admin.headers, **READ})
    assert response.status_code == 200


async def test_auth_failures(http: httpx.AsyncClient, make_user: MakeUser) -> None:
    assert (await http.post("/v1/messages", json=EXAMPLE_MESSAGE)).status_code == 401
    bad = {"Authorization": "Bearer ck_not-a-real-key-but-long-enough-to-look-like-one"}
    response = await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=bad)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    reader = await make_user("messages:read")
    response = await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=reader.headers)
    assert response.status_code == 403
    assert "messages:write" in response.json()["detail"]


async def test_validation_error_names_the_field(http: httpx.AsyncClient, user: ApiUser) -> None:
    body = message()
    body["subjects"][2]["vin"] = "WVWZZZ1KZAW00000I"
    response = await submit(http, user, body)
    assert response.status_code == 422
    problem = response.json()
    assert problem["status"] == 422
    assert problem["type"].endswith("/validation")
    assert ["body", "subjects", 2, "vin"] in [err["loc"] for err in problem["errors"]]
    assert "WVWZZZ1KZAW00000I" not in response.text


async def test_server_owned_fields_are_refused(http: httpx.AsyncClient, user: ApiUser) -> None:
    for field, value in (
        ("id", str(uuid.uuid4())),
        ("status", "delivered"),
        ("direction", "inbound"),
    ):
        response = await submit(http, user, message(**{field: value}))
        assert response.status_code == 422, field
        assert [["body", field]] == [err["loc"] for err in response.json()["errors"]]


async def test_malformed_json_and_wrong_media_type(http: httpx.AsyncClient, user: ApiUser) -> None:
    response = await http.post(
        "/v1/messages",
        content=b"{not json",
        headers={**user.headers, "content-type": "application/json"},
    )
    assert response.status_code == 422
    response = await http.post(
        "/v1/messages",
        content=orjson.dumps(EXAMPLE_MESSAGE),
        headers={**user.headers, "content-type": "text/plain"},
    )
    assert response.status_code == 415


async def test_body_over_the_cap_is_413(http: httpx.AsyncClient, user: ApiUser) -> None:
    huge = message(body="x" * (1024 * 1024 + 10))
    response = await submit(http, user, huge)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b" " * 65536
        yield orjson.dumps(EXAMPLE_MESSAGE)

    response = await http.post(
        "/v1/messages",
        content=chunks(),
        headers={**user.headers, "content-type": "application/json"},
    )
    assert response.status_code == 413


async def test_listing_pages_without_gaps_or_repeats(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    owner = await make_user("messages:write", "messages:read")
    ids = [(await submit(http, owner, EXAMPLE_MESSAGE)).json()["id"] for _ in range(7)]
    for order, expected in (("desc", ids[::-1]), ("asc", ids)):
        seen: list[str] = []
        cursor = None
        while True:
            # Inbound messages (other tests') are visible to any reader: look at ours.
            params: dict[str, str | int] = {"limit": 3, "order": order, "direction": "outbound"}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/v1/messages", params=params, headers=owner.headers)).json()
            seen += [item["id"] for item in page["items"]]
            assert all("content" not in item for item in page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        assert seen == expected


async def test_listing_filters(http: httpx.AsyncClient, make_user: MakeUser) -> None:
    owner = await make_user("messages:write", "messages:read")
    with_vehicle = (await submit(http, owner, EXAMPLE_MESSAGE)).json()["id"]
    body = message(case_ref="FI-NBI-2026-000001", subjects=[EXAMPLE_MESSAGE["subjects"][1]])
    document_only = (await submit(http, owner, body)).json()["id"]

    async def ids(**params: str) -> list[str]:
        params.setdefault("direction", "outbound")  # not other tests' inbound messages
        page = (await http.get("/v1/messages", params=params, headers=owner.headers)).json()
        return [item["id"] for item in page["items"]]

    assert await ids(subject_type="vehicle") == [with_vehicle]
    assert await ids(subject_type="document") == [document_only, with_vehicle]
    assert await ids(case_ref="fi nbi 2026 000001") == [document_only]
    assert not {with_vehicle, document_only} & set(await ids(direction="inbound"))
    assert await ids(since="2999-01-01T00:00:00Z") == []


async def test_bad_list_parameters_are_422(http: httpx.AsyncClient, user: ApiUser) -> None:
    for params in (
        {"limit": 0},
        {"limit": 501},
        {"cursor": "garbage"},
        {"since": "yesterday"},
        {"order": "x"},
    ):
        response = await http.get("/v1/messages", params=params, headers=user.headers)
        assert response.status_code == 422, params
    response = await http.get("/v1/messages/not-a-uuid", headers={**user.headers, **READ})
    assert response.status_code == 422
