"""GET /v1/messages/{id}/deliveries, GET /v1/dead-letters, POST /v1/dead-letters/redrive.

Against the session app and its dispatcher, with loopback partners of each
test's own (unique ids, no country), told to fail as the test needs. Every
partner a test creates is disabled at its end, so that nothing it left open
is attempted again while later tests run.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from commcentre.clock import utcnow
from commcentre.db import Database
from commcentre.messages.models import Message
from tests.conftest import ApiUser, MakeUser
from tests.factories import message

SETTLED = frozenset({"delivered", "dead"})
PERMANENT_ERROR = "loopback partner configured to fail (permanent)"


@dataclass
class Partners:
    """Creates loopback partners and fixes or disables them, as a partner manager."""

    http: httpx.AsyncClient
    manager: ApiUser
    created: list[str] = field(default_factory=list)

    async def create(self, fail_with: str = "none", **config: Any) -> str:
        partner_id = f"dl-{uuid.uuid4().hex[:12]}"
        body = {
            "id": partner_id,
            "name": "Dead letter test partner",
            "adapter": "loopback",
            "config": {"fail_with": fail_with, **config},
            "allow_loopback": True,
        }
        response = await self.http.post("/v1/partners", json=body, headers=self.manager.headers)
        assert response.status_code == 201, response.text
        self.created.append(partner_id)
        return partner_id

    async def patch(self, partner_id: str, **body: Any) -> None:
        response = await self.http.patch(
            f"/v1/partners/{partner_id}", json=body, headers=self.manager.headers
        )
        assert response.status_code == 200, response.text

    async def fix(self, partner_id: str, **config: Any) -> None:
        await self.patch(partner_id, config={"fail_with": "none", **config})


@pytest.fixture
async def partners(http: httpx.AsyncClient, admin: ApiUser) -> AsyncIterator[Partners]:
    made = Partners(http, admin)
    yield made
    for partner_id in made.created:
        await made.patch(partner_id, enabled=False)


async def submit(http: httpx.AsyncClient, user: ApiUser, partner_id: str) -> dict[str, Any]:
    body = message(channel="bilateral", recipients=[partner_id])
    response = await http.post("/v1/messages", json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def deliveries(http: httpx.AsyncClient, user: ApiUser, message_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/messages/{message_id}/deliveries", headers=user.headers)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def settled(
    http: httpx.AsyncClient, user: ApiUser, message_id: str, within: float = 15.0
) -> dict[str, Any]:
    """The deliveries view once every delivery is delivered or dead."""
    deadline = time.monotonic() + within
    while True:
        view = await deliveries(http, user, message_id)
        if all(d["status"] in SETTLED for d in view["deliveries"]):
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.02)


async def dead_letter(http: httpx.AsyncClient, user: ApiUser, partner_id: str) -> dict[str, Any]:
    """Submit a message to a failing partner; its delivery once dead."""
    accepted = await submit(http, user, partner_id)
    [delivery] = (await settled(http, user, accepted["id"]))["deliveries"]
    assert delivery["status"] == "dead", delivery
    return {**delivery, "message_id": accepted["id"]}


async def dead_letters(http: httpx.AsyncClient, manager: ApiUser, **params: str) -> httpx.Response:
    return await http.get("/v1/dead-letters", params=params, headers=manager.headers)


async def redrive(
    http: httpx.AsyncClient, manager: ApiUser, body: dict[str, Any], **headers: str
) -> httpx.Response:
    return await http.post(
        "/v1/dead-letters/redrive", json=body, headers={**manager.headers, **headers}
    )


async def redrive_entries(
    http: httpx.AsyncClient, make_user: MakeUser, partner: str
) -> list[dict[str, Any]]:
    """The audit log's `dead_letters.redriven` entries about this partner."""
    auditor = await make_user("audit:read")
    response = await http.get(
        "/v1/audit",
        params={"event": "dead_letters.redriven", "subject_id": partner},
        headers=auditor.headers,
    )
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["items"]
    return entries


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the deliveries of a message ------------------------------------------------------------------


