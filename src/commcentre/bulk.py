"""Many rows into one table, inside a write transaction: the hot path's INSERT.

On PostgreSQL this is SQLAlchemy's executemany. On SQLite's synchronous write
transactions (`Database.write_transaction` on the ingest writer's thread,
`Database.run_write` for the dispatcher) most of what a
batch cost was SQLAlchemy turning each value into what sqlite3 takes, one
Python call per value through generic machinery. Here each column gets its
conversion chosen once per table, the rows go out as multi-row
`INSERT ... VALUES (...), (...)` pages through the same stdlib connection and
transaction, and a driver error is raised as SQLAlchemy would raise it
(`IntegrityError`, `OperationalError`, ...), so callers handle both paths alike.

What lands in the file is what SQLAlchemy's own types would have written
(tests/integration/test_bulk_insert.py compares the two value for value): UUIDs as
32 hex digits, UTC datetimes as naive `YYYY-MM-DD HH:MM:SS.ffffff`, JSON as
`json.dumps` text (Python None as JSON null, as the JSON type does), bytes,
strings and integers as they are. A column of any other type keeps its
SQLAlchemy conversion.
"""

import functools
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, LargeBinary, Table, Uuid, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from commcentre.db import SyncWriteSession, UTCDateTime, WriteSession

Converter = Callable[[Any], Any]

# Host parameters per statement: SQLite allows 32,766 since 3.32, 999 before.
_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
_MAX_ROWS_PER_STATEMENT = 1000  # as SQLAlchemy's insertmanyvalues pages


async def insert_rows(
    session: WriteSession, table: Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    """INSERT `rows` (dicts with the same keys, column names) into `table`."""
    if not rows:
        return
    if isinstance(session, SyncWriteSession):
        connection = session.sync_session.connection()
        inserter = _inserter(table, tuple(rows[0]), connection.dialect)
        if inserter is not None:
            inserter.run(connection.connection.driver_connection, rows)
            return
    await session.execute(insert(table), list(rows))


@functools.lru_cache(maxsize=1024)  # a batch's rows share a few instants ("now")
def _utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTCDateTime column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _uuid_hex(value: uuid.UUID | None) -> str | None:
    return None if value is None else value.hex


def _json_text(value: Any) -> str:
    return json.dumps(value)


def _converter(table: Table, name: str, dialect: Dialect) -> Converter | None:
    column = table.c[name]
    kind = column.type
    if isinstance(kind, UTCDateTime):
        return _utc_text
    if isinstance(kind, Uuid) and kind.as_uuid:
        return _uuid_hex
    if isinstance(kind, JSON) and not kind.none_as_null:
        return _json_text
    if isinstance(kind, LargeBinary):
        return None  # bytes as they are: the same BLOB as SQLAlchemy's sqlite3.Binary wrapper
    # Anything else converts as SQLAlchemy would (no conversion at all for strings and
    # integers on SQLite).
    return kind.dialect_impl(dialect).bind_processor(dialect)


class _Inserter:
    """The SQL and per-column conversions for one table and one set of columns."""

    def __init__(self, table: Table, columns: tuple[str, ...], dialect: Dialect) -> None:
        quote = dialect.identifier_preparer.quote
        # Each column's name and its conversion (None: the value as it is).
        self._pairs = tuple((name, _converter(table, name, dialect)) for name in columns)
        # Only names of the table's own columns (each looked up in table.c above),
        # quoted by the dialect; every value is a bound parameter.
        self._head = (
            f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "  # noqa: S608
            f"({', '.join(quote(table.c[name].name) for name in columns)}) VALUES "
        )
        self._row = f"({', '.join('?' for _ in columns)})"
        self._page = max(1, min(_MAX_ROWS_PER_STATEMENT, _MAX_VARIABLES // len(columns)))
        self._full_page_sql = self._sql(self._page)

    def _sql(self, count: int) -> str:
        return self._head + ", ".join([self._row] * count)

    def run(self, connection: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        pairs = self._pairs
        for start in range(0, len(rows), self._page):
            page = rows[start : start + self._page]
            params: list[Any] = []
            add = params.append
            for row in page:
                for name, convert in pairs:
                    value = row[name]
                    add(value if convert is None else convert(value))
            sql = self._full_page_sql if len(page) == self._page else self._sql(len(page))
            cursor = connection.cursor()
            try:
                cursor.execute(sql, params)
            except sqlite3.Error as exc:
                raise DBAPIError.instance(
                    sql, None, exc, sqlite3.Error, hide_parameters=True, ismulti=False
                ) from exc
            finally:
                cursor.close()


_cache: dict[tuple[Table, tuple[str, ...], str], _Inserter | None] = {}
_cache_lock = threading.Lock()


def _inserter(table: Table, columns: tuple[str, ...], dialect: Dialect) -> _Inserter | None:
    """None when SQLAlchemy must do the insert: a column left out has a Python default."""
    key = (table, columns, dialect.name)
    if key not in _cache:
        defaulted = any(
            column.default is not None for column in table.columns if column.name not in columns
        )
        with _cache_lock:
            _cache.setdefault(key, None if defaulted else _Inserter(table, columns, dialect))
    return _cache[key]
