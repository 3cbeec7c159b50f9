"""Retention: expired messages are crypto-shredded and removed; nothing else is touched.

A whole app on a database of this test's own (erasing in the session database
would take other tests' messages with it), with a clock the test moves.
"""

import asyncio
import copy
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from commcentre.app import create_app
from commcentre.audit.service import verify_chain
from commcentre.bootstrap import build_housekeeper
from commcentre.config import Settings
from commcentre.crypto import FileKeyring
from commcentre.delivery.models import Delivery
from commcentre.messages.models import Message, MessageIdentifier
from commcentre.retention import repository
from commcentre.retention.service import purge_expired
from commcentre.runtime import Runtime
from commcentre.sealed import count_by_key_version
from tests.databases import fresh_database
from tests.factories import EXAMPLE_MESSAGE

START = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
ADMIN_KEY = "ck_" + "r" * 43
SHORT_BASIS = "SIS_2018_1862_ART26"  # kept 30 days here; everything else 1095


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    with fresh_database(tmp_path, "retention") as url:
        yield url


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def app(database: str, tmp_path: Path, clock: Clock) -> AsyncIterator[FastAPI]:
    keyring = tmp_path / "keyring.json"
    FileKeyring.generate(keyring, dev=True)
    settings = Settings(
        database_url=database,
        keyring_path=keyring,
        bootstrap_admin_key=ADMIN_KEY,
        ingest_batch_wait_ms=0.5,
        retention_days={SHORT_BASIS: 30},
        # The test runs the job itself, at the times it chooses.
        retention_interval_seconds=86_400,
    )
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as client:
        for partner_id, fail_with in (("keeps-up", "none"), ("keeps-failing", "retryable")):
            response = await client.post(
                "/v1/partners",
                json={
                    "id": partner_id,
                    "name": partner_id,
                    "adapter": "loopback",
                    "config": {"fail_with": fail_with},
                },
            )
            assert response.status_code == 201, response.text
        yield client


def _message(legal_basis: str, partner: str, number: str) -> dict[str, Any]:
    body = copy.deepcopy(EXAMPLE_MESSAGE)
    body.update(legal_basis=legal_basis, recipients=[partner], channel=None)
    body["subjects"] = [
        {
            "kind": "document",
            "number": number,
            "type": "passport",
            "issuing_country": "FI",
            "status": "stolen",
        }
    ]
    return body