async def test_deliveries_view_of_a_delivered_message(
    http: httpx.AsyncClient, user: ApiUser, partners: Partners
) -> None:
    partner = await partners.create()
    accepted = await submit(http, user, partner)
    view = await settled(http, user, accepted["id"])

    assert view["message_id"] == accepted["id"]
    [delivery] = view["deliveries"]
    assert delivery["id"] == accepted["deliveries"][0]["id"]
    assert delivery["partner"] == partner
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 1
    assert delivery["next_attempt_at"] is None
    assert at(delivery["delivered_at"]) >= at(delivery["attempt_history"][0]["started_at"])
    assert (delivery["last_status_code"], delivery["last_error"]) == (None, None)
    [attempt] = delivery["attempt_history"]
    fields = {"number", "started_at", "duration_ms", "outcome", "status_code", "error"}
    assert set(attempt) == fields
    assert (attempt["number"], attempt["outcome"], attempt["error"]) == (1, "delivered", None)
    assert attempt["duration_ms"] >= 0
    assert view["status"] == "delivered"


async def test_deliveries_view_carries_no_payload(
    http: httpx.AsyncClient, user: ApiUser, partners: Partners
) -> None:
    partner = await partners.create()
    accepted = await submit(http, user, partner)
    response = await http.get(f"/v1/messages/{accepted['id']}/deliveries", headers=user.headers)
    assert response.status_code == 200
    for plaintext in ("XP1234567", "VIRTANEN", "FI-NBI-2026-004411", "Tornio", "content"):
        assert plaintext not in response.text


async def test_deliveries_view_while_retrying(
    http: httpx.AsyncClient, user: ApiUser, partners: Partners
) -> None:
    partner = await partners.create("retryable")
    accepted = await submit(http, user, partner)
    deadline = time.monotonic() + 15
    while True:
        [delivery] = (await deliveries(http, user, accepted["id"]))["deliveries"]
        if delivery["status"] == "retrying":
            break
        assert time.monotonic() < deadline, delivery
        await asyncio.sleep(0.01)

    assert delivery["attempts"] >= 1
    assert delivery["next_attempt_at"] is not None
    assert at(delivery["next_attempt_at"]) >= at(delivery["attempt_history"][-1]["started_at"])
    assert delivery["last_error"] == "loopback partner configured to fail (retryable)"
    assert delivery["delivered_at"] is None
    assert {a["outcome"] for a in delivery["attempt_history"]} == {"retry"}
    assert [a["number"] for a in delivery["attempt_history"]] == list(
        range(1, delivery["attempts"] + 1)
    )


