"""The webhook adapter against real HTTP(S) servers on 127.0.0.1.

Each server is a minimal asyncio HTTP/1.1 responder whose behaviour a test
chooses (answer, hang, reset, flood). A fake resolver maps invented names to
127.0.0.1 only; nothing connects anywhere else.
"""

import asyncio
import base64
import datetime as dt
import email.utils
import os
import socket
import ssl
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID
from joserfc import jwe
from joserfc.jwk import ECKey, RSAKey
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from commcentre.adapters.base import (
    AdapterContext,
    DeliveryContext,
    DeliveryError,
    OutboundMessage,
    PartnerGoneError,
    PartnerView,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from commcentre.adapters.http import outcome, parse_retry_after
from commcentre.adapters.transport import delivery_client
from commcentre.adapters.webhook import WebhookAdapter
from commcentre.clock import utcnow
from commcentre.messages.schemas import MessageIn
from tests.factories import message
from tests.integration.http_support import LocalServer, Received, Respond, reply

SECRETS = [f"whsec_{base64.b64encode(os.urandom(32)).decode()}" for _ in range(2)]


LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=10)


async def loopback_resolver(host: str, port: int) -> Sequence[str]:
    """Invented names under .test resolve to 127.0.0.1; anything else does not exist."""
    if host.endswith(".test"):
        return ["127.0.0.1"]
    raise OSError("name not known")


@pytest.fixture
async def adapter() -> AsyncIterator[WebhookAdapter]:
    # The transport `commcentre serve` uses; trust_env=False: a proxy from the environment
    # must never carry test traffic elsewhere.
    async with delivery_client(limits=LIMITS) as client:
        yield WebhookAdapter(AdapterContext(http=client, resolver=loopback_resolver, timeout=5))


def partner(url: str, **options: Any) -> PartnerView:
    config = {"url": url, **options.pop("config", {})}
    return PartnerView(
        id="se-bureau",
        name="SE bureau",
        country="SE",
        config=WebhookAdapter.config_model.model_validate(config),
        signing_secrets=[SecretStr(s) for s in options.pop("secrets", SECRETS)],
        allow_loopback=options.pop("allow_loopback", True),
        **options,
    )


def outbound() -> tuple[OutboundMessage, DeliveryContext]:
    content = MessageIn.model_validate(message())
    msg = OutboundMessage(id=uuid.uuid4(), created_at=utcnow(), content=content)
    now = utcnow().replace(microsecond=0)
    return msg, DeliveryContext(delivery_id=uuid.uuid4(), attempt=1, timestamp=now)


async def test_signed_json_push_verifies_with_each_rotated_secret(
    adapter: WebhookAdapter, start_server: Callable[..., Awaitable[LocalServer]]
) -> None:
    server = await start_server()
    msg, delivery = outbound()
    target = partner(f"http://partner.test:{server.port}/hook")
    receipt = await adapter.deliver(msg, target, delivery)

    assert (receipt.status_code, receipt.partner_ref) == (200, "ref-1")
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/hook")
    assert request.headers["host"] == f"partner.test:{server.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == str(delivery.delivery_id)
    assert request.headers["webhook-timestamp"] == str(int(delivery.timestamp.timestamp()))
    for secret in SECRETS:  # rotation: the receiver may hold either secret
        event = Webhook(secret).verify(request.body, request.headers)
        assert event == adapter.build_body(msg, target, delivery)
    assert event["type"] == "message.outbound"
    assert event["id"] == str(delivery.delivery_id)
    assert event["data"]["message_id"] == str(msg.id)
    assert event["data"]["subjects"][1]["number"] == "XP1234567"
    with pytest.raises(WebhookVerificationError):
        Webhook(f"whsec_{base64.b64encode(os.urandom(32)).decode()}").verify(
            request.body, request.headers
        )


