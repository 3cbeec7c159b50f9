"""Sealing a subscription's signing secrets and case_ref as one envelope.

The plaintext, `{"secrets": ["whsec_..."], "case_ref": "..." | null}`, is bound
to the subscription row by its id and the context "subscription": a sealed
blob copied onto another row, or read as a message or partner, fails to open.
"""

from dataclasses import dataclass

import orjson

from commcentre.crypto import Envelope, SealedPayload
from commcentre.subscriptions.models import Subscription

ENVELOPE_CONTEXT = "subscription"


@dataclass(frozen=True, slots=True)
class SubscriptionSecrets:
    """The opened envelope of a subscription: lives in memory only."""

    signing_secrets: list[str]
    case_ref: str | None

    def __repr__(self) -> str:
        case = "set" if self.case_ref is not None else "none"
        return f"SubscriptionSecrets(<{len(self.signing_secrets)} secrets>, case_ref <{case}>)"


def seal_into(envelope: Envelope, subscription: Subscription, secrets: SubscriptionSecrets) -> None:
    """Seal `secrets` into the subscription's columns (its id must be set)."""
    plaintext = orjson.dumps({"secrets": secrets.signing_secrets, "case_ref": secrets.case_ref})
    sealed = envelope.seal(plaintext, record_id=subscription.id, context=ENVELOPE_CONTEXT)
    subscription.enc_format = sealed.format_version
    subscription.key_version = sealed.key_version
    subscription.wrapped_key = sealed.wrapped_key
    subscription.ciphertext = sealed.ciphertext


def open_sealed(envelope: Envelope, subscription: Subscription) -> SubscriptionSecrets:
    """Decrypt a subscription's envelope; raises CryptoError when it fails to authenticate."""
    sealed = SealedPayload(
        format_version=subscription.enc_format,
        key_version=subscription.key_version,
        wrapped_key=subscription.wrapped_key,
        ciphertext=subscription.ciphertext,
    )
    data = orjson.loads(envelope.open(sealed, record_id=subscription.id, context=ENVELOPE_CONTEXT))
    case_ref = data.get("case_ref")
    return SubscriptionSecrets(
        signing_secrets=[str(s) for s in data["secrets"]],
        case_ref=str(case_ref) if case_ref is not None else None,
    )
