"""The dispatcher end to end: the app's API in, real HTTP partners on 127.0.0.1 out.

Partners misbehave on cue: 5xx, hangs past the timeout, connection resets,
429 with Retry-After, 410, permanent 4xx, random faults. Each test starts an
app of its own with a fast retry policy and asserts on what the API, the
audit log and the partner saw.

These tests use a database of their own: the session app of conftest runs a
dispatcher with the default retry policy and adapter instances of its own, and
would otherwise claim these tests' deliveries too. Nothing connects anywhere
but 127.0.0.1: partners use literal loopback URLs, and any host name fails to
resolve.
"""

import asyncio
import base64
import itertools
import os
import random
import socket
import struct
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from commcentre.app import create_app
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.delivery import repository
from commcentre.delivery.breaker import BreakerState, CircuitBreakers
from commcentre.delivery.dispatcher import Dispatcher, DispatcherSettings
from commcentre.delivery.models import Delivery
from commcentre.delivery.retry import RetryPolicy
from commcentre.runtime import Runtime
from tests.databases import fresh_database
from tests.factories import message
from tests.integration.http_support import LocalServer, Received

SECRET = f"whsec_{base64.b64encode(os.urandom(32)).decode()}"
FAST = RetryPolicy(base=0.01, cap=0.05, max_attempts=3)
# Answers are expected well within this even on a loaded machine; tests of hangs shorten it.
TIMEOUT = 5.0
SHORT_TIMEOUT = 0.3


# -- a database of their own ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dispatch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("dispatch"), "dispatch") as url:
        yield url


# -- a partner on 127.0.0.1 that answers as a script says -----------------------------------------


@dataclass
class Hit:
    """One request the partner received."""

    webhook_id: str
    at: float  # time.monotonic()
    verified: bool
    event: dict[str, Any]


Step = Callable[[Hit, asyncio.StreamWriter], Awaitable[None]]