async def test_deliveries_view_visibility(
    http: httpx.AsyncClient,
    user: ApiUser,
    admin: ApiUser,
    make_user: MakeUser,
    partners: Partners,
) -> None:
    partner = await partners.create()
    accepted = await submit(http, user, partner)
    path = f"/v1/messages/{accepted['id']}/deliveries"

    other = await make_user("messages:read", "messages:write")
    response = await http.get(path, headers=other.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert partner not in response.text
    assert accepted["deliveries"][0]["id"] not in response.text

    assert (await http.get(path)).status_code == 401
    writer_only = await make_user("messages:write")
    assert (await http.get(path, headers=writer_only.headers)).status_code == 403
    assert (await http.get(path, headers=admin.headers)).status_code == 200
    unknown = await http.get(f"/v1/messages/{uuid.uuid4()}/deliveries", headers=user.headers)
    assert unknown.status_code == 404
    malformed = await http.get("/v1/messages/not-a-uuid/deliveries", headers=user.headers)
    assert malformed.status_code == 422


# -- dead letters ---------------------------------------------------------------------------------


async def test_dead_letters_list_filters_and_pages(
    http: httpx.AsyncClient, user: ApiUser, admin: ApiUser, partners: Partners
) -> None:
    partner = await partners.create("permanent")
    early = [await dead_letter(http, user, partner) for _ in range(2)]
    late = await dead_letter(http, user, partner)  # dies in a later batch: a later dead_since

    response = await dead_letters(http, admin, partner=partner)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    items = page["items"]
    assert {d["id"] for d in items} == {d["id"] for d in [*early, late]}
    assert items[-1]["id"] == late["id"]
    assert [at(d["dead_since"]) for d in items] == sorted(at(d["dead_since"]) for d in items)
    first = next(d for d in items if d["id"] == early[0]["id"])
    assert first == {
        "id": early[0]["id"],
        "message_id": early[0]["message_id"],
        "request": None,
        "event": None,
        "partner": partner,
        "subscription": None,
        "attempts": 1,
        "last_status_code": None,
        "last_error": PERMANENT_ERROR,
        "dead_since": first["dead_since"],
    }

    paged: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"partner": partner, "limit": "2"}
        if cursor is not None:
            params["cursor"] = cursor
        body = (await dead_letters(http, admin, **params)).json()
        paged += [d["id"] for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert paged == [d["id"] for d in items]

    since = (await dead_letters(http, admin, partner=partner, since=items[-1]["dead_since"])).json()
    assert [d["id"] for d in since["items"]] == [late["id"]]
    until = (await dead_letters(http, admin, partner=partner, until=items[-1]["dead_since"])).json()
    assert {d["id"] for d in until["items"]} == {d["id"] for d in early}
    other = (await dead_letters(http, admin, partner=f"dl-{uuid.uuid4().hex[:12]}")).json()
    assert other == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-11-28T14:00:00"},  # no time zone
        {"until": "yesterday"},
        {"cursor": "not-a-cursor"},
        {"limit": "0"},
        {"limit": "501"},
        {"partner": "Not A Partner"},
    ],
)
async def test_dead_letters_list_rejects_bad_parameters(
    http: httpx.AsyncClient, admin: ApiUser, params: dict[str, str]
) -> None:
    response = await dead_letters(http, admin, **params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_redrive_by_ids_skips_what_is_not_dead(
    http: httpx.AsyncClient, user: ApiUser, admin: ApiUser, partners: Partners
) -> None:
    failing = await partners.create("permanent")
    healthy = await partners.create()
    first, second = [await dead_letter(http, user, failing) for _ in range(2)]
    delivered = await submit(http, user, healthy)
    delivered_id = (await settled(http, user, delivered["id"]))["deliveries"][0]["id"]
    unknown = str(uuid.uuid4())
    await partners.fix(failing)

    response = await redrive(http, admin, {"ids": [first["id"], delivered_id, unknown]})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "redriven": 1,
        "ids": [first["id"]],
        "skipped": [delivered_id, unknown],
        "expired": 0,
        "dry_run": False,
    }

    view = await settled(http, user, first["message_id"])
    [delivery] = view["deliveries"]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 1  # counted again from 0 by the redrive
    history = [(a["number"], a["outcome"]) for a in delivery["attempt_history"]]
    assert history == [(1, "permanent"), (1, "delivered")]  # the dead attempt stays on record
    assert view["status"] == "delivered"
    remaining = (await dead_letters(http, admin, partner=failing)).json()["items"]
    assert [d["id"] for d in remaining] == [second["id"]]
    [untouched] = (await deliveries(http, user, second["message_id"]))["deliveries"]
    assert (untouched["status"], untouched["attempts"]) == ("dead", 1)


async def test_redrive_by_partner(
    http: httpx.AsyncClient, user: ApiUser, admin: ApiUser, partners: Partners
) -> None:
    partner = await partners.create("permanent")
    dead = [await dead_letter(http, user, partner) for _ in range(2)]
    await partners.fix(partner)

    response = await redrive(http, admin, {"partner": partner})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "redriven": 2,
        "ids": sorted(d["id"] for d in dead),
        "skipped": [],
        "expired": 0,
        "dry_run": False,
    }
    for d in dead:
        assert (await settled(http, user, d["message_id"]))["status"] == "delivered"
    assert (await dead_letters(http, admin, partner=partner)).json()["items"] == []


