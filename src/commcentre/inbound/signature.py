"""Standard Webhooks verification of what partners push: headers, timestamp, signature.

Everything here runs before the body is parsed or decrypted. The signed content
is `{webhook-id}.{webhook-timestamp}.{raw body}`; a `v1,` entry of the
`webhook-signature` header is accepted when it equals the HMAC-SHA256 under any
of the partner's current signing secrets (computed with the same `sign` that
signs what we send, so both directions derive keys alike).
"""

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr

from commcentre.adapters.base import PermanentDeliveryError
from commcentre.adapters.http import sign
from commcentre.errors import Unauthorized

WEBHOOK_ID_MAX = 255  # the inbox column
# A partner mid-rotation sends one `v1` entry per secret; more than this is not a rotation.
MAX_SIGNATURES = 16
_WEBHOOK_ID = re.compile(r"^[\x21-\x7e]{1,255}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


@dataclass(frozen=True, slots=True)
class WebhookHeaders:
    """The three Standard Webhooks headers, checked for shape (not yet for truth)."""

    webhook_id: str
    timestamp: int
    # The `v1,<base64>` entries as sent; other versions (e.g. `v1a`) are left out.
    signatures: tuple[str, ...]


def _present(name: str, value: str | None) -> str:
    if value is None or not value.strip():
        raise Unauthorized(f"the {name} header is missing (Standard Webhooks)")
    return value.strip()


def read_headers(
    webhook_id: str | None, webhook_timestamp: str | None, webhook_signature: str | None
) -> WebhookHeaders:
    """Check the headers' presence and shape; Unauthorized names the one at fault."""
    msg_id = _present("webhook-id", webhook_id)
    timestamp = _present("webhook-timestamp", webhook_timestamp)
    entries = _present("webhook-signature", webhook_signature).split()
    if not _WEBHOOK_ID.match(msg_id):
        raise Unauthorized(
            f"the webhook-id header must be 1..{WEBHOOK_ID_MAX} printable ASCII characters"
        )
    if not _TIMESTAMP.match(timestamp):
        raise Unauthorized("the webhook-timestamp header must be integer seconds since the epoch")
    if len(entries) > MAX_SIGNATURES:
        raise Unauthorized(f"the webhook-signature header has more than {MAX_SIGNATURES} entries")
    signatures = tuple(entry for entry in entries if entry.startswith("v1,"))
    if not signatures:
        raise Unauthorized("the webhook-signature header has no `v1,<base64>` entry")
    return WebhookHeaders(msg_id, int(timestamp), signatures)


def check_timestamp(timestamp: int, *, now: datetime, tolerance_seconds: int) -> None:
    """Refuse a timestamp further than the tolerance from our clock (a replay, or a skew)."""
    skew = timestamp - now.timestamp()
    if skew < -tolerance_seconds:
        raise Unauthorized(
            f"the webhook-timestamp is more than {tolerance_seconds} s old; sign at sending time"
        )
    if skew > tolerance_seconds:
        raise Unauthorized(
            f"the webhook-timestamp is more than {tolerance_seconds} s in the future; "
            "check the sender's clock"
        )


def verify_signature(headers: WebhookHeaders, body: bytes, secrets: Sequence[SecretStr]) -> None:
    """Accept when any `v1` entry matches the HMAC under any current secret, else Unauthorized."""
    received = [entry.encode("latin-1", "replace") for entry in headers.signatures]
    matched = False
    for secret in secrets:
        try:
            expected = sign(headers.webhook_id, headers.timestamp, body, (secret,)).encode()
        except PermanentDeliveryError:
            continue  # a stored secret that is not base64: it can match nothing
        # Every comparison is made (no early exit): timing says nothing about which matched.
        for entry in received:
            matched |= hmac.compare_digest(expected, entry)
    if not matched:
        raise Unauthorized(
            "the webhook-signature matches none of the partner's signing secrets "
            "(signed content: webhook-id.webhook-timestamp.body, HMAC-SHA256)"
        )
