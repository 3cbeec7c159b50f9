"""Sealing a request's free text (subject, delay and rejection reasons) and history notes.

A request's text is bound to its id and the context "request"; a history
entry's to the entry's id and "request-history": a blob copied onto another
row, or read as another kind of record, fails to open.
"""

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from commcentre.crypto import CryptoError, Envelope, SealedPayload
from commcentre.errors import Conflict

REQUEST_CONTEXT = "request"
HISTORY_CONTEXT = "request-history"


@dataclass(frozen=True, slots=True)
class RequestText:
    """The opened free text of a request: lives in memory only."""

    subject: str | None = None
    delay_reason: str | None = None
    rejection_reason: str | None = None

    def __repr__(self) -> str:
        return "RequestText(<sealed text>)"


def columns(sealed: SealedPayload) -> dict[str, Any]:
    """A sealed payload as the values of the enc_format/key_version/... columns."""
    return {
        "enc_format": sealed.format_version,
        "key_version": sealed.key_version,
        "wrapped_key": sealed.wrapped_key,
        "ciphertext": sealed.ciphertext,
    }


def _stored(row: Any) -> SealedPayload:
    return SealedPayload(
        format_version=row.enc_format,
        key_version=row.key_version,
        wrapped_key=row.wrapped_key,
        ciphertext=row.ciphertext,
    )


def seal_request_text(
    envelope: Envelope, request_id: uuid.UUID, text: RequestText
) -> SealedPayload:
    plaintext = orjson.dumps(
        {
            "subject": text.subject,
            "delay_reason": text.delay_reason,
            "rejection_reason": text.rejection_reason,
        }
    )
    return envelope.seal(plaintext, record_id=request_id, context=REQUEST_CONTEXT)


def open_request_text(envelope: Envelope, row: Any) -> RequestText:
    """Decrypt a request row's text; 409 when it fails to authenticate."""
    try:
        data = orjson.loads(envelope.open(_stored(row), record_id=row.id, context=REQUEST_CONTEXT))
    except (CryptoError, orjson.JSONDecodeError):
        raise _undecryptable(row.id) from None
    return RequestText(
        subject=data.get("subject"),
        delay_reason=data.get("delay_reason"),
        rejection_reason=data.get("rejection_reason"),
    )


def seal_history_text(
    envelope: Envelope | None, entry_id: uuid.UUID, *, note: str | None, reason: str | None
) -> dict[str, Any]:
    """The sealed columns of a history entry; all None when it carries no text.

    `envelope` may be None only for an entry without text (the escalation job's).
    """
    if note is None and reason is None:
        return dict.fromkeys(("enc_format", "key_version", "wrapped_key", "ciphertext"))
    if envelope is None:
        raise ValueError("a history entry with a note or reason needs an envelope to seal it")
    plaintext = orjson.dumps({"note": note, "reason": reason})
    return columns(envelope.seal(plaintext, record_id=entry_id, context=HISTORY_CONTEXT))


def open_history_text(envelope: Envelope, row: Any) -> tuple[str | None, str | None]:
    """(note, reason) of a history entry."""
    if row.ciphertext is None:
        return None, None
    try:
        data = orjson.loads(envelope.open(_stored(row), record_id=row.id, context=HISTORY_CONTEXT))
    except (CryptoError, orjson.JSONDecodeError):
        raise _undecryptable(row.request_id) from None
    return data.get("note"), data.get("reason")


def _undecryptable(request_id: uuid.UUID) -> Conflict:
    return Conflict(
        f"request {request_id} cannot be decrypted: its stored text failed the integrity check "
        "(tampered, moved between rows, or sealed under a retired key)"
    )
