"""Prod refuses weak or published webhook signing secrets and weak bootstrap keys.

A signing secret copied from our OpenAPI example, or all-zero bytes, lets
anyone who read the docs forge webhooks from a partner or sign as us to a
subscriber; a guessable bootstrap key is an admin key. Dev accepts them (tests
and demos use fixed secrets).
"""

import base64
import uuid
from pathlib import Path

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from commcentre.app import create_app
from commcentre.config import Settings
from commcentre.partners.schemas import generate_signing_secret
from tests.conftest import ApiUser
from tests.integration.prod_support import webhook_partner

OPENAPI_EXAMPLE = "whsec_bmV3LXNlY3JldC1mb3Itcm90YXRpb24tMDAwMDAwMDA="
ALL_ZERO = "whsec_" + base64.b64encode(bytes(32)).decode()


def weak(response: httpx.Response, index: int, field: str = "signing_secrets") -> str:
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["loc"] == ["body", field, index]
    assert error["type"] == "weak_secret"
    assert "whsec_" not in response.text.replace("`whsec_`", "")  # never echoed
    return str(error["msg"])


@pytest.mark.parametrize(
    ("secret", "reason"), [(OPENAPI_EXAMPLE, "published"), (ALL_ZERO, "repeated symbol")]
)
async def test_partner_registration_and_rotation_refuse_weak_secrets(
    prod: tuple[httpx.AsyncClient, ApiUser], secret: str, reason: str
) -> None:
    """POST and PATCH /v1/partners: a weak secret is 422 at its index, never stored."""
    http, admin = prod
    body = webhook_partner("https://public.test/in", signing_secrets=[secret])
    assert reason in weak(await http.post("/v1/partners", json=body, headers=admin.headers), 0)
    created = await http.post(
        "/v1/partners", json=webhook_partner("https://public.test/in"), headers=admin.headers
    )
    assert created.status_code == 201, created.text
    rotated = await http.patch(
        f"/v1/partners/{created.json()['id']}",
        json={"signing_secrets": [generate_signing_secret(), secret]},
        headers=admin.headers,
    )
    weak(rotated, 1)
    shown = await http.get(f"/v1/partners/{created.json()['id']}", headers=admin.headers)
    assert shown.json()["signing_secrets"]["count"] == 1


@pytest.mark.parametrize("field", ["inbound_secrets", "outbound_secrets"])
async def test_each_direction_of_a_partner_refuses_weak_secrets(
    prod: tuple[httpx.AsyncClient, ApiUser], field: str
) -> None:
    """A published secret is as forgeable for what we send (a partner trusting our
    signature) as for what we receive: both directions are held to the rule, at
    registration and when one direction is rotated alone."""
    http, admin = prod
    body = webhook_partner("https://public.test/in", **{field: [OPENAPI_EXAMPLE]})
    del body["signing_secrets"]  # the deprecated name of inbound_secrets
    weak(await http.post("/v1/partners", json=body, headers=admin.headers), 0, field)
    created = await http.post(
        "/v1/partners", json=webhook_partner("https://public.test/in"), headers=admin.headers
    )
    assert created.status_code == 201, created.text
    rotated = await http.patch(
        f"/v1/partners/{created.json()['id']}",
        json={field: [generate_signing_secret(), ALL_ZERO]},
        headers=admin.headers,
    )
    weak(rotated, 1, field)
    shown = await http.get(f"/v1/partners/{created.json()['id']}", headers=admin.headers)
    assert shown.json()[field]["count"] == 1


