"""Conversations by case_ref, and the commit-ordered feed of GET /v1/messages?order=asc."""

import asyncio
import copy
import uuid
from typing import Any

import httpx

from commcentre.partners.schemas import generate_signing_secret
from tests.conftest import ApiUser, MakeUser
from tests.factories import EXAMPLE_MESSAGE
from tests.inbound_support import receive


def _message(case_ref: str | None, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE_MESSAGE)
    body.pop("case_ref", None)
    if case_ref is not None:
        body["case_ref"] = case_ref
    body.update(changes)
    return body


async def _submit(http: httpx.AsyncClient, user: ApiUser, body: dict[str, Any]) -> str:
    response = await http.post("/v1/messages", json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def test_a_reply_without_case_ref_joins_the_thread_it_answers(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("messages:read", "messages:write")
    first = await _submit(http, user, _message("FI-NBI-2026-THREAD-1"))
    await _submit(http, user, _message("FI-NBI-2026-OTHER"))
    reply = await _submit(http, user, _message(None, type="reply", in_reply_to=first))
    reply_to_reply = await _submit(http, user, _message(None, type="reply", in_reply_to=reply))
    # The case_ref is matched normalised, as lookups do.
    response = await http.get(
        "/v1/messages",
        params={"case_ref": "fi-nbi-2026-thread-1", "order": "asc"},
        headers=user.headers,
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [m["id"] for m in items] == [first, reply, reply_to_reply]
    assert [m["in_reply_to"] for m in items] == [None, first, reply]


async def test_a_reply_to_an_unknown_message_starts_no_thread(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("messages:read", "messages:write")
    orphan = _message(None, type="reply", in_reply_to="01936f0e-8a7b-7c3d-9e2f-1a2b3c4d5e6f")
    await _submit(http, user, orphan)
    response = await http.get(
        "/v1/messages", params={"case_ref": "FI-NBI-2026-NOWHERE"}, headers=user.headers
    )
    assert response.json()["items"] == []


async def test_feed_pages_in_commit_order_without_gaps_or_repeats_while_writers_commit(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("messages:read", "messages:write")
    accepted: list[str] = []
    seen: list[str] = []

    async def write(n: int) -> None:
        for _ in range(n):
            accepted.append(await _submit(http, user, _message("FI-NBI-2026-FEED")))

    async def read(cursor: str | None) -> str | None:
        # Other tests' inbound messages are visible to any reader: follow ours.
        params: dict[str, Any] = {"order": "asc", "limit": 7, "direction": "outbound"}
        if cursor is not None:
            params["cursor"] = cursor
        page = await http.get("/v1/messages", params=params, headers=user.headers)
        assert page.status_code == 200, page.text
        body = page.json()
        seen.extend(m["id"] for m in body["items"])
        assert body["resume_cursor"] is not None
        return str(body["resume_cursor"])

    writers = [asyncio.create_task(write(15)) for _ in range(4)]
    cursor: str | None = None
    while not all(w.done() for w in writers):
        cursor = await read(cursor)
        await asyncio.sleep(0)
    await asyncio.gather(*writers)
    for _ in range(20):  # drain what committed after the last read
        before = len(seen)
        cursor = await read(cursor)
        if len(seen) == before:
            break
    assert len(seen) == len(set(seen)), "a message was listed twice"
    assert sorted(seen) == sorted(accepted), "a committed message was skipped"
    # Nothing after the end: the resume cursor stays where it was.
    assert await read(cursor) == cursor


async def test_feed_resume_cursor_starts_at_the_beginning_when_nothing_was_seen(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user("messages:read", "messages:write")
    feed = {"order": "asc", "direction": "outbound"}
    empty = await http.get("/v1/messages", params=feed, headers=user.headers)
    body = empty.json()
    assert body["items"] == []
    assert body["next_cursor"] is None
    first = await _submit(http, user, _message("FI-NBI-2026-FEED-2"))
    after = await http.get(
        "/v1/messages",
        params={**feed, "cursor": body["resume_cursor"]},
        headers=user.headers,
    )
    assert [m["id"] for m in after.json()["items"]] == [first]
    newest_first = await http.get("/v1/messages", headers=user.headers)
    assert "resume_cursor" not in newest_first.json() or (
        newest_first.json()["resume_cursor"] is None
    )


async def test_cursor_of_another_order_or_forged_is_422(
    http: httpx.AsyncClient, user: ApiUser
) -> None:
    await _submit(http, user, _message("FI-NBI-2026-FEED-3"))
    asc = (await http.get("/v1/messages", params={"order": "asc"}, headers=user.headers)).json()
    for params in (
        {"order": "desc", "cursor": asc["resume_cursor"]},
        {"order": "asc", "cursor": "not-a-cursor"},
        # A cursor of the old id-based form: a string position is refused, not a 500.
        {"order": "asc", "cursor": "eyJrIjoibWVzc2FnZXM6YXNjIiwicCI6WyJ4Il19"},
    ):
        response = await http.get("/v1/messages", params=params, headers=user.headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def _partner(http: httpx.AsyncClient, admin: ApiUser) -> tuple[str, str]:
    secret = generate_signing_secret()
    partner_id = f"feed-{uuid.uuid4().hex[:10]}"
    response = await http.post(
        "/v1/partners",
        json={
            "id": partner_id,
            "name": "feed test partner (loopback)",
            "adapter": "loopback",
            "signing_secrets": [secret],
        },
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return partner_id, secret


async def test_inbound_pull_feed_returns_what_arrived_since_in_order(
    http: httpx.AsyncClient, admin: ApiUser, make_user: MakeUser
) -> None:
    partner_id, secret = await _partner(http, admin)
    reader = await make_user("messages:read")
    feed = {"direction": "inbound", "order": "asc", "partner": partner_id, "limit": 2}

    async def page(cursor: str | None) -> dict[str, Any]:
        params = {**feed, **({"cursor": cursor} if cursor else {})}
        response = await http.get("/v1/messages", params=params, headers=reader.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    first = await page(None)
    assert first["items"] == []
    content = _message("FI-NBI-2026-INBOUND-FEED", recipients=["FI"], handling_codes=[])
    arrived = [await receive(http, partner_id, secret, content) for _ in range(3)]
    seen: list[str] = []
    cursor = first["resume_cursor"]
    for _ in range(5):
        body = await page(cursor)
        seen += [m["id"] for m in body["items"]]
        assert all(m["direction"] == "inbound" for m in body["items"])
        assert all(m["received_from"] == partner_id for m in body["items"])
        cursor = body["resume_cursor"]
        if not body["items"]:
            break
    assert seen == arrived
    later = await receive(http, partner_id, secret, content)
    assert [m["id"] for m in (await page(cursor))["items"]] == [later]


async def test_an_inbound_reply_joins_the_thread_of_the_message_it_answers(
    http: httpx.AsyncClient, admin: ApiUser, make_user: MakeUser
) -> None:
    partner_id, secret = await _partner(http, admin)
    user = await make_user("messages:read", "messages:write")
    ours = await _submit(http, user, _message("FI-NBI-2026-THREAD-IN"))
    answer = _message(None, type="reply", in_reply_to=ours, recipients=["FI"], handling_codes=[])
    theirs = await receive(http, partner_id, secret, answer)
    response = await http.get(
        "/v1/messages",
        params={"case_ref": "FI-NBI-2026-THREAD-IN", "order": "asc"},
        headers=user.headers,
    )
    assert [m["id"] for m in response.json()["items"]] == [ours, theirs]
