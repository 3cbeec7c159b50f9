"""The Idempotency-Key request header and request fingerprints."""

import hashlib
from typing import Annotated

from fastapi import Header

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "Makes the POST safe to retry. The same key with the same body answers the stored "
            "response again; with a different body 422; while the first is still in flight 409. "
            "Keys are scoped to the calling client and kept at least 24 hours."
        ),
    ),
]


def fingerprint(operation: str, canonical_body: bytes) -> bytes:
    """What identifies 'the same request' for a key: operation and canonical body."""
    digest = hashlib.sha256(operation.encode())
    digest.update(b"\x00")
    digest.update(canonical_body)
    return digest.digest()
