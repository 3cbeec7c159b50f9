"""A migrated database of a test's own, on SQLite or on the suite's PostgreSQL server.

For tests that must not share the session database (they erase, or run processes
of their own): a fresh SQLite file, or with COMMCENTRE_TEST_DATABASE_URL a fresh
database on that server, dropped afterwards.
"""

import asyncio
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from commcentre.db import SyncWriteSession, WriteSession
from commcentre.migrate import upgrade

PG_ENV = "COMMCENTRE_TEST_DATABASE_URL"


def on_server(server_url: str, statement: str) -> None:
    """Run one statement outside a transaction (CREATE/DROP DATABASE)."""

    async def run() -> None:
        engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


@contextmanager
def fresh_database(directory: Path, prefix: str) -> Iterator[str]:
    """The URL of a new, migrated database; a PostgreSQL one is dropped on exit."""
    server = os.environ.get(PG_ENV, "")
    if not server.startswith("postgresql"):
        url = f"sqlite+aiosqlite:///{directory / f'{prefix}.db'}"
        upgrade(url)
        yield url
        return
    name = f"commcentre_{prefix}_{secrets.token_hex(6)}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    on_server(server, f'CREATE DATABASE "{name}"')
    try:
        upgrade(url)
        yield url
    finally:
        on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def driver_statements(session: WriteSession) -> Iterator[list[str]]:
    """The SQL the sqlite3 driver itself runs inside the block, whoever sent it."""
    assert isinstance(session, SyncWriteSession)
    driver = session.sync_session.connection().connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    statements: list[str] = []
    driver.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        driver.set_trace_callback(None)
