"""Encryption at rest: versioned KEKs, per-record envelope encryption, blind indexes.

    FileKeyring (KeyProvider) ── wraps ──► per-record DEK ── AES-256-GCM ──► SealedPayload
              └── blind_index_key() ──► BlindIndex.digest(kind, token)

Exceptions:

    CryptoError
     ├── KeyringError        keyring file missing, corrupt, too permissive, or operation refused
     ├── UnknownKeyVersion   key version never existed or was retired (its key deleted)
     └── DecryptionError     any authentication failure: tamper, wrong record, context or key
"""

from commcentre.crypto.audit_keys import AuditKey, AuditKeyProvider
from commcentre.crypto.blind_index import BlindIndex
from commcentre.crypto.envelope import FORMAT_VERSION, Envelope, SealedPayload, payload_aad
from commcentre.crypto.errors import CryptoError, DecryptionError, KeyringError, UnknownKeyVersion
from commcentre.crypto.keyring import (
    FileKeyring,
    KeyProvider,
    KeyVersionInfo,
    WrappedKey,
)

__all__ = [
    "FORMAT_VERSION",
    "AuditKey",
    "AuditKeyProvider",
    "BlindIndex",
    "CryptoError",
    "DecryptionError",
    "Envelope",
    "FileKeyring",
    "KeyProvider",
    "KeyVersionInfo",
    "KeyringError",
    "SealedPayload",
    "UnknownKeyVersion",
    "WrappedKey",
    "payload_aad",
]
