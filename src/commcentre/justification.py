"""The `X-Justification` header: why a client consults personal data (LED Art. 25).

Every endpoint that records a consultation takes the header through
`JustificationHeader`, so that all of them read it the same way.

HTTP carries header values as bytes; Starlette hands them over decoded as
ISO-8859-1, which turns UTF-8 text such as ``café ☃`` into mojibake. The header
is defined as UTF-8 text instead, sent in one of two forms:

- raw UTF-8 bytes: ``X-Justification: café ☃``;
- an RFC 8187 ext-value, for clients that can only send ASCII:
  ``X-Justification: UTF-8''caf%C3%A9%20%E2%98%83`` (the charset is
  case-insensitive, a language tag between the quotes is allowed and ignored,
  and every byte other than an RFC 8187 attr-char is percent-encoded).

A value that starts with ``UTF-8'`` is always read as an ext-value, so a
justification whose text itself begins that way must be sent percent-encoded.
Invalid UTF-8, a malformed percent sequence, control characters, the header sent
more than once, or a length outside 1..500 characters (counted after decoding)
are 422, naming the header and never echoing the value.
"""

import re
import unicodedata
from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Header, Request

from commcentre.audit.models import JUSTIFICATION_MAX
from commcentre.errors import FieldError, UnprocessableContent

HEADER = "X-Justification"
_LOC: list[str | int] = ["header", HEADER]

# RFC 8187 section 3.2.1: ext-value = charset "'" [ language ] "'" value-chars,
# value-chars = *( pct-encoded / attr-char ).
_EXT_PREFIX = re.compile(r"UTF-8'([A-Za-z0-9-]{0,35})'", re.IGNORECASE)
_EXT_CHARS = re.compile(r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+\-.^_`|~])*")
# A bound before decoding: 500 characters of 4 UTF-8 bytes each, percent-encoded.
_MAX_RAW = len("UTF-8''") + 35 + JUSTIFICATION_MAX * 4 * 3
# Control characters and the Unicode line and paragraph separators break audit
# exports and log lines; tab is a control character too.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})

DESCRIPTION = (
    "Why you consult this data; recorded in the audit log (Law Enforcement Directive "
    "Art. 25). UTF-8 text of 1 to 500 characters without control characters, sent either "
    "as raw UTF-8 bytes or as an RFC 8187 ext-value: `UTF-8''` followed by the "
    "percent-encoded UTF-8 bytes (e.g. `UTF-8''caf%C3%A9%20%E2%98%83` for `café ☃`). "
    "A value beginning with `UTF-8'` is always read as an ext-value."
)


def _invalid(message: str, kind: str) -> UnprocessableContent:
    return UnprocessableContent(
        f"invalid input at header.{HEADER}: {message}",
        errors=[FieldError(loc=_LOC, msg=message, type=kind)],
    )


def decode_justification(raw: str) -> str:
    """The text of a header value as Starlette gives it (each byte as one ISO-8859-1 char).

    Raises UnprocessableContent (422) when the value breaks the rules of the module
    docstring; the message never contains the value.
    """
    if len(raw) > _MAX_RAW:
        raise _invalid(f"must be at most {JUSTIFICATION_MAX} characters", "justification_too_long")
    # Starlette decoded the bytes as ISO-8859-1, which maps every byte to one
    # code point, so encoding back gives the bytes exactly as they were sent.
    data = raw.encode("latin-1")
    prefix = _EXT_PREFIX.match(raw)
    if prefix is not None:
        encoded = raw[prefix.end() :]
        if _EXT_CHARS.fullmatch(encoded) is None:
            raise _invalid(
                "an RFC 8187 value (UTF-8''...) must percent-encode every byte other than "
                "letters, digits and !#$&+-.^_`|~",
                "justification_encoding",
            )
        data = unquote_to_bytes(encoded)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("must be UTF-8 text", "justification_encoding") from None
    if any(unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in text):
        raise _invalid("must not contain control characters", "control_characters")
    if not text.strip():
        raise _invalid("must not be empty", "justification_empty")
    if len(text) > JUSTIFICATION_MAX:
        raise _invalid(f"must be at most {JUSTIFICATION_MAX} characters", "justification_too_long")
    return text


def _justification(
    request: Request,
    # Declared for validation of presence and for the OpenAPI document; the
    # value is decoded by hand below.
    x_justification: Annotated[str, Header(alias=HEADER, description=DESCRIPTION)],
) -> str:
    if len(request.headers.getlist(HEADER)) > 1:
        raise _invalid("must be sent once", "justification_repeated")
    return decode_justification(x_justification)


JustificationHeader = Annotated[str, Depends(_justification)]
"""A required, decoded `X-Justification`; missing -> 422 like any missing header."""
