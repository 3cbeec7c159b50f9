"""Prod: partner URLs and subscription callbacks may not point inside our networks.

An attacker holding partners:manage (or any API client, for subscriptions)
registers a destination on loopback or a private network to make commcentre
send requests into internal services (SSRF). In prod such a URL gets a 422
naming the field at registration, literal or after DNS, unless the operator
allowed that network; `allow_loopback` is no escape hatch there. DNS is faked:
nothing here resolves or connects off 127.0.0.1.
"""

import uuid
from ipaddress import IPv4Network
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from commcentre.adapters.base import DeliveryContext, OutboundMessage, PermanentDeliveryError
from commcentre.bootstrap import dispatcher_settings
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.db import Database
from commcentre.messages.schemas import MessageIn
from commcentre.partners import service as partners_service
from tests.conftest import ApiUser
from tests.factories import message
from tests.integration.prod_support import webhook_partner


def refusal(response: httpx.Response, loc: list[str]) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["loc"] == loc
    assert error["type"] == "url_refused" or loc[-1] == "allow_loopback"
    return str(error["msg"])


async def test_the_reported_loopback_partner_is_422_in_prod(
    prod: tuple[httpx.AsyncClient, ApiUser],
) -> None:
    """The issue's case: `http://127.0.0.1:1/hook` was accepted (201) and died later."""
    http, admin = prod
    response = await http.post(
        "/v1/partners", json=webhook_partner("http://127.0.0.1:1/hook"), headers=admin.headers
    )
    assert "loopback" in refusal(response, ["body", "config", "url"])
    response = await http.post(
        "/v1/partners", json=webhook_partner("https://127.0.0.1:1/hook"), headers=admin.headers
    )
    assert "loopback" in refusal(response, ["body", "config", "url"])
    # And the answer names the kind of address, never the address itself.
    assert "127.0.0.1" not in response.json()["errors"][0]["msg"]


async def test_allow_loopback_is_no_escape_hatch_in_prod(
    prod: tuple[httpx.AsyncClient, ApiUser],
) -> None:
    """A per-partner flag must not reopen loopback to whoever holds partners:manage."""
    http, admin = prod
    body = webhook_partner("http://127.0.0.1:1/hook", allow_loopback=True)
    response = await http.post("/v1/partners", json=body, headers=admin.headers)
    assert "prod" in refusal(response, ["body", "allow_loopback"])
    created = await http.post(
        "/v1/partners", json=webhook_partner("https://public.test/hook"), headers=admin.headers
    )
    assert created.status_code == 201, created.text
    patched = await http.patch(
        f"/v1/partners/{created.json()['id']}",
        json={"allow_loopback": True},
        headers=admin.headers,
    )
    refusal(patched, ["body", "allow_loopback"])


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("rfc1918.test", "private"),
        ("home.test", "private"),
        ("cgnat.test", "shared address space"),
        ("metadata.test", "link-local"),
        ("mapped.test", "embedded in IPv6"),
        ("ula.test", "private"),
        ("split.test", "private"),
        ("outside.test", "private"),
        ("[::1]", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (a URL host, nothing binds)
        ("224.0.0.1", "multicast"),
        ("[64:ff9b::a00:1]", "embedded in IPv6"),
    ],
)
async def test_internal_addresses_are_422_after_resolving(
    prod: tuple[httpx.AsyncClient, ApiUser], host: str, kind: str
) -> None:
    """Resolved (faked) or literal, an internal address outside the allowed networks is
    refused at registration for partners and subscription callbacks alike."""
    http, admin = prod
    url = f"https://{host}/hook"
    response = await http.post("/v1/partners", json=webhook_partner(url), headers=admin.headers)
    assert kind in refusal(response, ["body", "config", "url"])
    subscribed = await http.post(
        "/v1/subscriptions", json={"name": "s", "url": url}, headers=admin.headers
    )
    assert kind in refusal(subscribed, ["body", "url"])


async def test_allowed_networks_and_public_hosts_are_accepted(
    prod: tuple[httpx.AsyncClient, ApiUser],
) -> None:
    """The operator's allow-list admits internal partners, with http only inside it."""
    http, admin = prod
    for url in ("http://allowed.test:8080/in", "https://public.test/in", "https://nxdomain.test/"):
        response = await http.post("/v1/partners", json=webhook_partner(url), headers=admin.headers)
        assert response.status_code == 201, (url, response.text)
    plain = await http.post(
        "/v1/partners", json=webhook_partner("http://public.test/in"), headers=admin.headers
    )
    assert "https" in refusal(plain, ["body", "config", "url"])
    subscribed = await http.post(
        "/v1/subscriptions",
        json={"name": "internal", "url": "http://allowed.test/cb"},
        headers=admin.headers,
    )
    assert subscribed.status_code == 201, subscribed.text
    await http.delete(f"/v1/subscriptions/{subscribed.json()['id']}", headers=admin.headers)


