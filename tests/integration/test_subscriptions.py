"""Internal subscriptions: the API, and inbound messages delivered to real subscribers.

Each test runs an app of its own on a database of its own (subscribers must
not receive other tests' inbound messages) with a fast retry policy and a
dispatcher built here (fast polling, a quick circuit breaker). Subscribers
are HTTP servers on 127.0.0.1, allowed by `subscriber_networks`; no name is
ever resolved.
"""

import asyncio
import base64
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from commcentre.app import create_app
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.delivery.breaker import BreakerState, CircuitBreakers
from commcentre.delivery.dispatcher import Dispatcher, DispatcherSettings
from commcentre.delivery.retry import RetryPolicy
from commcentre.messages.models import Message
from commcentre.partners.schemas import generate_signing_secret
from commcentre.runtime import Runtime
from tests.databases import fresh_database
from tests.factories import message
from tests.inbound_support import push
from tests.integration.subscriptions_support import (
    Subscriber,
    free_port,
    status,
)

FAST = RetryPolicy(base=0.05, cap=0.2, max_attempts=60)
NETWORKS = [IPv4Network("127.0.0.1/32")]


def secret() -> str:
    return f"whsec_{base64.b64encode(os.urandom(32)).decode()}"


# -- a database and an app of their own -----------------------------------------------------------


@pytest.fixture(scope="module")
def subs_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("subs"), "subs") as url:
        yield url


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError("these tests resolve no names")


@dataclass
class Client:
    id: uuid.UUID
    headers: dict[str, str]


@dataclass
class Gateway:
    app: FastAPI
    http: httpx.AsyncClient
    runtime: Runtime
    dispatcher: Dispatcher
    breakers: CircuitBreakers
    admin: Client
    source: str  # the partner that pushes the inbound messages
    source_secret: str
    made: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    async def client(self, *scopes: str) -> Client:
        async with self.runtime.db.write_sessions() as session, session.begin():
            issued = await create_client(
                session,
                name="subscriber-system",
                scopes=list(scopes) or ["messages:read"],
                actor="test",
                now=utcnow(),
            )
        return Client(issued.client.id, {"Authorization": f"Bearer {issued.api_key}"})

    async def subscribe(self, owner: Client, **body: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"name": "Test subscriber", "url": "https://sub.example/hook"}
        payload.update(body)
        response = await self.http.post("/v1/subscriptions", json=payload, headers=owner.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        self.made.append((created["id"], owner.headers))
        return created

    async def inbound(self, **overrides: Any) -> uuid.UUID:
        """The source partner pushes a message through POST /v1/inbound (signed)."""
        overrides.setdefault("channel", "bilateral")
        overrides.setdefault("recipients", ["FI"])
        response = await push(self.http, self.source, self.source_secret, message(**overrides))
        assert response.status_code == 202, response.text
        return uuid.UUID(response.json()["id"])

    async def fanned_out_to(self, message_id: uuid.UUID) -> set[uuid.UUID]:
        """The subscriptions the message was queued for."""
        view = await self.deliveries(message_id)
        return {uuid.UUID(d["subscription"]) for d in view["deliveries"] if d["subscription"]}

    async def deliveries(self, message_id: uuid.UUID) -> dict[str, Any]:
        response = await self.http.get(
            f"/v1/messages/{message_id}/deliveries", headers=self.admin.headers
        )
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    async def drain(self, within: float = 20.0) -> None:
        assert await self.dispatcher.drain(within=within), "deliveries still open"

    async def audit(self, **params: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/v1/audit", params={"limit": "500", **params}, headers=self.admin.headers
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@asynccontextmanager
async def gateway(
    settings: Settings, url: str, *, breakers: CircuitBreakers | None = None
) -> AsyncIterator[Gateway]:
    configured = settings.model_copy(
        update={
            "database_url": url,
            "delivery_timeout_seconds": 5.0,
            "dispatcher_enabled": False,
            "subscriber_networks": NETWORKS,
        }
    )
    app = create_app(configured, retry_policy=FAST, resolver=no_dns)
    breakers = breakers or CircuitBreakers(threshold=3, cooldown=0.3)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        dispatcher = Dispatcher(
            runtime.db,
            vault=runtime.vault,
            adapters=runtime.adapters,
            clock=utcnow,
            policy=FAST,
            breakers=breakers,
            settings=DispatcherSettings(poll_interval=0.05, subscriber_networks=tuple(NETWORKS)),
        )
        runtime.dispatcher = dispatcher
        await dispatcher.start()
        async with runtime.db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="subs-admin", scopes=["admin"], actor="test", now=utcnow()
            )
        admin = Client(issued.client.id, {"Authorization": f"Bearer {issued.api_key}"})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as c:
            source, source_secret = f"s-{uuid.uuid4().hex[:12]}", generate_signing_secret()
            response = await c.post(
                "/v1/partners",
                json={
                    "id": source,
                    "name": "Sending bureau",
                    "adapter": "loopback",
                    "signing_secrets": [source_secret],
                },
                headers=admin.headers,
            )
            assert response.status_code == 201, response.text
            gw = Gateway(app, c, runtime, dispatcher, breakers, admin, source, source_secret)
            try:
                yield gw
            finally:
                # Nothing this test subscribed may receive the next test's messages.
                for subscription_id, headers in gw.made:
                    await c.delete(f"/v1/subscriptions/{subscription_id}", headers=headers)
                await dispatcher.stop()


@pytest.fixture
async def gw(settings: Settings, subs_url: str) -> AsyncIterator[Gateway]:
    async with gateway(settings, subs_url) as g:
        yield g


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


# -- delivery to subscribers ----------------------------------------------------------------------


async def test_inbound_message_reaches_the_subscriber_signed(
    gw: Gateway, subscriber: Subscriber
) -> None:
    owner = await gw.client()
    created = await gw.subscribe(
        owner, url=subscriber.url, filter={"channels": ["bilateral"], "subject_kinds": ["person"]}
    )
    whsec = created["generated_signing_secret"]
    assert whsec.startswith("whsec_")
    elsewhere = await gw.subscribe(owner, url=subscriber.url, filter={"channels": ["sirene"]})

    message_id = await gw.inbound(case_ref="FI-SUB-1")
    await gw.drain()

    [request] = subscriber.requests
    event = Webhook(whsec).verify(request.body, request.headers)
    assert event["type"] == "message.inbound"
    assert event["data"]["message_id"] == str(message_id)
    assert event["data"]["case_ref"] == "FI-SUB-1"
    assert event["id"] == request.webhook_id

    view = await gw.deliveries(message_id)
    assert view["status"] == "received"  # an inbound message keeps its status
    [delivery] = view["deliveries"]
    assert delivery["partner"] is None
    assert delivery["subscription"] == created["id"]
    assert delivery["subscription"] != elsewhere["id"]
    assert delivery["id"] == request.webhook_id
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 1)

    async with gw.runtime.db.read_sessions() as session:
        stored = (
            await session.execute(select(Message.status).where(Message.id == message_id))
        ).scalar_one()
    assert stored == "received"
    [disclosure] = [
        e
        for e in await gw.audit(subject_id=str(message_id), event="message.disclosed")
        if e["action"] == "disclosure"
    ]
    assert disclosure["recipient"] == f"subscription:{created['id']}"
    assert disclosure["details"] == {
        "delivery_id": delivery["id"],
        "attempt": 1,
        "client_id": str(owner.id),
    }