async def test_a_dead_letter_past_its_retention_is_never_redriven(
    http: httpx.AsyncClient, user: ApiUser, admin: ApiUser, partners: Partners, db: Database
) -> None:
    """Its message is to be erased: sending it again would disclose what must be destroyed."""
    partner = await partners.create("permanent")
    expired, live = [await dead_letter(http, user, partner) for _ in range(2)]
    await partners.fix(partner)
    async with db.write_sessions() as session, session.begin():
        await session.execute(
            update(Message)
            .where(Message.id == uuid.UUID(expired["message_id"]))
            .values(purge_after=utcnow() - timedelta(seconds=1))
        )

    dry = await redrive(http, admin, {"partner": partner, "dry_run": True})
    assert dry.json() == {
        "redriven": 1,
        "ids": [live["id"]],
        "skipped": [],
        "expired": 1,
        "dry_run": True,
    }
    by_ids = await redrive(http, admin, {"ids": [expired["id"]]})
    assert by_ids.json() == {
        "redriven": 0,
        "ids": [],
        "skipped": [expired["id"]],
        "expired": 1,
        "dry_run": False,
    }
    response = await redrive(http, admin, {"partner": partner})
    assert response.json()["redriven"] == 1
    assert response.json()["expired"] == 1
    assert (await settled(http, user, live["message_id"]))["status"] == "delivered"
    remaining = (await dead_letters(http, admin, partner=partner)).json()["items"]
    assert [d["id"] for d in remaining] == [expired["id"]]


async def test_redrive_by_time_window(
    http: httpx.AsyncClient, user: ApiUser, admin: ApiUser, partners: Partners
) -> None:
    partner = await partners.create("permanent")
    dead = await dead_letter(http, user, partner)
    kept = await dead_letter(http, user, partner)
    [listed] = [
        d
        for d in (await dead_letters(http, admin, partner=partner)).json()["items"]
        if d["id"] == dead["id"]
    ]
    await partners.fix(partner)
    since = at(listed["dead_since"])
    window = {"since": since.isoformat(), "until": (since + timedelta(microseconds=1)).isoformat()}

    response = await redrive(http, admin, window)
    assert response.status_code == 200, response.text
    assert response.json()["ids"] == [dead["id"]]
    assert (await settled(http, user, dead["message_id"]))["status"] == "delivered"
    remaining = (await dead_letters(http, admin, partner=partner)).json()["items"]
    assert [d["id"] for d in remaining] == [kept["id"]]


async def test_redriven_message_is_unsettled_until_delivered(
    http: httpx.AsyncClient, user: ApiUser, admin: ApiUser, partners: Partners
) -> None:
    partner = await partners.create("permanent")
    dead = await dead_letter(http, user, partner)
    assert (await deliveries(http, user, dead["message_id"]))["status"] == "failed"
    await partners.fix(partner, latency_ms=1000)

    assert (await redrive(http, admin, {"ids": [dead["id"]]})).status_code == 200
    assert (await deliveries(http, user, dead["message_id"]))["status"] == "accepted"
    assert (await settled(http, user, dead["message_id"]))["status"] == "delivered"


async def test_dry_run_changes_nothing(
    http: httpx.AsyncClient,
    user: ApiUser,
    admin: ApiUser,
    partners: Partners,
    make_user: MakeUser,
) -> None:
    partner = await partners.create("permanent")
    dead = [await dead_letter(http, user, partner) for _ in range(2)]
    await partners.fix(partner)
    before = (await dead_letters(http, admin, partner=partner)).json()

    response = await redrive(http, admin, {"partner": partner, "dry_run": True})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "redriven": 2,
        "ids": sorted(d["id"] for d in dead),
        "skipped": [],
        "expired": 0,
        "dry_run": True,
    }
    unknown = str(uuid.uuid4())
    by_ids = await redrive(http, admin, {"ids": [dead[0]["id"], unknown], "dry_run": True})
    assert by_ids.json() == {
        "redriven": 1,
        "ids": [dead[0]["id"]],
        "skipped": [unknown],
        "expired": 0,
        "dry_run": True,
    }

    await asyncio.sleep(0.1)  # a dispatcher woken by mistake would have claimed them by now
    assert (await dead_letters(http, admin, partner=partner)).json() == before
    for d in dead:
        view = await deliveries(http, user, d["message_id"])
        assert (view["status"], view["deliveries"][0]["status"]) == ("failed", "dead")
    assert await redrive_entries(http, make_user, partner) == []


