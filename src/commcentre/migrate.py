"""Alembic, driven from code: upgrade, downgrade, current and head revisions."""

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from commcentre.db import private_sqlite_file


def migrations_dir() -> Path:
    """The Alembic scripts: COMMCENTRE_MIGRATIONS_DIR, the source tree, or ./migrations."""
    configured = os.environ.get("COMMCENTRE_MIGRATIONS_DIR")
    if configured:
        return Path(configured)
    source_tree = Path(__file__).resolve().parents[2] / "migrations"
    return source_tree if source_tree.is_dir() else Path.cwd() / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("")).get_current_head()


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up; creates the SQLite file (0600) and its folder if needed."""
    private_sqlite_file(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
