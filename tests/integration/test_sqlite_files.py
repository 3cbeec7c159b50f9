"""The embedded store's files are readable by the service user only.

The SQLite file, its -wal and -shm hold sealed payloads, blind indexes, API
key hashes and the audit chain: another local account must not read (or copy
and brute-force) them whatever the umask of the process that made them. These
tests make their own SQLite file, also when the suite runs on PostgreSQL.
"""

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from commcentre.app import create_app
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.migrate import upgrade
from tests.conftest import register_test_partners
from tests.factories import EXAMPLE_MESSAGE


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    # A common default: files 0644, folders 0755 unless the code asks for less.
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.usefixtures("loose_umask")
async def test_database_wal_and_shm_are_0600_and_the_folder_0700(
    settings: Settings, tmp_path: Path
) -> None:
    """Made by `db upgrade`, then written through the app: all files 0600, var/ 0700."""
    folder = tmp_path / "var"
    database = folder / "commcentre.db"
    url = f"sqlite+aiosqlite:///{database}"
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    assert mode(folder) == 0o700
    assert mode(database) == 0o600

    configured = settings.model_copy(
        update={"database_url": url, "keyring_path": tmp_path / "keyring.json"}
    )
    app = create_app(configured)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        async with runtime.db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="writer", scopes=["admin"], actor="test", now=utcnow()
            )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            headers = {"Authorization": f"Bearer {issued.api_key}"}
            await register_test_partners(http, headers)
            response = await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=headers)
            assert response.status_code == 202, response.text
        files = {p.name: mode(p) for p in folder.iterdir() if p.name.startswith("commcentre.db")}
        assert {"commcentre.db", "commcentre.db-wal", "commcentre.db-shm"} <= set(files)
        assert set(files.values()) == {0o600}, files


@pytest.mark.usefixtures("loose_umask")
def test_an_existing_readable_database_is_tightened(tmp_path: Path) -> None:
    """A file left world-readable by an older version is made 0600 on the next start."""
    database = tmp_path / "old.db"
    url = f"sqlite+aiosqlite:///{database}"
    upgrade(url)
    for name in ("old.db", "old.db-wal", "old.db-shm"):
        (tmp_path / name).touch()
        (tmp_path / name).chmod(0o644)
    upgrade(url)
    assert {mode(tmp_path / n) for n in ("old.db", "old.db-wal", "old.db-shm")} == {0o600}
