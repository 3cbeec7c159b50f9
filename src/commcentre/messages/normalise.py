"""The one normalisation of identifiers typed by people: document numbers, plates, VINs.

Stored messages, lookups and cross-checks (an MRZ against its document number)
all compare identifiers in this form.
"""

import re
import unicodedata

# Separators that people type inconsistently inside numbers: spaces, dashes (any
# Unicode dash, as pasted from word processors), dots, slashes, underscores, and
# invisible format characters such as zero-width spaces.
_SEPARATOR_CATEGORIES = frozenset({"Pd", "Cf", "Zs", "Zl", "Zp"})
_SEPARATORS = frozenset("-./_")

# ASCII fast path: the only ASCII separators are whitespace and "-./_" (no ASCII
# character is in Cf, and "-" is the only ASCII Pd).
_ASCII_SEPARATORS = re.compile(r"[\s\-./_]")


def _drop_separators(text: str) -> str:
    if text.isascii():
        return _ASCII_SEPARATORS.sub("", text)
    return "".join(
        char
        for char in text
        if not (
            char.isspace()
            or char in _SEPARATORS
            or unicodedata.category(char) in _SEPARATOR_CATEGORIES
        )
    )


def normalize_identifier(value: str) -> str:
    """A document number, plate, VIN or reference as indexed: NFKC, upper case, no separators.

    ``normalize_identifier("xx 123-4567") == "XX1234567"``. Idempotent.
    """
    text = _drop_separators(unicodedata.normalize("NFKC", value).upper())
    # Upper-casing and dropping a separator between a letter and a combining mark
    # can leave text that NFKC composes differently, so normalise once more.
    return _drop_separators(unicodedata.normalize("NFKC", text))
