"""Delivery data shows only what the caller may see (issue 13, broken object level
authorization in listings).

An inbound message is visible to every `messages:read` client, and a request to every
`requests:manage` client; their deliveries go to the subscriptions of several clients.
Those deliveries (subscription ids, delivery ids, attempts, errors) belong to the
client owning the subscription, as the subscription itself does: another client never
sees a byte of them, in `GET /v1/messages/{id}/deliveries`,
`GET /v1/requests/{id}/deliveries`, `GET /v1/dead-letters` or through
`POST /v1/dead-letters/redrive`. Admins see everything; partner deliveries show to
whoever may see what they carry (partner operators in the dead letters).

The module runs an app on a database of its own: the inbound message and the request
it makes would otherwise show up in other tests' listings. Every delivery here really
fails (the callbacks are closed ports on 127.0.0.1) and dies after one attempt.
"""

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from commcentre.app import create_app
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.delivery.retry import RetryPolicy
from commcentre.requests.automation import escalate_overdue
from commcentre.runtime import Runtime
from tests.conftest import ApiUser
from tests.databases import fresh_database
from tests.factories import message
from tests.inbound_support import event, signed_headers
from tests.integration.requests_support import directive_request
from tests.integration.subscriptions_support import free_port

PROBLEM = "application/problem+json"
SCOPES = ("messages:read", "messages:write", "requests:manage", "partners:manage")


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError("these tests resolve no names")


@pytest.fixture(scope="module")
def own_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("visibility"), "visibility") as url:
        yield url


@pytest.fixture(scope="module")
async def app(
    own_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    keyring: Path = tmp_path_factory.mktemp("visibility-keys") / "keyring.json"
    settings = Settings(
        database_url=own_database,
        keyring_path=keyring,
        ingest_batch_wait_ms=0.5,
        subscriber_networks=[IPv4Network("127.0.0.1/32")],
        delivery_timeout_seconds=5.0,
    )
    # One attempt, then a dead letter: every delivery here has an attempt and an error.
    application = create_app(settings, retry_policy=RetryPolicy(max_attempts=1), resolver=no_dns)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as client:
        yield client


@dataclass(frozen=True)
class Side:
    """A client, its subscription and the deliveries made to that subscription."""

    user: ApiUser
    subscription_id: str
    canaries: tuple[str, ...]  # its subscription's id, name, url and delivery ids


@dataclass(frozen=True)
class World:
    admin: ApiUser
    a: Side
    b: Side
    bystander: ApiUser  # every scope, no subscription
    lacking: dict[str, ApiUser]  # by scope: a client with every scope but that one
    message_id: str  # inbound: fanned out to a's and b's subscriptions
    request_id: str  # escalated: an event to a's and b's subscriptions
    partner_delivery_id: str  # a's outbound message to the partner


def assert_none_of(canaries: Sequence[str], response: httpx.Response) -> None:
    """None of these bytes in the answer, except those the caller itself sent."""
    sent = str(response.request.url) + response.request.content.decode()
    text = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
    leaked = [c for c in canaries if c in text and c not in sent]
    assert not leaked, f"{response.request.method} {response.request.url}: leaked {leaked}"


async def settled(http: httpx.AsyncClient, admin: ApiUser, path: str, count: int) -> list[Any]:
    """The deliveries at `path` once `count` of them are dead."""
    deadline = time.monotonic() + 20
    while True:
        response = await http.get(path, headers=admin.headers)
        assert response.status_code == 200, response.text
        deliveries: list[Any] = response.json()["deliveries"]
        if len([d for d in deliveries if d["status"] == "dead"]) >= count:
            return deliveries
        assert time.monotonic() < deadline, deliveries
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def world(app: FastAPI, http: httpx.AsyncClient) -> World:
    runtime: Runtime = app.state.runtime

    async def user(*scopes: str) -> ApiUser:
        async with runtime.db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="visibility", scopes=list(scopes), actor="test", now=utcnow()
            )
        return ApiUser(issued.client.id, issued.api_key)

    admin = await user("admin")
    users = [await user(*SCOPES), await user(*SCOPES)]
    subscriptions = []
    for owner in users:
        marker = uuid.uuid4().hex[:10]
        body = {
            "name": f"visibility subscriber {marker}",
            "url": f"http://127.0.0.1:{free_port()}/hook-{marker}",
            "filter": {"events": ["message.inbound", "request.overdue"]},
        }
        created = await http.post("/v1/subscriptions", json=body, headers=owner.headers)
        assert created.status_code == 201, created.text
        subscriptions.append((created.json()["id"], body["name"], body["url"]))

    secret = f"whsec_{base64.b64encode(os.urandom(32)).decode()}"
    partner = f"vis-{uuid.uuid4().hex[:10]}"
    registered = await http.post(
        "/v1/partners",
        json={
            "id": partner,
            "name": "Visibility bureau",
            "adapter": "webhook",
            "config": {"url": f"http://127.0.0.1:{free_port()}/in"},
            "allow_loopback": True,
            "inbound_secrets": [secret],
        },
        headers=admin.headers,
    )
    assert registered.status_code == 201, registered.text
    body = orjson.dumps(event())
    pushed = await http.post(
        f"/v1/inbound/{partner}", content=body, headers=signed_headers(body, secret)
    )
    assert pushed.status_code == 202, pushed.text
    message_id = pushed.json()["id"]
    sent = await http.post(
        "/v1/messages",
        json=message(channel="bilateral", recipients=[partner]),
        headers=users[0].headers,
    )
    assert sent.status_code == 202, sent.text
    [partner_delivery] = sent.json()["deliveries"]
    # Received a week ago: the 3-day limit is past, so escalating now sends its event.
    received = (utcnow() - timedelta(days=7)).isoformat()
    opened = await http.post(
        "/v1/requests",
        json=directive_request(f"VIS-{uuid.uuid4().hex[:8]}", received_at=received),
        headers=admin.headers,
    )

    assert opened.status_code == 201, opened.text
    request_id = opened.json()["id"]
    escalated = await escalate_overdue(runtime.db, now=utcnow(), vault=runtime.vault)
    assert uuid.UUID(request_id) in escalated
    if runtime.dispatcher is not None:
        runtime.dispatcher.wake()

    by_message = await settled(http, admin, f"/v1/messages/{message_id}/deliveries", 2)
    by_request = await settled(http, admin, f"/v1/requests/{request_id}/deliveries", 2)
    await settled(http, admin, f"/v1/messages/{sent.json()['id']}/deliveries", 1)
    sides = []
    for owner, (subscription_id, name, url) in zip(users, subscriptions, strict=True):
        delivery_ids = [
            d["id"] for d in (*by_message, *by_request) if d["subscription"] == subscription_id
        ]
        assert len(delivery_ids) == 2
        sides.append(Side(owner, subscription_id, (subscription_id, name, url, *delivery_ids)))
    lacking = {scope: await user(*(s for s in SCOPES if s != scope)) for scope in SCOPES}
    return World(
        admin=admin,
        a=sides[0],
        b=sides[1],
        bystander=await user(*SCOPES),
        lacking=lacking,
        message_id=message_id,
        request_id=request_id,
        partner_delivery_id=partner_delivery["id"],
    )


