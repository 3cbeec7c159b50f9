"""The one place that reads the wall clock, so that tests can move time."""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _iso_8601_only(value: object) -> object:
    # pydantic reads numbers, and strings of digits, as Unix times; the contract (and the
    # schema: a date-time string) says ISO 8601, so "1700000000" or 0.5 is an error.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("must be an ISO 8601 timestamp, not a number")
    if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        raise ValueError("must be an ISO 8601 timestamp, not a number")
    return value


_NUMERIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_8601_only)]
"""An ISO 8601 timestamp with a time zone (request fields and query filters)."""