async def test_literal_loopback_url_works_with_allow_loopback(
    adapter: WebhookAdapter, start_server: Callable[..., Awaitable[LocalServer]]
) -> None:
    server = await start_server()
    msg, delivery = outbound()
    receipt = await adapter.deliver(msg, partner(f"http://127.0.0.1:{server.port}/hook"), delivery)
    assert receipt.status_code == 200
    assert server.requests[0].headers["host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("key_format", ["pem", "raw"])
async def test_ed25519_v1a_signature(
    adapter: WebhookAdapter,
    start_server: Callable[..., Awaitable[LocalServer]],
    key_format: str,
) -> None:
    server = await start_server()
    key = Ed25519PrivateKey.generate()
    if key_format == "pem":
        text = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    else:
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        text = base64.b64encode(raw).decode()
    msg, delivery = outbound()
    url = f"http://partner.test:{server.port}/hook"
    await adapter.deliver(msg, partner(url, config={"ed25519_private_key": text}), delivery)

    [request] = server.requests
    signatures = dict(s.split(",", 1) for s in request.headers["webhook-signature"].split(" "))
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
    key.public_key().verify(base64.b64decode(signatures["v1a"]), signed + request.body)
    Webhook(SECRETS[0]).verify(request.body, request.headers)  # v1 still present alongside


@pytest.mark.parametrize("kind", ["EC", "RSA"])
async def test_partner_key_encrypts_body_as_jwe(
    adapter: WebhookAdapter, start_server: Callable[..., Awaitable[LocalServer]], kind: str
) -> None:
    server = await start_server()
    private = ECKey.generate_key("P-256") if kind == "EC" else RSAKey.generate_key(2048)
    msg, delivery = outbound()
    target = partner(
        f"http://partner.test:{server.port}/hook", public_jwk=private.as_dict(private=False)
    )
    await adapter.deliver(msg, target, delivery)

    [request] = server.requests
    assert request.headers["content-type"] == "application/jose"
    Webhook(SECRETS[1]).verify(request.body, request.headers, json_parse=False)
    registry = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "RSA-OAEP-256", "A256GCM"])
    token = jwe.decrypt_compact(request.body, private, registry=registry)
    expected_alg = "ECDH-ES+A256KW" if kind == "EC" else "RSA-OAEP-256"
    assert (token.protected["alg"], token.protected["enc"]) == (expected_alg, "A256GCM")
    assert "zip" not in token.protected
    assert orjson.loads(token.plaintext or b"") == adapter.build_body(msg, target, delivery)


async def test_no_signing_secret_refuses_to_send(
    adapter: WebhookAdapter, start_server: Callable[..., Awaitable[LocalServer]]
) -> None:
    """Nothing goes out unsigned. A partner registered before each direction had its own
    secrets has no outbound one until an operator gives it one: its deliveries wait
    (retryable), never signed with the secret that verifies the partner's own pushes."""
    server = await start_server()
    msg, delivery = outbound()
    with pytest.raises(RetryableDeliveryError, match="outbound signing secret"):
        await adapter.deliver(
            msg, partner(f"http://partner.test:{server.port}/", secrets=[]), delivery
        )
    assert server.connections == 0