async def _submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    response = await http.post("/v1/messages", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _runtime(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def _count(app: FastAPI, model: Any, message_id: str) -> int:
    column = model.id if model is Message else model.message_id
    async with _runtime(app).db.read_sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(model).where(column == uuid.UUID(message_id))
        )
    return int(count or 0)


async def _deliveries_reach(http: httpx.AsyncClient, message_id: str, status: str) -> None:
    """Wait until every delivery of the message has `status` (15 s at most)."""
    deadline = time.monotonic() + 15
    while True:
        deliveries = (await http.get(f"/v1/messages/{message_id}/deliveries")).json()
        if all(d["status"] == status for d in deliveries["deliveries"]):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{message_id} did not reach {status}: {deliveries}")
        await asyncio.sleep(0.02)


async def _delivered(http: httpx.AsyncClient, message_id: str) -> None:
    await _deliveries_reach(http, message_id, "delivered")


async def _retrying_then_dispatcher_stopped(
    app: FastAPI, http: httpx.AsyncClient, message_id: str
) -> None:
    """Its first attempt failed and is on record; no further attempt will be made.

    The retry policy counts a delivery's age on the test's clock: an attempt made after
    the clock jumps a month ahead would dead-letter it at once. Stopping the dispatcher
    keeps the delivery open (retrying) for as long as the test needs it so.
    """
    await _deliveries_reach(http, message_id, "retrying")
    dispatcher = _runtime(app).dispatcher
    assert dispatcher is not None
    await dispatcher.stop()


async def test_expired_messages_are_shredded_removed_and_audited(
    app: FastAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    runtime = _runtime(app)
    assert runtime.dispatcher is not None
    short = await _submit(http, _message(SHORT_BASIS, "keeps-up", "RT0000001"))
    long = await _submit(http, _message("DIR_2023_977", "keeps-up", "RT0000002"))
    stuck = await _submit(http, _message(SHORT_BASIS, "keeps-failing", "RT0000003"))
    for message_id in (short, long):
        await _delivered(http, message_id)
    await _retrying_then_dispatcher_stopped(app, http, stuck)
    housekeeper = build_housekeeper(runtime.settings, runtime.db, clock=clock)

    # Day 29: nothing has expired.
    clock.now = START + timedelta(days=29)
    assert (await housekeeper.run_once())["retention"] == 0

    # Day 31: the short-lived one goes; the one whose delivery still retries stays.
    clock.now = START + timedelta(days=31)
    assert (await housekeeper.run_once())["retention"] == 1
    assert await _count(app, Message, short) == 0
    assert await _count(app, MessageIdentifier, short) == 0
    assert await _count(app, Delivery, short) == 0
    assert await _count(app, Message, long) == 1
    assert await _count(app, Message, stuck) == 1
    read = await http.get(f"/v1/messages/{short}", headers={"X-Justification": "retention test"})
    assert read.status_code == 404
    lookup = await http.post(
        "/v1/lookups",
        json={"queries": [{"kind": "document", "number": "RT0000001"}]},
        headers={"X-Justification": "retention test"},
    )
    assert lookup.json()["results"][0]["hit"] is False
    assert (
        await http.get(f"/v1/messages/{stuck}", headers={"X-Justification": "t"})
    ).status_code == 200

    # The erasure is on record, without content, and the chain still verifies.
    entries = (await http.get("/v1/audit", params={"subject_id": short})).json()["items"]
    erased = [e for e in entries if e["action"] == "erasure"]
    assert len(erased) == 1
    assert erased[0]["event"] == "message.erased"
    assert erased[0]["actor"] == "system:retention"
    assert set(erased[0]["details"]) == {"reason", "direction", "legal_basis", "purge_after"}
    assert "RT0000001" not in str(erased[0])
    async with runtime.db.read_sessions() as session:
        assert (await verify_chain(session)).ok

    # Once its delivery is settled (a dead letter), the stuck one goes too.
    async with runtime.db.write_sessions() as session, session.begin():
        await session.execute(
            Delivery.__table__.update()
            .where(Delivery.message_id == uuid.UUID(stuck))
            .values(status="dead")
        )
    assert (await housekeeper.run_once())["retention"] == 1
    assert await _count(app, Message, stuck) == 0


async def test_a_crash_between_shredding_and_removal_is_finished_by_the_next_run(
    app: FastAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    runtime = _runtime(app)
    assert runtime.dispatcher is not None
    message_id = await _submit(http, _message(SHORT_BASIS, "keeps-up", "RT0000004"))
    await _delivered(http, message_id)
    clock.now = START + timedelta(days=31)
    # Step one alone, as if the process died right after it.
    async with runtime.db.write_sessions() as session, session.begin():
        await repository.shred(session, [uuid.UUID(message_id)])
    read = await http.get(f"/v1/messages/{message_id}", headers={"X-Justification": "t"})
    assert read.status_code == 409  # unreadable at once: the data key is gone
    assert "decrypted" in read.json()["detail"]
    result = await purge_expired(runtime.db, now=clock())
    assert result.erased == 1
    assert await _count(app, Message, message_id) == 0


async def test_a_message_of_an_open_request_is_kept_until_the_request_is_closed(
    app: FastAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    runtime = _runtime(app)
    message_id = await _submit(http, _message(SHORT_BASIS, "keeps-up", "RT0000005"))
    await _delivered(http, message_id)
    created = await http.post(
        "/v1/requests",
        json={
            "reference": "RT-RETENTION-1",
            "form": "M",
            "requesting_state": "SE",
            "legal_basis": "DIR_2023_977",
            "linked_messages": [{"message_id": message_id}],
        },
    )
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    housekeeper = build_housekeeper(runtime.settings, runtime.db, clock=clock)
    clock.now = START + timedelta(days=31)
    assert (await housekeeper.run_once())["retention"] == 0
    assert await _count(app, Message, message_id) == 1
    for to in ("answered", "closed"):
        body: dict[str, Any] = {"to": to}
        if to == "answered":
            body["delay_reason"] = "the message aged past the time limit in this test"
        moved = await http.post(f"/v1/requests/{request_id}/transitions", json=body)
        assert moved.status_code == 200, moved.text
    assert (await housekeeper.run_once())["retention"] == 1
    assert await _count(app, Message, message_id) == 0


async def test_deliveries_held_for_a_disabled_partner_do_not_keep_a_message(
    app: FastAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    runtime = _runtime(app)
    message_id = await _submit(http, _message(SHORT_BASIS, "keeps-failing", "RT0000006"))
    await _retrying_then_dispatcher_stopped(app, http, message_id)
    housekeeper = build_housekeeper(runtime.settings, runtime.db, clock=clock)
    clock.now = START + timedelta(days=31)
    assert (await housekeeper.run_once())["retention"] == 0  # still being retried
    disabled = await http.patch("/v1/partners/keeps-failing", json={"enabled": False})
    assert disabled.status_code == 200, disabled.text
    # Held, never to be claimed while the partner is disabled: no reason to keep it. (A
    # run skips a message the dispatcher is still writing an outcome for: the next run
    # takes it, as a later interval would.)
    erased = 0
    deadline = time.monotonic() + 15
    while not erased and time.monotonic() < deadline:
        erased += (await housekeeper.run_once())["retention"]
        if not erased:
            await asyncio.sleep(0.02)
    assert erased == 1
    assert await _count(app, Message, message_id) == 0
    assert await _count(app, Delivery, message_id) == 0


async def test_shredded_rows_are_no_key_users(
    app: FastAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    runtime = _runtime(app)
    message_id = await _submit(http, _message(SHORT_BASIS, "keeps-up", "RT0000007"))
    await _delivered(http, message_id)
    async with runtime.db.write_sessions() as session, session.begin():
        before = await count_by_key_version(session)
        await repository.shred(session, [uuid.UUID(message_id)])
        after = await count_by_key_version(session)
    version = runtime.keys.current_version
    assert after["messages"].get(version, 0) == before["messages"][version] - 1
    assert 0 not in after["messages"]


async def test_a_message_past_its_retention_cannot_be_linked_to_a_request(
    app: FastAPI, http: httpx.AsyncClient, clock: Clock
) -> None:
    message_id = await _submit(http, _message(SHORT_BASIS, "keeps-failing", "RT0000008"))
    body = {
        "reference": "RT-RETENTION-2",
        "form": "M",
        "requesting_state": "SE",
        "legal_basis": "DIR_2023_977",
        "linked_messages": [{"message_id": message_id}],
    }
    clock.now = START + timedelta(days=31)  # past purge_after; still held by its retries
    refused = await http.post("/v1/requests", json=body)
    assert refused.status_code == 422, refused.text
    assert "retention period has ended" in refused.json()["detail"]
