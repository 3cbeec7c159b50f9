"""Opaque cursors and the page envelope shared by every list endpoint."""

import base64
import binascii
from typing import Annotated, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field

from commcentre.errors import UnprocessableContent

T = TypeVar("T")

LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size (1..500).")]
CursorQuery = Annotated[
    str | None,
    Query(max_length=512, description="Opaque cursor from the previous page's `next_cursor`."),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass `next_cursor` back to get the next one."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Absent on the last page.")


def encode_cursor(kind: str, position: list[str | int]) -> str:
    raw = orjson.dumps({"k": kind, "p": position})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> list[str | int]:
    """The position stored in a cursor of this kind; 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _bad_cursor() from None
    if not isinstance(data, dict) or data.get("k") != kind or not isinstance(data.get("p"), list):
        raise _bad_cursor()
    position = data["p"]
    if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in position):
        raise _bad_cursor()
    return list(position)


def _bad_cursor() -> UnprocessableContent:
    return UnprocessableContent("cursor is not valid for this list")
