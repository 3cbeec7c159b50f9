"""Idempotency-Key on POST /v1/messages (IETF httpapi draft semantics)."""

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest

from commcentre.app import create_app
from commcentre.config import Settings
from tests.conftest import ApiUser, MakeUser
from tests.factories import EXAMPLE_MESSAGE, message


async def test_same_key_same_body_replays_the_stored_response(
    http: httpx.AsyncClient, user: ApiUser
) -> None:
    headers = {**user.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=headers)
    second = await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    listing = (await http.get("/v1/messages", headers=user.headers)).json()["items"]
    assert [m["id"] for m in listing].count(first.json()["id"]) == 1


async def test_same_key_different_body_is_422(http: httpx.AsyncClient, user: ApiUser) -> None:
    headers = {**user.headers, "Idempotency-Key": str(uuid.uuid4())}
    assert (
        await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=headers)
    ).status_code == 202
    response = await http.post("/v1/messages", json=message(body="another text"), headers=headers)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]


async def test_keys_are_scoped_per_client(http: httpx.AsyncClient, make_user: MakeUser) -> None:
    key = str(uuid.uuid4())
    a, b = await make_user("messages:write"), await make_user("messages:write")
    first = await http.post(
        "/v1/messages", json=EXAMPLE_MESSAGE, headers={**a.headers, "Idempotency-Key": key}
    )
    second = await http.post(
        "/v1/messages", json=EXAMPLE_MESSAGE, headers={**b.headers, "Idempotency-Key": key}
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]


async def test_malformed_key_is_422(http: httpx.AsyncClient, user: ApiUser) -> None:
    for key in ("", "x" * 256, "has space"):
        response = await http.post(
            "/v1/messages", json=EXAMPLE_MESSAGE, headers={**user.headers, "Idempotency-Key": key}
        )
        assert response.status_code == 422, key


async def test_same_key_while_in_flight_is_409(
    settings: Settings, make_user: MakeUser, tmp_path: Path
) -> None:
    # Batches of two with a long wait to fill: a message queued alone stays in flight
    # until a second one joins it, however long the requests in between take.
    held = settings.model_copy(update={"ingest_batch_max": 2, "ingest_batch_wait_ms": 30_000.0})
    app = create_app(held)
    user = await make_user("messages:write")
    headers = {**user.headers, "Idempotency-Key": str(uuid.uuid4())}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

            async def post(with_headers: dict[str, str]) -> httpx.Response:
                return await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=with_headers)

            # Warm the caches (key lookup, routing), so the first request is quick to queue.
            warm = await asyncio.gather(post(user.headers), post(user.headers))
            assert [r.status_code for r in warm] == [202, 202]
            first = asyncio.create_task(post(headers))
            writer = app.state.runtime.ingest
            deadline = time.monotonic() + 10
            while not writer.in_flight:  # until the writer holds it
                assert time.monotonic() < deadline, "the first request was never seen in flight"
                await asyncio.sleep(0.005)
            second = await post(headers)
            assert second.status_code == 409
            assert not first.done()
            filler = await post(user.headers)  # completes the first one's batch
            assert filler.status_code == 202
            assert (await first).status_code == 202
            third, _ = await asyncio.gather(post(headers), post(user.headers))
            assert third.status_code == 202
            assert third.json()["id"] == (await first).json()["id"]


@pytest.mark.parametrize("concurrent", [50])
async def test_concurrent_submissions_share_transactions(
    http: httpx.AsyncClient, app: object, user: ApiUser, concurrent: int
) -> None:
    writer = app.state.runtime.ingest  # type: ignore[attr-defined]
    batches_before = writer.batches_written
    responses = await asyncio.gather(
        *(
            http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=user.headers)
            for _ in range(concurrent)
        )
    )
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == concurrent
    assert writer.batches_written - batches_before < concurrent