async def test_subscription_registration_and_rotation_refuse_weak_secrets(
    prod: tuple[httpx.AsyncClient, ApiUser],
) -> None:
    """POST and PATCH /v1/subscriptions: the same rule for subscriber secrets."""
    http, admin = prod
    body = {"name": "s", "url": "https://public.test/cb", "signing_secrets": [OPENAPI_EXAMPLE]}
    assert "published" in weak(
        await http.post("/v1/subscriptions", json=body, headers=admin.headers), 0
    )
    created = await http.post(
        "/v1/subscriptions",
        json={"name": "s", "url": "https://public.test/cb"},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    path = f"/v1/subscriptions/{created.json()['id']}"
    weak(await http.patch(path, json={"signing_secrets": [ALL_ZERO]}, headers=admin.headers), 0)
    await http.delete(path, headers=admin.headers)


async def test_dev_still_accepts_fixed_secrets(http: httpx.AsyncClient, admin: ApiUser) -> None:
    """Dev keeps today's behaviour: tests and demos use fixed, readable secrets."""
    body = {
        "id": f"p-{uuid.uuid4().hex[:12]}",
        "name": "Dev partner",
        "adapter": "loopback",
        "allow_loopback": True,
        "signing_secrets": [OPENAPI_EXAMPLE],
    }
    assert (await http.post("/v1/partners", json=body, headers=admin.headers)).status_code == 201


@pytest.mark.parametrize(
    "key",
    [
        "a" * 48,
        "ck_" + "0123456789" * 5,
        "abcdefghijklmnopqrstuvwxyz0123456789ABCD",
        "correct horse battery staple 1234",
    ],
)
def test_prod_refuses_low_entropy_bootstrap_keys(key: str) -> None:
    """32 characters are not enough: a repeated or sequential or typed key is refused."""
    with pytest.raises(ValidationError, match="too weak for prod"):
        Settings(environment="prod", bootstrap_admin_key=SecretStr(key))
    Settings(environment="dev", bootstrap_admin_key=SecretStr(key))


async def test_prod_startup_names_stored_weak_secrets(
    settings: Settings, http: httpx.AsyncClient, admin: ApiUser, app: FastAPI
) -> None:
    """Secrets stored before prod (or before this check) are not re-validated on every
    request: a prod start names each holder so that the operator rotates it, and
    never logs the secret itself."""
    weak_id, strong_id = f"p-{uuid.uuid4().hex[:12]}", f"p-{uuid.uuid4().hex[:12]}"
    for partner_id, secret in ((weak_id, OPENAPI_EXAMPLE), (strong_id, generate_signing_secret())):
        body = {
            "id": partner_id,
            "name": "Stored before prod",
            "adapter": "loopback",
            "allow_loopback": True,
            "signing_secrets": [secret],
        }
        assert (
            await http.post("/v1/partners", json=body, headers=admin.headers)
        ).status_code == 201
    prod = settings.model_copy(update={"environment": "prod", "dispatcher_enabled": False})
    started = create_app(prod, keys=app.state.runtime.keys)
    with structlog.testing.capture_logs() as events:
        async with started.router.lifespan_context(started):
            pass
    named = {e["holder"] for e in events if e["event"] == "weak_signing_secret_stored"}
    assert f"partner:{weak_id}" in named
    assert f"partner:{strong_id}" not in named
    assert "bmV3LXNlY3JldC" not in repr(events)


@pytest.mark.parametrize("checkpoints", [False, True])
async def test_prod_startup_warns_when_no_audit_checkpoints_are_exported(
    settings: Settings, app: FastAPI, tmp_path: Path, checkpoints: bool
) -> None:
    """Deleting the newest audit entries together with the head row is found only
    against a signed checkpoint outside the database (LED Art. 25 logs must be
    complete): a prod start without a checkpoint file says so."""
    prod = settings.model_copy(
        update={
            "environment": "prod",
            "dispatcher_enabled": False,
            "audit_checkpoint_path": tmp_path / "checkpoints" if checkpoints else None,
        }
    )
    started = create_app(prod, keys=app.state.runtime.keys)
    with structlog.testing.capture_logs() as events:
        async with started.router.lifespan_context(started):
            pass
    warned = any(e["event"] == "audit_checkpoints_disabled" for e in events)
    assert warned is not checkpoints
