"""/v1/partners: registration, validation, secrets that never leave, changes, disabling."""

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, OKPKey, RSAKey
from pydantic import SecretStr
from sqlalchemy import select, text

from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.db import Database
from commcentre.partners import service
from commcentre.partners.models import Partner
from commcentre.routing import repository as routing_repository
from tests.conftest import ApiUser, MakeUser
from tests.integration.partners_support import (
    FakeConfig,
    Gateway,
    clean_up,
    create_partner,
    fake_registry,
    gateway,
    partner_body,
    partner_id,
)

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
THIRD_SECRET = "whsec_" + base64.b64encode(b"third-secret-of-32-bytes-exactly").decode()
FOURTH_SECRET = "whsec_" + base64.b64encode(b"fourth-secret-of-32-bytes-exactl").decode()


@pytest.fixture(scope="module")
async def gateway_app(settings: Settings) -> AsyncIterator[Gateway]:
    async with gateway(settings) as gw:
        yield gw


@pytest.fixture
async def gw(gateway_app: Gateway, admin: ApiUser) -> AsyncIterator[Gateway]:
    yield gateway_app
    await clean_up(gateway_app, admin)


@pytest.fixture
async def manager(make_user: MakeUser) -> ApiUser:
    return await make_user("partners:manage", name="partner-admin")


async def routing_version(db: Database) -> int:
    async with db.read_sessions() as session:
        return await routing_repository.current_version(session)


async def stored(db: Database, pid: str) -> Partner:
    async with db.read_sessions() as session:
        partner = (await session.execute(select(Partner).where(Partner.id == pid))).scalar_one()
    return partner


def field_locs(response: Any) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [error["loc"] for error in response.json()["errors"]]


# Creating and reading


async def test_create_answers_201_with_the_secret_shown_once(gw: Gateway, manager: ApiUser) -> None:
    body = partner_body(country="ata", channels=["interpol", "bilateral", "interpol"])
    response = await gw.http.post("/v1/partners", json=body, headers=manager.headers)
    assert response.status_code == 201, response.text
    gw.partners.append(body["id"])
    assert response.headers["location"] == f"/v1/partners/{body['id']}"
    created = response.json()
    assert created["country"] == "AQ"
    assert created["channels"] == ["interpol", "bilateral"]
    assert created["config"] == {
        "url": "https://partner.example/in",
        "api_token": "**********",
        "retries": 3,
        "login": None,
    }
    generated = created["generated_inbound_secret"]
    outbound = created["generated_outbound_secret"]
    for secret in (generated, outbound):
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[6:], validate=True)) == 32
    assert generated != outbound  # one key per direction, generated independently
    assert created["inbound_secrets"] == {"count": 1, "hints": [generated[:10]]}
    assert created["outbound_secrets"] == {"count": 1, "hints": [outbound[:10]]}
    # The deprecated names still answer, as the inbound direction.
    assert created["generated_signing_secret"] == generated
    assert created["signing_secrets"] == created["inbound_secrets"]
    assert created["enabled"] is True
    assert created["rate_burst"] == 1
    assert created["rate_limit_per_second"] is None

    read = await gw.http.get(f"/v1/partners/{body['id']}", headers=manager.headers)
    assert read.status_code == 200
    shown = read.json()
    assert "generated_signing_secret" not in shown
    assert "generated_outbound_secret" not in shown
    assert generated not in read.text
    assert outbound not in read.text
    assert shown["config"] == created["config"]
    # Stored countries must not route other tests' messages: take it away again.
    await gw.http.patch(
        f"/v1/partners/{body['id']}", json={"country": None}, headers=manager.headers
    )


async def test_given_secrets_are_kept_and_nothing_is_generated(
    gw: Gateway, manager: ApiUser
) -> None:
    created = await create_partner(
        gw, manager, inbound_secrets=[SECRET, OTHER_SECRET], outbound_secrets=[THIRD_SECRET]
    )
    assert created["generated_inbound_secret"] is None
    assert created["generated_outbound_secret"] is None
    assert created["generated_signing_secret"] is None
    assert created["inbound_secrets"] == {"count": 2, "hints": [SECRET[:10], OTHER_SECRET[:10]]}
    assert created["outbound_secrets"] == {"count": 1, "hints": [THIRD_SECRET[:10]]}


