"""A captured delivery of ours is never accepted back as a partner's message (issue 13).

Threat: anyone who captures one of our outbound deliveries (at the partner, in a proxy's
log) replays its exact headers and body to POST /v1/inbound/{partner} within the
timestamp window. When one secret signed what we send and verified what the partner
sends, that replay was stored as the partner's own message. Now each direction has its
own secrets, and our own deliveries and message ids are refused on the inbound endpoint.

The deliveries here are real: the app's dispatcher sends them, through the webhook
adapter, to an HTTP server on 127.0.0.1 that records them, and the tests replay what it
recorded. Each test runs an app on a database of this module's own.
"""

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import IPv4Network

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from commcentre.app import create_app
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.delivery.breaker import CircuitBreakers
from commcentre.delivery.dispatcher import Dispatcher, DispatcherSettings
from commcentre.delivery.retry import RetryPolicy
from commcentre.inbound.models import InboxEntry
from commcentre.messages.models import Message
from commcentre.partners import sealing
from commcentre.partners.models import Partner
from commcentre.runtime import Runtime
from tests.databases import fresh_database
from tests.factories import message
from tests.inbound_support import event, signed_headers
from tests.integration.subscriptions_support import Request, Subscriber

FAST = RetryPolicy(base=0.05, cap=0.2, max_attempts=200)
NETWORKS = [IPv4Network("127.0.0.1/32")]
REPLAY_TYPE = "replayed-delivery"
# What the HTTP client sets itself; every other header is replayed exactly.
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "connection"})


def new_secret() -> str:
    return f"whsec_{base64.b64encode(os.urandom(32)).decode()}"


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError("these tests resolve no names")


@pytest.fixture(scope="module")
def replay_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("replay"), "replay") as url:
        yield url


@dataclass
class Gateway:
    app: FastAPI
    http: httpx.AsyncClient
    runtime: Runtime
    dispatcher: Dispatcher
    admin: dict[str, str]

    async def partner(self, url: str, **secrets: list[str]) -> str:
        """A webhook partner at `url` (on 127.0.0.1), registered with the secrets given."""
        pid = f"rp-{uuid.uuid4().hex[:12]}"
        body = {
            "id": pid,
            "name": "Replay test bureau",
            "adapter": "webhook",
            "config": {"url": url},
            "allow_loopback": True,
            **secrets,
        }
        response = await self.http.post("/v1/partners", json=body, headers=self.admin)
        assert response.status_code == 201, response.text
        return pid

    async def send(self, partner_id: str) -> str:
        """Submit a message to `partner_id`; the dispatcher delivers it."""
        response = await self.http.post(
            "/v1/messages",
            json=message(channel="bilateral", recipients=[partner_id]),
            headers=self.admin,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    async def push(self, partner_id: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(f"/v1/inbound/{partner_id}", content=body, headers=headers)

    async def replay(self, partner_id: str, captured: Request) -> httpx.Response:
        """POST a recorded delivery, exact headers and body, as the partner's push."""
        headers = {k: v for k, v in captured.headers.items() if k not in _TRANSPORT_HEADERS}
        return await self.push(partner_id, captured.body, headers)

    async def stored_from(self, partner_id: str) -> tuple[int, int]:
        """(messages stored as received from the partner, its inbox rows)."""
        async with self.runtime.db.read_sessions() as session:
            messages = await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.source_partner_id == partner_id)
            )
            inbox = await session.scalar(
                select(func.count())
                .select_from(InboxEntry)
                .where(InboxEntry.partner_id == partner_id)
            )
        return (messages or 0, inbox or 0)


