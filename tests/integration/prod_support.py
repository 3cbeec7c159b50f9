"""A commcentre app in prod: a real (non-dev) keyring, faked DNS, an admin client.

Its allow-lists: partners and subscribers may reach 10.20.0.0/16 (http too).
"""

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from ipaddress import IPv4Network
from typing import Any

import httpx
import pytest

from commcentre.app import create_app
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.crypto import FileKeyring
from commcentre.partners.schemas import generate_signing_secret
from tests.conftest import ApiUser

NAMES: Mapping[str, Sequence[str]] = {
    "public.test": ["93.184.216.34"],
    "rfc1918.test": ["10.1.2.3"],
    "home.test": ["192.168.1.10"],
    "cgnat.test": ["100.64.0.7"],
    "metadata.test": ["169.254.169.254"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "ula.test": ["fd00::5"],
    "split.test": ["93.184.216.34", "10.0.0.1"],
    "allowed.test": ["10.20.1.2"],
    "outside.test": ["10.21.0.1"],
}


async def fake_dns(host: str, port: int) -> Sequence[str]:
    try:
        return NAMES[host]
    except KeyError:
        raise OSError("name not known") from None


@pytest.fixture(scope="module")
async def prod(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, ApiUser]]:
    keyring = tmp_path_factory.mktemp("prodkeys") / "keyring.json"
    FileKeyring.generate(keyring, dev=False)
    configured = settings.model_copy(
        update={
            "environment": "prod",
            "keyring_path": keyring,
            "dispatcher_enabled": False,
            "partner_networks": [IPv4Network("10.20.0.0/16")],
            "subscriber_networks": [IPv4Network("10.20.0.0/16")],
        }
    )
    app = create_app(configured, resolver=fake_dns)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        async with runtime.db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="prod-admin", scopes=["admin"], actor="test", now=utcnow()
            )
        admin = ApiUser(issued.client.id, issued.api_key)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as c:
            yield c, admin


def webhook_partner(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"p-{uuid.uuid4().hex[:12]}",
        "name": "Partner",
        "adapter": "webhook",
        "config": {"url": url},
        "signing_secrets": [generate_signing_secret()],
        **extra,
    }
