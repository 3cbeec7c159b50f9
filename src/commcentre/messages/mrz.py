"""Machine-readable zones of travel documents (ICAO Doc 9303 Parts 3 to 5).

Three formats: TD1 (three lines of 30 characters, identity cards, Part 5), TD2
(two lines of 36, Part 6) and TD3 (two lines of 44, passports, Part 4). The
characters are A-Z, 0-9 and the filler ``<``. Check digits (Part 3, 4.9): each
character's value (digits as themselves, A-Z as 10-35, ``<`` as 0) times the
repeating weights 7, 3, 1, summed, modulo 10.

Only the structure and the check digits are verified here: the MRZ is kept as it
was read (encrypted with the rest of the payload) and its document number is
indexed like the subject's number. Errors name the check digit that failed but
never quote the zone: it holds a person's name and document number.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic_core import PydanticCustomError

_WEIGHTS = (7, 3, 1)
_LINE = re.compile(r"[A-Z0-9<]+")
_FORMATS = {(3, 30): "TD1", (2, 36): "TD2", (2, 44): "TD3"}


def _value(char: str) -> int:
    if char == "<":
        return 0
    if char.isdigit():
        return int(char)
    return ord(char) - ord("A") + 10


def check_digit(field: str) -> int:
    """The ICAO 9303 check digit of an MRZ field."""
    return sum(_value(char) * _WEIGHTS[i % 3] for i, char in enumerate(field)) % 10


@dataclass(frozen=True, slots=True)
class Mrz:
    """What commcentre uses of a verified MRZ."""

    format: str  # TD1, TD2 or TD3
    document_number: str  # without fillers


def _failed(what: str, line: int, position: int) -> PydanticCustomError:
    return PydanticCustomError(
        "mrz_check_digit",
        "MRZ check digit of the {what} does not match (line {line}, character {position})",
        {"what": what, "line": line, "position": position},
    )


def _verify(
    what: str, field: str, digit: str, line: int, position: int, *, optional: bool = False
) -> None:
    # An unused optional field may carry "<" as its check digit (Part 4, 4.2.2.2).
    if optional and digit == "<" and set(field) == {"<"}:
        return
    if not digit.isdigit() or check_digit(field) != int(digit):
        raise _failed(what, line, position)


def _long_number(number: str, digit: str, optional: str) -> tuple[str, str, int]:
    """A document number longer than 9 characters continues into the optional data.

    Part 5, 4.2.4 note j: the check digit's place holds ``<``, the rest of the number
    and then its check digit open the optional data. Returns the full number, its
    check digit and how far the digit sits into the optional data.
    """
    if digit != "<":
        return number, digit, -1
    rest = optional.split("<", 1)[0]
    if len(rest) < 2:
        raise PydanticCustomError(
            "mrz_format", "MRZ document number continues into the optional data, but is empty"
        )
    return number + rest[:-1], rest[-1], len(rest) - 1


def parse_mrz(lines: Sequence[str]) -> Mrz:
    """Verify an MRZ's shape and check digits; PydanticCustomError names what failed."""
    if any(_LINE.fullmatch(line) is None for line in lines):
        raise PydanticCustomError(
            "mrz_format", "MRZ lines hold only upper-case letters A-Z, digits and '<'"
        )
    lengths = {len(line) for line in lines}
    kind = _FORMATS.get((len(lines), lengths.pop())) if len(lengths) == 1 else None
    if kind is None:
        raise PydanticCustomError(
            "mrz_format",
            "an MRZ is 3 lines of 30 characters (TD1), 2 of 36 (TD2) or 2 of 44 (TD3)",
        )
    if kind == "TD1":
        return _td1(lines[0], lines[1])
    return _td2_td3(kind, lines[1])


def _td1(first: str, second: str) -> Mrz:
    number, digit, offset = _long_number(first[5:14], first[14], first[15:30])
    _verify("document number", number, digit, 1, 15 if offset < 0 else 16 + offset)
    _verify("date of birth", second[0:6], second[6], 2, 7)
    _verify("date of expiry", second[8:14], second[14], 2, 15)
    composite = first[5:30] + second[0:7] + second[8:15] + second[18:29]
    _verify("whole zone (composite)", composite, second[29], 2, 30)
    return Mrz("TD1", number.replace("<", ""))


def _td2_td3(kind: str, second: str) -> Mrz:
    end = 36 if kind == "TD2" else 44
    optional = second[28 : end - 1]
    if kind == "TD2":
        number, digit, offset = _long_number(second[0:9], second[9], optional)
    else:
        number, digit, offset = second[0:9], second[9], -1
    _verify("document number", number, digit, 2, 10 if offset < 0 else 29 + offset)
    _verify("date of birth", second[13:19], second[19], 2, 20)
    _verify("date of expiry", second[21:27], second[27], 2, 28)
    if kind == "TD3":
        _verify("personal number", second[28:42], second[42], 2, 43, optional=True)
    composite = second[0:10] + second[13:20] + second[21 : end - 1]
    _verify("whole zone (composite)", composite, second[end - 1], 2, end)
    return Mrz(kind, number.replace("<", ""))
