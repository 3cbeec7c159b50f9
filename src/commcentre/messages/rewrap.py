"""Move sealed messages to the newest key-encryption key, without decrypting payloads."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.crypto import Envelope, SealedPayload
from commcentre.messages import repository
from commcentre.messages.service import ENVELOPE_CONTEXT


@dataclass(frozen=True, slots=True)
class RewrapBatch:
    examined: int
    rewrapped: int


async def rewrap_batch(
    session: AsyncSession, envelope: Envelope, *, target_version: int, limit: int
) -> RewrapBatch:
    """Rewrap up to `limit` data keys older than `target_version`; only flushes.

    Only the wrapped data key changes: the ciphertext is never touched and no
    plaintext is produced. Rows changed meanwhile by another process are skipped
    (the update is conditional on the old version), so runs can overlap and resume.
    """
    rows = await repository.sealed_batch_below(session, target_version, limit=limit)
    rewrapped = 0
    for row in rows:
        sealed = SealedPayload(
            format_version=row.enc_format,
            key_version=row.key_version,
            wrapped_key=row.wrapped_key,
            ciphertext=b"",
        )
        fresh = envelope.rewrap(sealed, record_id=row.id, context=ENVELOPE_CONTEXT)
        if await repository.update_wrapped_key(
            session,
            row.id,
            old_version=row.key_version,
            version=fresh.key_version,
            wrapped_key=fresh.wrapped_key,
        ):
            rewrapped += 1
    return RewrapBatch(examined=len(rows), rewrapped=rewrapped)
