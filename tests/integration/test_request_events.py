"""Issue 5 end to end, through the real paths: SIRENE hits pushed to POST /v1/inbound,
answered with POST /v1/requests/{id}/reply (sent by the dispatcher to the partner's
HTTP server), and a request left unanswered escalated once by the housekeeper, its
`request.overdue` event delivered, signed, to subscribers' HTTP servers.

The module runs an app of its own on a database of its own, on a clock the tests move
(due_at is 12 h away), with the in-process dispatcher and housekeeper. Every server is
on 127.0.0.1: the partner is allowed loopback, subscribers are in subscriber_networks.
"""

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import IPv4Network
from typing import Any
from unittest import mock

import httpx
import orjson
import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook

from commcentre.app import create_app
from commcentre.auth.service import create_client, revoke_client
from commcentre.config import Settings
from commcentre.delivery.retry import RetryPolicy
from commcentre.runtime import Runtime
from commcentre.subscriptions import repository as subscriptions_repository
from tests.conftest import ApiUser, wait_delivered
from tests.databases import fresh_database
from tests.inbound_support import event, signed_headers
from tests.integration.requests_support import JUSTIFY, FakeClock, sirene_hit, unique_ref
from tests.integration.subscriptions_support import Request, Subscriber, status

FAST = RetryPolicy(base=0.05, cap=0.2, max_attempts=60)
NETWORKS = [IPv4Network("127.0.0.1/32")]
# What a request.overdue event's data holds: request metadata, never free text.
EVENT_FIELDS = {
    "id",
    "reference",
    "form",
    "alert_article",
    "alert_category",
    "alert_flags",
    "requesting_state",
    "urgency",
    "legal_basis",
    "time_limit_rule",
    "immediate",
    "status",
    "received_at",
    "due_at",
    "escalated_at",
}


def new_secret() -> str:
    return f"whsec_{base64.b64encode(os.urandom(32)).decode()}"