async def test_filters_pick_the_subscribers(gw: Gateway, subscriber: Subscriber) -> None:
    owner = await gw.client()
    by_case = await gw.subscribe(
        owner, url=subscriber.url, filter={"case_ref": "FI-CASE-7", "events": ["message.inbound"]}
    )
    by_partner = await gw.subscribe(owner, url=subscriber.url, filter={"partners": [gw.source]})
    by_kind = await gw.subscribe(owner, url=subscriber.url, filter={"subject_kinds": ["substance"]})
    disabled = await gw.subscribe(owner, url=subscriber.url, enabled=False)

    matching = await gw.inbound(case_ref="fi-case-7")
    other = await gw.inbound(case_ref="FI-CASE-8")
    got = await gw.fanned_out_to(matching)
    assert uuid.UUID(by_case["id"]) in got
    assert uuid.UUID(by_partner["id"]) in got
    assert uuid.UUID(by_kind["id"]) in got  # the factory message names a substance
    assert uuid.UUID(disabled["id"]) not in got
    others = await gw.fanned_out_to(other)
    assert uuid.UUID(by_case["id"]) not in others
    assert uuid.UUID(by_partner["id"]) in others
    await gw.drain()


async def test_a_subscriber_that_is_down_loses_nothing(gw: Gateway) -> None:
    port = free_port()
    owner = await gw.client()
    whsec = secret()
    created = await gw.subscribe(
        owner, url=f"http://127.0.0.1:{port}/hook", signing_secrets=[whsec]
    )
    sent = [await gw.inbound(case_ref=f"DOWN-{i}") for i in range(5)]

    async def retried() -> bool:
        views = [await gw.deliveries(m) for m in sent]
        attempts: int = sum(v["deliveries"][0]["attempts"] for v in views)
        return attempts >= 8

    # Refused connections, retried with backoff (and the circuit, keyed by subscription,
    # opening after three of them: its probes keep retrying one delivery at a time).
    await until(retried)
    assert gw.breakers.state(f"subscription:{created['id']}") is not BreakerState.CLOSED
    for message_id in sent:
        [delivery] = (await gw.deliveries(message_id))["deliveries"]
        assert delivery["status"] in ("retrying", "in_flight", "pending")
        assert delivery["last_error"] is None or delivery["last_error"].startswith("transport")

    server = Subscriber()
    await server.start(port)
    try:
        await gw.drain(within=30)
    finally:
        await server.stop()

    views = {m: await gw.deliveries(m) for m in sent}
    ids = {m: v["deliveries"][0]["id"] for m, v in views.items()}
    assert all(v["deliveries"][0]["status"] == "delivered" for v in views.values())
    assert all(v["deliveries"][0]["subscription"] == created["id"] for v in views.values())
    # Everything arrived; a duplicate only ever under the same webhook-id.
    received = Counter(r.webhook_id for r in server.requests)
    assert set(received) == set(ids.values())
    for request in server.requests:
        event = Webhook(whsec).verify(request.body, request.headers)
        assert ids[uuid.UUID(event["data"]["message_id"])] == request.webhook_id


