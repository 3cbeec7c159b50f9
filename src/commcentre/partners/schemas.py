"""Partner request and response bodies.

Secrets come in as `SecretStr` (never in a repr, a log line or an error body)
and never go out: responses show signing secrets as a count and hints, and
adapter config with its secret fields masked.
"""

import base64
import binascii
import secrets
import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Self

import orjson
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, RSAKey
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from commcentre.messages.schemas import Channel, CountryCode, ShortText

PARTNER_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
SIGNING_SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_HINT_LENGTH = 10
MAX_SIGNING_SECRETS = 5

PartnerId = Annotated[
    str,
    StringConstraints(pattern=PARTNER_ID_PATTERN),
    Field(description="Lowercase slug, e.g. `interpol-ncb`", examples=["se-bureau"]),
]
AdapterName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def generate_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of 32 random bytes."""
    return SIGNING_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _check_signing_secret(value: SecretStr) -> SecretStr:
    raw = value.get_secret_value()
    key = b""
    if raw.startswith(SIGNING_SECRET_PREFIX) and len(raw) <= 200:
        try:
            key = base64.b64decode(raw[len(SIGNING_SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            key = b""
    if not 24 <= len(key) <= 64:
        raise PydanticCustomError(
            "signing_secret", "must be 'whsec_' followed by the base64 of 24 to 64 random bytes"
        )
    return value


def _unique_secrets(values: list[SecretStr]) -> list[SecretStr]:
    if len({v.get_secret_value() for v in values}) != len(values):
        raise PydanticCustomError("unique_items", "signing secrets must differ")
    return values


SigningSecret = Annotated[SecretStr, AfterValidator(_check_signing_secret)]
SigningSecrets = Annotated[
    list[SigningSecret],
    AfterValidator(_unique_secrets),
    Field(max_length=MAX_SIGNING_SECRETS),
]

INBOUND_SECRETS_DOC = (
    "Standard Webhooks secrets (`whsec_` + base64) that verify what the partner pushes to "
    "`POST /v1/inbound/{id}`; any one matching is enough (several during a rotation)."
)
OUTBOUND_SECRETS_DOC = (
    "Standard Webhooks secrets (`whsec_` + base64) that sign what we deliver to the "
    "partner: one `v1` signature per secret (several during a rotation). Never one of "
    "the inbound secrets: a key serves one direction only."
)
SIGNING_SECRETS_DOC = (
    "Deprecated: the inbound secrets under their old name (before the two directions had "
    "secrets of their own). Give `inbound_secrets` instead; not both."
)


def check_directions(inbound: Sequence[SecretStr], outbound: Sequence[SecretStr]) -> None:
    """Refuse a secret that would serve both directions (a captured delivery would replay)."""
    if {s.get_secret_value() for s in inbound} & {s.get_secret_value() for s in outbound}:
        raise PydanticCustomError(
            "secret_reused",
            "a secret may not both verify inbound pushes and sign outbound deliveries: "
            "give each direction its own",
        )


# Members that only a private (or symmetric) JWK has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVES = {"EC": frozenset({"P-256", "P-384"}), "OKP": frozenset({"X25519"})}
_JWK_KINDS = "an EC P-256 or P-384, OKP X25519 or RSA (at least 2048 bits) public key"


def check_public_jwk(value: dict[str, Any]) -> dict[str, Any]:
    """The partner's public key as a JWK; a private key is refused (never stored)."""
    if _PRIVATE_MEMBERS & value.keys():
        raise PydanticCustomError(
            "private_key",
            "this is a private key: send only the public part (commcentre never stores "
            "a partner's private key)",
        )
    kty = value.get("kty")
    if kty not in ("EC", "OKP", "RSA") or (kty in _CURVES and value.get("crv") not in _CURVES[kty]):
        raise PydanticCustomError("jwk_type", f"must be {_JWK_KINDS}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # joserfc warns about weak keys: refuse them
            key = JWKRegistry.import_key(value)
    except (JoseError, ValueError, TypeError, KeyError, Warning):
        raise PydanticCustomError("jwk", f"is not a valid JWK; expected {_JWK_KINDS}") from None
    if key.is_private:
        raise PydanticCustomError("private_key", "this is a private key: send only the public part")
    if isinstance(key, RSAKey) and key.raw_value.key_size < 2048:
        raise PydanticCustomError("jwk_size", "an RSA key needs at least 2048 bits")
    return dict(key.as_dict(private=False))


PublicJwk = Annotated[
    dict[str, Any],
    AfterValidator(check_public_jwk),
    Field(description="The partner's public key (JWK) for encrypting to it (JWE)."),
]
RatePerSecond = Annotated[
    float, Field(gt=0, le=10_000, description="Deliveries per second to this partner.")
]
RateBurst = Annotated[int, Field(ge=1, le=1000, description="Deliveries allowed at once.")]


def _distinct_channels(values: list[Channel]) -> list[Channel]:
    return list(dict.fromkeys(values))


Channels = Annotated[
    list[Channel],
    AfterValidator(_distinct_channels),
    Field(max_length=len(Channel), description="Channels it serves; empty: every channel."),
]


class PartnerCreate(BaseModel):
    """Body of POST /v1/partners."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "se-bureau",
                    "name": "Swedish National Operative Department (NOA)",
                    "country": "SE",
                    "channels": ["bilateral"],
                    "adapter": "webhook",
                    "config": {"url": "https://gateway.noa.example/commcentre/inbound"},
                },
                {
                    "id": "interpol-ncb",
                    "name": "Interpol NCB Helsinki (I-24/7 gateway)",
                    "channels": ["interpol"],
                    "adapter": "interpol",
                    "config": {"url": "https://i247.example/push", "ncb_code": "HELSINKI"},
                    "rate_limit_per_second": 20,
                },
            ]
        },
    )

    id: PartnerId
    name: ShortText
    country: CountryCode | None = None
    channels: Channels = []
    adapter: AdapterName = Field(description="A registered adapter, e.g. `webhook`.")
    config: dict[str, Any] = Field(default={}, description="Checked by the adapter's model.")
    inbound_secrets: SigningSecrets = Field(
        default=[],
        description=INBOUND_SECRETS_DOC + " None given: one is generated and returned once.",
    )
    outbound_secrets: SigningSecrets = Field(
        default=[],
        description=OUTBOUND_SECRETS_DOC + " None given: one is generated and returned once.",
    )
    signing_secrets: SigningSecrets = Field(
        default=[], description=SIGNING_SECRETS_DOC, json_schema_extra={"deprecated": True}
    )
    public_jwk: PublicJwk | None = None
    enabled: bool = True
    allow_loopback: bool = Field(
        False, description="Allow loopback hosts (dev only: tests and demos; 422 in prod)."
    )
    rate_limit_per_second: RatePerSecond | None = None
    rate_burst: RateBurst = 1

    @model_validator(mode="after")
    def _one_key_one_direction(self) -> Self:
        if self.signing_secrets and self.inbound_secrets:
            raise ValueError("give inbound_secrets, or the deprecated signing_secrets, not both")
        check_directions(self.given_inbound_secrets, self.outbound_secrets)
        return self

    @property
    def given_inbound_secrets(self) -> list[SecretStr]:
        """The inbound secrets given, under their name or the deprecated one."""
        return self.inbound_secrets or self.signing_secrets

    def canonical(self) -> bytes:
        """The body as stable JSON, secrets included (for the Idempotency-Key fingerprint)."""
        data = self.model_dump(mode="json")
        for name in ("inbound_secrets", "outbound_secrets", "signing_secrets"):
            data[name] = [s.get_secret_value() for s in getattr(self, name)]
        # Left out when empty, so a key stored before the split still matches its body.
        for name in ("inbound_secrets", "outbound_secrets"):
            if not data[name]:
                del data[name]
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


_SECRET_LISTS = ("inbound_secrets", "outbound_secrets", "signing_secrets")
_NOT_NULL = ("name", "channels", "config", *_SECRET_LISTS, "enabled", "allow_loopback")


class PartnerPatch(BaseModel):
    """Body of PATCH /v1/partners/{id}: only the fields given change.

    `config` replaces the whole config and is checked again; a value left as
    the mask `**********` keeps the secret stored at that place.
    `inbound_secrets` and `outbound_secrets` each replace their list (rotation:
    send the new and the old one, later the new one alone); `signing_secrets` is
    the deprecated name of `inbound_secrets`.
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"enabled": False},
                {"rate_limit_per_second": 5, "rate_burst": 10},
                {
                    "outbound_secrets": [
                        "whsec_bmV3LXNlY3JldC1mb3Itcm90YXRpb24tMDAwMDAwMDA=",
                        "whsec_b2xkLXNlY3JldC1zdGlsbC1pbi11c2UtMDAwMDAwMDA=",
                    ]
                },
            ]
        },
    )

    name: ShortText | None = None
    country: CountryCode | None = None
    channels: Channels | None = None
    config: dict[str, Any] | None = None
    inbound_secrets: SigningSecrets | None = Field(None, description=INBOUND_SECRETS_DOC)
    outbound_secrets: SigningSecrets | None = Field(None, description=OUTBOUND_SECRETS_DOC)
    signing_secrets: SigningSecrets | None = Field(
        None, description=SIGNING_SECRETS_DOC, json_schema_extra={"deprecated": True}
    )
    public_jwk: PublicJwk | None = None
    enabled: bool | None = None
    allow_loopback: bool | None = None
    rate_limit_per_second: RatePerSecond | None = None
    rate_burst: RateBurst | None = None

    @model_validator(mode="after")
    def _one_key_one_direction(self) -> Self:
        if self.signing_secrets is not None and self.inbound_secrets is not None:
            raise ValueError("give inbound_secrets, or the deprecated signing_secrets, not both")
        check_directions(self.given_inbound_secrets or [], self.outbound_secrets or [])
        return self

    @property
    def given_inbound_secrets(self) -> list[SecretStr] | None:
        """The new inbound secrets, under their name or the deprecated one; None: unchanged."""
        return self.inbound_secrets if self.inbound_secrets is not None else self.signing_secrets

    @field_validator(*_NOT_NULL, "rate_burst", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("not_null", "may be left out but not set to null")
        return value

    @field_validator(*_SECRET_LISTS)
    @classmethod
    def _keep_one_secret(cls, value: list[SecretStr] | None) -> list[SecretStr] | None:
        if value is not None and not value:
            raise PydanticCustomError(
                "too_short", "a partner keeps at least one signing secret in each direction"
            )
        return value


class SigningSecretsOut(BaseModel):
    """Signing secrets as an operator may see them: how many, and their first characters."""

    count: int
    hints: list[str]


class PartnerOut(BaseModel):
    """A partner as the API shows it: no secret ever."""

    id: str
    name: str
    country: str | None
    channels: list[str]
    adapter: str
    config: dict[str, Any] | None = Field(
        description="Adapter config with secret fields masked; null when it cannot be read."
    )
    config_problem: str | None = Field(
        None, description="Why the config cannot be shown (e.g. the adapter is not installed)."
    )
    inbound_secrets: SigningSecretsOut = Field(
        description="The secrets that verify what the partner pushes to us."
    )
    outbound_secrets: SigningSecretsOut = Field(
        description="The secrets that sign what we deliver; count 0: nothing is sent to the "
        "partner until an operator gives it one (a partner registered before the split)."
    )
    signing_secrets: SigningSecretsOut = Field(
        description="Deprecated: `inbound_secrets` under its old name.",
        json_schema_extra={"deprecated": True},
    )
    public_jwk: dict[str, Any] | None
    enabled: bool
    disabled_reason: str | None
    allow_loopback: bool
    rate_limit_per_second: float | None
    rate_burst: int
    created_at: datetime
    updated_at: datetime


class PartnerCreated(PartnerOut):
    """The answer to a create: generated signing secrets appear here and nowhere else."""

    generated_inbound_secret: str | None = Field(
        None,
        description=(
            "Set when no inbound secret was given: the partner signs its pushes with it. "
            "Store it now, it is never shown again (not even when the request is replayed "
            "with its Idempotency-Key)."
        ),
    )
    generated_outbound_secret: str | None = Field(
        None,
        description=(
            "Set when no outbound secret was given: the partner verifies our deliveries with "
            "it. Shown once, like `generated_inbound_secret`."
        ),
    )
    generated_signing_secret: str | None = Field(
        None,
        description="Deprecated: `generated_inbound_secret` under its old name.",
        json_schema_extra={"deprecated": True},
    )


def secret_hints(values: list[str]) -> SigningSecretsOut:
    return SigningSecretsOut(count=len(values), hints=[v[:SECRET_HINT_LENGTH] for v in values])
