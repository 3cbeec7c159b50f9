"""Migrations: no drift from the models, and they go down and up again."""

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from commcentre.migrate import downgrade, head_revision, upgrade
from commcentre.models import metadata


async def test_models_match_migrations(database_url: str) -> None:
    engine = create_async_engine(database_url)

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        changes = await conn.run_sync(diff)
    await engine.dispose()
    assert changes == []


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    downgrade(url, "base")
    engine_url = url

    async def tables() -> set[str]:
        engine = create_async_engine(engine_url)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return names

    import asyncio

    assert asyncio.run(tables()) <= {"alembic_version"}
    upgrade(url)
    assert set(metadata.tables) <= asyncio.run(tables())
    assert head_revision() is not None
