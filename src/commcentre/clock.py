"""The one place that reads the wall clock, so that tests can move time."""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, overload

from pydantic import AwareDatetime, BeforeValidator

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


@overload
def iso_z(value: datetime) -> str: ...
@overload
def iso_z(value: None) -> None: ...
def iso_z(value: datetime | None) -> str | None:
    """An aware time as ISO 8601 in UTC with `Z`, as the API and audit details write it."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
