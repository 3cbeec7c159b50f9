"""Fixtures of the fault tests: a database, a keyring and a process list of the test's own.

The database is never the suite's shared one (the session app and its
dispatcher use that): a fresh SQLite file, or with COMMCENTRE_TEST_DATABASE_URL
a fresh database `commcentre_fault_<hex>` on that PostgreSQL server, dropped
afterwards.
"""

import asyncio
import os
import random
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from commcentre.crypto import FileKeyring
from commcentre.migrate import upgrade
from tests.conftest import PG_ENV
from tests.faults.processes import Children

SEED_ENV = "FAULT_SEED"  # not COMMCENTRE_*: the suite clears those for every test


def _on_server(server_url: str, statement: str) -> None:
    async def run() -> None:
        engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def fault_database(tmp_path: Path) -> Iterator[str]:
    """The URL of a migrated database of this test's own."""
    server = os.environ.get(PG_ENV, "")
    if not server.startswith("postgresql"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'fault.db'}"
        upgrade(url)
        yield url
        return
    name = f"commcentre_fault_{secrets.token_hex(6)}"
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    _on_server(server, f'CREATE DATABASE "{name}"')
    try:
        upgrade(url)
        yield url
    finally:
        _on_server(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def keyring(tmp_path: Path) -> Path:
    """A development keyring shared by the API and worker processes of the test."""
    path = tmp_path / "keyring.json"
    FileKeyring.generate(path, dev=True)
    return path


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Children]:
    started = Children(tmp_path)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture
def rng() -> random.Random:
    """Random choices of the test (kill times, receiver delays); FAULT_SEED replays a run."""
    seed = int(os.environ.get(SEED_ENV) or secrets.randbelow(2**32))
    print(f"\n{SEED_ENV}={seed}")
    return random.Random(seed)
