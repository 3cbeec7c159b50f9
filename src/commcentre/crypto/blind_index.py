"""Blind indexes: keyed HMACs that let equality search run on encrypted fields.

A row stores HMAC-SHA256(key, kind + "\\x1f" + token) next to the sealed
payload; looking up "document number X" computes the same digest. Without the
key the digests reveal nothing useful (no dictionary attack on names or
document numbers). Callers normalise tokens (case, Unicode form, spacing)
before hashing: the index matches bytes, not meaning.
"""

import hashlib
import hmac
from collections.abc import Iterable

SEPARATOR = "\x1f"  # ASCII unit separator: never part of a name or document number
DIGEST_BYTES = 32
_MIN_KEY_BYTES = 32


class BlindIndex:
    """Computes blind-index digests with one HMAC key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ValueError(f"blind-index key must be at least {_MIN_KEY_BYTES} bytes")
        # Keyed once; `.copy()` per digest skips re-deriving the padded key blocks.
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def digest(self, kind: str, token: str) -> bytes:
        """HMAC-SHA256 of kind + "\\x1f" + token (32 bytes); kind must be non-empty."""
        # The messages never echo the token: it is a person's data.
        if not kind or SEPARATOR in kind:
            raise ValueError("kind must be non-empty and must not contain \\x1f")
        if SEPARATOR in token:
            raise ValueError("token must not contain \\x1f")
        try:
            data = f"{kind}{SEPARATOR}{token}".encode()
        except UnicodeEncodeError:
            # `from None`: the UnicodeEncodeError holds the whole token.
            raise ValueError("kind and token must be valid Unicode text") from None
        mac = self._base.copy()
        mac.update(data)
        return mac.digest()

    def digest_many(self, pairs: Iterable[tuple[str, str]]) -> list[bytes]:
        """`digest` for each (kind, token) pair, in order."""
        return [self.digest(kind, token) for kind, token in pairs]

    def __repr__(self) -> str:
        return "BlindIndex(key=<hidden>)"