async def test_410_disables_the_subscription(gw: Gateway, subscriber: Subscriber) -> None:
    subscriber.otherwise = status(410)
    owner = await gw.client()
    created = await gw.subscribe(owner, url=subscriber.url)
    message_id = await gw.inbound()
    await gw.drain()

    [delivery] = (await gw.deliveries(message_id))["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("dead", 1)
    assert delivery["attempt_history"][0]["outcome"] == "gone"
    shown = (await gw.http.get(f"/v1/subscriptions/{created['id']}", headers=owner.headers)).json()
    assert shown["enabled"] is False
    assert shown["disabled_reason"].startswith("subscriber answered 410 Gone")
    [disabled] = await gw.audit(subject_id=created["id"], event="subscription.disabled")
    assert disabled["actor"] == "system:dispatcher"
    assert (await gw.deliveries(message_id))["status"] == "received"

    # Disabled: later messages are not fanned out to it.
    later = await gw.inbound()
    assert uuid.UUID(created["id"]) not in await gw.fanned_out_to(later)
    assert len(subscriber.requests) == 1


async def test_dead_letter_and_redrive_of_a_subscriber_delivery(
    gw: Gateway, subscriber: Subscriber
) -> None:
    subscriber.script.append(status(400))
    owner = await gw.client()
    created = await gw.subscribe(owner, url=subscriber.url)
    message_id = await gw.inbound()
    await gw.drain()

    [delivery] = (await gw.deliveries(message_id))["deliveries"]
    assert delivery["status"] == "dead"
    listing = await gw.http.get(
        "/v1/dead-letters", params={"subscription": created["id"]}, headers=gw.admin.headers
    )
    assert listing.status_code == 200, listing.text
    [dead] = listing.json()["items"]
    assert dead["id"] == delivery["id"]
    assert (dead["partner"], dead["subscription"]) == (None, created["id"])
    assert dead["last_status_code"] == 400
    by_partner = await gw.http.get(
        "/v1/dead-letters", params={"partner": gw.source}, headers=gw.admin.headers
    )
    assert by_partner.json()["items"] == []

    # A disabled subscription's dead letters are not redriven.
    patched = await gw.http.patch(
        f"/v1/subscriptions/{created['id']}", json={"enabled": False}, headers=owner.headers
    )
    assert patched.status_code == 200, patched.text
    refused = await gw.http.post(
        "/v1/dead-letters/redrive",
        json={"subscription": created["id"]},
        headers=gw.admin.headers,
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["unavailable_subscriptions"] == [created["id"]]
    await gw.http.patch(
        f"/v1/subscriptions/{created['id']}", json={"enabled": True}, headers=owner.headers
    )

    redriven = await gw.http.post(
        "/v1/dead-letters/redrive",
        json={"subscription": created["id"]},
        headers=gw.admin.headers,
    )
    assert redriven.status_code == 200, redriven.text
    assert redriven.json()["ids"] == [delivery["id"]]
    await gw.drain()
    [delivery] = (await gw.deliveries(message_id))["deliveries"]
    assert delivery["status"] == "delivered"
    assert [r.webhook_id for r in subscriber.requests] == [delivery["id"]] * 2
    assert (await gw.deliveries(message_id))["status"] == "received"
    [entry] = await gw.audit(subject_id=created["id"], event="dead_letters.redriven")
    assert entry["subject_type"] == "subscription"
    assert entry["details"]["subscriptions"] == [created["id"]]


async def test_deleting_a_subscription_dead_letters_its_open_deliveries(
    gw: Gateway, subscriber: Subscriber
) -> None:
    owner = await gw.client()
    created = await gw.subscribe(owner, url=subscriber.url)
    await gw.dispatcher.stop()
    message_id = await gw.inbound()
    response = await gw.http.delete(f"/v1/subscriptions/{created['id']}", headers=owner.headers)
    assert response.status_code == 204
    await gw.dispatcher.start()
    await gw.drain()

    [delivery] = (await gw.deliveries(message_id))["deliveries"]
    assert delivery["status"] == "dead"
    assert "subscription was deleted" in delivery["last_error"]
    assert subscriber.requests == []
    # Deleted: gone from the API, and it matches nothing more.
    gone = await gw.http.get(f"/v1/subscriptions/{created['id']}", headers=owner.headers)
    assert gone.status_code == 404
    later = await gw.inbound()
    assert uuid.UUID(created["id"]) not in await gw.fanned_out_to(later)
    refused = await gw.http.post(
        "/v1/dead-letters/redrive", json={"ids": [delivery["id"]]}, headers=gw.admin.headers
    )
    assert refused.status_code == 409, refused.text


# -- the API --------------------------------------------------------------------------------------


async def test_ownership(gw: Gateway) -> None:
    owner, other = await gw.client(), await gw.client()
    mine = await gw.subscribe(owner)
    theirs = await gw.subscribe(other)
    path = f"/v1/subscriptions/{mine['id']}"

    assert (await gw.http.get(path, headers=other.headers)).status_code == 404
    response = await gw.http.patch(path, json={"name": "taken"}, headers=other.headers)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert (await gw.http.delete(path, headers=other.headers)).status_code == 404
    assert (await gw.http.get(path, headers=owner.headers)).json()["name"] == "Test subscriber"

    listed = (await gw.http.get("/v1/subscriptions", headers=owner.headers)).json()
    assert [s["id"] for s in listed["items"]] == [mine["id"]]
    everyone = await gw.http.get(
        "/v1/subscriptions", params={"limit": "500"}, headers=gw.admin.headers
    )
    assert {mine["id"], theirs["id"]} <= {s["id"] for s in everyone.json()["items"]}
    assert (await gw.http.get(path, headers=gw.admin.headers)).status_code == 200

    no_scope = await gw.client("messages:write")
    assert (await gw.http.get("/v1/subscriptions", headers=no_scope.headers)).status_code == 403
    assert (await gw.http.get("/v1/subscriptions")).status_code == 401


async def test_secret_is_shown_once_and_case_ref_only_to_its_owner(gw: Gateway) -> None:
    owner = await gw.client()
    body = {
        "name": "Case watch",
        "url": "https://watch.example/hook",
        "filter": {"case_ref": "FI-NBI-2026-9", "priorities": ["urgent"]},
    }
    headers = {**owner.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await gw.http.post("/v1/subscriptions", json=body, headers=headers)
    assert first.status_code == 201, first.text
    created = first.json()
    gw.made.append((created["id"], owner.headers))
    whsec = created["generated_signing_secret"]
    assert whsec.startswith("whsec_")
    assert first.headers["location"] == f"/v1/subscriptions/{created['id']}"
    replay = await gw.http.post("/v1/subscriptions", json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == created["id"]
    assert replay.json()["generated_signing_secret"] is None
    changed = await gw.http.post(
        "/v1/subscriptions", json={**body, "name": "Other"}, headers=headers
    )
    assert changed.status_code == 422

    shown = await gw.http.get(f"/v1/subscriptions/{created['id']}", headers=owner.headers)
    assert whsec not in shown.text
    data = shown.json()
    assert data["signing_secrets"] == {"count": 1, "hints": [whsec[:10]]}
    assert data["filter"]["case_ref"] == "FI-NBI-2026-9"
    assert data["filter"]["priorities"] == ["urgent"]
    assert data["owner"] == str(owner.id)

    rotated = secret()
    patched = await gw.http.patch(
        f"/v1/subscriptions/{created['id']}",
        json={"signing_secrets": [rotated, whsec], "name": "Renamed"},
        headers=owner.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["signing_secrets"]["count"] == 2
    assert patched.json()["filter"]["case_ref"] == "FI-NBI-2026-9"  # kept across a reseal
    assert rotated not in patched.text
    refiltered = await gw.http.patch(
        f"/v1/subscriptions/{created['id']}", json={"filter": {}}, headers=owner.headers
    )
    assert refiltered.json()["filter"]["case_ref"] is None
    assert refiltered.json()["signing_secrets"]["count"] == 2
    [entry] = await gw.audit(subject_id=created["id"], event="subscription.created")
    assert whsec not in orjson.dumps(entry).decode()
    assert "FI-NBI-2026-9" not in orjson.dumps(entry).decode()


BAD_CREATES: list[tuple[str, dict[str, Any]]] = [
    ("url", {"url": "not a url"}),
    ("url", {"url": "ftp://sub.example/hook"}),
    ("url", {"url": "https://user:pw@sub.example/hook"}),
    ("url", {"url": "https://10.1.2.3/hook"}),  # private, not in subscriber_networks
    ("url", {"url": "https://192.168.0.10/hook"}),
    ("url", {"url": "https://127.0.0.2/hook"}),  # loopback outside 127.0.0.1/32
    ("url", {"url": "https://[::ffff:10.0.0.1]/hook"}),
    ("url", {"url": "http://93.184.216.34/hook"}),  # http to a public address
    ("url", {"url": "https://sub.example:99999/hook"}),
    ("url", {"url": "x" * 3000}),
    ("extra", {"owner": str(uuid.uuid4())}),
    ("filter", {"filter": {"subject_kinds": ["alien"]}}),
    ("filter", {"filter": {"channels": ["carrier-pigeon"]}}),
    ("filter", {"filter": {"events": ["request.closed"]}}),
    ("filter", {"filter": {"priorities": "urgent"}}),
    ("filter", {"filter": {"types": ["gossip"]}}),
    ("filter", {"filter": {"partners": ["Not A Partner"]}}),
    ("filter", {"filter": {"partners": ["no-such-partner"]}}),
    ("filter", {"filter": {"case_ref": "x" * 65}}),
    ("filter", {"filter": {"unknown": []}}),
    ("secret", {"signing_secrets": ["not-a-secret"]}),
    ("name", {"name": ""}),
]


@pytest.mark.parametrize(
    ("what", "change"), BAD_CREATES, ids=[f"{w}-{i}" for i, (w, _) in enumerate(BAD_CREATES)]
)
async def test_bad_input_is_422(gw: Gateway, what: str, change: dict[str, Any]) -> None:
    owner = await gw.client()
    body: dict[str, Any] = {"name": "Bad", "url": "https://sub.example/hook", **change}
    response = await gw.http.post("/v1/subscriptions", json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 422
    listed = (await gw.http.get("/v1/subscriptions", headers=owner.headers)).json()
    assert listed["items"] == []


@pytest.mark.parametrize(
    "patch",
    [
        {"url": "https://10.0.0.1/hook"},
        {"url": None},
        {"name": None},
        {"signing_secrets": []},
        {"filter": {"channels": ["nope"]}},
        {"enabled": "maybe"},
        {"client_id": str(uuid.uuid4())},
    ],
)
async def test_bad_patch_is_422(gw: Gateway, patch: dict[str, Any]) -> None:
    owner = await gw.client()
    created = await gw.subscribe(owner)
    path = f"/v1/subscriptions/{created['id']}"
    response = await gw.http.patch(path, json=patch, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (await gw.http.get(path, headers=owner.headers)).json() == {
        k: v for k, v in created.items() if k != "generated_signing_secret"
    }


async def test_http_inside_subscriber_networks_and_paths(gw: Gateway) -> None:
    owner = await gw.client()
    await gw.subscribe(owner, url="http://127.0.0.1:9/hook")
    await gw.subscribe(owner, url="https://127.0.0.1/hook")
    await gw.subscribe(owner, url="https://sub.example/hook")  # a name: resolved at delivery
    for path in ("/v1/subscriptions/not-a-uuid", "/v1/subscriptions?cursor=garbage"):
        response = await gw.http.get(path, headers=owner.headers)
        assert response.status_code == 422, response.text
    missing = await gw.http.get(f"/v1/subscriptions/{uuid.uuid4()}", headers=owner.headers)
    assert missing.status_code == 404


async def test_list_pages_with_a_cursor(gw: Gateway) -> None:
    owner = await gw.client()
    made = [(await gw.subscribe(owner, name=f"s{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    for _ in range(5):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await gw.http.get("/v1/subscriptions", params=params, headers=owner.headers)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made