async def test_the_deprecated_signing_secrets_are_the_inbound_ones(
    gw: Gateway, manager: ApiUser, db: Database
) -> None:
    """A client of the API before the split still registers a partner: its one secret
    keeps verifying what the partner pushes, and the outbound secret is a new one."""
    created = await create_partner(gw, manager, signing_secrets=[SECRET])
    assert created["inbound_secrets"]["hints"] == [SECRET[:10]]
    assert created["generated_inbound_secret"] is None
    outbound = created["generated_outbound_secret"]
    assert outbound is not None
    view = service.partner_view(
        await stored(db, created["id"]),
        envelope=gw.app.state.runtime.vault.envelope,
        registry=fake_registry(),
    )
    assert [s.get_secret_value() for s in view.signing_secrets] == [outbound]


@pytest.mark.parametrize(
    "body",
    [
        {"inbound_secrets": [SECRET], "outbound_secrets": [OTHER_SECRET, SECRET]},
        {"signing_secrets": [SECRET], "outbound_secrets": [SECRET]},
        {"signing_secrets": [SECRET], "inbound_secrets": [OTHER_SECRET]},
    ],
)
async def test_one_secret_never_serves_both_directions(
    gw: Gateway, manager: ApiUser, body: dict[str, Any]
) -> None:
    """Threat: a key that signs our deliveries and verifies the partner's pushes lets a
    captured delivery pass as the partner's message; such a partner is refused (422)."""
    response = await gw.http.post(
        "/v1/partners", json=partner_body(**body), headers=manager.headers
    )
    assert response.status_code == 422, response.text
    assert SECRET not in response.text


async def test_the_decrypted_view_is_for_adapters_only(
    gw: Gateway, manager: ApiUser, db: Database
) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    config = {
        "url": "https://partner.example/in",
        "api_token": token,
        "login": {"username": "svc", "password": "pw-" + token},
    }
    created = await create_partner(
        gw, manager, config=config, inbound_secrets=[OTHER_SECRET], outbound_secrets=[SECRET]
    )
    partner = await stored(db, created["id"])
    view = service.partner_view(
        partner, envelope=gw.app.state.runtime.vault.envelope, registry=fake_registry()
    )
    assert isinstance(view.config, FakeConfig)
    assert view.config.api_token.get_secret_value() == token
    assert view.config.login is not None
    assert view.config.login.password.get_secret_value() == "pw-" + token
    assert [s.get_secret_value() for s in view.signing_secrets] == [SECRET]
    assert view.id == created["id"]
    assert view.allow_loopback is False
    assert created["config"]["login"] == {"username": "svc", "password": "**********"}


