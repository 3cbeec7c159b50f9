"""Settings: one object, read from COMMCENTRE_* environment variables."""

import json
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PositiveInt, SecretStr, StringConstraints, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from commcentre.secret_strength import api_key_weakness

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Everything commcentre can be configured with."""

    model_config = SettingsConfigDict(env_prefix="COMMCENTRE_", extra="ignore")

    environment: Literal["dev", "prod"] = Field(
        "dev",
        description=(
            "`prod` refuses a missing or development keyring, weak bootstrap keys and weak "
            "or published webhook signing secrets, "
            "partner URLs and callbacks on loopback or private addresses outside the "
            "networks allowed below (`allow_loopback` included), and resolves their host "
            "names at registration."
        ),
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///./var/commcentre.db",
        description=(
            "SQLAlchemy URL: `sqlite+aiosqlite:///path` (embedded) or "
            "`postgresql+asyncpg://user@host/db` (scaled out)."
        ),
    )
    keyring_path: Path = Field(
        Path("var/keyring.json"), description="Key-encryption keys and blind-index key (0600)."
    )
    bootstrap_admin_key: SecretStr | None = Field(
        None, description="When set and unknown, startup creates an `admin` client with this key."
    )
    max_body_bytes: int = Field(MIB, ge=1024, description="Request body cap; larger gets 413.")
    db_pool_size: int = Field(
        5, ge=1, le=100, description="PostgreSQL pool size (a small pool is faster when CPU-bound)."
    )
    ingest_batch_max: int = Field(
        256, ge=1, le=5000, description="Most messages the ingest writer commits at once."
    )
    ingest_batch_wait_ms: float = Field(
        1.0, ge=0, le=100, description="How long the ingest writer waits to fill a batch."
    )
    auth_cache_seconds: float = Field(
        5.0, ge=0, le=300, description="How long a verified API key is trusted without a lookup."
    )
    idempotency_ttl_hours: int = Field(
        24, ge=24, description="How long Idempotency-Key responses are kept (at least 24 h)."
    )
    default_retention_days: int = Field(
        365 * 3,
        ge=1,
        description="`purge_after` of a message whose legal basis has no period of its own.",
    )
    retention_days: dict[Annotated[str, StringConstraints(max_length=64)], PositiveInt] = Field(
        default_factory=dict,
        description=(
            "Retention per legal basis in days, as JSON, e.g. "
            '`{"SIS_2018_1862_ART26": 1095, "DIR_2023_977": 730}`; other bases use '
            "default_retention_days."
        ),
    )
    escalation_interval_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How often a worker looks for requests that became overdue.",
    )
    retention_interval_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How often a worker looks for expired messages to crypto-shred.",
    )
    dispatcher_enabled: bool = Field(
        True, description="Run the dispatcher inside `commcentre serve` (embedded shape)."
    )
    dispatcher_concurrency: int = Field(
        32, ge=1, le=1000, description="Deliveries one dispatcher attempts at once."
    )
    dispatcher_lease_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description=(
            "How long a claimed delivery stays leased (a dead worker's leases expire); at "
            "least twice the delivery timeout."
        ),
    )
    delivery_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="How long a partner may take to answer one delivery."
    )
    delivery_max_attempts: int = Field(
        15, ge=1, le=100, description="Attempts before a delivery becomes a dead letter."
    )
    delivery_max_age_hours: float = Field(
        48.0, gt=0, description="Age after which a failing delivery becomes a dead letter."
    )
    delivery_retry_base_seconds: float = Field(
        1.0,
        gt=0,
        le=3600,
        description=(
            "Backoff of the first retry (at most this, full jitter); it doubles with each "
            "attempt up to an hour. A partner's Retry-After is honoured on top."
        ),
    )
    delivery_breaker_cooldown_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description=(
            "How long a partner's circuit stays open after 5 failed attempts in a row "
            "(per worker) before one probe is let through."
        ),
    )
    subscriber_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description=(
            'JSON list of CIDR networks (e.g. `["10.20.0.0/16"]`) a subscription callback '
            "may resolve to besides public addresses (internal police systems); `http://` is "
            "allowed only to these."
        ),
    )
    partner_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description=(
            'JSON list of CIDR networks (e.g. `["10.30.0.0/24"]`) a partner adapter URL may '
            "resolve to besides public addresses (partners reached over internal links); "
            "`http://` is allowed only to these. The only way to reach a private or loopback "
            "partner in prod."
        ),
    )
    inbound_tolerance_seconds: int = Field(
        300,
        ge=1,
        le=3600,
        description="How far a partner webhook's timestamp may be from our clock, either way.",
    )
    audit_origin: str = Field(
        "commcentre.local/audit",
        min_length=1,
        max_length=200,
        pattern=r"^[^\s+\u2014]+$",
        description=(
            "Names this audit log in its signed checkpoints (origin line and key name); "
            "a schema-less URL without spaces or `+`."
        ),
    )
    audit_checkpoint_path: Path | None = Field(
        None,
        description=(
            "File outside the database that every dispatcher process appends a signed "
            "audit checkpoint to, and that /v1/audit/verify checks the log against. Put it "
            "where a database administrator cannot write (another disk, host or WORM store)."
        ),
    )
    audit_checkpoint_interval_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How often a dispatcher process appends a checkpoint (needs the path).",
    )
    host: str = Field("127.0.0.1", description="Address `commcentre serve` binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port `commcentre serve` binds.")
    worker_metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=(
            "When set, `commcentre worker` serves its Prometheus metrics on this port "
            "(on `host`); the API serves its own at /metrics."
        ),
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> "Settings":
        if self.environment == "prod" and self.bootstrap_admin_key is not None:
            reason = api_key_weakness(self.bootstrap_admin_key.get_secret_value())
            if reason is not None:
                raise ValueError(
                    f"bootstrap_admin_key is too weak for prod: {reason} (make one with "
                    "`python3 -c 'import secrets; print(\"ck_\" + secrets.token_urlsafe(32))'`)"
                )
        return self

    @model_validator(mode="after")
    def _lease_outlasts_a_delivery(self) -> "Settings":
        # A lease that can expire mid-attempt lets a second worker send the same delivery.
        if self.dispatcher_lease_seconds < 2 * self.delivery_timeout_seconds:
            raise ValueError(
                "dispatcher_lease_seconds must be at least twice delivery_timeout_seconds"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# The README's configuration table is generated from the fields above
# (`commcentre config-table --readme README.md`); a test keeps it in step.
TABLE_BEGIN = "<!-- configuration table: generated by `commcentre config-table` -->"
TABLE_END = "<!-- end of configuration table -->"


def _shown(value: object) -> str:
    if value is None or isinstance(value, SecretStr):
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value, default=str, separators=(', ', ': '))}`"
    return f"`{value}`"


def settings_table() -> str:
    """Every setting as a Markdown table: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        meaning = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `COMMCENTRE_{name.upper()}` | {_shown(default)} | {meaning} |")
    return "\n".join(rows)


def with_settings_table(text: str) -> str:
    """`text` (the README) with the generated table between its markers."""
    begin, end = text.index(TABLE_BEGIN), text.index(TABLE_END)
    return text[: begin + len(TABLE_BEGIN)] + "\n" + settings_table() + "\n" + text[end:]
