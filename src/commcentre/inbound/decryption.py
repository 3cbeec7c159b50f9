"""Opening an inbound `application/jose` body: a compact JWE addressed to our exchange key.

The protected header is checked before any cryptography, so that a refusal says
exactly why: only key agreement on our P-256 exchange keys (ECDH-ES+A256KW, or
ECDH-ES direct) with A256GCM content encryption; never compression (`zip`: a
small body could expand without bound), never a `crit` extension we do not know.
The partner names our key with `kid` (from `commcentre keys public`); without a
`kid` the current key is used.
"""

import base64
import binascii
import json
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError

from commcentre.crypto.keyring import ExchangeKeyProvider
from commcentre.errors import UnprocessableContent

KEY_ALGORITHMS = ("ECDH-ES+A256KW", "ECDH-ES")
CONTENT_ENCRYPTION = ("A256GCM",)
_REGISTRY = jwe.JWERegistry(algorithms=[*KEY_ALGORITHMS, *CONTENT_ENCRYPTION])
_HEADER_MAX = 8192


def _refuse(detail: str) -> UnprocessableContent:
    return UnprocessableContent(detail)


def protected_header(token: str) -> dict[str, Any]:
    """The JWE's protected header, or 422 when the body is no compact JWE."""
    parts = token.split(".")
    if len(parts) != 5 or len(parts[0]) > _HEADER_MAX:
        raise _refuse("an application/jose body must be a compact JWE (five base64url parts)")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _refuse("the JWE protected header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise _refuse("the JWE protected header is not a JSON object")
    return header


def decrypt(body: bytes, keys: ExchangeKeyProvider | None) -> bytes:
    """The plaintext of a compact JWE to one of our exchange keys; 422 naming what is wrong."""
    try:
        token = body.decode("ascii").strip()
    except UnicodeDecodeError:
        raise _refuse("an application/jose body must be a compact JWE (ASCII)") from None
    header = protected_header(token)
    if "zip" in header:
        raise _refuse("compressed JWEs (a `zip` header) are refused; send it uncompressed")
    if "crit" in header:
        raise _refuse("JWEs with critical header extensions (`crit`) are refused")
    if header.get("alg") not in KEY_ALGORITHMS:
        raise _refuse(f"the JWE alg must be one of {', '.join(KEY_ALGORITHMS)}")
    if header.get("enc") not in CONTENT_ENCRYPTION:
        raise _refuse(f"the JWE enc must be {' or '.join(CONTENT_ENCRYPTION)}")
    if keys is None:
        raise _refuse("this gateway has no exchange key; send application/json")
    kid = header.get("kid")
    if kid is None:
        current = keys.exchange_public_jwks()["keys"]
        if not current:
            raise _refuse("this gateway has no exchange key; send application/json")
        kid = current[0]["kid"]
    if not isinstance(kid, str):
        raise _refuse("the JWE kid must be a string")
    key = keys.exchange_key(kid)
    if key is None:
        raise _refuse(
            "the JWE kid names none of our exchange keys; fetch our current JWK Set "
            "(`commcentre keys public`)"
        )
    try:
        return jwe.decrypt_compact(token, key, registry=_REGISTRY).plaintext or b""
    except (JoseError, ValueError, TypeError):
        raise _refuse(
            "the JWE cannot be decrypted with our exchange key (wrong key, or tampered)"
        ) from None
