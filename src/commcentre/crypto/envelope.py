"""Envelope encryption: a fresh AES-256-GCM data key (DEK) per record, wrapped by a KEK.

The same AAD protects the payload and the wrapped DEK:

    b"commcentre|" + context + b"|v" + format_version + b"|" + record_id.bytes

so a ciphertext copied to another row, read as another kind of record
("message" vs "request") or relabelled with another format version fails to
open. The context may not contain "|" and the version is ASCII digits, which
keeps the encoding unambiguous (record_id is a fixed 16 bytes at the end).

Key rotation never touches payload bytes: `rewrap` re-encrypts only the
32-byte DEK under the current KEK, and no plaintext is produced.
"""

import os
import uuid
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from commcentre.crypto.errors import DecryptionError
from commcentre.crypto.keyring import KEY_BYTES as DEK_BYTES
from commcentre.crypto.keyring import NONCE_BYTES, TAG_BYTES, KeyProvider, WrappedKey

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class SealedPayload:
    """What is stored for one record: versions, the wrapped DEK, nonce || ciphertext+tag."""

    format_version: int
    key_version: int
    wrapped_key: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        # Lengths only: a 1.6 KB bytes literal in a log line helps nobody.
        return (
            f"SealedPayload(format_version={self.format_version}, "
            f"key_version={self.key_version}, wrapped_key=<{len(self.wrapped_key)} bytes>, "
            f"ciphertext=<{len(self.ciphertext)} bytes>)"
        )


def payload_aad(*, record_id: uuid.UUID, context: str, format_version: int) -> bytes:
    """The associated data that binds a payload to its record, context and format."""
    if not isinstance(record_id, uuid.UUID):
        raise TypeError("record_id must be a uuid.UUID")
    if not context or "|" in context:
        raise ValueError("context must be non-empty and must not contain '|'")
    return b"".join(
        (
            b"commcentre|",
            context.encode("utf-8"),
            b"|v",
            str(format_version).encode("ascii"),
            b"|",
            record_id.bytes,
        )
    )


class Envelope:
    """Seals and opens record payloads with keys from a `KeyProvider`."""

    def __init__(self, keys: KeyProvider) -> None:
        self._keys = keys

    def seal(self, plaintext: bytes, *, record_id: uuid.UUID, context: str) -> SealedPayload:
        """Encrypt under a fresh DEK and wrap the DEK with the current KEK."""
        aad = payload_aad(record_id=record_id, context=context, format_version=FORMAT_VERSION)
        # One urandom call for DEK and nonce: it is a syscall, and seal runs once per message.
        fresh = os.urandom(DEK_BYTES + NONCE_BYTES)
        dek, nonce = fresh[:DEK_BYTES], fresh[DEK_BYTES:]
        # One AESGCM per DEK is inherent to a per-record key; KEK objects are reused.
        ciphertext = nonce + AESGCM(dek).encrypt(nonce, plaintext, aad)
        wrapped = self._keys.wrap_key(dek, aad=aad)
        return SealedPayload(
            format_version=FORMAT_VERSION,
            key_version=wrapped.version,
            wrapped_key=wrapped.blob,
            ciphertext=ciphertext,
        )

    def open(self, sealed: SealedPayload, *, record_id: uuid.UUID, context: str) -> bytes:
        """Decrypt a payload sealed for this record and context.

        Raises `DecryptionError` on any mismatch or tampering and
        `UnknownKeyVersion` when its KEK is not (or no longer) in the keyring.
        """
        aad = self._aad_for(sealed, record_id=record_id, context=context)
        dek = self._unwrap(sealed, aad)
        blob = sealed.ciphertext
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError("ciphertext is too short")
        try:
            return AESGCM(dek).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(
                "payload failed authentication (wrong record or context, or tampered)"
            ) from None

    def rewrap(self, sealed: SealedPayload, *, record_id: uuid.UUID, context: str) -> SealedPayload:
        """Re-wrap the DEK under the current KEK; ciphertext bytes are returned unchanged.

        Returns `sealed` itself when it is already at the current version. Only
        the DEK is authenticated here: a tampered ciphertext still fails at `open`.
        """
        if sealed.key_version == self._keys.current_version:
            return sealed
        aad = self._aad_for(sealed, record_id=record_id, context=context)
        wrapped = self._keys.wrap_key(self._unwrap(sealed, aad), aad=aad)
        return replace(sealed, key_version=wrapped.version, wrapped_key=wrapped.blob)

    def _aad_for(self, sealed: SealedPayload, *, record_id: uuid.UUID, context: str) -> bytes:
        if sealed.format_version != FORMAT_VERSION:
            raise DecryptionError(f"unsupported payload format version {sealed.format_version}")
        return payload_aad(
            record_id=record_id, context=context, format_version=sealed.format_version
        )

    def _unwrap(self, sealed: SealedPayload, aad: bytes) -> bytes:
        return self._keys.unwrap_key(
            WrappedKey(version=sealed.key_version, blob=sealed.wrapped_key), aad=aad
        )
