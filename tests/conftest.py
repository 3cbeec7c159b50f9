"""Fixtures: one migrated database per run (SQLite, or PostgreSQL when
COMMCENTRE_TEST_DATABASE_URL is set), the app in-process, and client factories.

Tests stay independent by creating their own API clients: a client sees only
its own messages, so no test reads another's data.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
from fastapi import FastAPI

from commcentre.app import create_app
from commcentre.auth.service import create_client
from commcentre.bootstrap import open_database, open_keyring
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.db import Database
from commcentre.migrate import upgrade
from tests.browser import CHROMIUM, chromium_available

PG_ENV = "COMMCENTRE_TEST_DATABASE_URL"

# The property tests check what comes out, not how fast: no deadline per example, which a
# busy machine could miss on an example that is quick everywhere else.
hypothesis.settings.register_profile("commcentre", deadline=None)
hypothesis.settings.load_profile("commcentre")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _skip_browser_tests_without_chromium(items)
    if os.environ.get(PG_ENV, "").startswith("postgresql"):
        return
    needs_pg = [item for item in items if "postgres" in item.keywords]
    if not needs_pg:
        return
    if os.environ.get("CI"):
        # CI never skips them: .ci/run runs the suite again on PostgreSQL, where they run.
        items[:] = [item for item in items if "postgres" not in item.keywords]
        config.hook.pytest_deselected(items=needs_pg)
        return
    for item in needs_pg:
        item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL ({PG_ENV})"))


def _skip_browser_tests_without_chromium(items: list[pytest.Item]) -> None:
    """Locally, page tests skip without Chromium; in CI they run, and fail if it is missing
    (.ci/run installs it)."""
    if os.environ.get("CI") or chromium_available():
        return
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"needs Chromium ({CHROMIUM})"))


def reset_postgres(url: str) -> None:
    """Empty the test database's public schema."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def reset() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get(PG_ENV)
    if url:
        reset_postgres(url)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'commcentre.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def keyring_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "keyring.json"


@pytest.fixture(scope="session")
def settings(database_url: str, keyring_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        keyring_path=keyring_path,
        ingest_batch_wait_ms=0.5,
        # Subscribers' callbacks in tests are servers on 127.0.0.1.
        subscriber_networks=[IPv4Network("127.0.0.1/32")],
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


# Loopback partners and a rule, so that the API example message routes somewhere:
# channel interpol -> interpol-ncb (rule), recipient SE -> se-bureau (country).
TEST_PARTNERS = [
    {"id": "interpol-ncb", "name": "Interpol NCB (loopback)", "channels": ["interpol"]},
    {"id": "se-bureau", "name": "Swedish bureau (loopback)", "country": "SE"},
]
TEST_RULE = {"name": "interpol channel", "position": 10, "match": {"channels": ["interpol"]}}


async def register_test_partners(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for partner in TEST_PARTNERS:
        response = await client.post(
            "/v1/partners",
            json={**partner, "adapter": "loopback", "allow_loopback": True},
            headers=admin_headers,
        )
        assert response.status_code in (201, 409), response.text
    listing = (await client.get("/v1/routing-rules", headers=admin_headers)).json()["items"]
    if not any(rule["name"] == TEST_RULE["name"] for rule in listing):
        response = await client.post(
            "/v1/routing-rules",
            json={**TEST_RULE, "partners": ["interpol-ncb"]},
            headers=admin_headers,
        )
        assert response.status_code == 201, response.text


@pytest.fixture(scope="session")
async def http(app: FastAPI, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as client:
        async with db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="fixture-admin", scopes=["admin"], actor="test", now=utcnow()
            )
        await register_test_partners(client, {"Authorization": f"Bearer {issued.api_key}"})
        yield client


@dataclass(frozen=True)
class ApiUser:
    id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


MakeUser = Callable[..., Awaitable[ApiUser]]


@pytest.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    # The app's keyring (made here when this runs first): the same audit keys chain
    # the entries that tests write directly and the ones the app writes.
    database = open_database(settings, open_keyring(settings))
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def make_user(db: Database) -> MakeUser:
    async def make(*scopes: str, name: str = "test-system") -> ApiUser:
        async with db.write_sessions() as session, session.begin():
            issued = await create_client(
                session,
                name=name,
                scopes=list(scopes) or ["messages:write", "messages:read"],
                actor="test",
                now=utcnow(),
            )
        return ApiUser(issued.client.id, issued.api_key)

    return make


@pytest.fixture
async def user(make_user: MakeUser) -> ApiUser:
    return await make_user("messages:write", "messages:read")


@pytest.fixture
async def admin(make_user: MakeUser) -> ApiUser:
    return await make_user("admin", name="admin")


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("COMMCENTRE_") and name != PG_ENV:
            monkeypatch.delenv(name)


async def wait_delivered(
    http: httpx.AsyncClient, headers: dict[str, str], message_id: str, *, within: float = 10.0
) -> list[dict[str, Any]]:
    """Poll until every delivery of the message is delivered; its deliveries.

    Tests on the shared session app wait for their own message rather than for the
    dispatcher to drain: other tests leave deliveries that keep retrying on purpose.
    """
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await http.get(f"/v1/messages/{message_id}/deliveries", headers=headers)
        assert response.status_code == 200, response.text
        deliveries: list[dict[str, Any]] = response.json()["deliveries"]
        if deliveries and all(d["status"] == "delivered" for d in deliveries):
            return deliveries
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"message {message_id} not delivered: {deliveries}")
        await asyncio.sleep(0.02)