@asynccontextmanager
async def gateway(settings: Settings, url: str) -> AsyncIterator[Gateway]:
    configured = settings.model_copy(
        update={
            "database_url": url,
            "delivery_timeout_seconds": 5.0,
            "dispatcher_enabled": False,
            "subscriber_networks": NETWORKS,
        }
    )
    app = create_app(configured, retry_policy=FAST, resolver=no_dns)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        dispatcher = Dispatcher(
            runtime.db,
            vault=runtime.vault,
            adapters=runtime.adapters,
            clock=utcnow,
            policy=FAST,
            breakers=CircuitBreakers(threshold=1000, cooldown=0.1),
            settings=DispatcherSettings(poll_interval=0.05, subscriber_networks=tuple(NETWORKS)),
        )
        runtime.dispatcher = dispatcher
        await dispatcher.start()
        async with runtime.db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="replay-admin", scopes=["admin"], actor="test", now=utcnow()
            )
        admin = {"Authorization": f"Bearer {issued.api_key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as c:
            try:
                yield Gateway(app, c, runtime, dispatcher, admin)
            finally:
                await dispatcher.stop()


@pytest.fixture
async def gw(settings: Settings, replay_url: str) -> AsyncIterator[Gateway]:
    async with gateway(settings, replay_url) as g:
        yield g


@pytest.fixture
async def receiver() -> AsyncIterator[Subscriber]:
    """The partner's (or a subscriber's) HTTP endpoint, recording what we deliver."""
    server = Subscriber()
    await server.start()
    yield server
    await server.stop()


async def until(condition: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def delivered_to(receiver: Subscriber, count: int = 1) -> list[Request]:
    async def arrived() -> bool:
        return len(receiver.requests) >= count

    await until(arrived)
    return receiver.requests


def assert_replay_refused(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith(REPLAY_TYPE), problem
    assert "replay" in problem["detail"]


def verifies(secret: str, request: Request) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers)
    except WebhookVerificationError:
        return False
    return True


# -- a captured partner delivery --------------------------------------------------------


async def test_a_captured_delivery_replayed_to_the_partners_inbound_is_refused(
    gw: Gateway, receiver: Subscriber
) -> None:
    """The partner registered with one secret, as before the split: that secret still
    verifies its pushes, but our delivery is signed with another, generated one, so the
    captured delivery replayed within the window is refused (401, nothing stored)."""
    secret = new_secret()
    pid = await gw.partner(receiver.url, signing_secrets=[secret])
    await gw.send(pid)
    [captured] = await delivered_to(receiver)
    assert not verifies(secret, captured)  # our deliveries are not signed with its secret

    replayed = await gw.replay(pid, captured)
    assert_replay_refused(replayed, 401)
    assert await gw.stored_from(pid) == (0, 0)

    # The partner's own push, signed with its (inbound) secret, is accepted as ever.
    body = orjson.dumps(event())
    genuine = await gw.push(pid, body, signed_headers(body, secret))
    assert genuine.status_code == 202, genuine.text
    assert await gw.stored_from(pid) == (1, 1)


async def test_each_direction_uses_only_its_own_secrets(gw: Gateway, receiver: Subscriber) -> None:
    """Deliveries are signed with the outbound secret and verify with it alone; pushes are
    verified with the inbound secret alone (one signed with the outbound secret is 401)."""
    inbound, outbound = new_secret(), new_secret()
    pid = await gw.partner(receiver.url, inbound_secrets=[inbound], outbound_secrets=[outbound])
    await gw.send(pid)
    [captured] = await delivered_to(receiver)
    assert verifies(outbound, captured)
    assert not verifies(inbound, captured)
    assert_replay_refused(await gw.replay(pid, captured), 401)

    body = orjson.dumps(event())
    forged = await gw.push(pid, body, signed_headers(body, outbound))
    assert forged.status_code == 401, forged.text
    genuine = await gw.push(pid, body, signed_headers(body, inbound))
    assert genuine.status_code == 202, genuine.text
    assert await gw.stored_from(pid) == (1, 1)


async def test_each_direction_rotates_on_its_own(gw: Gateway, receiver: Subscriber) -> None:
    """Rotating the inbound secret leaves what we sign alone, and rotating the outbound
    secret leaves what we accept alone; during each rotation old and new both work."""
    inbound, outbound = new_secret(), new_secret()
    inbound2, outbound2 = new_secret(), new_secret()
    pid = await gw.partner(receiver.url, inbound_secrets=[inbound], outbound_secrets=[outbound])
    url = f"/v1/partners/{pid}"

    async def pushed_with(secret: str) -> int:
        body = orjson.dumps(event())
        return (await gw.push(pid, body, signed_headers(body, secret))).status_code

    patched = await gw.http.patch(
        url, json={"inbound_secrets": [inbound2, inbound]}, headers=gw.admin
    )
    assert patched.status_code == 200, patched.text
    assert (await pushed_with(inbound), await pushed_with(inbound2)) == (202, 202)
    await gw.http.patch(url, json={"inbound_secrets": [inbound2]}, headers=gw.admin)
    assert (await pushed_with(inbound), await pushed_with(inbound2)) == (401, 202)
    await gw.send(pid)
    [first] = await delivered_to(receiver)
    assert verifies(outbound, first)
    assert not verifies(inbound2, first)

    patched = await gw.http.patch(
        url, json={"outbound_secrets": [outbound2, outbound]}, headers=gw.admin
    )
    assert patched.status_code == 200, patched.text
    await gw.send(pid)
    second = (await delivered_to(receiver, 2))[1]
    assert verifies(outbound, second)
    assert verifies(outbound2, second)
    assert await pushed_with(inbound2) == 202  # inbound untouched by the outbound rotation
    await gw.http.patch(url, json={"outbound_secrets": [outbound2]}, headers=gw.admin)
    await gw.send(pid)
    third = (await delivered_to(receiver, 3))[2]
    assert verifies(outbound2, third)
    assert not verifies(outbound, third)
    for captured in (second, third):
        assert_replay_refused(await gw.replay(pid, captured), 401)
    # Signed with a retired outbound secret: nothing proves it ours now, but no inbound
    # secret verifies it either.
    assert (await gw.replay(pid, first)).status_code == 401
    assert await gw.stored_from(pid) == (4, 4)  # the four genuine pushes only


# -- our ids, whatever signed them ------------------------------------------------------


async def test_our_delivery_under_a_secret_shared_with_another_partner_is_refused(
    gw: Gateway, receiver: Subscriber
) -> None:
    """Defence in depth: an operator gave one partner's outbound secret to another partner
    as its inbound secret, so our delivery to the first verifies at the second's inbound.
    Its webhook-id (our delivery id) and its message id (ours) still refuse it (422)."""
    shared = new_secret()
    first = await gw.partner(receiver.url, outbound_secrets=[shared])
    second = await gw.partner(receiver.url, inbound_secrets=[shared])
    await gw.send(first)
    [captured] = await delivered_to(receiver)
    assert verifies(shared, captured)

    assert_replay_refused(await gw.replay(second, captured), 422)
    # Re-signed under a fresh webhook-id by whoever holds the secret: the document still
    # names our message as its own.
    resigned = signed_headers(captured.body, shared)
    assert_replay_refused(await gw.push(second, captured.body, resigned), 422)
    assert await gw.stored_from(second) == (0, 0)


async def test_a_captured_subscriber_delivery_is_refused_as_a_partner_push(
    gw: Gateway, receiver: Subscriber
) -> None:
    """Our deliveries to internal subscribers carry inbound messages in the same event
    format. Captured and replayed to the source partner's inbound endpoint, one is refused:
    401 (signed with the subscription's secret), and 422 even when the subscription's
    secret is the partner's inbound secret (its ids are ours)."""
    partner_secret = new_secret()
    pid = await gw.partner("https://partner.example/in", inbound_secrets=[partner_secret])
    reader = await gw.http.post(
        "/v1/subscriptions",
        json={"name": "replay subscriber", "url": receiver.url},
        headers=gw.admin,
    )
    assert reader.status_code == 201, reader.text
    body = orjson.dumps(event())
    pushed = await gw.push(pid, body, signed_headers(body, partner_secret))
    assert pushed.status_code == 202, pushed.text
    [captured] = await delivered_to(receiver)
    assert verifies(reader.json()["generated_signing_secret"], captured)
    assert_replay_refused(await gw.replay(pid, captured), 401)

    # A subscription whose owner chose the partner's inbound secret as its own.
    twin = await gw.http.patch(
        f"/v1/subscriptions/{reader.json()['id']}",
        json={"signing_secrets": [partner_secret]},
        headers=gw.admin,
    )
    assert twin.status_code == 200, twin.text
    pushed = await gw.push(pid, body, signed_headers(body, partner_secret))
    assert pushed.status_code == 202, pushed.text
    second = (await delivered_to(receiver, 2))[1]
    assert verifies(partner_secret, second)
    assert_replay_refused(await gw.replay(pid, second), 422)
    assert await gw.stored_from(pid) == (2, 2)  # the two genuine pushes only
    await gw.http.delete(f"/v1/subscriptions/{reader.json()['id']}", headers=gw.admin)


# -- a partner registered before the split ----------------------------------------------


async def _make_legacy(gw: Gateway, partner_id: str, secret: str) -> None:
    """Seal the partner's envelope as rows were sealed before the split: one list of
    secrets (`"secrets"`) that signed and verified both ways."""
    envelope = gw.runtime.vault.envelope
    async with gw.runtime.db.write_sessions() as session, session.begin():
        partner = await session.get(Partner, partner_id)
        assert partner is not None
        opened = sealing.open_sealed(envelope, partner)
        plaintext = orjson.dumps({"config": opened.config, "secrets": [secret]})
        sealed = envelope.seal(plaintext, record_id=partner.uid, context=sealing.ENVELOPE_CONTEXT)
        sealing.store(partner, sealed)


async def test_a_partner_sealed_before_the_split_keeps_working(
    gw: Gateway, receiver: Subscriber
) -> None:
    """A legacy row: its one secret keeps verifying the partner's pushes; nothing is sent
    until an operator gives it an outbound secret (the old one is never used to sign),
    then the waiting delivery goes out signed with that, and its replay is refused."""
    legacy, outbound = new_secret(), new_secret()
    pid = await gw.partner(receiver.url)
    await _make_legacy(gw, pid, legacy)
    shown = (await gw.http.get(f"/v1/partners/{pid}", headers=gw.admin)).json()
    assert shown["inbound_secrets"]["hints"] == [legacy[:10]]
    assert shown["outbound_secrets"] == {"count": 0, "hints": []}

    body = orjson.dumps(event())
    pushed = await gw.push(pid, body, signed_headers(body, legacy))
    assert pushed.status_code == 202, pushed.text

    message_id = await gw.send(pid)

    async def waiting() -> bool:
        view = await gw.http.get(f"/v1/messages/{message_id}/deliveries", headers=gw.admin)
        [delivery] = view.json()["deliveries"]
        return bool(delivery["last_error"]) and "outbound signing secret" in delivery["last_error"]

    await until(waiting)
    assert receiver.requests == []  # never sent unsigned, never signed with the legacy secret
    patched = await gw.http.patch(
        f"/v1/partners/{pid}", json={"outbound_secrets": [outbound]}, headers=gw.admin
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["inbound_secrets"]["hints"] == [legacy[:10]]
    [captured] = await delivered_to(receiver)
    assert verifies(outbound, captured)
    assert not verifies(legacy, captured)
    assert_replay_refused(await gw.replay(pid, captured), 401)
    again = orjson.dumps(event())
    assert (await gw.push(pid, again, signed_headers(again, legacy))).status_code == 202
    assert await gw.stored_from(pid) == (2, 2)


async def test_the_refusal_is_counted_and_logged_without_secrets(
    gw: Gateway, receiver: Subscriber, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused replay is counted (reason `replay`) and logged with ids only."""
    secret = new_secret()
    pid = await gw.partner(receiver.url, inbound_secrets=[secret])
    await gw.send(pid)
    [captured] = await delivered_to(receiver)
    capsys.readouterr()
    assert_replay_refused(await gw.replay(pid, captured), 401)
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "inbound_replay_refused" in text
    assert captured.headers["webhook-id"] in text
    assert secret not in text
    assert captured.headers["webhook-signature"] not in text
    metrics = await gw.http.get("/metrics")
    assert 'commcentre_inbound_refused_total{reason="replay"}' in metrics.text
