"""POST /v1/inbound/{partner_id}: Standard Webhooks verification, dedup, JWE, parsing, storage.

Signatures come from the `standardwebhooks` reference package, so what we accept is
what any Standard Webhooks sender produces. After every refusal the test counts the
partner's messages, inbox rows and audit entries: nothing may have been stored.

The module runs an app on a database of its own: every `messages:read` client sees
all inbound messages, so those stored here would show up in other tests' listings.
"""

import asyncio
import base64
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from joserfc import jwe, jwk
from sqlalchemy import func, select
from standardwebhooks import Webhook

from commcentre.adapters.base import OutboundMessage
from commcentre.app import create_app
from commcentre.audit.models import AuditEntry
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.db import Database
from commcentre.inbound import service as inbound_service
from commcentre.inbound.models import InboxEntry
from commcentre.messages.models import Message
from commcentre.messages.schemas import MESSAGE_EXAMPLE, MessageIn
from tests.conftest import ApiUser
from tests.databases import fresh_database
from tests.inbound_support import event, signed_headers

JUSTIFY = {"X-Justification": "inbound test: check what was stored"}


# --- an app of this module's own -------------------------------------------------------


@pytest.fixture(scope="module")
def own_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("inbound"), "inbound") as url:
        yield url


@pytest.fixture(scope="module")
async def app(
    own_database: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[FastAPI]:
    keyring: Path = tmp_path_factory.mktemp("inbound-keys") / "keyring.json"
    settings = Settings(database_url=own_database, keyring_path=keyring, ingest_batch_wait_ms=0.5)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as client:
        yield client


@pytest.fixture(scope="module")
def db(app: FastAPI) -> Database:
    database: Database = app.state.runtime.db
    return database


@pytest.fixture(scope="module")
async def admin(db: Database) -> ApiUser:
    async with db.write_sessions() as session, session.begin():
        issued = await create_client(
            session, name="inbound-admin", scopes=["admin"], actor="test", now=utcnow()
        )
    return ApiUser(issued.client.id, issued.api_key)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


Counts = tuple[int, int, int]


class Partner:
    """A registered partner and what the test sends as it."""

    def __init__(self, http: httpx.AsyncClient, db: Database, pid: str, secret: str) -> None:
        self.http, self.db, self.id, self.secret = http, db, pid, secret

    async def push(
        self,
        document: dict[str, Any] | bytes,
        *,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        **options: Any,
    ) -> httpx.Response:
        body = document if isinstance(document, bytes) else orjson.dumps(document)
        sent = signed_headers(body, secret or self.secret, **options)
        sent.update(headers or {})
        return await self.http.post(f"/v1/inbound/{self.id}", content=body, headers=sent)

    async def counts(self) -> Counts:
        """(messages from it, inbox rows, audit entries it is the actor of)."""
        async with self.db.read_sessions() as session:
            messages = await session.scalar(
                select(func.count())
                .select_from(Message)
                .where(Message.source_partner_id == self.id)
            )
            inbox = await session.scalar(
                select(func.count()).select_from(InboxEntry).where(InboxEntry.partner_id == self.id)
            )
            audit = await session.scalar(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.actor == f"partner:{self.id}")
            )
        return (messages or 0, inbox or 0, audit or 0)


MakePartner = Callable[..., Awaitable[Partner]]


@pytest.fixture
def make_partner(http: httpx.AsyncClient, db: Database, admin: ApiUser) -> MakePartner:
    async def make(
        adapter: str = "webhook",
        config: dict[str, Any] | None = None,
        extra_secrets: tuple[str, ...] = (),
    ) -> Partner:
        pid = f"in-{uuid.uuid4().hex[:12]}"
        secret = new_secret()
        body = {
            "id": pid,
            "name": "Inbound test partner",
            "adapter": adapter,
            "config": config if config is not None else {"url": "https://partner.example/in"},
            "signing_secrets": [secret, *extra_secrets],
        }
        response = await http.post("/v1/partners", json=body, headers=admin.headers)
        assert response.status_code == 201, response.text
        return Partner(http, db, pid, secret)

    return make