def _listings(world: World) -> list[tuple[str, str, int]]:
    """(path, the scope it needs, how many rows each subscriber has there) of every
    listing of delivery data."""
    return [
        (f"/v1/messages/{world.message_id}/deliveries", "messages:read", 1),
        (f"/v1/requests/{world.request_id}/deliveries", "requests:manage", 1),
        ("/v1/dead-letters?limit=500", "partners:manage", 2),  # the message and the event
    ]


async def test_each_subscriber_sees_only_its_own_subscriptions_deliveries(
    http: httpx.AsyncClient, world: World
) -> None:
    """A subscriber client sees its own subscription's deliveries (attempt, error) and not
    a byte of the other client's: subscription id, name, url, delivery ids."""
    for me, them in ((world.a, world.b), (world.b, world.a)):
        for path, _, count in _listings(world):
            response = await http.get(path, headers=me.user.headers)
            assert response.status_code == 200, response.text
            assert_none_of(them.canaries, response)
            items = response.json().get("deliveries", response.json().get("items"))
            mine = [d for d in items if d["subscription"] == me.subscription_id]
            assert len(mine) == count, (path, items)
            assert all(d["attempts"] == 1 and d["last_error"] for d in mine)
            assert {d["subscription"] for d in items} <= {me.subscription_id, None}


async def test_a_client_without_subscriptions_sees_none_of_them(
    http: httpx.AsyncClient, world: World
) -> None:
    """Seeing the message (every messages:read client sees inbound ones) or the request
    is not seeing where it went: no subscription delivery is listed."""
    for path, _, _ in _listings(world):
        response = await http.get(path, headers=world.bystander.headers)
        assert response.status_code == 200, response.text
        assert_none_of(world.a.canaries + world.b.canaries, response)
        items = response.json().get("deliveries", response.json().get("items"))
        assert all(d["subscription"] is None for d in items)


