"""Sealing a partner's adapter config and signing secrets as one envelope.

The plaintext, `{"config": {...secrets revealed...}, "inbound_secrets":
["whsec_..."], "outbound_secrets": ["whsec_..."]}`, is bound to the partner row
by its `uid` and the context "partner": a sealed blob copied onto another
partner, or read as a message, fails to open.

One key never serves both directions: `inbound_secrets` verify what the partner
pushes to us, `outbound_secrets` sign what we send it, so a captured delivery of
ours cannot pass as the partner's own push. Rows sealed before the split hold one
list, `"secrets"`, that signed and verified both ways; it opens as the inbound
secrets (what the partner signs with stays valid) and no outbound secret, so
nothing is sent to such a partner until an operator gives it one (docs/partners.md).
No migration can do this: only the keyring opens the envelope.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, Secret, SecretBytes, SecretStr
from pydantic_core import to_jsonable_python

from commcentre.crypto import Envelope, SealedPayload
from commcentre.partners.models import Partner

ENVELOPE_CONTEXT = "partner"
# What pydantic writes for a SecretStr in JSON mode: a client may send it back unchanged.
MASK = "**********"


@dataclass(frozen=True, slots=True)
class PartnerSecrets:
    """The opened envelope of a partner: lives in memory only."""

    config: dict[str, Any]
    # Verify what the partner pushes to POST /v1/inbound/{id}.
    inbound_secrets: list[str]
    # Sign what we deliver to the partner; empty for a row sealed before the split.
    outbound_secrets: list[str]

    def __repr__(self) -> str:
        return (
            f"PartnerSecrets(<{len(self.config)} config keys>, <{len(self.inbound_secrets)} "
            f"inbound>, <{len(self.outbound_secrets)} outbound>)"
        )


def revealed_config(config: BaseModel) -> dict[str, Any]:
    """A validated adapter config as JSON-able data with its secret values revealed."""
    return dict(to_jsonable_python(_reveal(config.model_dump(mode="python", by_alias=True))))


def masked_config(config: BaseModel) -> dict[str, Any]:
    """A validated adapter config as the API shows it: secret fields masked."""
    return dict(config.model_dump(mode="json", by_alias=True))


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes | Secret):
        return _reveal(value.get_secret_value())
    if isinstance(value, Mapping):
        return {key: _reveal(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_reveal(item) for item in value]
    return value


def keep_masked(new: Any, stored: Any) -> Any:
    """`new` where every value left as the mask takes the stored value at that place."""
    if new == MASK and stored is not None:
        return stored
    if isinstance(new, dict) and isinstance(stored, dict):
        return {key: keep_masked(item, stored.get(key)) for key, item in new.items()}
    if isinstance(new, list) and isinstance(stored, list) and len(new) == len(stored):
        return [keep_masked(a, b) for a, b in zip(new, stored, strict=True)]
    return new


def seal(envelope: Envelope, partner_uid: uuid.UUID, secrets: PartnerSecrets) -> SealedPayload:
    plaintext = orjson.dumps(
        {
            "config": secrets.config,
            "inbound_secrets": secrets.inbound_secrets,
            "outbound_secrets": secrets.outbound_secrets,
        }
    )
    return envelope.seal(plaintext, record_id=partner_uid, context=ENVELOPE_CONTEXT)


def store(partner: Partner, sealed: SealedPayload) -> None:
    """Put a sealed payload into the partner's columns."""
    partner.enc_format = sealed.format_version
    partner.key_version = sealed.key_version
    partner.wrapped_key = sealed.wrapped_key
    partner.ciphertext = sealed.ciphertext


def open_sealed(envelope: Envelope, partner: Partner) -> PartnerSecrets:
    """Decrypt a partner's envelope; raises CryptoError when it fails to authenticate."""
    sealed = SealedPayload(
        format_version=partner.enc_format,
        key_version=partner.key_version,
        wrapped_key=partner.wrapped_key,
        ciphertext=partner.ciphertext,
    )
    data = orjson.loads(envelope.open(sealed, record_id=partner.uid, context=ENVELOPE_CONTEXT))
    if "inbound_secrets" not in data:  # sealed before the split: see the module docstring
        return PartnerSecrets(dict(data["config"]), list(data["secrets"]), [])
    return PartnerSecrets(
        config=dict(data["config"]),
        inbound_secrets=list(data["inbound_secrets"]),
        outbound_secrets=list(data["outbound_secrets"]),
    )