async def test_secrets_appear_in_no_response_and_not_in_clear_in_the_database(
    gw: Gateway, manager: ApiUser, db: Database, make_user: MakeUser
) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    rotated = "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()
    body = partner_body(
        config={"url": "https://p.example/", "api_token": token}, signing_secrets=[SECRET]
    )
    headers = {**manager.headers, "Idempotency-Key": str(uuid.uuid4())}
    responses = [await gw.http.post("/v1/partners", json=body, headers=headers)]
    gw.partners.append(body["id"])
    responses.append(await gw.http.post("/v1/partners", json=body, headers=headers))
    responses.append(await gw.http.get(f"/v1/partners/{body['id']}", headers=manager.headers))
    responses.append(await gw.http.get("/v1/partners", headers=manager.headers))
    responses.append(
        await gw.http.patch(
            f"/v1/partners/{body['id']}",
            json={
                "signing_secrets": [rotated, SECRET],
                "config": {"url": "https://p.example/", "api_token": "**********"},
            },
            headers=manager.headers,
        )
    )
    auditor = await make_user("audit:read")
    responses.append(
        await gw.http.get("/v1/audit", params={"subject_id": body["id"]}, headers=auditor.headers)
    )
    for response in responses:
        assert response.status_code in (200, 201), response.text
        for secret in (token, SECRET, rotated):
            assert secret not in response.text
    assert len(responses[-1].json()["items"]) == 2
    # Every row of every table, in clear bytes and text.
    needles = [token, SECRET, rotated, SECRET[6:], rotated[6:]]
    async with db.read_sessions() as session:
        for table in ("partners", "idempotency_keys", "audit_entries", "routing_rules"):
            rows = (await session.execute(text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            for row in rows:
                for value in row:
                    blob = value if isinstance(value, bytes) else str(value).encode()
                    for needle in needles:
                        assert needle.encode() not in blob, table


async def test_a_masked_config_value_keeps_the_stored_secret(
    gw: Gateway, manager: ApiUser, db: Database
) -> None:
    created = await create_partner(gw, manager, outbound_secrets=[SECRET])
    partner = await stored(db, created["id"])
    envelope = gw.app.state.runtime.vault.envelope
    before = service.partner_view(partner, envelope=envelope, registry=fake_registry())
    patched = await gw.http.patch(
        f"/v1/partners/{created['id']}",
        json={"config": {**created["config"], "url": "https://moved.example/", "retries": 5}},
        headers=manager.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"]["url"] == "https://moved.example/"
    after = service.partner_view(
        await stored(db, created["id"]), envelope=envelope, registry=fake_registry()
    )
    assert isinstance(after.config, FakeConfig)
    assert isinstance(before.config, FakeConfig)
    assert after.config.api_token == before.config.api_token
    assert after.config.retries == 5
    assert after.signing_secrets == (SecretStr(SECRET),)


async def test_a_sealed_config_moved_to_another_partner_does_not_open(
    gw: Gateway, manager: ApiUser, db: Database
) -> None:
    victim = await create_partner(gw, manager)
    thief = await create_partner(gw, manager)
    source = await stored(db, victim["id"])
    async with db.write_sessions() as session, session.begin():
        target = await session.get(Partner, thief["id"])
        assert target is not None
        target.wrapped_key, target.ciphertext = source.wrapped_key, source.ciphertext
    response = await gw.http.get(f"/v1/partners/{thief['id']}", headers=manager.headers)
    assert response.status_code == 200
    assert response.json()["config"] is None
    assert "cannot be opened" in response.json()["config_problem"]
    patch = await gw.http.patch(
        f"/v1/partners/{thief['id']}", json={"config": {}}, headers=manager.headers
    )
    assert patch.status_code == 409


async def test_list_pages_through_every_partner(gw: Gateway, manager: ApiUser) -> None:
    mine = sorted([(await create_partner(gw, manager))["id"] for _ in range(3)])
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await gw.http.get("/v1/partners", params=params, headers=manager.headers)).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen)
    assert [pid for pid in seen if pid in mine] == mine
    bad = await gw.http.get("/v1/partners", params={"cursor": "nope"}, headers=manager.headers)
    assert bad.status_code == 422


# Validation


async def test_an_unknown_adapter_is_422_listing_the_known_ones(
    gw: Gateway, manager: ApiUser
) -> None:
    response = await gw.http.post(
        "/v1/partners", json=partner_body(adapter="carrier-pigeon"), headers=manager.headers
    )
    assert field_locs(response) == [["body", "adapter"]]
    assert "fake" in response.json()["errors"][0]["msg"]


async def test_a_bad_config_is_422_with_field_paths_and_no_values(
    gw: Gateway, manager: ApiUser
) -> None:
    config = {"url": "http://plain.example/", "retries": 99, "login": {"username": "x"}}
    response = await gw.http.post(
        "/v1/partners", json=partner_body(config=config), headers=manager.headers
    )
    assert sorted(field_locs(response)) == [
        ["body", "config", "api_token"],
        ["body", "config", "login", "password"],
        ["body", "config", "retries"],
        ["body", "config", "url"],
    ]
    assert "plain.example" not in response.text
    extra = await gw.http.post(
        "/v1/partners",
        json=partner_body(config={**partner_body()["config"], "colour": "red"}),
        headers=manager.headers,
    )
    assert field_locs(extra) == [["body", "config", "colour"]]


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"id": "Not_A_Slug"}, ["body", "id"]),
        ({"id": "-leading-dash"}, ["body", "id"]),
        ({"id": "x"}, ["body", "id"]),
        ({"signing_secrets": ["not-a-secret"]}, ["body", "signing_secrets", 0]),
        (
            {"signing_secrets": ["whsec_" + base64.b64encode(b"short").decode()]},
            ["body", "signing_secrets", 0],
        ),
        ({"signing_secrets": ["whsec_!!!notbase64!!!"]}, ["body", "signing_secrets", 0]),
        ({"signing_secrets": [SECRET, SECRET]}, ["body", "signing_secrets"]),
        ({"signing_secrets": [SECRET] * 6}, ["body", "signing_secrets"]),
        ({"rate_limit_per_second": 0}, ["body", "rate_limit_per_second"]),
        ({"rate_limit_per_second": 10_001}, ["body", "rate_limit_per_second"]),
        ({"rate_burst": 0}, ["body", "rate_burst"]),
        ({"rate_burst": 1001}, ["body", "rate_burst"]),
        ({"country": "XX"}, ["body", "country"]),
        ({"channels": ["telex"]}, ["body", "channels", 0]),
        ({"disabled_reason": "no"}, ["body", "disabled_reason"]),
    ],
)
async def test_invalid_fields_are_422_with_their_path(
    gw: Gateway, manager: ApiUser, overrides: dict[str, Any], loc: list[Any]
) -> None:
    response = await gw.http.post(
        "/v1/partners", json=partner_body(**overrides), headers=manager.headers
    )
    assert loc in field_locs(response)
    assert "notbase64" not in response.text


