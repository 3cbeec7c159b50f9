"""Every table with sealed columns is known to the key lifecycle commands."""

from commcentre.models import metadata
from commcentre.sealed import SEALED_TABLES

SEALED_COLUMNS = {"enc_format", "key_version", "wrapped_key", "ciphertext"}


def test_every_sealed_table_is_listed() -> None:
    sealed = {t.name for t in metadata.tables.values() if set(t.c.keys()) >= SEALED_COLUMNS}
    assert sealed == {s.table.name for s in SEALED_TABLES}


def test_listed_tables_have_their_record_id_and_distinct_contexts() -> None:
    for sealed in SEALED_TABLES:
        assert sealed.record_id in sealed.table.c
        assert "id" in sealed.table.c
    assert len({s.context for s in SEALED_TABLES}) == len(SEALED_TABLES)
