"""The audit log's keys: per version, an HMAC-SHA256 key for the chain and an Ed25519
key for its checkpoints. The keyring stores them (keyring.py); this is what they do.
"""

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class AuditKey:
    """One version of the audit keys: the chain's HMAC key and the checkpoint signing key.

    `mac` and `sign` never expose the key material; `public_key` is the Ed25519
    public key (32 bytes, RFC 8032) that third parties verify checkpoints with.
    """

    version: int
    created_at: datetime
    mac_key: bytes = field(repr=False)
    signing_seed: bytes = field(repr=False)
    # Built once per key: keying a fresh HMAC per entry would redo the key schedule.
    _mac_template: "hmac.HMAC" = field(repr=False, compare=False)
    _signer: Ed25519PrivateKey = field(repr=False, compare=False)
    public_key: bytes = field(compare=False)

    @classmethod
    def build(
        cls, version: int, created_at: datetime, mac_key: bytes, signing_seed: bytes
    ) -> "AuditKey":
        """The key of `version` from its two 32-byte secrets (MAC key, Ed25519 seed)."""
        signer = Ed25519PrivateKey.from_private_bytes(signing_seed)
        public = signer.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        template = hmac.new(mac_key, digestmod=hashlib.sha256)
        return cls(version, created_at, mac_key, signing_seed, template, signer, public)

    def mac(self, data: bytes) -> bytes:
        """HMAC-SHA256 of `data` under this version's chain key (32 bytes)."""
        digest = self._mac_template.copy()
        digest.update(data)
        return digest.digest()

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature of `data` (64 bytes)."""
        return self._signer.sign(data)


def new_audit_key(version: int, now: datetime) -> AuditKey:
    return AuditKey.build(
        version, now, secrets.token_bytes(KEY_BYTES), secrets.token_bytes(KEY_BYTES)
    )


@runtime_checkable
class AuditKeyProvider(Protocol):
    """The audit chain's keys (a KeyProvider may also be one)."""

    def audit_key(self) -> AuditKey:
        """The current audit key; KeyringError when the keyring has none."""
        ...

    def audit_key_version(self, version: int) -> AuditKey | None:
        """Audit key `version` (current or older), or None when there is none."""
        ...

    def audit_keys(self) -> Sequence[AuditKey]:
        """Every audit key, oldest first."""
        ...

    def audit_unkeyed_prefix(self) -> bool:
        """True when the log may start with unkeyed entries (keys added to an older keyring)."""
        ...