def verified(secret: str, request: Request, now: datetime) -> dict[str, Any]:
    """The event, verified by the standardwebhooks package as a receiver would at `now`.

    The tests' clock runs hours ahead of the real one, and the package checks the
    timestamp against its own clock: it is shown the tests' clock instead.
    """

    class Now(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> "Now":
            return cls.fromtimestamp(now.timestamp(), tz)

    with mock.patch("standardwebhooks.webhooks.datetime", Now):
        sent: dict[str, Any] = Webhook(secret).verify(request.body, request.headers)
    return sent


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError("these tests resolve no names")


@dataclass
class Bureau:
    """The SE SIRENE bureau: a webhook partner that pushes to us and receives our replies."""

    id: str
    secret: str  # signs its pushes to us
    outbound_secret: str  # verifies what we send it
    server: Subscriber


@dataclass
class World:
    app: FastAPI
    http: httpx.AsyncClient
    clock: FakeClock
    admin: ApiUser
    manager: ApiUser
    bureau: Bureau

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    async def user(self, *scopes: str) -> ApiUser:
        async with self.runtime.db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="events-test", scopes=list(scopes), actor="test", now=self.clock()
            )
        return ApiUser(issued.client.id, issued.api_key)

    async def push(self, content: dict[str, Any]) -> str:
        """The bureau pushes `content`, signed by the standardwebhooks package, now."""
        body = orjson.dumps({**event(content), "timestamp": self.clock().isoformat()})
        headers = signed_headers(body, self.bureau.secret, at=self.clock())
        response = await self.http.post(
            f"/v1/inbound/{self.bureau.id}", content=body, headers=headers
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def settle(self) -> None:
        """Let the dispatcher finish what is open before the clock jumps: a lease taken
        now would look expired hours later and be attempted again (at-least-once)."""
        dispatcher = self.runtime.dispatcher
        assert dispatcher is not None
        assert await dispatcher.drain(within=10.0), "deliveries still open"

    async def request_of(self, reference: str) -> dict[str, Any]:
        response = await self.http.get(
            "/v1/requests", params={"country": "SE", "limit": 500}, headers=self.manager.headers
        )
        assert response.status_code == 200, response.text
        [found] = [r for r in response.json()["items"] if r["reference"] == reference]
        summary: dict[str, Any] = found
        return summary

    async def read(self, request_id: str) -> dict[str, Any]:
        response = await self.http.get(
            f"/v1/requests/{request_id}", headers=self.manager.headers | JUSTIFY
        )
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    async def subscribe(self, owner: ApiUser, url: str, **filter_: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/subscriptions",
            json={"name": "Overdue watch", "url": url, "filter": filter_},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def event_deliveries(self, request_id: str, viewer: ApiUser) -> list[dict[str, Any]]:
        """The request's event deliveries `viewer` sees: those to its own subscriptions."""
        response = await self.http.get(
            f"/v1/requests/{request_id}/deliveries", headers=viewer.headers
        )
        assert response.status_code == 200, response.text
        deliveries: list[dict[str, Any]] = response.json()["deliveries"]
        return deliveries

    async def audit(self, **params: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/v1/audit", params={"limit": "500", **params}, headers=self.admin.headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture(scope="module")
def own_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("request-events"), "reqevents") as url:
        yield url


@pytest.fixture(scope="module")
async def world(settings: Settings, own_database: str) -> AsyncIterator[World]:
    configured = settings.model_copy(
        update={
            "database_url": own_database,
            "dispatcher_enabled": True,
            "subscriber_networks": NETWORKS,
            "delivery_timeout_seconds": 5.0,
            # The tests run the jobs themselves (run_once); the loops run once at start.
            "escalation_interval_seconds": 3600.0,
            "retention_interval_seconds": 86_400.0,
        }
    )
    clock = FakeClock()
    app = create_app(configured, clock=clock, resolver=no_dns, retry_policy=FAST)
    server = Subscriber()
    await server.start()
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://commcentre.test"
            ) as http:
                runtime: Runtime = app.state.runtime
                async with runtime.db.write_sessions() as session, session.begin():
                    issued = await create_client(
                        session, name="events-admin", scopes=["admin"], actor="test", now=clock()
                    )
                admin = ApiUser(issued.client.id, issued.api_key)
                bureau = Bureau(
                    f"se-sirene-{uuid.uuid4().hex[:8]}", new_secret(), new_secret(), server
                )
                response = await http.post(
                    "/v1/partners",
                    json={
                        "id": bureau.id,
                        "name": "SIRENE Sweden",
                        "adapter": "webhook",
                        "country": "SE",
                        "config": {"url": f"{server.url}"},
                        "allow_loopback": True,
                        "inbound_secrets": [bureau.secret],
                        "outbound_secrets": [bureau.outbound_secret],
                    },
                    headers=admin.headers,
                )
                assert response.status_code == 201, response.text
                world = World(app, http, clock, admin, admin, bureau)
                world.manager = await world.user("requests:manage", "messages:read")
                yield world
    finally:
        await server.stop()


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    server = Subscriber()
    await server.start()
    yield server
    await server.stop()


async def until(condition: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def of_type(requests: list[Request], kind: str) -> list[Request]:
    return [r for r in requests if orjson.loads(r.body).get("type") == kind]


async def test_sirene_hit_answered_and_another_escalated_with_its_event(
    world: World, subscriber: Subscriber
) -> None:
    """The issue 5 scenario, every step through the endpoints and the workers."""
    owner = await world.user("messages:read", "requests:manage")
    second_ref, first_ref = unique_ref(), unique_ref()
    every = await world.subscribe(owner, subscriber.url, events=["request.overdue"])
    by_case = await world.subscribe(
        owner, subscriber.url, events=["request.overdue"], case_ref=second_ref.lower()
    )
    other_case = await world.subscribe(
        owner, subscriber.url, events=["request.overdue"], case_ref="FI-SOMETHING-ELSE"
    )
    inbound_only = await world.subscribe(owner, subscriber.url)  # events empty: messages only
    secrets = {s["id"]: s["generated_signing_secret"] for s in (every, by_case)}

    # 1. A SIRENE hit on an arrest alert is pushed by the bureau: a request opens, due in 12 h.
    received = world.clock()
    hit_id = await world.push(sirene_hit(first_ref))
    first = await world.request_of(first_ref)
    assert (first["form"], first["alert_article"], first["status"]) == ("G", 26, "received")
    assert first["requesting_state"] == "SE"
    assert first["time_limit_rule"] == "sirene_supplementary"
    assert at(first["received_at"]) == received
    assert at(first["due_at"]) == received + timedelta(hours=12)

    # 2. Answered two hours later by a reply the dispatcher sends to the bureau.
    await world.settle()
    world.clock.advance(hours=2)
    response = await world.http.post(
        f"/v1/requests/{first['id']}/reply",
        json={"body": "Person arrested; EAW to follow."},
        headers=world.manager.headers | {"Idempotency-Key": f"reply-{first['id']}"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["request"]["status"] == "answered"
    assert response.json()["request"]["answered_late"] is False
    reply_id = response.json()["message"]["id"]
    [delivery] = await wait_delivered(world.http, world.manager.headers, reply_id)
    assert delivery["partner"] == world.bureau.id
    [sent] = [r for r in world.bureau.server.requests if r.webhook_id == delivery["id"]]
    reply = verified(world.bureau.outbound_secret, sent, world.clock())
    assert reply["data"]["message_id"] == reply_id
    assert (reply["data"]["type"], reply["data"]["case_ref"]) == ("reply", first_ref)
    assert reply["data"]["in_reply_to"] == hit_id

    closed = await world.http.post(
        f"/v1/requests/{first['id']}/transitions",
        json={"to": "closed"},
        headers=world.manager.headers,
    )
    assert closed.status_code == 200, closed.text

    # 3. A second hit is left unanswered past its due_at: escalated once, by the job.
    opened = world.clock()
    await world.push(sirene_hit(second_ref))
    second = await world.request_of(second_ref)
    assert at(second["due_at"]) == opened + timedelta(hours=12)
    await world.settle()
    world.clock.advance(hours=12, seconds=1)
    done = await world.runtime.housekeeper.run_once()  # type: ignore[union-attr]
    assert done["escalation"] == 1
    assert (await world.runtime.housekeeper.run_once())["escalation"] == 0  # type: ignore[union-attr]
    escalated_at = world.clock()

    view = await world.read(second["id"])
    assert view["overdue"]
    assert view["escalated"]
    assert at(view["escalated_at"]) == escalated_at
    assert [e["event"] for e in view["history"]] == ["opened_from_inbound", "escalated"]
    assert not (await world.read(first["id"]))["escalated"]  # closed in time
    trail = [e["event"] for e in await world.audit(subject_id=second["id"])]
    assert trail.count("request.escalated") == 1

    # 4. Its request.overdue event reaches the subscribers that asked for it, signed.
    async def delivered() -> bool:
        found = await world.event_deliveries(second["id"], owner)
        return bool(found) and all(d["status"] == "delivered" for d in found)

    await until(delivered)
    deliveries = await world.event_deliveries(second["id"], owner)
    # The desk sees the request, not where another client's subscriptions got its event.
    assert await world.event_deliveries(second["id"], world.manager) == []
    assert {d["subscription"] for d in deliveries} == {every["id"], by_case["id"]}
    assert all(d["event"] == "request.overdue" for d in deliveries)
    assert all(d["request"] == second["id"] and d["partner"] is None for d in deliveries)
    overdue = of_type(subscriber.requests, "request.overdue")
    assert sorted(r.webhook_id for r in overdue) == sorted(d["id"] for d in deliveries)
    for delivery in deliveries:
        [request] = [r for r in overdue if r.webhook_id == delivery["id"]]
        sent_event = verified(secrets[delivery["subscription"]], request, world.clock())
        assert sent_event["type"] == "request.overdue"
        assert sent_event["id"] == delivery["id"]
        data = sent_event["data"]
        assert set(data) == EVENT_FIELDS
        assert (data["id"], data["reference"], data["status"]) == (
            second["id"],
            second_ref,
            "received",
        )
        assert (data["form"], data["alert_article"], data["requesting_state"]) == ("G", 26, "SE")
        assert at(data["due_at"]) == at(second["due_at"])
        assert at(data["escalated_at"]) == escalated_at
        assert b"KORHONEN" not in request.body  # nothing of the hit's payload
        assert b"border crossing" not in request.body
    assert other_case["id"] not in {d["subscription"] for d in deliveries}
    assert inbound_only["id"] not in {d["subscription"] for d in deliveries}
    # The subscription with no events got the hits as messages, and nothing else.
    assert len({r.webhook_id for r in of_type(subscriber.requests, "message.inbound")}) == 2

    disclosures = [
        e
        for e in await world.audit(subject_id=second["id"], event="request.disclosed")
        if e["action"] == "disclosure"
    ]
    assert sorted(e["recipient"] for e in disclosures) == sorted(
        f"subscription:{s['id']}" for s in (every, by_case)
    )
    assert all(e["subject_type"] == "request" for e in disclosures)
    assert all(e["details"]["event"] == "request.overdue" for e in disclosures)

    # 5. Answering it now is late: through the reply endpoint too, a delay reason is needed.
    late = await world.http.post(
        f"/v1/requests/{second['id']}/reply",
        json={"body": "Nothing to add."},
        headers=world.manager.headers,
    )
    assert late.status_code == 422, late.text
    answered = await world.http.post(
        f"/v1/requests/{second['id']}/reply",
        json={"body": "Nothing to add.", "delay_reason": "Registry offline overnight"},
        headers=world.manager.headers,
    )
    assert answered.status_code == 202, answered.text
    assert answered.json()["request"]["answered_late"] is True
    await wait_delivered(world.http, world.manager.headers, answered.json()["message"]["id"])
    for subscription in (every, by_case, other_case, inbound_only):
        deleted = await world.http.delete(
            f"/v1/subscriptions/{subscription['id']}", headers=owner.headers
        )
        assert deleted.status_code == 204


async def test_an_overdue_event_dead_letters_and_is_redriven(
    world: World, subscriber: Subscriber
) -> None:
    subscriber.script.append(status(400))
    owner = await world.user("messages:read", "requests:manage")
    reference = unique_ref("DEAD")
    created = await world.subscribe(
        owner, subscriber.url, events=["request.overdue"], case_ref=reference
    )
    await world.push(sirene_hit(reference))
    request = await world.request_of(reference)
    await world.settle()
    world.clock.advance(hours=12, seconds=1)
    assert (await world.runtime.housekeeper.run_once())["escalation"] >= 1  # type: ignore[union-attr]

    async def mine() -> list[dict[str, Any]]:
        found = await world.event_deliveries(request["id"], owner)
        return [d for d in found if d["subscription"] == created["id"]]

    async def settled() -> bool:
        found = await mine()
        return bool(found) and found[0]["status"] in ("dead", "delivered")

    await until(settled)
    [delivery] = await mine()
    assert delivery["status"] == "dead"
    assert delivery["last_status_code"] == 400
    listing = await world.http.get(
        "/v1/dead-letters", params={"subscription": created["id"]}, headers=world.admin.headers
    )
    assert listing.status_code == 200, listing.text
    [dead] = listing.json()["items"]
    assert dead["id"] == delivery["id"]
    assert dead["message_id"] is None
    assert (dead["request"], dead["event"]) == (request["id"], "request.overdue")

    redriven = await world.http.post(
        "/v1/dead-letters/redrive", json={"ids": [delivery["id"]]}, headers=world.admin.headers
    )
    assert redriven.status_code == 200, redriven.text
    assert redriven.json()["ids"] == [delivery["id"]]

    async def delivered() -> bool:
        return (await mine())[0]["status"] == "delivered"

    await until(delivered)
    [first, second] = [r for r in subscriber.requests if r.webhook_id == delivery["id"]]
    assert first.body == second.body  # the same event, the same webhook-id, again
    verified(created["generated_signing_secret"], second, world.clock())


async def test_an_inbound_reply_answers_and_is_measured(world: World) -> None:
    reference = unique_ref()
    await world.push(sirene_hit(reference))
    request = await world.request_of(reference)
    before = world.runtime.metrics.request_answer_seconds.collect()[0]
    count = next(s.value for s in before.samples if s.name.endswith("_count"))
    await world.settle()
    world.clock.advance(hours=3)
    await world.push(
        {
            "type": "reply",
            "channel": "sirene",
            "legal_basis": "SIS_2018_1862_ART26",
            "case_ref": reference,
            "body": "Thank you, no further information needed.",
        }
    )
    view = await world.read(request["id"])
    assert view["status"] == "answered"
    assert view["history"][-1]["event"] == "answered_from_inbound"
    after = world.runtime.metrics.request_answer_seconds.collect()[0]
    assert next(s.value for s in after.samples if s.name.endswith("_count")) == count + 1
    total = next(s.value for s in after.samples if s.name.endswith("_sum"))
    assert total >= 3 * 3600


async def test_unknown_request_deliveries_are_404(world: World) -> None:
    response = await world.http.get(
        f"/v1/requests/{uuid.uuid4()}/deliveries", headers=world.manager.headers
    )
    assert response.status_code == 404
    reader = await world.user("messages:read")
    response = await world.http.get(
        f"/v1/requests/{uuid.uuid4()}/deliveries", headers=reader.headers
    )
    assert response.status_code == 403


async def test_request_events_need_the_requests_scope(world: World) -> None:
    reader = await world.user("messages:read")
    refused = await world.http.post(
        "/v1/subscriptions",
        json={
            "name": "Overdue watch",
            "url": "https://sub.example/hook",
            "filter": {"events": ["request.overdue"]},
        },
        headers=reader.headers,
    )
    assert refused.status_code == 403, refused.text
    assert "requests:manage" in refused.json()["detail"]
    created = await world.http.post(
        "/v1/subscriptions",
        json={"name": "Messages only", "url": "https://sub.example/hook"},
        headers=reader.headers,
    )
    assert created.status_code == 201, created.text
    patched = await world.http.patch(
        f"/v1/subscriptions/{created.json()['id']}",
        json={"filter": {"events": ["message.inbound", "request.overdue"]}},
        headers=reader.headers,
    )
    assert patched.status_code == 403, patched.text


async def test_a_revoked_clients_subscriptions_stop(world: World) -> None:
    owner = await world.user("messages:read", "requests:manage")
    created = await world.subscribe(owner, "https://sub.example/hook", events=["request.overdue"])
    async with world.runtime.db.write_sessions() as session, session.begin():
        await revoke_client(session, owner.id, actor="test", now=world.clock())
    async with world.runtime.db.read_sessions() as session:
        row = await subscriptions_repository.get_any(session, uuid.UUID(created["id"]))
        assert row is not None
        assert row.enabled is False
        assert row.disabled_reason == "the owning API client was revoked"
        candidates = await subscriptions_repository.fanout_candidates(session, None)
    assert all(c.id != row.id for c in candidates)
