"""Filedrop adapter: one encrypted file per delivery in a directory a partner collects.

Each delivery becomes `<delivery_id>.jwe`, a compact JWE of the canonical
message JSON for the partner's public key. The file is written under a
`.tmp` name, fsynced, renamed into place atomically and the directory fsynced,
so a collector never sees a partial file and a crash never loses an
acknowledged one. A retry rewrites the same name: retries are idempotent.
"""

import asyncio
import contextlib
import errno
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from commcentre.adapters.base import (
    AdapterContext,
    DeliveryContext,
    DeliveryReceipt,
    InboundNotSupportedError,
    OutboundMessage,
    PartnerView,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from commcentre.adapters.formats import ParsedInbound
from commcentre.adapters.http import encrypt_for_partner, message_data

__all__ = ["FiledropAdapter", "FiledropConfig"]

# O_NOFOLLOW: a planted symlink at the temp name must not redirect the write.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class FiledropConfig(BaseModel):
    """Where the partner's files go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    directory: str = Field(min_length=1, max_length=4096)

    @field_validator("directory")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if "\x00" in value or not os.path.isabs(value):
            raise ValueError("must be an absolute path")
        return value


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` to `directory/name` via fsynced temp file + rename + directory fsync."""
    if not directory.is_dir():
        # Often a mount that is not up yet: worth retrying, not a reason to dead-letter at once.
        raise NotADirectoryError(errno.ENOTDIR, "drop directory is missing or not a directory")
    final = directory / name
    # A unique temp name per attempt: two concurrent attempts never write into one file.
    temporary = directory / f"{name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(temporary, _CREATE_FLAGS, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    # The rename is durable only once the directory entry itself is on disk.
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return final


class FiledropAdapter:
    """Deliver by dropping `<delivery_id>.jwe`, encrypted for the partner, into a directory."""

    name: ClassVar[str] = "filedrop"
    config_model: ClassVar[type[BaseModel]] = FiledropConfig

    def __init__(self, context: AdapterContext | None = None) -> None:
        self._context = context

    async def deliver(
        self, message: OutboundMessage, partner: PartnerView, delivery: DeliveryContext
    ) -> DeliveryReceipt:
        """Encrypt the canonical message for the partner and drop it atomically."""
        config = partner.config
        if not isinstance(config, FiledropConfig):
            raise PermanentDeliveryError("partner config is not a filedrop config")
        if partner.public_jwk is None:
            # Files sit on disk for an unknown time: never in plaintext.
            raise PermanentDeliveryError("filedrop needs the partner's public key (public_jwk)")
        token = encrypt_for_partner(orjson.dumps(message_data(message)), partner.public_jwk)
        name = f"{delivery.delivery_id}.jwe"
        try:
            await asyncio.to_thread(
                write_atomically, Path(config.directory), name, token.encode("ascii")
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__  # never the path or the data
            raise RetryableDeliveryError(f"file drop failed: {reason}") from exc
        return DeliveryReceipt(partner_ref=name, detail="file dropped")

    def parse_inbound(self, document: Mapping[str, Any], partner: PartnerView) -> ParsedInbound:
        """Filedrop partners collect files; they never push messages to us."""
        raise InboundNotSupportedError("filedrop partners do not push messages")