async def test_disabled_partner_is_409_and_nothing_moves(
    http: httpx.AsyncClient, user: ApiUser, admin: ApiUser, partners: Partners
) -> None:
    partner = await partners.create("permanent")
    dead = await dead_letter(http, user, partner)
    await partners.patch(partner, enabled=False)

    for body in (
        {"ids": [dead["id"]]},
        {"partner": partner},
        {"partner": partner, "dry_run": True},
        {"since": dead["attempt_history"][0]["started_at"]},
    ):
        response = await redrive(http, admin, body)
        assert response.status_code == 409, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert partner in problem["detail"]
        assert partner in problem["disabled_partners"]
    [still] = (await deliveries(http, user, dead["message_id"]))["deliveries"]
    assert still["status"] == "dead"


async def test_unknown_partner_filter_is_404(http: httpx.AsyncClient, admin: ApiUser) -> None:
    response = await redrive(http, admin, {"partner": f"dl-{uuid.uuid4().hex[:12]}"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_nothing_dead_redrives_nothing_and_is_not_audited(
    http: httpx.AsyncClient, admin: ApiUser, partners: Partners, make_user: MakeUser
) -> None:
    partner = await partners.create()
    response = await redrive(http, admin, {"partner": partner})
    assert response.json() == {
        "redriven": 0,
        "ids": [],
        "skipped": [],
        "expired": 0,
        "dry_run": False,
    }
    assert await redrive_entries(http, make_user, partner) == []


async def test_redrive_with_idempotency_key(
    http: httpx.AsyncClient,
    user: ApiUser,
    admin: ApiUser,
    partners: Partners,
    make_user: MakeUser,
) -> None:
    partner = await partners.create("permanent")
    dead = await dead_letter(http, user, partner)
    await partners.fix(partner)
    key = str(uuid.uuid4())

    first = await redrive(http, admin, {"ids": [dead["id"]]}, **{"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert first.json()["redriven"] == 1
    assert "idempotent-replayed" not in first.headers
    await settled(http, user, dead["message_id"])

    again = await redrive(http, admin, {"ids": [dead["id"]]}, **{"Idempotency-Key": key})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    different = await redrive(http, admin, {"partner": partner}, **{"Idempotency-Key": key})
    assert different.status_code == 422

    assert len(await redrive_entries(http, make_user, partner)) == 1


async def test_redrive_is_audited(
    http: httpx.AsyncClient,
    user: ApiUser,
    admin: ApiUser,
    partners: Partners,
    make_user: MakeUser,
) -> None:
    partner = await partners.create("permanent")
    dead = [await dead_letter(http, user, partner) for _ in range(2)]
    await partners.fix(partner)
    assert (await redrive(http, admin, {"partner": partner})).status_code == 200

    [entry] = await redrive_entries(http, make_user, partner)
    assert entry["action"] == "alteration"
    assert entry["actor"] == f"client:{admin.id}"
    assert entry["subject_type"] == "partner"
    assert entry["details"] == {
        "count": len(dead),
        "by": "filter",
        "partner": partner,
        "since": None,
        "until": None,
        "partners": [partner],
    }
    auditor = await make_user("audit:read")
    verify = (await http.get("/v1/audit/verify", headers=auditor.headers)).json()
    assert verify["ok"] is True


async def test_dead_letters_need_partners_manage(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    reader = await make_user("messages:read", "messages:write")
    body = {"ids": [str(uuid.uuid4())]}
    assert (await dead_letters(http, reader)).status_code == 403
    assert (await redrive(http, reader, body)).status_code == 403
    assert (await http.get("/v1/dead-letters")).status_code == 401
    assert (await http.post("/v1/dead-letters/redrive", json=body)).status_code == 401
    manager = await make_user("partners:manage")
    assert (await dead_letters(http, manager)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"dry_run": True},
        {"ids": []},
        {"ids": [str(uuid.uuid4()) for _ in range(501)]},
        {"ids": ["not-a-uuid"]},
        {"ids": [str(uuid.uuid4())], "partner": "se-bureau"},
        {"ids": [str(uuid.uuid4())], "since": "2026-11-28T14:00:00Z"},
        {"since": "2026-11-28T14:00:00"},  # no time zone
        {"partner": "se-bureau", "status": "dead"},  # unknown field
        {"partner": "Not A Partner"},
    ],
)
async def test_redrive_body_validation(
    http: httpx.AsyncClient, admin: ApiUser, body: dict[str, Any]
) -> None:
    response = await redrive(http, admin, body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
