"""/healthz, /readyz and the store gauge of /metrics, with the store up and out of reach."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from commcentre.migrate import head_revision
from commcentre.runtime import Runtime


async def test_healthz_answers_without_the_store(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_with_the_store_up_and_migrated(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "migrations": "at_head",
        "revision": head_revision(),
        "head": head_revision(),
    }


@pytest.fixture
async def exhausted_reads(app: FastAPI) -> AsyncIterator[None]:
    """The app's reads go to a pool whose only connection is taken: every checkout
    times out (sqlalchemy.exc.TimeoutError), as under a pool too small for the load."""
    runtime: Runtime = app.state.runtime
    db = runtime.db
    url = db.read_engine.url
    engine: AsyncEngine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    saved = db.read_engine, db.read_sessions
    async with engine.connect():  # held for the whole test
        db.read_engine = engine
        db.read_sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            yield
        finally:
            db.read_engine, db.read_sessions = saved
    await engine.dispose()


@pytest.mark.usefixtures("exhausted_reads")
async def test_readyz_says_unreachable_when_no_connection_is_free(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["migrations"]) == (
        "not_ready",
        "unreachable",
        "unknown",
    )


@pytest.mark.usefixtures("exhausted_reads")
async def test_metrics_report_the_store_down_when_no_connection_is_free(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert "commcentre_store_up 0.0" in response.text