def answer(status: int, *headers: tuple[str, str]) -> Step:
    async def step(hit: Hit, writer: asyncio.StreamWriter) -> None:
        lines = [f"HTTP/1.1 {status} X", "content-length: 0", "connection: close"]
        lines += [f"{name}: {value}" for name, value in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()

    return step


async def hang(hit: Hit, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)  # cancelled when the receiver stops


async def reset(hit: Hit, writer: asyncio.StreamWriter) -> None:
    """Abort with SO_LINGER 0: the client sees a TCP RST."""
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    writer.transport.abort()


OK = answer(200)


@dataclass
class Receiver:
    """Answers with `script` in order, then with `otherwise` (which may look at the request).

    One request per connection, on the shared test server (`LocalServer`).
    """

    script: deque[Step] = field(default_factory=deque)
    otherwise: Step = OK
    hits: list[Hit] = field(default_factory=list)
    server: LocalServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = LocalServer(respond=self._respond)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/hook"

    def ids(self) -> list[str]:
        return [hit.webhook_id for hit in self.hits]

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def _respond(self, request: Received, writer: asyncio.StreamWriter) -> None:
        hit = _hit(request)
        self.hits.append(hit)
        step = self.script.popleft() if self.script else self.otherwise
        await step(hit, writer)


def _hit(request: Received) -> Hit:
    at = time.monotonic()
    try:
        event: dict[str, Any] = Webhook(SECRET).verify(request.body, request.headers)
        verified = True
    except WebhookVerificationError:
        event, verified = orjson.loads(request.body), False
    return Hit(request.headers.get("webhook-id", ""), at, verified, event)


@pytest.fixture
async def start_receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    started: list[Receiver] = []

    async def start(*script: Step, otherwise: Step = OK) -> Receiver:
        receiver = Receiver(deque(script), otherwise)
        await receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError("these tests resolve no names")


# -- the app under test ---------------------------------------------------------------------------


@dataclass
class Gateway:
    app: FastAPI
    http: httpx.AsyncClient
    runtime: Runtime
    dispatcher: Dispatcher
    admin: dict[str, str]
    partners: list[str] = field(default_factory=list)

    async def partner(self, adapter: str = "loopback", **body: Any) -> str:
        partner_id = f"d-{uuid.uuid4().hex[:12]}"
        payload = {"id": partner_id, "name": "Dispatch test partner", "adapter": adapter}
        payload.update(allow_loopback=True, **body)
        response = await self.http.post("/v1/partners", json=payload, headers=self.admin)
        assert response.status_code == 201, response.text
        self.partners.append(partner_id)
        return partner_id

    async def webhook_partner(self, receiver: Receiver, **body: Any) -> str:
        return await self.partner(
            "webhook", config={"url": receiver.url}, outbound_secrets=[SECRET], **body
        )

    async def submit(self, partner_id: str, **overrides: Any) -> dict[str, Any]:
        body = message(channel="bilateral", recipients=[partner_id], **overrides)
        response = await self.http.post("/v1/messages", json=body, headers=self.admin)
        assert response.status_code == 202, response.text
        accepted: dict[str, Any] = response.json()
        return accepted

    async def deliveries(self, message_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/messages/{message_id}/deliveries", headers=self.admin)
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    async def only_delivery(self, message_id: str) -> dict[str, Any]:
        [delivery] = (await self.deliveries(message_id))["deliveries"]
        return delivery

    async def drain(self, within: float = 20.0) -> None:
        assert await self.dispatcher.drain(within=within), "deliveries still open"

    async def audit(self, **params: str) -> list[dict[str, Any]]:
        response = await self.http.get(
            "/v1/audit", params={"limit": "500", **params}, headers=self.admin
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def disclosures(self, message_id: str) -> list[dict[str, Any]]:
        entries = await self.audit(subject_id=message_id, event="message.disclosed")
        return [e for e in entries if e["action"] == "disclosure"]


@asynccontextmanager
async def gateway(
    settings: Settings,
    url: str,
    *,
    policy: RetryPolicy = FAST,
    breakers: CircuitBreakers | None = None,
    delivery_timeout: float = TIMEOUT,
) -> AsyncIterator[Gateway]:
    """The app on the dispatch database; with `breakers`, a dispatcher built here around them.

    The app's own dispatcher (woken by ingest) is the default; a hand-built one
    polls every 50 ms instead.
    """
    configured = settings.model_copy(
        update={
            "database_url": url,
            "delivery_timeout_seconds": delivery_timeout,
            "dispatcher_enabled": breakers is None,
        }
    )
    app = create_app(configured, retry_policy=policy, resolver=no_dns)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        own = None
        if breakers is not None:
            own = Dispatcher(
                runtime.db,
                vault=runtime.vault,
                adapters=runtime.adapters,
                clock=utcnow,
                policy=policy,
                breakers=breakers,
                settings=DispatcherSettings(poll_interval=0.05),
            )
            await own.start()
        dispatcher = own or runtime.dispatcher
        assert dispatcher is not None
        async with runtime.db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="dispatch-admin", scopes=["admin"], actor="test", now=utcnow()
            )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as c:
            gw = Gateway(app, c, runtime, dispatcher, {"Authorization": f"Bearer {issued.api_key}"})
            try:
                yield gw
            finally:
                # Nothing this test leaves open may be claimed by the next test's dispatcher.
                for partner_id in gw.partners:
                    await c.patch(
                        f"/v1/partners/{partner_id}", json={"enabled": False}, headers=gw.admin
                    )
                if own is not None:
                    await own.stop()


@asynccontextmanager
async def idle_gateway(settings: Settings, url: str) -> AsyncIterator[tuple[Gateway, str]]:
    """A gateway and a loopback partner, with no dispatcher running: submissions queue."""
    async with gateway(settings, url, breakers=CircuitBreakers()) as gw:
        partner = await gw.partner()
        await gw.dispatcher.stop()
        yield gw, partner


@pytest.fixture
async def gw(settings: Settings, dispatch_url: str) -> AsyncIterator[Gateway]:
    async with gateway(settings, dispatch_url) as g:
        yield g


def outcomes(delivery: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(a["outcome"], a["status_code"]) for a in delivery["attempt_history"]]


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- faults, one at a time ------------------------------------------------------------------------


async def test_5xx_then_200_is_delivered_with_one_webhook_id(
    gw: Gateway, start_receiver: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await start_receiver(answer(500), answer(503))
    partner = await gw.webhook_partner(receiver)
    accepted = await gw.submit(partner)
    await gw.drain()

    delivery = await gw.only_delivery(accepted["id"])
    assert delivery["id"] == accepted["deliveries"][0]["id"]
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    assert outcomes(delivery) == [("retry", 500), ("retry", 503), ("delivered", 200)]
    assert [a["number"] for a in delivery["attempt_history"]] == [1, 2, 3]
    assert delivery["delivered_at"] is not None
    assert delivery["next_attempt_at"] is None
    assert delivery["last_status_code"] == 200
    assert delivery["last_error"] is None
    # The partner can deduplicate: one webhook-id, the delivery id, on every retry.
    assert receiver.ids() == [delivery["id"]] * 3
    assert all(hit.verified for hit in receiver.hits)
    assert {hit.event["id"] for hit in receiver.hits} == {delivery["id"]}
    assert receiver.hits[-1].event["data"]["message_id"] == accepted["id"]
    assert (await gw.deliveries(accepted["id"]))["status"] == "delivered"
    [disclosure] = await gw.disclosures(accepted["id"])
    assert disclosure["recipient"] == f"partner:{partner}"
    assert disclosure["details"] == {"delivery_id": delivery["id"], "attempt": 3}


async def test_hang_past_the_timeout_is_retried(
    settings: Settings,
    dispatch_url: str,
    start_receiver: Callable[..., Awaitable[Receiver]],
) -> None:
    receiver = await start_receiver(hang)
    # Spare attempts, spread out further each time: a loaded machine may miss the short
    # timeout on a prompt answer too, and a slow spell must not use them all up at once.
    policy = RetryPolicy(base=0.05, cap=1.0, max_attempts=8)
    async with gateway(settings, dispatch_url, policy=policy, delivery_timeout=SHORT_TIMEOUT) as gw:
        partner = await gw.webhook_partner(receiver)
        accepted = await gw.submit(partner)
        await gw.drain()
        delivery = await gw.only_delivery(accepted["id"])

    assert delivery["status"] == "delivered"
    first, *_, last = delivery["attempt_history"]
    assert (first["outcome"], first["status_code"]) == ("retry", None)
    assert first["error"] == f"partner did not answer within {SHORT_TIMEOUT:g} s"
    assert SHORT_TIMEOUT * 1000 * 0.9 <= first["duration_ms"] < 5000
    assert (last["outcome"], last["status_code"]) == ("delivered", 200)
    assert set(receiver.ids()) == {delivery["id"]}


async def test_connection_reset_is_retried(
    gw: Gateway, start_receiver: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await start_receiver(reset, reset)
    partner = await gw.webhook_partner(receiver)
    accepted = await gw.submit(partner)
    await gw.drain()

    delivery = await gw.only_delivery(accepted["id"])
    assert delivery["status"] == "delivered"
    assert outcomes(delivery) == [("retry", None), ("retry", None), ("delivered", 200)]
    assert delivery["attempt_history"][0]["error"].startswith("transport error:")
    assert receiver.ids() == [delivery["id"]] * 3


async def test_429_retry_after_is_honoured(
    gw: Gateway, start_receiver: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await start_receiver(answer(429, ("retry-after", "1")))
    partner = await gw.webhook_partner(receiver)
    accepted = await gw.submit(partner)

    deadline = time.monotonic() + 10
    while (waiting := await gw.only_delivery(accepted["id"]))["status"] != "retrying":
        assert time.monotonic() < deadline, waiting
        await asyncio.sleep(0.01)
    assert outcomes(waiting) == [("retry", 429)]
    started = at(waiting["attempt_history"][0]["started_at"])
    assert at(waiting["next_attempt_at"]) >= started + timedelta(seconds=1)
    assert waiting["last_error"] == "partner answered HTTP 429"

    await gw.drain()
    delivery = await gw.only_delivery(accepted["id"])
    assert outcomes(delivery) == [("retry", 429), ("delivered", 200)]
    assert len(receiver.hits) == 2
    # The second attempt started no sooner than Retry-After allows. (The partner's own
    # receive times also include how long the first request took to reach it.)
    first, second = (at(a["started_at"]) for a in delivery["attempt_history"])
    assert second - first >= timedelta(seconds=1)


async def test_410_disables_the_partner_and_later_messages_are_refused(
    gw: Gateway, start_receiver: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await start_receiver(answer(410))
    partner = await gw.webhook_partner(receiver)
    accepted = await gw.submit(partner)
    await gw.drain()

    delivery = await gw.only_delivery(accepted["id"])
    assert delivery["status"] == "dead"
    assert delivery["attempts"] == 1
    assert outcomes(delivery) == [("gone", 410)]
    assert (await gw.deliveries(accepted["id"]))["status"] == "failed"
    shown = (await gw.http.get(f"/v1/partners/{partner}", headers=gw.admin)).json()
    assert shown["enabled"] is False
    assert shown["disabled_reason"].startswith("partner answered 410 Gone")
    [disabled] = await gw.audit(subject_id=partner, event="partner.disabled")
    assert disabled["actor"] == "system:dispatcher"
    assert await gw.disclosures(accepted["id"]) == []

    # Routing learns of it from the routing version within its check interval (1 s).
    deadline = time.monotonic() + 10
    while (await gw.runtime.routing.snapshot()).partners[partner].enabled:
        assert time.monotonic() < deadline, "routing never saw the partner disabled"
        await asyncio.sleep(0.02)
    body = message(channel="bilateral", recipients=[partner])
    refused = await gw.http.post("/v1/messages", json=body, headers=gw.admin)
    assert refused.status_code == 422, refused.text
    assert partner in refused.json()["detail"]
    assert len(receiver.hits) == 1


async def test_permanent_4xx_is_dead_at_once(
    gw: Gateway, start_receiver: Callable[..., Awaitable[Receiver]]
) -> None:
    receiver = await start_receiver(answer(400))
    partner = await gw.webhook_partner(receiver)
    accepted = await gw.submit(partner)
    await gw.drain()

    view = await gw.deliveries(accepted["id"])
    [delivery] = view["deliveries"]
    assert delivery["status"] == "dead"
    assert delivery["attempts"] == 1
    assert outcomes(delivery) == [("permanent", 400)]
    assert delivery["last_error"] == "partner answered HTTP 400"
    assert view["status"] == "failed"
    assert len(receiver.hits) == 1
    assert await gw.disclosures(accepted["id"]) == []
    shown = (await gw.http.get(f"/v1/partners/{partner}", headers=gw.admin)).json()
    assert shown["enabled"] is True


@pytest.mark.parametrize(
    ("fail_with", "history", "enabled"),
    [
        ("retryable", [("retry", None), ("retry", None), ("expired", None)], True),
        ("permanent", [("permanent", None)], True),
        ("gone", [("gone", 410)], False),
    ],
)
async def test_loopback_failures(
    gw: Gateway, fail_with: str, history: list[tuple[str, int | None]], enabled: bool
) -> None:
    partner = await gw.partner(config={"fail_with": fail_with})
    accepted = await gw.submit(partner)
    await gw.drain()

    delivery = await gw.only_delivery(accepted["id"])
    assert delivery["status"] == "dead"
    assert outcomes(delivery) == history
    assert delivery["attempts"] == len(history)
    shown = (await gw.http.get(f"/v1/partners/{partner}", headers=gw.admin)).json()
    assert shown["enabled"] is enabled
    dead = (
        await gw.http.get("/v1/dead-letters", params={"partner": partner}, headers=gw.admin)
    ).json()["items"]
    assert [d["id"] for d in dead] == [delivery["id"]]


# -- many messages, random faults -----------------------------------------------------------------


def random_faults(seed: int) -> Step:
    """Seeded faults: permanent for case refs marked PERM, else 5xx, 429, hang, reset or 200."""
    rng = random.Random(seed)
    failures: list[Step] = [answer(500), answer(503), answer(429), hang, reset]

    async def step(hit: Hit, writer: asyncio.StreamWriter) -> None:
        if hit.event["data"].get("case_ref", "").startswith("PERM"):
            await answer(422)(hit, writer)
        elif rng.random() < 0.4:
            await rng.choice(failures)(hit, writer)
        else:
            await OK(hit, writer)

    return step


async def test_random_faults_lose_nothing(
    settings: Settings,
    dispatch_url: str,
    start_receiver: Callable[..., Awaitable[Receiver]],
) -> None:
    count = 30
    receiver = await start_receiver(otherwise=random_faults(seed=20261128))
    # A breaker that never opens: this test is about outcomes, not about backing off.
    breakers = CircuitBreakers(threshold=10**6)
    async with gateway(
        settings, dispatch_url, breakers=breakers, delivery_timeout=SHORT_TIMEOUT
    ) as gw:
        partner = await gw.webhook_partner(receiver)
        accepted = [
            await gw.submit(partner, case_ref=f"PERM-{i}" if i % 10 == 3 else f"CASE-{i}")
            for i in range(count)
        ]
        await gw.drain(within=30)
        views = {a["id"]: await gw.deliveries(a["id"]) for a in accepted}
        disclosed = {
            (e["subject_id"], e["recipient"]) for e in await gw.audit(event="message.disclosed")
        }

    deliveries = [d for view in views.values() for d in view["deliveries"]]
    statuses = Counter(d["status"] for d in deliveries)
    assert statuses["delivered"] + statuses["dead"] == len(deliveries) == count, statuses
    assert statuses["delivered"] > 0
    assert statuses["dead"] >= 3  # the PERM ones at least
    expected_status = {"delivered": "delivered", "dead": "failed"}
    for view in views.values():
        [delivery] = view["deliveries"]
        assert view["status"] == expected_status[delivery["status"]]
        assert delivery["attempt_history"][-1]["outcome"] in {"delivered", "permanent", "expired"}
        assert len(delivery["attempt_history"]) == delivery["attempts"] <= FAST.max_attempts
    # Every request the partner got was signed and carried its delivery's id; an attempt
    # that timed out before the partner read it is the only attempt it may not have seen.
    assert all(hit.verified for hit in receiver.hits)
    hits = Counter(receiver.ids())
    assert set(hits) <= {d["id"] for d in deliveries}
    for delivery in deliveries:
        assert hits[delivery["id"]] <= delivery["attempts"]
        if delivery["status"] == "delivered":
            assert hits[delivery["id"]] >= 1
    # A disclosure on record for each delivered message, none for the dead letters.
    for message_id, view in views.items():
        was_delivered = view["deliveries"][0]["status"] == "delivered"
        assert ((message_id, f"partner:{partner}") in disclosed) is was_delivered


# -- rate limit and circuit breaker ---------------------------------------------------------------


async def test_rate_limit_spaces_deliveries(gw: Gateway) -> None:
    partner = await gw.partner(rate_limit_per_second=20, rate_burst=1)
    accepted = [await gw.submit(partner) for _ in range(20)]
    await gw.drain()

    starts = []
    for a in accepted:
        delivery = await gw.only_delivery(a["id"])
        assert delivery["status"] == "delivered"
        starts.append(at(delivery["attempt_history"][0]["started_at"]))
    # Twenty starts at 20/s with no burst: nineteen intervals of 50 ms.
    assert (max(starts) - min(starts)).total_seconds() >= 0.9


def gaps(hits: Iterable[Hit]) -> list[float]:
    times = [hit.at for hit in hits]
    return [b - a for a, b in itertools.pairwise(times)]


async def test_open_circuit_stops_attempts_for_the_cooldown(
    settings: Settings,
    dispatch_url: str,
    start_receiver: Callable[..., Awaitable[Receiver]],
) -> None:
    cooldown = 0.6
    receiver = await start_receiver(otherwise=answer(500))
    breakers = CircuitBreakers(threshold=2, cooldown=cooldown)
    policy = RetryPolicy(base=0.01, cap=0.02, max_attempts=50)
    async with gateway(settings, dispatch_url, policy=policy, breakers=breakers) as gw:
        partner = await gw.webhook_partner(receiver)
        first = await gw.submit(partner)
        # Two failures open the circuit.
        await until(lambda: breakers.state(partner) is BreakerState.OPEN)
        assert len(receiver.hits) == 2
        # More work for the partner while it is open: none of it is attempted yet.
        accepted = [first, await gw.submit(partner), await gw.submit(partner)]
        await until(lambda: len(receiver.hits) >= 4)  # two probes, a cooldown apart

        opened = receiver.hits[1].at
        probes = receiver.hits[2:]
        assert probes[0].at - opened >= cooldown * 0.95
        # Half-open lets one probe through; it fails and the circuit opens again.
        assert all(gap >= cooldown * 0.95 for gap in gaps(probes))

        # The partner recovers: the next probe closes the circuit and everything goes out.
        receiver.otherwise = OK
        await gw.drain()
        for a in accepted:
            assert (await gw.only_delivery(a["id"]))["status"] == "delivered"
        recovered = {hit.webhook_id for hit in receiver.hits if hit.at > probes[-1].at}
        assert recovered == {a["deliveries"][0]["id"] for a in accepted}


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_delivery_whose_workers_keep_dying_becomes_a_dead_letter(
    settings: Settings, dispatch_url: str
) -> None:
    async with idle_gateway(settings, dispatch_url) as (gw, partner):
        accepted = await gw.submit(partner)
        delivery_id = uuid.UUID(accepted["deliveries"][0]["id"])
        # A worker died holding it, and earlier ones did too: one lost attempt short of
        # the policy's limit. Reclaiming it counts that attempt and gives up.
        async with gw.runtime.db.write_sessions() as session, session.begin():
            await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(
                    status="in_flight",
                    lease_owner="worker-that-died",
                    lease_expires_at=utcnow() - timedelta(seconds=1),
                    attempts=FAST.max_attempts - 1,
                )
            )
        await gw.dispatcher.start()
        await gw.drain()
        delivery = await gw.only_delivery(accepted["id"])
        assert (delivery["status"], delivery["attempts"]) == ("dead", FAST.max_attempts)
        assert "workers were lost" in delivery["last_error"]
        loopback = gw.runtime.adapters.get("loopback")
        assert loopback.received(partner) == []  # type: ignore[attr-defined]


# -- claiming -------------------------------------------------------------------------------------


async def test_a_claim_that_took_every_due_delivery_is_not_followed_by_an_empty_one(
    settings: Settings, dispatch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with idle_gateway(settings, dispatch_url) as (gw, partner):
        # A poll far beyond the test: only wake-ups make this dispatcher claim.
        dispatcher = Dispatcher(
            gw.runtime.db,
            vault=gw.runtime.vault,
            adapters=gw.runtime.adapters,
            clock=utcnow,
            settings=DispatcherSettings(poll_interval=600.0),
        )
        claimed: list[int] = []  # deliveries each of its claims took, in order
        claim_due = repository.claim_due

        async def counting(*args: Any, owner: str, **kwargs: Any) -> list[Any]:
            found = await claim_due(*args, owner=owner, **kwargs)
            if owner == dispatcher.owner:  # not the session app's dispatcher (another store)
                claimed.append(len(found))
            return found

        monkeypatch.setattr(repository, "claim_due", counting)
        await dispatcher.start()
        try:
            await until(lambda: claimed == [0])  # the claim at start: nothing is due
            accepted = []
            for n in range(1, 4):
                accepted.append(await gw.submit(partner))
                if gw.runtime.db.is_sqlite:
                    dispatcher.wake()  # what the app's ingest writer does for its own dispatcher
                # (on PostgreSQL the commit's NOTIFY wakes every listening dispatcher)
                await until(lambda n=n: dispatcher.stats.delivered == n)  # type: ignore[misc]
            for a in accepted:  # on record once the recorder's window has passed
                for _ in range(200):
                    if (await gw.only_delivery(a["id"]))["status"] == "delivered":
                        break
                    await asyncio.sleep(0.05)
                assert (await gw.only_delivery(a["id"]))["status"] == "delivered"
            # One claim per wake-up, each taking the one delivery that was due.
            assert claimed == [0, 1, 1, 1]
        finally:
            await dispatcher.stop()


# -- recording outcomes ---------------------------------------------------------------------------


def recording_dispatcher(gw: Gateway, *, results_wait: float) -> Dispatcher:
    return Dispatcher(
        gw.runtime.db,
        vault=gw.runtime.vault,
        adapters=gw.runtime.adapters,
        clock=utcnow,
        policy=FAST,
        settings=DispatcherSettings(poll_interval=0.05, results_wait=results_wait),
    )


async def test_outcomes_that_arrive_together_are_recorded_in_one_transaction(
    settings: Settings, dispatch_url: str
) -> None:
    async with idle_gateway(settings, dispatch_url) as (gw, partner):
        accepted = [await gw.submit(partner) for _ in range(6)]
        dispatcher = recording_dispatcher(gw, results_wait=2.0)
        await dispatcher.start()
        try:
            assert await dispatcher.drain(within=20)
        finally:
            await dispatcher.stop()
        # One claim took all six; their outcomes came within the window: one write.
        assert (dispatcher.stats.delivered, dispatcher.stats.batches) == (6, 1)
        for a in accepted:
            assert (await gw.only_delivery(a["id"]))["status"] == "delivered"
        assert len(await gw.disclosures(accepted[0]["id"])) == 1


async def test_stopping_records_waiting_outcomes_without_waiting_out_the_window(
    settings: Settings, dispatch_url: str
) -> None:
    async with idle_gateway(settings, dispatch_url) as (gw, partner):
        accepted = await gw.submit(partner)
        dispatcher = recording_dispatcher(gw, results_wait=60.0)
        await dispatcher.start()
        try:
            await until(lambda: dispatcher.stats.delivered == 1)
            # Delivered, and the outcome waits in the recorder's window: not on record yet.
            assert (await gw.only_delivery(accepted["id"]))["status"] == "in_flight"
        finally:
            began = time.monotonic()
            await dispatcher.stop()
        assert time.monotonic() - began < 10
        delivery = await gw.only_delivery(accepted["id"])
        assert delivery["status"] == "delivered"
        assert outcomes(delivery) == [("delivered", None)]
