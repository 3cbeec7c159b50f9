"""Broken object and function level authorization (RELIABILITY.md): every route of the
app x (no key, bad key, revoked key, missing scope, owner, other client).

The routes come from the app itself (tests/security/routes.py): one without a rule in
the table fails `test_every_route_has_a_rule`.
"""

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from commcentre.auth.service import revoke_client
from commcentre.clock import utcnow
from commcentre.db import Database
from tests.conftest import ApiUser, MakeUser
from tests.factories import message
from tests.security.routes import EXEMPT, ROUTES, SCOPES, Rule, app_routes, fill

JUSTIFY = {"X-Justification": "authorization matrix under test"}
PROBLEM = "application/problem+json"


def test_every_route_has_a_rule(app: FastAPI) -> None:
    served = set(app_routes(app))
    missing = served - ROUTES.keys() - EXEMPT.keys()
    assert not missing, (
        f"routes without an authorization rule in tests/security/routes.py: {missing}"
    )
    stale = (ROUTES.keys() | EXEMPT.keys()) - served
    assert not stale, f"rules for routes the app does not serve: {stale}"
    assert not ROUTES.keys() & EXEMPT.keys()
    assert all(rule.scope in SCOPES for rule in ROUTES.values())


@dataclass(frozen=True)
class Owned:
    """Objects of client A, and the bytes of A's that no other client may ever see."""

    owner: ApiUser
    other: ApiUser
    message_id: str
    subscription_id: str
    canaries: tuple[str, ...]

    def ids(self, what: str | None) -> dict[str, str]:
        return {
            "message_id": self.message_id if what == "message" else str(uuid.uuid4()),
            "subscription_id": self.subscription_id
            if what == "subscription"
            else str(uuid.uuid4()),
            "partner_id": "interpol-ncb",
            "rule_id": str(uuid.uuid4()),
            "request_id": str(uuid.uuid4()),
        }

    def assert_no_foreign_bytes(self, response: httpx.Response) -> None:
        """None of A's bytes in the answer, except those the caller itself sent (an id in
        the path comes back in `instance` and `detail`)."""
        sent = str(response.request.url) + response.request.content.decode()
        text = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        leaked = [c for c in self.canaries if c in text and c not in sent]
        assert not leaked, f"{response.request.method} {response.request.url}: leaked {leaked}"


@pytest.fixture(scope="module")
async def owned(http: httpx.AsyncClient, make_user: MakeUser) -> Owned:
    owner = await make_user(*SCOPES, name="matrix-owner")
    other = await make_user(*SCOPES, name="matrix-other")
    marker = secrets.token_hex(6).upper()
    case_ref = f"FI-SEC-{marker}"
    body_canary = f"canary body {marker}"
    submitted = await http.post(
        "/v1/messages",
        json=message(case_ref=case_ref, body=body_canary, recipients=["SE"]),
        headers=owner.headers,
    )
    assert submitted.status_code == 202, submitted.text
    name_canary = f"matrix subscription {marker}"
    url_canary = f"https://127.0.0.1:9/matrix-{marker.lower()}"
    created = await http.post(
        "/v1/subscriptions",
        json={"name": name_canary, "url": url_canary, "enabled": False},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    subscription = created.json()
    return Owned(
        owner=owner,
        other=other,
        message_id=submitted.json()["id"],
        subscription_id=subscription["id"],
        canaries=(
            case_ref,
            body_canary,
            name_canary,
            url_canary,
            subscription["id"],
            submitted.json()["id"],
            *(d["id"] for d in submitted.json()["deliveries"]),
            *(s for s in [subscription.get("generated_signing_secret")] if s),
        ),
    )


@pytest.fixture(scope="module")
async def revoked(db: Database, make_user: MakeUser) -> ApiUser:
    user = await make_user(*SCOPES, name="matrix-revoked")
    async with db.write_sessions() as session, session.begin():
        await revoke_client(session, user.id, actor="test", now=utcnow())
    return user


def _routes(owned_only: bool = False) -> list[Any]:
    return [
        pytest.param(method, path, rule, id=f"{method} {path}")
        for (method, path), rule in sorted(ROUTES.items())
        if rule.owned is not None or not owned_only
    ]


async def _call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any = None,
) -> httpx.Response:
    if method in ("POST", "PUT", "PATCH"):
        return await http.request(method, path, json={} if body is None else body, headers=headers)
    return await http.request(method, path, headers=headers)


def _assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.status_code} "
        f"{response.text[:300]}"
    )
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == status


