"""API clients: bootstrap admin, revocation, prod keyring rules."""

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select

from commcentre.app import create_app
from commcentre.auth.keys import generate_api_key, hash_api_key
from commcentre.auth.models import ApiClient
from commcentre.auth.service import revoke_client
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.crypto import FileKeyring
from commcentre.db import Database
from tests.conftest import MakeUser
from tests.factories import EXAMPLE_MESSAGE


async def test_bootstrap_admin_is_created_once(settings: Settings, db: Database) -> None:
    key = generate_api_key()
    configured = settings.model_copy(update={"bootstrap_admin_key": SecretStr(key)})
    for _ in range(2):
        app = create_app(configured)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                response = await http.get(
                    "/v1/audit/verify", headers={"Authorization": f"Bearer {key}"}
                )
                assert response.status_code == 200
    async with db.read_sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ApiClient)
            .where(ApiClient.key_hash == hash_api_key(key))
        )
    assert count == 1


async def test_revoked_key_is_refused(
    app: object, http: httpx.AsyncClient, make_user: MakeUser, db: Database
) -> None:
    user = await make_user("messages:write")
    assert (
        await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=user.headers)
    ).status_code == 202
    async with db.write_sessions() as session, session.begin():
        await revoke_client(session, user.id, actor="test", now=utcnow())
    # Other processes learn it within auth_cache_seconds; the cache is bypassed here.
    app.state.authenticator.forget(user.id)  # type: ignore[attr-defined]
    response = await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=user.headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "ck_without_scheme", "Bearer a b"]
)
async def test_malformed_authorization_is_401(http: httpx.AsyncClient, header: str) -> None:
    response = await http.get("/v1/messages", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_prod_refuses_a_missing_keyring(settings: Settings, tmp_path: Path) -> None:
    prod = settings.model_copy(
        update={"environment": "prod", "keyring_path": tmp_path / "absent.json"}
    )
    app = create_app(prod)
    with pytest.raises(RuntimeError, match="keys generate"):
        async with app.router.lifespan_context(app):
            pass
    assert not (tmp_path / "absent.json").exists()


async def test_prod_refuses_a_development_keyring(settings: Settings, tmp_path: Path) -> None:
    FileKeyring.generate(tmp_path / "dev.json", dev=True)
    prod = settings.model_copy(
        update={"environment": "prod", "keyring_path": tmp_path / "dev.json"}
    )
    app = create_app(prod)
    with pytest.raises(RuntimeError, match="development keyring"):
        async with app.router.lifespan_context(app):
            pass


async def test_prod_accepts_a_real_keyring(settings: Settings, tmp_path: Path) -> None:
    FileKeyring.generate(tmp_path / "prod.json", dev=False)
    prod = settings.model_copy(
        update={"environment": "prod", "keyring_path": tmp_path / "prod.json"}
    )
    app = create_app(prod)
    async with app.router.lifespan_context(app):
        pass


def test_prod_refuses_a_weak_bootstrap_key() -> None:
    with pytest.raises(ValidationError, match="too weak"):
        Settings(environment="prod", bootstrap_admin_key=SecretStr("changeme"))
