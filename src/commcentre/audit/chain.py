"""The audit hash chain: canonical bytes of an entry and their MAC (pure, no I/O).

An entry's hash covers its own fields and the previous entry's hash, so editing,
deleting or reordering an entry breaks the chain from that point on.

Two versions of the canonical form exist. v1 (entries written before the chain
was keyed, `key_id` NULL) is hashed with plain SHA-256: anyone with write access
to the database can recompute it. v2 (`key_id` set) is HMAC-SHA256 under the
audit key of that version, held in the keyring and never in the database, and
its canonical bytes name the key version: without the key, an edited entry
cannot be given a hash that verifies. The first v2 entry's prev_hash is the last
v1 hash, so the old prefix cannot be rewritten without breaking its MAC. The bytes
hashed must come out the same after a round trip through SQLite or PostgreSQL
(JSONB reorders keys and has no NUL characters), which is why `details` is held
to a small, JSON-stable subset.
"""

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

CHAIN_VERSION_V1 = "commcentre.audit.v1"
CHAIN_VERSION = "commcentre.audit.v2"
"""Tags the canonical form, so that a future change of it cannot collide with this one."""


class ChainKey(Protocol):
    """What the chain needs of an audit key: its version and its MAC."""

    @property
    def version(self) -> int: ...

    def mac(self, data: bytes) -> bytes: ...


DetailScalar = str | int | bool | None
DetailValue = DetailScalar | list[DetailScalar]

MAX_DETAILS_BYTES = 2048
# I-JSON (RFC 7493): integers beyond 2**53 lose precision in many JSON readers.
_MAX_SAFE_INT = 2**53 - 1


def canonical_bytes(fields: Mapping[str, Any]) -> bytes:
    """The unambiguous serialisation of an entry that its hash is taken over.

    A JSON array of the entry's fields in a fixed order: positions say which
    value is which, and JSON quoting keeps values from running into one
    another. `details` keys are sorted, as JSONB returns them in its own order.
    v2 (a `key_id`) puts the key version right after the version tag.
    """
    key_id = fields.get("key_id")
    occurred_at: datetime = fields["occurred_at"]
    if occurred_at.tzinfo is None:
        raise ValueError("audit occurred_at must be timezone-aware")
    entry_id = fields["id"]
    prev_hash: bytes = fields["prev_hash"]
    if len(prev_hash) != 32:
        raise ValueError("audit prev_hash must be 32 bytes")
    head: list[Any] = (
        [CHAIN_VERSION_V1] if key_id is None else [CHAIN_VERSION, _key_version(key_id)]
    )
    values = [
        *head,
        int(fields["seq"]),
        str(entry_id if isinstance(entry_id, uuid.UUID) else uuid.UUID(entry_id)),
        occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        fields["action"],
        fields["event"],
        fields["actor"],
        fields["subject_type"],
        fields["subject_id"],
        fields["recipient"],
        fields["justification"],
        fields["details"],
        prev_hash.hex(),
    ]
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)


def _key_version(key_id: object) -> int:
    if isinstance(key_id, bool) or not isinstance(key_id, int) or key_id < 1:
        raise ValueError("audit key_id must be a positive integer")
    return key_id


def entry_hash(fields: Mapping[str, Any]) -> bytes:
    """SHA-256 of a v1 (unkeyed) entry's canonical bytes (32 bytes)."""
    if fields.get("key_id") is not None:
        raise ValueError("a keyed (v2) entry is hashed with entry_mac")
    return hashlib.sha256(canonical_bytes(fields)).digest()


def entry_mac(fields: Mapping[str, Any], key: ChainKey) -> bytes:
    """HMAC-SHA256 of a v2 entry's canonical bytes under `key` (32 bytes).

    `fields["key_id"]` must name `key`: the version is part of what is MACed,
    so an entry cannot be moved under another key.
    """
    if fields.get("key_id") != key.version:
        raise ValueError("audit key_id does not name the key given")
    return key.mac(canonical_bytes(fields))


def checked_details(details: Mapping[str, object]) -> dict[str, DetailValue]:
    """A copy of `details` that hashes identically after a database round trip.

    Keys are strings; values are str, int (within +-2**53), bool, None, or lists
    of those; no NUL characters or lone surrogates (PostgreSQL refuses them);
    at most MAX_DETAILS_BYTES encoded. Floats are refused: their text form is
    not stable across JSON implementations. Raises ValueError otherwise.
    """
    snapshot: dict[str, DetailValue] = {}
    for key, value in details.items():
        if not isinstance(key, str):
            raise ValueError("audit details keys must be strings")
        _check_text(key)
        if isinstance(value, list | tuple):
            snapshot[key] = [_checked_scalar(key, item) for item in value]
        else:
            snapshot[key] = _checked_scalar(key, value)
    if len(orjson.dumps(snapshot)) > MAX_DETAILS_BYTES:
        raise ValueError(f"audit details exceed {MAX_DETAILS_BYTES} bytes")
    return snapshot


def _checked_scalar(key: str, value: object) -> DetailScalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise ValueError(f"audit details[{key!r}]: integer out of the safe range")
        return int(value)
    if isinstance(value, str):
        _check_text(value)
        return str(value)
    raise ValueError(
        f"audit details[{key!r}]: {type(value).__name__} is not allowed "
        "(str, int, bool, None or a list of those)"
    )


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ValueError("audit text must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("audit text must be valid Unicode (no lone surrogates)") from None
