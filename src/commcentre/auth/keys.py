"""API keys: random, shown once, stored as a SHA-256 digest.

A key carries 256 bits of entropy, so a fast hash is enough: there is nothing
to brute-force that a slow hash would protect.
"""

import hashlib
import secrets

KEY_PREFIX = "ck_"
MIN_KEY_LENGTH = 32


def generate_api_key() -> str:
    """A new API key: `ck_` and 32 random bytes, base64url."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def key_hint(key: str) -> str:
    """The first characters of a key, for an operator to recognise it."""
    return key[:10]
