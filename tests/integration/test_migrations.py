"""Migrations: no drift from the models, and they go down and up again."""

from pathlib import Path
from typing import Any

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


def test_old_immediate_requests_get_their_12_hour_limit_back(tmp_path: Path) -> None:
    """Reg. (EU) 2018/1862 Art. 8(3): a SIRENE reply is due 12 hours after receipt, also
    on the alerts to act on immediately. Requests stored under the old rule (due at the
    moment of receipt) are given the 12-hour limit, keep `immediate`, and an answer within
    it is no longer recorded as late; going down and up again keeps them so."""
    import asyncio
    import uuid
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from commcentre.requests.models import SupplementaryRequest
    from tests.databases import fresh_database

    received = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    rows = {
        uuid.uuid4(): received + timedelta(minutes=5),  # answered on time after all
        uuid.uuid4(): received + timedelta(hours=13),  # answered late
        uuid.uuid4(): None,  # not answered yet
    }
    table = SupplementaryRequest.__table__

    async def run(url: str, statement: Any) -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                result = await conn.execute(statement)
                return result.all() if statement.is_select else None
        finally:
            await engine.dispose()

    with fresh_database(tmp_path, "immediate_fix") as url:
        downgrade(url, "566f4d0e2abd")
        insert = table.insert().values(
            [
                {
                    "id": request_id,
                    "reference": f"SE-{index}",
                    "reference_key": f"SE{index}",
                    "form": "G",
                    "alert_article": 32,
                    "alert_flags": ["child"],
                    "requesting_state": "SE",
                    "urgency": "urgent",
                    "legal_basis": "SIS_2018_1862_ART32",
                    "time_limit_rule": "sirene_immediate",
                    "immediate": True,
                    "received_at": received,
                    "due_at": received,
                    "status": "answered" if answered else "received",
                    "answered_at": answered,
                    "answered_late": answered is not None,
                    "decision_extended": False,
                    "version": 1,
                    "created_by": "partner:se-bureau",
                    "created_at": received,
                    "updated_at": received,
                    "enc_format": 1,
                    "key_version": 1,
                    "wrapped_key": b"k",
                    "ciphertext": b"c",
                }
                for index, (request_id, answered) in enumerate(rows.items())
            ]
        )
        asyncio.run(run(url, insert))
        for _ in range(2):
            upgrade(url)
            got = asyncio.run(
                run(
                    url,
                    select(
                        table.c.id,
                        table.c.time_limit_rule,
                        table.c.due_at,
                        table.c.immediate,
                        table.c.answered_late,
                    ),
                )
            )
            assert {row.id: row[1:] for row in got} == {
                request_id: (
                    "sirene_supplementary",
                    received + timedelta(hours=12),
                    True,
                    answered is not None and answered > received + timedelta(hours=12),
                )
                for request_id, answered in rows.items()
            }
            downgrade(url, "566f4d0e2abd")
