"""National identity numbers: validation where the format is known, and their index form.

Finland's personal identity code (henkilötunnus), Government Decree on the
Population Information System 128/2010 section 2, as amended from 1 January 2023:
``DDMMYYCZZZQ`` where

- ``DDMMYY`` is the date of birth;
- ``C`` the century sign: ``+`` for the 1800s; ``-``, ``Y``, ``X``, ``W``, ``V``,
  ``U`` for the 1900s; ``A``, ``B``, ``C``, ``D``, ``E``, ``F`` for the 2000s;
- ``ZZZ`` the individual number, 002-899 (900-999 are temporary codes given
  outside the population register, for instance in hospitals);
- ``Q`` the check character: the nine digits ``DDMMYYZZZ`` as one number, modulo
  31, indexed into ``0123456789ABCDEFHJKLMNPRSTUVWXY``.

Since 2023 the century sign distinguishes codes: the same birth date, individual
number and check character with ``-`` and with ``Y`` are two different people (the
check character does not cover the sign). The code is therefore indexed whole,
sign included; a separator-stripping normalisation would make ``-`` vanish.
"""

import re
from datetime import date, timedelta

from pydantic_core import PydanticCustomError

from commcentre.clock import utcnow

FI_CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
FI_CENTURIES = {
    "+": 1800,
    **dict.fromkeys("-YXWVU", 1900),
    **dict.fromkeys("ABCDEF", 2000),
}
_FI_CODE = re.compile(r"([0-9]{6})([-+A-FU-Y])([0-9]{3})([0-9A-FHJ-NPR-Y])")


def fi_check_character(birth_date: str, individual_number: str) -> str:
    """The check character of DDMMYY and ZZZ."""
    return FI_CHECK_CHARACTERS[int(birth_date + individual_number) % 31]


def check_fi_personal_identity_code(value: str) -> str:
    """The code in its one written form (upper case); PydanticCustomError when invalid.

    Messages never contain the code: it is personal data.
    """
    code = value.strip().upper() if value.isascii() else ""
    match = _FI_CODE.fullmatch(code)
    if match is None:
        raise PydanticCustomError(
            "fi_identity_code_format",
            "a Finnish personal identity code is DDMMYY, a century sign (+, -, U-Y, A-F), "
            "three digits and a check character",
        )
    birth, sign, individual, check = match.groups()
    try:
        born = date(FI_CENTURIES[sign] + int(birth[4:]), int(birth[2:4]), int(birth[:2]))
    except ValueError:
        raise PydanticCustomError(
            "fi_identity_code_date",
            "the date of birth of the Finnish personal identity code is not a calendar date "
            "in the century its sign gives",
        ) from None
    # A day's grace: the birth date is local to Finland, the clock is UTC.
    if born > utcnow().date() + timedelta(days=1):
        raise PydanticCustomError(
            "fi_identity_code_date", "the Finnish personal identity code is born in the future"
        )
    number = int(individual)
    if number < 2:
        raise PydanticCustomError(
            "fi_identity_code_individual_number",
            "the individual number of a Finnish personal identity code is 002-899",
        )
    if number >= 900:
        raise PydanticCustomError(
            "fi_identity_code_temporary",
            "individual numbers 900-999 are temporary codes outside the population register, "
            "not personal identity codes",
        )
    if fi_check_character(birth, individual) != check:
        raise PydanticCustomError(
            "fi_identity_code_check",
            "the check character of the Finnish personal identity code does not match",
        )
    return code


def check_national_id(country: str | None, value: str) -> str:
    """The national id as stored: validated and canonical where its country's format is known."""
    if country == "FI":
        return check_fi_personal_identity_code(value)
    return value
