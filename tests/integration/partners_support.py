"""An app with the partner and routing routes, a fake adapter, and cleanup helpers.

Partners cannot be deleted and the test database is shared by the whole run, so
tests give their partners unique ids and no country (unless a test disables
them again), and delete the routing rules they create: nothing a test leaves
behind may route another test's messages.
"""

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from commcentre.adapters.base import (
    DeliveryContext,
    DeliveryReceipt,
    OutboundMessage,
    PartnerView,
)
from commcentre.adapters.registry import AdapterRegistry
from commcentre.app import create_app
from commcentre.config import Settings
from commcentre.routing.directory import RoutingDirectory
from tests.conftest import ApiUser

ROUTING_CHECK_INTERVAL = 3600.0  # the app's directory relies on invalidate() in these tests


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str
    password: SecretStr


class FakeConfig(BaseModel):
    """A config with secrets at the top level and nested."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https://")
    api_token: SecretStr
    retries: int = Field(3, ge=0, le=10)
    login: Credentials | None = None


class FakeAdapter:
    name: ClassVar[str] = "fake"
    config_model: ClassVar[type[BaseModel]] = FakeConfig

    async def deliver(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> DeliveryReceipt:
        return DeliveryReceipt(status_code=200)


def fake_registry() -> AdapterRegistry:
    return AdapterRegistry.from_adapters([FakeAdapter()])


@dataclass
class Gateway:
    """The app under test, its client and what the tests created."""

    app: FastAPI
    http: httpx.AsyncClient
    rules: list[str] = field(default_factory=list)
    partners: list[str] = field(default_factory=list)

    @property
    def directory(self) -> RoutingDirectory:
        directory: RoutingDirectory = self.app.state.runtime.routing
        return directory


@asynccontextmanager
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """The app with the fake adapter and no dispatcher (these tests deliver nothing)."""
    app = create_app(settings.model_copy(update={"dispatcher_enabled": False}))
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        app.state.runtime = dataclasses.replace(
            runtime,
            adapters=fake_registry(),
            routing=RoutingDirectory(runtime.db, check_interval=ROUTING_CHECK_INTERVAL),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as c:
            yield Gateway(app, c)


def partner_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def partner_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": partner_id(),
        "name": "Test bureau",
        "adapter": "fake",
        "config": {"url": "https://partner.example/in", "api_token": f"tok-{uuid.uuid4().hex}"},
    }
    body.update(overrides)
    return body


async def create_partner(gw: Gateway, user: ApiUser, **overrides: Any) -> dict[str, Any]:
    response = await gw.http.post(
        "/v1/partners", json=partner_body(**overrides), headers=user.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    gw.partners.append(created["id"])
    return created


async def create_rule(gw: Gateway, user: ApiUser, **body: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"name": "test rule", "position": 500, "match": {}}
    payload.update(body)
    response = await gw.http.post("/v1/routing-rules", json=payload, headers=user.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    gw.rules.append(created["id"])
    return created


async def clean_up(gw: Gateway, admin: ApiUser) -> None:
    """Delete the rules and disable the partners a test created."""
    for rule_id in gw.rules:
        response = await gw.http.delete(f"/v1/routing-rules/{rule_id}", headers=admin.headers)
        assert response.status_code in (204, 404)
    for pid in gw.partners:
        response = await gw.http.patch(
            f"/v1/partners/{pid}", json={"enabled": False}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
    gw.rules.clear()
    gw.partners.clear()
