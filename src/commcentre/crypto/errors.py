"""Crypto errors. Messages name files, versions and fields, never key material or plaintext.

CryptoError
 ├── KeyringError        keyring file missing, corrupt, too permissive, or operation refused
 ├── UnknownKeyVersion   key version never existed or was retired (its key deleted)
 └── DecryptionError     any authentication failure: tamper, wrong record, context or key
"""


class CryptoError(Exception):
    """Base class for every failure raised by `commcentre.crypto`."""


class KeyringError(CryptoError):
    """The keyring file is missing, corrupt, too permissive, or the operation is refused."""


class UnknownKeyVersion(CryptoError):
    """A key version is not in the keyring (never created, or retired and deleted)."""


class DecryptionError(CryptoError):
    """Authentication failed: wrong key, wrong record/context, or tampered bytes."""