async def read_back(http: httpx.AsyncClient, admin: ApiUser, message_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/messages/{message_id}", headers={**admin.headers, **JUSTIFY})
    assert response.status_code == 200, response.text
    content: dict[str, Any] = response.json()["content"]
    return content


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


# --- accepted -------------------------------------------------------------------------


async def test_a_signed_push_is_stored_sealed_and_audited(
    make_partner: MakePartner, http: httpx.AsyncClient, admin: ApiUser, db: Database
) -> None:
    partner = await make_partner()
    document = event()
    response = await partner.push(document)
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["status"] == "received"
    assert receipt["duplicate"] is False
    assert await partner.counts() == (1, 1, 1)
    content = await read_back(http, admin, receipt["id"])
    assert MessageIn.model_validate(content) == MessageIn.model_validate(MESSAGE_EXAMPLE)
    async with db.read_sessions() as session:
        row = (
            await session.execute(select(Message).where(Message.id == uuid.UUID(receipt["id"])))
        ).scalar_one()
        entry = (
            await session.execute(select(AuditEntry).where(AuditEntry.seq == row.seq))
        ).scalar_one()
    assert (row.direction, row.status, row.client_id) == ("inbound", "received", None)
    assert row.source_partner_id == partner.id
    assert row.partner_ref == document["data"]["message_id"]
    assert row.case_digest is not None  # the example has a case_ref
    assert b"VIRTANEN" not in row.ciphertext
    assert (entry.action, entry.event, entry.actor) == (
        "collection",
        "message.received",
        f"partner:{partner.id}",
    )
    assert entry.subject_id == receipt["id"]
    assert "VIRTANEN" not in orjson.dumps(entry.details).decode()


async def test_a_reply_without_case_ref_joins_the_thread_it_answers(
    make_partner: MakePartner, db: Database
) -> None:
    partner = await make_partner()
    first = (await partner.push(event())).json()["id"]
    reply = {k: v for k, v in MESSAGE_EXAMPLE.items() if k != "case_ref"}
    reply.update(type="reply", in_reply_to=first)
    second = (await partner.push(event(reply))).json()["id"]
    async with db.read_sessions() as session:
        digests = dict(
            (
                await session.execute(
                    select(Message.id, Message.case_digest).where(
                        Message.id.in_([uuid.UUID(first), uuid.UUID(second)])
                    )
                )
            ).all()
        )
    assert digests[uuid.UUID(second)] == digests[uuid.UUID(first)] is not None


async def test_a_still_listed_old_secret_is_accepted_and_a_dropped_one_refused(
    make_partner: MakePartner, http: httpx.AsyncClient, admin: ApiUser
) -> None:
    new = new_secret()
    partner = await make_partner(extra_secrets=(new,))
    old = partner.secret
    assert (await partner.push(event(), secret=old)).status_code == 202  # during rotation
    assert (await partner.push(event(), secret=new)).status_code == 202
    response = await http.patch(
        f"/v1/partners/{partner.id}", json={"signing_secrets": [new]}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    before = await partner.counts()
    assert_problem(await partner.push(event(), secret=old), 401)
    assert await partner.counts() == before
    assert (await partner.push(event(), secret=new)).status_code == 202


async def test_a_signature_with_several_entries_needs_one_match(make_partner: MakePartner) -> None:
    partner = await make_partner()
    body = orjson.dumps(event())
    headers = signed_headers(body, partner.secret)
    wrong = Webhook(new_secret()).sign("x", datetime.now(UTC), "y")
    headers["webhook-signature"] = f"{wrong} v1a,AAAA {headers['webhook-signature']}"
    response = await partner.http.post(f"/v1/inbound/{partner.id}", content=body, headers=headers)
    assert response.status_code == 202, response.text


# --- duplicates -----------------------------------------------------------------------


async def test_a_replayed_webhook_id_answers_200_with_the_same_id(
    make_partner: MakePartner,
) -> None:
    partner = await make_partner()
    document = event()
    first = await partner.push(document, webhook_id="msg_replayed")
    assert first.status_code == 202
    again = await partner.push(document, webhook_id="msg_replayed")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["duplicate"] is True
    assert await partner.counts() == (1, 1, 1)


async def test_the_same_webhook_id_from_another_partner_is_not_a_duplicate(
    make_partner: MakePartner,
) -> None:
    one, other = await make_partner(), await make_partner()
    assert (await one.push(event(), webhook_id="msg_shared")).status_code == 202
    assert (await other.push(event(), webhook_id="msg_shared")).status_code == 202


async def test_concurrent_duplicates_store_one_message(make_partner: MakePartner) -> None:
    partner = await make_partner()
    body = orjson.dumps(event())
    headers = signed_headers(body, partner.secret)
    responses = await asyncio.gather(
        *(
            partner.http.post(f"/v1/inbound/{partner.id}", content=body, headers=headers)
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 202]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await partner.counts() == (1, 1, 1)


async def test_a_duplicate_that_loses_the_unique_key_race_answers_200(
    make_partner: MakePartner, monkeypatch: pytest.MonkeyPatch
) -> None:
    partner = await make_partner()
    first = await partner.push(event(), webhook_id="msg_race")
    assert first.status_code == 202
    real_find = inbound_service.repository.find
    calls = 0

    async def blind_find(*args: Any) -> Any:
        # Both lookups before the insert miss it, as under a concurrent commit.
        nonlocal calls
        calls += 1
        return None if calls <= 2 else await real_find(*args)

    monkeypatch.setattr(inbound_service.repository, "find", blind_find)
    again = await partner.push(event(), webhook_id="msg_race")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert calls == 3
    assert await partner.counts() == (1, 1, 1)


# --- refused: signature ---------------------------------------------------------------


async def test_a_tampered_body_is_refused(make_partner: MakePartner) -> None:
    partner = await make_partner()
    body = orjson.dumps(event())
    headers = signed_headers(body, partner.secret)
    tampered = body.replace(b"VIRTANEN", b"VIRTANEM")
    response = await partner.http.post(
        f"/v1/inbound/{partner.id}", content=tampered, headers=headers
    )
    assert "matches none" in assert_problem(response, 401)["detail"]
    assert await partner.counts() == (0, 0, 0)


async def test_a_wrong_secret_is_refused(make_partner: MakePartner) -> None:
    partner = await make_partner()
    assert_problem(await partner.push(event(), secret=new_secret()), 401)
    assert await partner.counts() == (0, 0, 0)


@pytest.mark.parametrize(("offset", "word"), [(-301, "old"), (301, "future")])
async def test_a_timestamp_out_of_tolerance_is_refused(
    make_partner: MakePartner, offset: int, word: str
) -> None:
    partner = await make_partner()
    response = await partner.push(event(), at=datetime.now(UTC) + timedelta(seconds=offset))
    assert word in assert_problem(response, 401)["detail"]
    assert await partner.counts() == (0, 0, 0)


async def test_a_timestamp_within_tolerance_is_accepted(make_partner: MakePartner) -> None:
    partner = await make_partner()
    response = await partner.push(event(), at=datetime.now(UTC) - timedelta(seconds=240))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
async def test_each_missing_header_is_refused(make_partner: MakePartner, header: str) -> None:
    partner = await make_partner()
    body = orjson.dumps(event())
    headers = signed_headers(body, partner.secret)
    del headers[header]
    response = await partner.http.post(f"/v1/inbound/{partner.id}", content=body, headers=headers)
    assert header in assert_problem(response, 401)["detail"]
    assert await partner.counts() == (0, 0, 0)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("webhook-timestamp", "yesterday"),
        ("webhook-signature", "v2,abc"),
        ("webhook-id", "x" * 256),
    ],
)
async def test_malformed_headers_are_refused(
    make_partner: MakePartner, header: str, value: str
) -> None:
    partner = await make_partner()
    response = await partner.push(event(), headers={header: value})
    assert_problem(response, 401)
    assert await partner.counts() == (0, 0, 0)


# --- refused: partner -----------------------------------------------------------------


async def test_unknown_and_disabled_partners_get_the_same_404(
    make_partner: MakePartner, http: httpx.AsyncClient, admin: ApiUser
) -> None:
    partner = await make_partner()
    response = await http.patch(
        f"/v1/partners/{partner.id}", json={"enabled": False}, headers=admin.headers
    )
    assert response.status_code == 200
    disabled = assert_problem(await partner.push(event()), 404)
    ghost = Partner(http, partner.db, f"in-ghost-{uuid.uuid4().hex[:8]}", partner.secret)
    unknown = assert_problem(await ghost.push(event()), 404)
    assert disabled["detail"] == unknown["detail"]
    assert partner.id not in disabled["detail"]
    assert await partner.counts() == (0, 0, 0)


async def test_a_partner_that_cannot_push_is_refused(make_partner: MakePartner) -> None:
    partner = await make_partner("filedrop", {"directory": "/tmp/commcentre-inbound-test"})
    problem = assert_problem(await partner.push(event()), 409)
    assert "does not push messages" in problem["detail"]
    assert await partner.counts() == (0, 0, 0)


# --- refused: content -----------------------------------------------------------------


async def test_another_content_type_is_refused(make_partner: MakePartner) -> None:
    partner = await make_partner()
    assert_problem(await partner.push(event(), content_type="text/plain"), 415)
    assert await partner.counts() == (0, 0, 0)


async def test_an_invalid_payload_names_field_paths_without_values(
    make_partner: MakePartner,
) -> None:
    partner = await make_partner()
    document = event()
    del document["data"]["legal_basis"]
    document["data"]["subjects"][0]["date_of_birth"] = "QZX-CANARY"
    document["data"]["unexpected"] = "QZX-CANARY"
    response = await partner.push(document)
    problem = assert_problem(response, 422)
    paths = {tuple(error["loc"]) for error in problem["errors"]}
    assert ("body", "$.data.legal_basis") in paths
    assert ("body", "$.data.subjects[0].date_of_birth") in paths
    assert ("body", "$.data.unexpected") in paths
    assert "QZX-CANARY" not in response.text
    assert await partner.counts() == (0, 0, 0)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
async def test_a_body_that_is_no_json_object_is_refused(
    make_partner: MakePartner, body: bytes
) -> None:
    partner = await make_partner()
    assert_problem(await partner.push(body), 422)
    assert await partner.counts() == (0, 0, 0)


async def test_interpol_partners_push_interpol_documents(
    make_partner: MakePartner, http: httpx.AsyncClient, admin: ApiUser
) -> None:
    from commcentre.adapters.interpol.format import to_wire

    config = {"url": "https://partner.example/in", "ncb_code": "STOCKHOLM"}
    partner = await make_partner("interpol", config)
    message = MessageIn.model_validate(MESSAGE_EXAMPLE)
    outbound = OutboundMessage(id=uuid.uuid4(), created_at=datetime.now(UTC), content=message)
    document = to_wire(outbound, delivery_id=uuid.uuid4(), sender="STOCKHOLM")
    response = await partner.push(orjson.loads(orjson.dumps(document)))
    assert response.status_code == 202, response.text
    assert MessageIn.model_validate(await read_back(http, admin, response.json()["id"])) == message
    assert_problem(await partner.push(event()), 422)  # a webhook event is not interpol-like


# --- JWE ------------------------------------------------------------------------------


def our_public_key(app: FastAPI) -> dict[str, Any]:
    jwks: dict[str, Any] = app.state.runtime.keys.exchange_public_jwks()
    key: dict[str, Any] = jwks["keys"][0]
    assert "d" not in key
    return key


def encrypt(
    document: dict[str, Any], public: dict[str, Any], header: dict[str, Any], algorithms: list[str]
) -> bytes:
    registry = jwe.JWERegistry(algorithms=algorithms)
    key = jwk.import_key(public)
    token = jwe.encrypt_compact(header, orjson.dumps(document), key, registry=registry)
    return token.encode("ascii")


async def test_a_jwe_to_our_exchange_key_is_accepted(
    make_partner: MakePartner, app: FastAPI, http: httpx.AsyncClient, admin: ApiUser
) -> None:
    partner = await make_partner()
    public = our_public_key(app)
    for alg in ("ECDH-ES+A256KW", "ECDH-ES"):
        header = {"alg": alg, "enc": "A256GCM", "kid": public["kid"]}
        token = encrypt(event(), public, header, [alg, "A256GCM"])
        response = await partner.push(token, content_type="application/jose")
        assert response.status_code == 202, response.text
        content = await read_back(http, admin, response.json()["id"])
        assert MessageIn.model_validate(content) == MessageIn.model_validate(MESSAGE_EXAMPLE)


@pytest.mark.parametrize(
    ("change", "algorithms", "detail"),
    [
        ({"zip": "DEF"}, ["ECDH-ES+A256KW", "A256GCM", "DEF"], "zip"),
        ({"alg": "ECDH-ES+A128KW"}, ["ECDH-ES+A128KW", "A256GCM"], "alg"),
        ({"enc": "A128GCM"}, ["ECDH-ES+A256KW", "A128GCM"], "enc"),
        ({"kid": "not-our-key"}, ["ECDH-ES+A256KW", "A256GCM"], "kid"),
    ],
)
async def test_refused_jwes(
    make_partner: MakePartner,
    app: FastAPI,
    change: dict[str, str],
    algorithms: list[str],
    detail: str,
) -> None:
    partner = await make_partner()
    public = our_public_key(app)
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": public["kid"], **change}
    token = encrypt(event(), public, header, algorithms)
    problem = assert_problem(await partner.push(token, content_type="application/jose"), 422)
    assert detail in problem["detail"]
    assert await partner.counts() == (0, 0, 0)


async def test_a_jwe_for_another_key_under_our_kid_is_refused(
    make_partner: MakePartner, app: FastAPI
) -> None:
    partner = await make_partner()
    stranger = jwk.ECKey.generate_key("P-256", private=False).as_dict()
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": our_public_key(app)["kid"]}
    token = encrypt(event(), stranger, header, ["ECDH-ES+A256KW", "A256GCM"])
    assert_problem(await partner.push(token, content_type="application/jose"), 422)
    assert_problem(await partner.push(b"a.b.c", content_type="application/jose"), 422)
    assert await partner.counts() == (0, 0, 0)
