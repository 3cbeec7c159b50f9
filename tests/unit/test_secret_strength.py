"""Weak secrets an attacker tries first are recognised; generated ones never are.

Prod refuses them (a webhook secret signs what partners trust as ours; the
bootstrap key is an admin key), so a false refusal of a real random secret
would be as wrong as a weak secret let through.
"""

import base64
import secrets

import pytest

from commcentre.auth.keys import generate_api_key
from commcentre.partners.schemas import generate_signing_secret
from commcentre.secret_strength import api_key_weakness, signing_secret_weakness


def whsec(key: bytes) -> str:
    return "whsec_" + base64.b64encode(key).decode()


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (whsec(bytes(32)), "repeated symbol"),
        (whsec(b"\xff" * 24), "repeated symbol"),
        ("whsec_bmV3LXNlY3JldC1mb3Itcm90YXRpb24tMDAwMDAwMDA=", "published example"),
        ("whsec_b2xkLXNlY3JldC1zdGlsbC1pbi11c2UtMDAwMDAwMDA", "published example"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "published example"),
        (whsec(b"0123456789abcdef" * 2), "repeated pattern"),
        (whsec(bytes(range(32))), "sequence"),
        (whsec(b"my-very-own-webhook-secret-2026!"), "text"),
        (whsec(bytes.fromhex("8000c38080c3000080c3c300800000c3808000c3c30080c3")), "distinct"),
    ],
)
def test_weak_signing_secrets_are_named(secret: str, reason: str) -> None:
    """All-zero bytes, our OpenAPI examples, patterns and passwords are refused by name."""
    weakness = signing_secret_weakness(secret)
    assert weakness is not None
    assert reason in weakness


def test_random_signing_secrets_pass() -> None:
    """Generated secrets (32 bytes) and the shortest allowed random ones (24) pass."""
    for _ in range(2000):
        assert signing_secret_weakness(generate_signing_secret()) is None
        assert signing_secret_weakness(whsec(secrets.token_bytes(24))) is None


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("changeme", "shorter"),
        ("x" * 31, "shorter"),
        ("a" * 64, "repeated symbol"),
        ("ck_" + "A" * 43, "repeated symbol"),
        ("ck_" + "password" * 6, "repeated pattern"),
        ("abcdefghijklmnopqrstuvwxyz0123456789", "sequence"),
        ("correct horse battery staple 1234", "bits"),
        ("ck_aabbaabbccddccddaabbccddaabbccdd", "bits"),
    ],
)
def test_weak_bootstrap_keys_are_named(key: str, reason: str) -> None:
    """An admin key someone typed is refused: too short, one symbol, a pattern, or an
    estimated entropy below 128 bits."""
    weakness = api_key_weakness(key)
    assert weakness is not None
    assert reason in weakness


def test_random_api_keys_pass() -> None:
    """Keys made as the docs say (`ck_` + token_urlsafe(32), 64 hex digits) pass."""
    for _ in range(2000):
        assert api_key_weakness(generate_api_key()) is None
        assert api_key_weakness(secrets.token_hex(32)) is None