@pytest.mark.parametrize(("method", "path", "rule"), _routes())
async def test_without_a_valid_key_401(
    http: httpx.AsyncClient, owned: Owned, revoked: ApiUser, method: str, path: str, rule: Rule
) -> None:
    url = fill(path, **owned.ids(rule.owned))
    for authorization in (
        None,
        "",
        "Bearer",
        f"Bearer ck_{secrets.token_urlsafe(32)}",
        f"Basic {revoked.key}",
        f"Bearer {revoked.key}",
    ):
        headers = {**JUSTIFY}
        if authorization is not None:
            headers["Authorization"] = authorization
        response = await _call(http, method, url, headers)
        _assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        owned.assert_no_foreign_bytes(response)


@pytest.mark.parametrize(("method", "path", "rule"), _routes())
async def test_without_the_scope_403(
    http: httpx.AsyncClient,
    make_user: MakeUser,
    owned: Owned,
    method: str,
    path: str,
    rule: Rule,
) -> None:
    lacking = await make_user(*(s for s in SCOPES if s != rule.scope), name="matrix-lacking")
    url = fill(path, **owned.ids(rule.owned))
    response = await _call(http, method, url, {**lacking.headers, **JUSTIFY})
    _assert_problem(response, 403)
    assert rule.scope in response.json()["detail"]
    owned.assert_no_foreign_bytes(response)


# What the owner may do with its own object (status), and the body it sends.
OWNER_CALLS: dict[tuple[str, str], tuple[int, Any]] = {
    ("GET", "/v1/messages/{message_id}"): (200, None),
    ("GET", "/v1/messages/{message_id}/deliveries"): (200, None),
    # Only a received message is forwarded: the owner's outbound one is a 409, not a 404.
    ("POST", "/v1/messages/{message_id}/forward"): (409, {"partners": ["se-bureau"]}),
    ("GET", "/v1/subscriptions/{subscription_id}"): (200, None),
    ("PATCH", "/v1/subscriptions/{subscription_id}"): (200, {"enabled": False}),
    ("DELETE", "/v1/subscriptions/{subscription_id}"): (204, None),
}


def test_owner_calls_cover_every_owned_route() -> None:
    assert OWNER_CALLS.keys() == {key for key, rule in ROUTES.items() if rule.owned}


@pytest.mark.parametrize(("method", "path", "rule"), _routes(owned_only=True))
async def test_another_clients_object_is_404(
    http: httpx.AsyncClient, owned: Owned, method: str, path: str, rule: Rule
) -> None:
    status, body = OWNER_CALLS[(method, path)]
    url = fill(path, **owned.ids(rule.owned))
    response = await _call(http, method, url, {**owned.other.headers, **JUSTIFY}, body)
    _assert_problem(response, 404)
    owned.assert_no_foreign_bytes(response)
    if method == "DELETE":
        return  # the owner's DELETE would end the object the other tests use
    mine = await _call(http, method, url, {**owned.owner.headers, **JUSTIFY}, body)
    assert mine.status_code == status, mine.text


async def test_owner_delete_after_the_other_clients_is_still_there(
    http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    owner = await make_user("messages:read", name="matrix-owner-delete")
    other = await make_user("messages:read", name="matrix-other-delete")
    created = await http.post(
        "/v1/subscriptions",
        json={"name": "to delete", "url": "https://127.0.0.1:9/delete", "enabled": False},
        headers=owner.headers,
    )
    url = f"/v1/subscriptions/{created.json()['id']}"
    assert (await http.delete(url, headers=other.headers)).status_code == 404
    assert (await http.get(url, headers=owner.headers)).status_code == 200
    assert (await http.delete(url, headers=owner.headers)).status_code == 204
    assert (await http.get(url, headers=owner.headers)).status_code == 404


async def test_lists_and_lookups_show_no_foreign_objects(
    http: httpx.AsyncClient, owned: Owned
) -> None:
    other = {**owned.other.headers, **JUSTIFY}
    case_ref = owned.canaries[0]
    calls = [
        http.get("/v1/messages", params={"case_ref": case_ref, "limit": 500}, headers=other),
        http.get("/v1/messages", params={"direction": "outbound", "limit": 500}, headers=other),
        http.get("/v1/subscriptions", params={"limit": 500}, headers=other),
        http.post(
            "/v1/lookups",
            json={"queries": [{"kind": "document", "number": "XP1234567"}]},
            headers=other,
        ),
    ]
    for call in calls:
        response = await call
        assert response.status_code == 200, response.text
        owned.assert_no_foreign_bytes(response)
    # The owner does see them: the canaries are real.
    mine = await http.get(
        "/v1/messages", params={"case_ref": case_ref}, headers=owned.owner.headers
    )
    assert [item["id"] for item in mine.json()["items"]] == [owned.message_id]
    subscriptions = await http.get(
        "/v1/subscriptions", params={"limit": 500}, headers=owned.owner.headers
    )
    assert owned.subscription_id in subscriptions.text