@pytest.mark.parametrize(
    "url",
    [
        "https://user:pw@public.test/hook",
        "https://public.test:0/hook",
        "https://public.test:99999/hook",
        "https://bad_host!.test/hook",
        "https://0x7f.1/hook",
    ],
)
async def test_malformed_partner_urls_are_422(
    prod: tuple[httpx.AsyncClient, ApiUser], url: str
) -> None:
    """Credentials, ports and host syntax are checked at registration, not at delivery."""
    http, admin = prod
    response = await http.post("/v1/partners", json=webhook_partner(url), headers=admin.headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][:3] == ["body", "config", "url"]


async def test_a_patch_to_an_internal_url_is_422_and_changes_nothing(
    prod: tuple[httpx.AsyncClient, ApiUser],
) -> None:
    """A partner registered with a public URL cannot be moved inside afterwards."""
    http, admin = prod
    created = await http.post(
        "/v1/partners", json=webhook_partner("https://public.test/in"), headers=admin.headers
    )
    assert created.status_code == 201, created.text
    path = f"/v1/partners/{created.json()['id']}"
    patched = await http.patch(
        path, json={"config": {"url": "https://rfc1918.test/in"}}, headers=admin.headers
    )
    assert "private" in refusal(patched, ["body", "config", "url"])
    shown = await http.get(path, headers=admin.headers)
    assert shown.json()["config"]["url"] == "https://public.test/in"


async def test_dev_keeps_loopback_partners_but_refuses_unflagged_ones(
    http: httpx.AsyncClient, admin: ApiUser
) -> None:
    """Dev keeps `make run`'s loopback partners; a literal loopback URL without the flag,
    which the dispatcher would refuse anyway, is now a 422 instead of a 201."""
    flagged = webhook_partner("http://127.0.0.1:1/hook", allow_loopback=True)
    assert (await http.post("/v1/partners", json=flagged, headers=admin.headers)).status_code == 201
    unflagged = webhook_partner("https://127.0.0.1:1/hook")
    response = await http.post("/v1/partners", json=unflagged, headers=admin.headers)
    assert "loopback" in refusal(response, ["body", "config", "url"])


async def test_a_stored_loopback_partner_is_refused_at_delivery_in_prod(
    http: httpx.AsyncClient, admin: ApiUser, db: Database, app: FastAPI
) -> None:
    """A partner registered with `allow_loopback` (say, before prod) gets no delivery
    to loopback once the dispatcher runs in prod: the flag is void there."""
    body = webhook_partner("https://127.0.0.1:1/hook", allow_loopback=True)
    assert (await http.post("/v1/partners", json=body, headers=admin.headers)).status_code == 201
    runtime = app.state.runtime
    async with db.read_sessions() as session:
        stored = await partners_service.get_partner(session, body["id"])
    view = partners_service.partner_view(
        stored, envelope=runtime.vault.envelope, registry=runtime.adapters, loopback_permitted=False
    )
    assert view.allow_loopback is False
    msg = OutboundMessage(
        id=uuid.uuid4(), created_at=utcnow(), content=MessageIn.model_validate(message())
    )
    delivery = DeliveryContext(delivery_id=uuid.uuid4(), attempt=1, timestamp=utcnow())
    with pytest.raises(PermanentDeliveryError, match="loopback"):
        await runtime.adapters.get("webhook").deliver(msg, view, delivery)


@pytest.mark.parametrize(
    ("adapter", "config"),
    [
        ("interpol", {"ncb_code": "STOCKHOLM"}),
        ("europol", {"sender_unit": "FI-ENU"}),
        ("sirene", {"sirene_bureau": "FI"}),
    ],
)
async def test_every_http_adapter_url_is_checked(
    prod: tuple[httpx.AsyncClient, ApiUser], adapter: str, config: dict[str, Any]
) -> None:
    """Not only `webhook`: every adapter that POSTs to a URL gets the same refusal."""
    http, admin = prod
    body = webhook_partner("", adapter=adapter, config={"url": "https://home.test/in", **config})
    response = await http.post("/v1/partners", json=body, headers=admin.headers)
    assert "private" in refusal(response, ["body", "config", "url"])


def test_the_dispatcher_takes_the_destination_policy_from_settings(settings: Settings) -> None:
    """The delivery-time half of the rule: a prod dispatcher voids allow_loopback and
    admits exactly the operator's partner and subscriber networks."""
    networks = [IPv4Network("10.20.0.0/16")]
    prod = settings.model_copy(
        update={
            "environment": "prod",
            "partner_networks": networks,
            "subscriber_networks": [IPv4Network("10.30.0.0/16")],
        }
    )
    built = dispatcher_settings(prod)
    assert built.loopback_partners is False
    assert built.partner_networks == tuple(networks)
    assert built.subscriber_networks == (IPv4Network("10.30.0.0/16"),)
    assert dispatcher_settings(settings).loopback_partners is True