def http_date(when: dt.datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


async def hang(request: Received, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)  # cancelled by the fixture teardown


def reset_socket(writer: asyncio.StreamWriter) -> None:
    """Abort with SO_LINGER 0, so the client sees a TCP RST, not a clean close."""
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    writer.transport.abort()


async def reset_mid_response(request: Received, writer: asyncio.StreamWriter) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n{"id": "ha')
    await writer.drain()
    await asyncio.sleep(0.05)
    reset_socket(writer)


async def reset_at_once(request: Received, writer: asyncio.StreamWriter) -> None:
    reset_socket(writer)


@pytest.mark.parametrize(
    ("respond", "error", "status", "retry_after"),
    [
        (reply(500), RetryableDeliveryError, 500, None),
        (reply(503, headers=[("retry-after", "7")]), RetryableDeliveryError, 503, 7.0),
        (reply(503, headers=[("retry-after", "soon")]), RetryableDeliveryError, 503, None),
        (reply(429, headers=[("retry-after", "999999999")]), RetryableDeliveryError, 429, 86400.0),
        (reply(408), RetryableDeliveryError, 408, None),
        (reply(409), RetryableDeliveryError, 409, None),
        (reply(425), RetryableDeliveryError, 425, None),
        (reply(410), PartnerGoneError, 410, None),
        (reply(400, b"bad passport XP1234567"), PermanentDeliveryError, 400, None),
        (reply(404), PermanentDeliveryError, 404, None),
        (reply(302, headers=[("location", "/elsewhere")]), PermanentDeliveryError, 302, None),
        (hang, RetryableDeliveryError, None, None),
        (reset_mid_response, RetryableDeliveryError, None, None),
        (reset_at_once, RetryableDeliveryError, None, None),
    ],
)
async def test_partner_answers_map_to_outcomes(
    adapter: WebhookAdapter,
    start_server: Callable[..., Awaitable[LocalServer]],
    respond: Respond,
    error: type[DeliveryError],
    status: int | None,
    retry_after: float | None,
) -> None:
    server = await start_server(respond=respond)
    msg, delivery = outbound()
    url = f"http://partner.test:{server.port}/hook"
    # Only the hanging partner needs a short deadline; the others must never meet it,
    # however slow a loaded machine is to answer.
    timeout = 0.3 if respond is hang else 10.0
    with pytest.raises(error) as caught:
        await adapter.deliver(msg, partner(url, config={"timeout_seconds": timeout}), delivery)
    assert type(caught.value) is error
    assert caught.value.status_code == status
    if isinstance(caught.value, RetryableDeliveryError):
        assert caught.value.retry_after == retry_after
    assert "XP1234567" not in caught.value.detail  # no payload echo by default
    assert len(server.requests) == 1


async def test_retry_after_http_date(
    adapter: WebhookAdapter, start_server: Callable[..., Awaitable[LocalServer]]
) -> None:
    msg, delivery = outbound()
    later = http_date(delivery.timestamp + dt.timedelta(seconds=120))
    server = await start_server(respond=reply(429, headers=[("retry-after", later)]))
    with pytest.raises(RetryableDeliveryError) as caught:
        await adapter.deliver(msg, partner(f"http://partner.test:{server.port}/"), delivery)
    assert (caught.value.status_code, caught.value.retry_after) == (429, 120.0)


def test_error_excerpt_is_opt_in_short_and_sanitised() -> None:
    """A public partner's error answer is kept only when opted in, printable and capped."""
    head = b"field\x00\x1b[31m invalid " + b"x" * 500
    now = utcnow()
    with pytest.raises(PermanentDeliveryError) as plain:
        outcome(422, httpx.Headers(), head, now=now)
    assert plain.value.detail == "partner answered HTTP 422"
    with pytest.raises(PermanentDeliveryError) as caught:
        outcome(422, httpx.Headers(), head, now=now, excerpt_chars=200)
    excerpt = caught.value.detail.split(": ", 1)[1]
    assert excerpt.startswith("field [31m invalid x")
    assert len(excerpt) == 200
    assert excerpt.isprintable()


@pytest.mark.parametrize("status", [404, 422, 500])
async def test_internal_target_answer_never_reaches_the_error(
    status: int, adapter: WebhookAdapter, start_server: Callable[..., Awaitable[LocalServer]]
) -> None:
    """SSRF read-out: a partner URL pointed at an internal service (here loopback, allowed)
    must not return that service's answer through last_error, even with excerpts opted in;
    only the status code and a fixed reason are kept."""
    canary = b"INTERNAL-SERVICE-CANARY root:x:0:0"
    server = await start_server(respond=reply(status, canary))
    msg, delivery = outbound()
    target = partner(
        f"http://internal.test:{server.port}/admin", config={"error_excerpt_chars": 200}
    )
    with pytest.raises(DeliveryError) as caught:
        await adapter.deliver(msg, target, delivery)
    assert caught.value.status_code == status
    assert caught.value.detail == f"partner answered HTTP {status}"
    assert b"CANARY" not in caught.value.detail.encode()


async def test_oversized_answer_is_read_only_up_to_the_cap(
    start_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    total = 64 * 1024 * 1024
    sent = 0
    finished = asyncio.Event()

    async def flood(request: Received, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: {total}\r\n\r\n".encode())
        chunk = b'{"id": "ref-9", "pad": "' + b"x" * (64 * 1024)
        try:
            while sent < total:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        finally:
            finished.set()

    server = await start_server(respond=flood)
    msg, delivery = outbound()
    async with httpx.AsyncClient(trust_env=False) as client:
        context = AdapterContext(
            http=client, resolver=loopback_resolver, max_response_bytes=1024, timeout=5
        )
        receipt = await WebhookAdapter(context).deliver(
            msg, partner(f"http://partner.test:{server.port}/"), delivery
        )
    assert receipt.status_code == 200
    assert receipt.partner_ref is None  # the cut-off JSON is not parsed
    await asyncio.wait_for(finished.wait(), 5)
    assert sent < total // 4  # the client hung up long before the body ended


async def test_redirect_is_not_followed_and_target_never_contacted(
    start_server: Callable[..., Awaitable[LocalServer]],
) -> None:
    elsewhere = await start_server()
    location = f"http://127.0.0.1:{elsewhere.port}/steal"
    server = await start_server(respond=reply(302, headers=[("location", location)]))
    msg, delivery = outbound()
    # Even a client configured to follow redirects must not follow them for a delivery.
    async with httpx.AsyncClient(trust_env=False, follow_redirects=True) as client:
        adapter = WebhookAdapter(AdapterContext(http=client, resolver=loopback_resolver))
        with pytest.raises(PermanentDeliveryError, match="redirect") as caught:
            await adapter.deliver(msg, partner(f"http://partner.test:{server.port}/"), delivery)
    assert caught.value.status_code == 302
    assert len(server.requests) == 1
    assert elsewhere.connections == 0


@dataclass
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext
    server_names: list[str | None]


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    """A throwaway CA and a certificate for partner.test only."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "commcentre test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner.test")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("partner.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_names: list[str | None] = []
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    server.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return Tls(server=server, client=client, server_names=server_names)


async def test_https_pins_the_ip_but_verifies_tls_for_the_host_name(
    start_server: Callable[..., Awaitable[LocalServer]], tls: Tls
) -> None:
    server = await start_server(
        ssl_context=tls.server, keep_alive=True, respond=reply(200, keep_alive=True)
    )
    msg, delivery = outbound()
    async with delivery_client(limits=LIMITS, verify=tls.client) as client:
        adapter = WebhookAdapter(AdapterContext(http=client, resolver=loopback_resolver))
        good = partner(f"https://partner.test:{server.port}/hook")
        for _ in range(3):
            receipt = await adapter.deliver(msg, good, delivery)
            assert receipt.status_code == 200
        # SNI is the name, not 127.0.0.1; the verified connection is kept for that name.
        assert tls.server_names == ["partner.test"]
        assert server.connections == 1
        assert {r.headers["host"] for r in server.requests} == {f"partner.test:{server.port}"}

        # Same pinned IP, another name: the kept connection (verified for partner.test)
        # is not reused; a new handshake fails the certificate check and nothing is sent.
        wrong = partner(f"https://other.test:{server.port}/hook")
        with pytest.raises(RetryableDeliveryError, match="transport error"):
            await adapter.deliver(msg, wrong, delivery)
    assert len(server.requests) == 3
    assert tls.server_names == ["partner.test", "other.test"]


NOW = dt.datetime(2026, 11, 28, 14, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        (" 30 ", 30.0),
        ("86401", 86400.0),
        (http_date(NOW + dt.timedelta(minutes=5)), 300.0),
        (http_date(NOW - dt.timedelta(minutes=5)), 0.0),
        (http_date(NOW + dt.timedelta(days=3)), 86400.0),
        ("-5", None),
        ("1.5", None),
        ("٣", None),  # a non-ASCII digit
        ("tomorrow", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize("secret", ["whsec_", "whsec_a", "whsec_!!!"])
async def test_malformed_signing_secret_is_permanent(adapter: WebhookAdapter, secret: str) -> None:
    msg, delivery = outbound()
    with pytest.raises(PermanentDeliveryError, match="signing secret"):
        await adapter.deliver(msg, partner("http://partner.test:1/", secrets=[secret]), delivery)