async def test_the_owner_of_an_outbound_message_sees_its_partner_delivery(
    http: httpx.AsyncClient, world: World
) -> None:
    """Partner deliveries show to the message's owner (another client gets 404 for the
    message itself: tests/security/test_authorization.py) and to partner operators."""
    dead = await http.get("/v1/dead-letters?limit=500", headers=world.b.user.headers)
    assert world.partner_delivery_id in dead.text  # partners:manage: every partner's
    response = await http.get("/v1/messages", headers=world.a.user.headers)
    assert response.status_code == 200
    [outbound] = [m for m in response.json()["items"] if m["direction"] == "outbound"]
    mine = await http.get(f"/v1/messages/{outbound['id']}/deliveries", headers=world.a.user.headers)
    assert [d["id"] for d in mine.json()["deliveries"]] == [world.partner_delivery_id]
    theirs = await http.get(
        f"/v1/messages/{outbound['id']}/deliveries", headers=world.b.user.headers
    )
    assert theirs.status_code == 404


async def test_an_admin_sees_every_delivery(http: httpx.AsyncClient, world: World) -> None:
    for path, _, _ in _listings(world):
        response = await http.get(path, headers=world.admin.headers)
        assert response.status_code == 200, response.text
        for canary in (world.a.subscription_id, world.b.subscription_id):
            assert canary in response.text, path


async def test_without_the_scope_or_a_key_nothing_is_shown(
    http: httpx.AsyncClient, world: World
) -> None:
    every = world.a.canaries + world.b.canaries
    for path, scope, _ in _listings(world):
        lacking = await http.get(path, headers=world.lacking[scope].headers)
        assert lacking.status_code == 403, lacking.text
        assert lacking.headers["content-type"].startswith(PROBLEM)
        assert_none_of(every, lacking)
        for headers in ({}, {"Authorization": "Bearer ck_not-a-key"}):
            anonymous = await http.get(path, headers=headers)
            assert anonymous.status_code == 401, anonymous.text
            assert_none_of(every, anonymous)


async def test_another_clients_dead_letters_cannot_be_redriven_or_probed(
    http: httpx.AsyncClient, world: World
) -> None:
    """Redrive is no side door: by id another client's subscription dead letters are
    skipped like unknown ids, that subscription as a filter is 404 like an unknown one,
    and a filter by time leaves them out."""
    me, them = world.b, world.a
    by_ids = await http.post(
        "/v1/dead-letters/redrive",
        json={"ids": list(them.canaries[3:]), "dry_run": True},
        headers=me.user.headers,
    )
    assert by_ids.status_code == 200, by_ids.text
    assert by_ids.json()["redriven"] == 0
    assert by_ids.json()["ids"] == []
    by_subscription = await http.post(
        "/v1/dead-letters/redrive",
        json={"subscription": them.subscription_id, "dry_run": True},
        headers=me.user.headers,
    )
    assert by_subscription.status_code == 404, by_subscription.text
    ghost_id = str(uuid.uuid4())
    ghost = await http.post(
        "/v1/dead-letters/redrive",
        json={"subscription": ghost_id, "dry_run": True},
        headers=me.user.headers,
    )
    assert ghost.status_code == 404
    # The same answer as for a subscription that does not exist.
    theirs = by_subscription.json()["detail"].replace(them.subscription_id, "<id>")
    assert theirs == ghost.json()["detail"].replace(ghost_id, "<id>")
    by_time = await http.post(
        "/v1/dead-letters/redrive",
        json={"since": "2000-01-01T00:00:00Z", "dry_run": True},
        headers=me.user.headers,
    )
    assert by_time.status_code == 200, by_time.text
    assert_none_of(them.canaries, by_time)
    assert set(me.canaries[3:]) <= set(by_time.json()["ids"])
    for response in (by_ids, by_subscription, by_time):
        assert_none_of(them.canaries, response)
    # An admin's dry run sees them all.
    admin = await http.post(
        "/v1/dead-letters/redrive",
        json={"since": "2000-01-01T00:00:00Z", "dry_run": True},
        headers=world.admin.headers,
    )
    assert set(them.canaries[3:]) <= set(admin.json()["ids"])


async def test_every_listing_is_covered(world: World) -> None:
    """The listings checked here are every route that returns delivery rows."""
    from tests.security.routes import ROUTES

    listing_routes = {
        path for (_, path) in ROUTES if "deliveries" in path or "dead-letters" in path
    }
    assert listing_routes == {
        "/v1/messages/{message_id}/deliveries",
        "/v1/requests/{request_id}/deliveries",
        "/v1/dead-letters",
        "/v1/dead-letters/redrive",
    }