def rsa_public_jwk(bits: int) -> dict[str, Any]:
    numbers = rsa.generate_private_key(65537, bits).public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8)).decode().rstrip("=")

    return {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e)}


@pytest.mark.parametrize(
    ("jwk", "reason"),
    [
        (lambda: dict(ECKey.generate_key("P-256").as_dict(private=True)), "private"),
        (lambda: dict(RSAKey.generate_key(2048).as_dict(private=True)), "private"),
        (lambda: dict(OKPKey.generate_key("X25519").as_dict(private=True)), "private"),
        (lambda: {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"}, "private"),
        (lambda: dict(OKPKey.generate_key("Ed25519").as_dict(private=False)), "must be"),
        (lambda: dict(ECKey.generate_key("P-521").as_dict(private=False)), "must be"),
        (lambda: rsa_public_jwk(1024), "2048"),
        (lambda: {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "not a valid JWK"),
    ],
    ids=[
        "ec-private",
        "rsa-private",
        "x25519-private",
        "oct",
        "ed25519",
        "p521",
        "rsa-1024",
        "off-curve",
    ],
)
async def test_unsuitable_public_keys_are_refused(
    gw: Gateway, manager: ApiUser, jwk: Any, reason: str
) -> None:
    response = await gw.http.post(
        "/v1/partners", json=partner_body(public_jwk=jwk()), headers=manager.headers
    )
    assert field_locs(response) == [["body", "public_jwk"]]
    assert reason in response.json()["errors"][0]["msg"]


@pytest.mark.parametrize(
    "jwk",
    [
        lambda: ECKey.generate_key("P-384").as_dict(private=False),
        lambda: OKPKey.generate_key("X25519").as_dict(private=False),
        lambda: rsa_public_jwk(2048),
    ],
    ids=["p384", "x25519", "rsa-2048"],
)
async def test_public_keys_are_stored(gw: Gateway, manager: ApiUser, jwk: Any) -> None:
    key = {**jwk(), "kid": "partner-key-1", "use": "enc"}
    created = await create_partner(gw, manager, public_jwk=key)
    assert created["public_jwk"] == key


async def test_duplicate_id_is_409(gw: Gateway, manager: ApiUser) -> None:
    created = await create_partner(gw, manager)
    again = await gw.http.post(
        "/v1/partners", json=partner_body(id=created["id"]), headers=manager.headers
    )
    assert again.status_code == 409


# Access


async def test_scope_is_required(gw: Gateway, make_user: MakeUser, admin: ApiUser) -> None:
    other = await make_user("messages:write", "messages:read", "audit:read")
    for method, path in (
        ("GET", "/v1/partners"),
        ("GET", "/v1/partners/x-y"),
        ("PATCH", "/v1/partners/x-y"),
        ("POST", "/v1/partners"),
    ):
        response = await gw.http.request(method, path, json={}, headers=other.headers)
        assert response.status_code == 403, (method, path)
        anonymous = await gw.http.request(method, path, json={})
        assert anonymous.status_code == 401
    assert (await gw.http.get("/v1/partners", headers=admin.headers)).status_code == 200


async def test_unknown_partner_is_404(gw: Gateway, manager: ApiUser) -> None:
    missing = partner_id("missing")
    assert (
        await gw.http.get(f"/v1/partners/{missing}", headers=manager.headers)
    ).status_code == 404
    patch = await gw.http.patch(
        f"/v1/partners/{missing}", json={"name": "x"}, headers=manager.headers
    )
    assert patch.status_code == 404


# Idempotency


async def test_create_is_idempotent(gw: Gateway, manager: ApiUser) -> None:
    body = partner_body()
    headers = {**manager.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await gw.http.post("/v1/partners", json=body, headers=headers)
    gw.partners.append(body["id"])
    second = await gw.http.post("/v1/partners", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    # The generated secrets are shown once: a replay describes the partner without them.
    generated = ("generated_inbound_secret", "generated_outbound_secret")
    assert all(first.json()[name] is not None for name in generated)
    assert second.json() == {
        **first.json(),
        **dict.fromkeys(generated),
        "generated_signing_secret": None,
    }
    changed = await gw.http.post("/v1/partners", json={**body, "name": "Another"}, headers=headers)
    assert changed.status_code == 422
    secret_changed = await gw.http.post(
        "/v1/partners", json={**body, "signing_secrets": [SECRET]}, headers=headers
    )
    assert secret_changed.status_code == 422


# Changes


async def test_patch_changes_only_the_fields_given(
    gw: Gateway, manager: ApiUser, db: Database
) -> None:
    created = await create_partner(gw, manager, channels=["europol"], rate_limit_per_second=5)
    version = await routing_version(db)
    response = await gw.http.patch(
        f"/v1/partners/{created['id']}",
        json={"name": "Renamed", "rate_limit_per_second": None, "rate_burst": 20},
        headers=manager.headers,
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["name"] == "Renamed"
    assert patched["rate_limit_per_second"] is None
    assert patched["rate_burst"] == 20
    assert patched["channels"] == ["europol"]
    assert patched["inbound_secrets"] == created["inbound_secrets"]
    assert patched["outbound_secrets"] == created["outbound_secrets"]
    assert patched["config"] == created["config"]
    assert await routing_version(db) > version


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        ({"name": None}, ["body", "name"]),
        ({"enabled": None}, ["body", "enabled"]),
        ({"adapter": "fake"}, ["body", "adapter"]),
        ({"id": "new-id"}, ["body", "id"]),
        ({"signing_secrets": []}, ["body", "signing_secrets"]),
        ({"inbound_secrets": []}, ["body", "inbound_secrets"]),
        ({"outbound_secrets": []}, ["body", "outbound_secrets"]),
        ({"config": {"url": "ftp://x"}}, ["body", "config", "url"]),
        ({"public_jwk": {"kty": "oct", "k": "AAAA"}}, ["body", "public_jwk"]),
        ({"rate_burst": 0}, ["body", "rate_burst"]),
    ],
)
async def test_invalid_patches_are_422(
    gw: Gateway, manager: ApiUser, patch: dict[str, Any], loc: list[Any]
) -> None:
    created = await create_partner(gw, manager)
    response = await gw.http.patch(
        f"/v1/partners/{created['id']}", json=patch, headers=manager.headers
    )
    assert loc in field_locs(response)


async def test_signing_secrets_rotate_and_public_key_is_removed(
    gw: Gateway, manager: ApiUser
) -> None:
    key = ECKey.generate_key("P-256").as_dict(private=False)
    created = await create_partner(gw, manager, signing_secrets=[SECRET], public_jwk=key)
    response = await gw.http.patch(
        f"/v1/partners/{created['id']}",
        json={"signing_secrets": [OTHER_SECRET, SECRET], "public_jwk": None},
        headers=manager.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["inbound_secrets"]["hints"] == [OTHER_SECRET[:10], SECRET[:10]]
    assert response.json()["outbound_secrets"] == created["outbound_secrets"]
    assert response.json()["public_jwk"] is None


async def test_each_direction_rotates_alone_and_never_takes_the_others_secret(
    gw: Gateway, manager: ApiUser, db: Database
) -> None:
    """Rotating one direction leaves the other as it was; a secret of the other direction
    is refused (422), so a rotation cannot make one key serve both."""
    created = await create_partner(
        gw, manager, inbound_secrets=[SECRET], outbound_secrets=[OTHER_SECRET]
    )
    url = f"/v1/partners/{created['id']}"
    rotated = await gw.http.patch(
        url, json={"outbound_secrets": [THIRD_SECRET, OTHER_SECRET]}, headers=manager.headers
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["inbound_secrets"]["hints"] == [SECRET[:10]]
    assert rotated.json()["outbound_secrets"]["hints"] == [THIRD_SECRET[:10], OTHER_SECRET[:10]]
    rotated = await gw.http.patch(
        url, json={"inbound_secrets": [FOURTH_SECRET]}, headers=manager.headers
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["inbound_secrets"]["hints"] == [FOURTH_SECRET[:10]]
    assert rotated.json()["outbound_secrets"]["count"] == 2
    view = service.partner_view(
        await stored(db, created["id"]),
        envelope=gw.app.state.runtime.vault.envelope,
        registry=fake_registry(),
    )
    assert [s.get_secret_value() for s in view.signing_secrets] == [THIRD_SECRET, OTHER_SECRET]
    for body in ({"outbound_secrets": [FOURTH_SECRET]}, {"inbound_secrets": [OTHER_SECRET]}):
        refused = await gw.http.patch(url, json=body, headers=manager.headers)
        assert refused.status_code == 422, refused.text
        assert [next(iter(body)) in e["loc"] for e in refused.json()["errors"]] == [True]
    shown = await gw.http.get(url, headers=manager.headers)
    assert shown.json()["inbound_secrets"]["hints"] == [FOURTH_SECRET[:10]]


async def test_disable_partner_is_idempotent_bumps_routing_and_is_audited(
    gw: Gateway, manager: ApiUser, db: Database, make_user: MakeUser
) -> None:
    created = await create_partner(gw, manager)
    version = await routing_version(db)
    for expected in (True, False):
        async with db.write_sessions() as session, session.begin():
            changed = await service.disable_partner(
                session, created["id"], reason="partner answered 410 Gone", now=utcnow()
            )
        assert changed is expected
    assert await routing_version(db) == version + 1
    shown = (await gw.http.get(f"/v1/partners/{created['id']}", headers=manager.headers)).json()
    assert shown["enabled"] is False
    assert shown["disabled_reason"] == "partner answered 410 Gone"

    enabled = await gw.http.patch(
        f"/v1/partners/{created['id']}", json={"enabled": True}, headers=manager.headers
    )
    assert enabled.json()["enabled"] is True
    assert enabled.json()["disabled_reason"] is None

    auditor = await make_user("audit:read")
    entries = (
        await gw.http.get(
            "/v1/audit", params={"subject_id": created["id"]}, headers=auditor.headers
        )
    ).json()["items"]
    events = [(e["action"], e["event"], e["actor"]) for e in entries]
    assert events == [
        ("alteration", "partner.created", f"client:{manager.id}"),
        ("alteration", "partner.disabled", "system:dispatcher"),
        ("alteration", "partner.updated", f"client:{manager.id}"),
    ]
    assert entries[2]["details"]["fields"] == ["enabled"]


async def test_disabling_an_unknown_partner_is_not_found(db: Database) -> None:
    from commcentre.errors import NotFound

    async with db.write_sessions() as session, session.begin():
        with pytest.raises(NotFound):
            await service.disable_partner(session, partner_id(), reason="gone", now=utcnow())
