"""Fixtures of the fault tests: a database, a keyring and a process list of the test's own.

The database is never the suite's shared one (the session app and its
dispatcher use that): a fresh SQLite file, or with COMMCENTRE_TEST_DATABASE_URL
a fresh database `commcentre_fault_<hex>` on that PostgreSQL server, dropped
afterwards.
"""

import gc
import os
import random
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from commcentre.crypto import FileKeyring
from tests.databases import fresh_database
from tests.faults.processes import Children

SEED_ENV = "FAULT_SEED"  # not COMMCENTRE_*: the suite clears those for every test


@pytest.fixture
def fault_database(tmp_path: Path) -> Iterator[str]:
    """The URL of a migrated database of this test's own."""
    with fresh_database(tmp_path, "fault") as url:
        yield url


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


@pytest.fixture(autouse=True)
def _collect_sockets_of_killed_peers() -> Iterator[None]:
    """Collect, here, the client sockets a killed server leaves behind.

    When a test SIGKILLs a process mid-request, httpx can drop a connection object
    without closing its socket; garbage collection later warns (ResourceWarning),
    and with warnings as errors that would fail whichever test happens to run then.
    The fault is the kill the test made on purpose, so it is collected and ignored
    at the end of the fault test itself.
    """
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
