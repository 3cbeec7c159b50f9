"""The keyed audit chain and its signed checkpoints, against an attacker who can
write to the database (any row of any table) but holds neither the keyring nor
the checkpoint file.

Before the chain was keyed, two of these attacks verified as intact: rewriting
entries and recomputing every later SHA-256, and cutting off the tail with the
head row moved back. Each test names the entry verification must stop at. The
database is a migrated one of this module's own (SQLite, or PostgreSQL with
COMMCENTRE_TEST_DATABASE_URL), emptied before each test.
"""

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select, update

from commcentre.audit.chain import canonical_bytes, entry_hash, entry_mac
from commcentre.audit.checkpoint import Checkpoint, append_to_file, read_last, sign
from commcentre.audit.export import CheckpointAnchor, CheckpointExporter, export_checkpoint
from commcentre.audit.models import GENESIS_HASH, HEAD_ID, AuditEntry, AuditHead
from commcentre.audit.router import router
from commcentre.audit.service import (
    AuditAction,
    AuditChainBrokenError,
    AuditKeysMissingError,
    AuditRecord,
    ChainBreak,
    ChainVerification,
    append,
    audit_session_info,
    make_checkpoint,
    verify_chain,
)
from commcentre.auth.deps import Principal
from commcentre.bootstrap import build_housekeeper, open_keyring
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.crypto import AuditKey, FileKeyring
from commcentre.db import Database
from commcentre.errors import install_error_handlers
from commcentre.ids import new_id
from tests.databases import fresh_database

ORIGIN = "police.example/commcentre-audit"
_entries = AuditEntry.__table__
_head = AuditHead.__table__


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(tmp_path_factory.mktemp("keyed"), "keyed") as url:
        yield url


@pytest.fixture
def keyring(tmp_path: Path) -> FileKeyring:
    return FileKeyring.generate(tmp_path / "keyring.json", dev=True)


@pytest.fixture
async def audit_db(database_url: str, keyring: FileKeyring) -> AsyncIterator[Database]:
    database = Database(database_url, session_info=audit_session_info(keyring))
    try:
        async with database.write_engine.begin() as conn:
            await conn.execute(delete(_entries))
            await conn.execute(update(_head).values(seq=0, hash=GENESIS_HASH, updated_at=utcnow()))
        yield database
    finally:
        await database.dispose()


def _records(count: int, *, tag: str = "t") -> list[AuditRecord]:
    return [
        AuditRecord(
            action=AuditAction.CONSULTATION,
            event="message.read",
            actor=f"client:{tag}",
            subject_type="message",
            subject_id=f"{tag}-{i}",
            justification=f"case 2026/{i}",
            details={"n": i},
        )
        for i in range(count)
    ]


async def _append(database: Database, count: int, *, tag: str = "t") -> list[int]:
    async with database.write_sessions() as session, session.begin():
        return await append(session, _records(count, tag=tag), now=utcnow())


async def _verify(database: Database, checkpoint: str | None = None) -> ChainVerification:
    async with database.read_sessions() as session:
        return await verify_chain(session, checkpoint=checkpoint, origin=ORIGIN)


async def _checkpoint(database: Database) -> str:
    async with database.read_sessions() as session:
        return (await make_checkpoint(session, origin=ORIGIN, now=utcnow())).note


def _summary(result: ChainVerification) -> tuple[Any, ...]:
    return (result.ok, result.first_broken_seq, result.reason)


async def _rows(database: Database) -> list[dict[str, Any]]:
    async with database.read_engine.connect() as conn:
        result = await conn.execute(select(_entries).order_by(_entries.c.seq))
        return [dict(row) for row in result.mappings()]


async def _write_rows(database: Database, rows: list[dict[str, Any]]) -> None:
    """Store rewritten rows as they are and point the head at the last: what an
    attacker with write access to the database does to cover a rewrite."""
    async with database.write_engine.begin() as conn:
        for row in rows:
            values = {name: value for name, value in row.items() if name != "seq"}
            await conn.execute(update(_entries).where(_entries.c.seq == row["seq"]).values(values))
        last = await conn.execute(
            select(_entries.c.seq, _entries.c.hash).order_by(_entries.c.seq.desc()).limit(1)
        )
        seq, head_hash = last.one()
        await conn.execute(update(_head).values(seq=seq, hash=head_hash))


Hasher = Callable[[dict[str, Any]], bytes]


def _sha256_keeping_key_id(row: dict[str, Any]) -> bytes:
    return hashlib.sha256(canonical_bytes(row)).digest()


def _as_unkeyed(row: dict[str, Any]) -> bytes:
    row["key_id"] = None
    return entry_hash(row)


def _with_own_key(row: dict[str, Any]) -> bytes:
    # The attacker's own keyring, same version number as ours.
    return entry_mac(row, AuditKey.build(row["key_id"], utcnow(), b"\x07" * 32, b"\x08" * 32))


def _recompute_from(
    rows: list[dict[str, Any]], seq: int, hasher: Hasher, *, until: int | None = None
) -> list[dict[str, Any]]:
    """Edit entry `seq`, then recompute its hash and every later link and hash (up to
    entry `until`, by default the last)."""
    rewritten = []
    prev_hash = GENESIS_HASH if seq == 1 else rows[seq - 2]["hash"]
    for row in rows[seq - 1 : until]:
        row = dict(row)
        if row["seq"] == seq:
            row["justification"] = "nothing to see here"
        row["prev_hash"] = prev_hash
        row["hash"] = prev_hash = hasher(row)
        rewritten.append(row)
    return rewritten


# -- the keyed chain ------------------------------------------------------------------------


async def test_entries_are_keyed_and_name_their_key(
    audit_db: Database, keyring: FileKeyring
) -> None:
    """Each entry's hash is the HMAC under the key version it names, not a plain SHA-256."""
    await _append(audit_db, 3)
    rows = await _rows(audit_db)
    key = keyring.audit_key()
    for row in rows:
        assert row["key_id"] == key.version
        assert row["hash"] == entry_mac(row, key)
        assert row["hash"] != hashlib.sha256(canonical_bytes(row)).digest()
    result = await _verify(audit_db)
    assert (result.ok, result.entries_checked, result.unkeyed_entries) == (True, 3, 0)


@pytest.mark.parametrize(
    ("hasher", "start", "reason"),
    [
        (_sha256_keeping_key_id, 4, ChainBreak.HASH_MISMATCH),
        (_with_own_key, 4, ChainBreak.HASH_MISMATCH),
        (_as_unkeyed, 4, ChainBreak.UNKEYED_ENTRY),
        (_as_unkeyed, 1, ChainBreak.UNKEYED_ENTRY),
        (_sha256_keeping_key_id, 1, ChainBreak.HASH_MISMATCH),
    ],
    ids=["sha256", "attacker-key", "downgrade-tail", "downgrade-all", "sha256-all"],
)
async def test_rewrite_with_recomputed_hashes_is_found_at_the_first_rewritten_entry(
    audit_db: Database, hasher: Hasher, start: int, reason: ChainBreak
) -> None:
    """An attacker edits an entry and recomputes every later hash and the head, without
    the audit key: the MAC of the first rewritten entry does not verify. (With the
    unkeyed SHA-256 chain this verified as intact.)"""
    await _append(audit_db, 10)
    await _write_rows(audit_db, _recompute_from(await _rows(audit_db), start, hasher))

    result = await _verify(audit_db)

    assert _summary(result) == (False, start, reason)
    assert result.entries_checked == start - 1


async def test_an_entry_moved_under_an_unknown_key_is_named(audit_db: Database) -> None:
    """key_id pointing at a key the keyring never held cannot be verified: reported."""
    await _append(audit_db, 5)
    async with audit_db.write_engine.begin() as conn:
        await conn.execute(update(_entries).where(_entries.c.seq == 3).values(key_id=99))
    assert _summary(await _verify(audit_db)) == (False, 3, ChainBreak.UNKNOWN_KEY)


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"),
    [
        (
            update(_entries).where(_entries.c.seq == 4).values(actor="client:else"),
            4,
            ChainBreak.HASH_MISMATCH,
        ),
        (delete(_entries).where(_entries.c.seq == 5), 5, ChainBreak.MISSING_ENTRY),
        (update(_entries).where(_entries.c.seq == 6).values(seq=60), 6, ChainBreak.MISSING_ENTRY),
    ],
    ids=["edit", "delete", "renumber"],
)
async def test_edit_and_delete_are_named_with_a_checkpoint_in_place(
    audit_db: Database, tamper: Any, seq: int, reason: ChainBreak
) -> None:
    """The checkpoint adds to the chain's checks; it does not mask the exact entry."""
    await _append(audit_db, 10)
    note = await _checkpoint(audit_db)
    async with audit_db.write_engine.begin() as conn:
        await conn.execute(tamper)
    assert _summary(await _verify(audit_db, note)) == (False, seq, reason)


async def test_reordered_entries_are_named_at_the_first(audit_db: Database) -> None:
    await _append(audit_db, 10)
    note = await _checkpoint(audit_db)
    async with audit_db.write_engine.begin() as conn:
        for old, new in ((3, -3), (8, 3), (-3, 8)):
            await conn.execute(update(_entries).where(_entries.c.seq == old).values(seq=new))
    assert _summary(await _verify(audit_db, note)) == (False, 3, ChainBreak.BROKEN_LINK)


# -- checkpoints: what the database alone cannot show ----------------------------------------


async def _truncate(database: Database, *, keep: int) -> None:
    """Delete every entry after `keep` and move the head back onto entry `keep`."""
    async with database.write_engine.begin() as conn:
        await conn.execute(delete(_entries).where(_entries.c.seq > keep))
        kept = await conn.execute(select(_entries.c.hash).where(_entries.c.seq == keep))
        await conn.execute(update(_head).values(seq=keep, hash=kept.scalar_one()))


async def test_tail_truncation_with_the_head_moved_back_is_found_against_the_checkpoint(
    audit_db: Database,
) -> None:
    """The last entries deleted and audit_head moved back: the chain alone is intact
    (which is why checkpoints go outside the database), the checkpoint names the
    first missing entry. (Before checkpoints this verified as intact.)"""
    await _append(audit_db, 10)
    note = await _checkpoint(audit_db)
    await _truncate(audit_db, keep=6)

    assert (await _verify(audit_db)).ok  # nothing in the database says otherwise
    result = await _verify(audit_db, note)

    assert _summary(result) == (False, 7, ChainBreak.TRUNCATED)
    assert (result.entries_checked, result.head_seq, result.checkpoint_tree_size) == (6, 6, 10)


async def test_truncation_hidden_by_new_entries_is_found_against_the_checkpoint(
    audit_db: Database,
) -> None:
    """Cut the tail, then let the log grow past the checkpoint's size again: the
    first tree_size entries no longer have the checkpoint's root."""
    await _append(audit_db, 10)
    note = await _checkpoint(audit_db)
    await _truncate(audit_db, keep=6)
    await _append(audit_db, 8, tag="later")

    assert (await _verify(audit_db)).ok
    assert _summary(await _verify(audit_db, note)) == (
        False,
        None,
        ChainBreak.CHECKPOINT_MISMATCH,
    )


async def test_a_log_that_grew_after_the_checkpoint_verifies(audit_db: Database) -> None:
    await _append(audit_db, 4)
    note = await _checkpoint(audit_db)
    await _append(audit_db, 3)
    result = await _verify(audit_db, note)
    assert (result.ok, result.entries_checked, result.checkpoint_tree_size) == (True, 7, 4)


async def test_a_checkpoint_of_the_empty_log_verifies(audit_db: Database) -> None:
    note = await _checkpoint(audit_db)
    assert "\n0\n" in note
    assert (await _verify(audit_db, note)).ok


def _resigned(note: str, key: AuditKey, **changes: Any) -> str:
    lines = note.split("\n")
    checkpoint = Checkpoint(lines[0], int(lines[1]), base64.b64decode(lines[2]), utcnow())
    fields = {
        "origin": checkpoint.origin,
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "timestamp": checkpoint.timestamp,
    } | changes
    return sign(Checkpoint(**fields), key)


async def test_a_forged_or_altered_checkpoint_is_reported_as_invalid(
    audit_db: Database,
) -> None:
    """A checkpoint file an attacker wrote (their own key), edited (smaller size, so
    that a truncation passes), or another log's, is no anchor: reported, not trusted."""
    await _append(audit_db, 10)
    note = await _checkpoint(audit_db)
    stranger = AuditKey.build(1, utcnow(), b"\x01" * 32, b"\x02" * 32)
    edited = note.replace("\n10\n", "\n6\n", 1)
    forged = _resigned(note, stranger, tree_size=6)
    foreign = note.replace(ORIGIN, "other.example/audit")
    for bad in (edited, forged, foreign, "garbage\n"):
        result = await _verify(audit_db, bad)
        assert _summary(result) == (False, None, ChainBreak.CHECKPOINT_INVALID), bad
        assert result.entries_checked == 10  # the chain itself was checked in full


# -- rotation and the upgrade from the unkeyed chain -----------------------------------------


async def test_rotation_keeps_old_entries_and_checkpoints_verifiable(
    audit_db: Database, keyring: FileKeyring, database_url: str
) -> None:
    """After `keys audit-rotate`, new entries use the new key and old ones, and the
    checkpoints signed before, still verify, in this process and in one that loaded
    the keyring before the rotation."""
    await _append(audit_db, 3)
    old_note = await _checkpoint(audit_db)
    stale = FileKeyring.load(keyring.path, reload_interval=3600)
    assert keyring.audit_rotate() == 2
    await _append(audit_db, 3, tag="rotated")

    assert [row["key_id"] for row in await _rows(audit_db)] == [1, 1, 1, 2, 2, 2]
    assert (await _verify(audit_db, old_note)).ok
    new_note = await _checkpoint(audit_db)
    assert (await _verify(audit_db, new_note)).ok
    other = Database(database_url, session_info=audit_session_info(stale))
    try:
        async with other.read_sessions() as session:
            result = await verify_chain(session, checkpoint=old_note, origin=ORIGIN)
        assert (result.ok, result.entries_checked) == (True, 6)
    finally:
        await other.dispose()


def _strip_audit_keys(path: Path) -> None:
    """The keyring as it was written before the audit chain was keyed."""
    doc = json.loads(path.read_text())
    del doc["audit_keys"], doc["audit_unkeyed_prefix"]
    path.write_text(json.dumps(doc))


async def _write_unkeyed(database: Database, count: int) -> None:
    """Entries as the code before keying wrote them (v1: SHA-256, no key_id)."""
    async with database.write_engine.begin() as conn:
        prev_hash = GENESIS_HASH
        for seq in range(1, count + 1):
            row: dict[str, Any] = {
                "seq": seq,
                "id": new_id(),
                "occurred_at": utcnow(),
                "action": "collection",
                "event": "message.ingested",
                "actor": "system",
                "subject_type": "message",
                "subject_id": str(uuid.uuid4()),
                "recipient": None,
                "justification": None,
                "details": {"n": seq},
                "prev_hash": prev_hash,
                "key_id": None,
            }
            row["hash"] = prev_hash = entry_hash(row)
            await conn.execute(_entries.insert().values(row))
        await conn.execute(
            update(_head).where(_head.c.id == HEAD_ID).values(seq=count, hash=prev_hash)
        )


@pytest.fixture
async def upgraded_db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A log of 5 unkeyed entries, then a keyring upgraded with `keys audit-rotate`
    and 3 keyed entries appended."""
    path = tmp_path / "old-keyring.json"
    FileKeyring.generate(path, dev=True)
    _strip_audit_keys(path)
    old = FileKeyring.load(path)
    assert not old.has_audit_keys
    old.audit_rotate()
    assert old.audit_unkeyed_prefix()
    database = Database(database_url, session_info=audit_session_info(old))
    try:
        async with database.write_engine.begin() as conn:
            await conn.execute(delete(_entries))
        await _write_unkeyed(database, 5)
        await _append(database, 3, tag="keyed")
        yield database
    finally:
        await database.dispose()


async def test_an_upgraded_log_verifies_its_unkeyed_prefix_then_the_keyed_entries(
    upgraded_db: Database,
) -> None:
    rows = await _rows(upgraded_db)
    assert [row["key_id"] for row in rows] == [None] * 5 + [1] * 3
    assert rows[5]["prev_hash"] == rows[4]["hash"]  # the first MAC covers the old prefix
    result = await _verify(upgraded_db)
    assert (result.ok, result.entries_checked, result.unkeyed_entries) == (True, 8, 5)


async def test_rewriting_the_unkeyed_prefix_breaks_the_first_keyed_entry(
    upgraded_db: Database,
) -> None:
    """The unkeyed entries can be recomputed by anyone, but the first keyed entry's MAC
    covers the last unkeyed hash: the rewrite is found there."""
    rewritten = _recompute_from(await _rows(upgraded_db), 2, entry_hash, until=5)
    await _write_rows(upgraded_db, rewritten)  # seq 2..5, keyed ones untouched
    assert _summary(await _verify(upgraded_db)) == (False, 6, ChainBreak.BROKEN_LINK)
    # Relinking the first keyed entry too: its MAC no longer verifies.
    relinked = dict((await _rows(upgraded_db))[5], prev_hash=rewritten[3]["hash"])
    await _write_rows(upgraded_db, [relinked])
    assert _summary(await _verify(upgraded_db)) == (False, 6, ChainBreak.HASH_MISMATCH)


async def test_rewriting_an_upgraded_log_whole_is_found_against_the_checkpoint(
    upgraded_db: Database,
) -> None:
    """The one rewrite the keyed chain cannot see: every entry of an upgraded log
    turned back into unkeyed ones. The checkpoint exported at the upgrade catches it."""
    note = await _checkpoint(upgraded_db)
    await _write_rows(upgraded_db, _recompute_from(await _rows(upgraded_db), 1, _as_unkeyed))
    assert (await _verify(upgraded_db)).unkeyed_entries == 8
    assert _summary(await _verify(upgraded_db, note)) == (
        False,
        None,
        ChainBreak.CHECKPOINT_MISMATCH,
    )


async def test_a_database_handle_without_audit_keys_cannot_append(database_url: str) -> None:
    """No path writes an unkeyed entry any more."""
    bare = Database(database_url)
    try:
        async with bare.write_sessions() as session, session.begin():
            with pytest.raises(AuditKeysMissingError):
                await append(session, _records(1), now=utcnow())
    finally:
        await bare.dispose()


def test_prod_refuses_a_keyring_without_audit_keys_and_dev_adds_them(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    FileKeyring.generate(path, dev=False)
    _strip_audit_keys(path)
    prod = Settings(environment="prod", keyring_path=path)
    with pytest.raises(RuntimeError, match="audit-rotate"):
        open_keyring(prod)
    dev = Settings(environment="dev", keyring_path=path)
    keyring = open_keyring(dev)
    assert [key.version for key in keyring.audit_keys()] == [1]
    assert keyring.audit_unkeyed_prefix()
    reloaded = FileKeyring.load(path)
    assert reloaded.audit_key().public_key == keyring.audit_key().public_key
    assert open_keyring(prod).has_audit_keys


# -- export: the periodic job and the verification endpoint ----------------------------------


async def test_export_appends_signed_checkpoints_only_of_an_intact_changed_log(
    audit_db: Database, tmp_path: Path, keyring: FileKeyring
) -> None:
    path = tmp_path / "anchors" / "audit.checkpoints"
    path.parent.mkdir()
    now = utcnow()
    assert await export_checkpoint(audit_db, path, origin=ORIGIN, now=now) == 1
    await _append(audit_db, 4)
    assert await export_checkpoint(audit_db, path, origin=ORIGIN, now=now) == 1
    assert await export_checkpoint(audit_db, path, origin=ORIGIN, now=now) == 0  # unchanged
    await _append(audit_db, 2)
    assert await export_checkpoint(audit_db, path, origin=ORIGIN, now=now + timedelta(1)) == 1
    content = path.read_text()
    assert content.count("\u2014 ") == 3
    last = read_last(path)
    assert last is not None
    assert last.split("\n")[1] == "6"
    # Tampered: nothing is signed, the file is left as it was.
    await _truncate(audit_db, keep=3)
    assert await export_checkpoint(audit_db, path, origin=ORIGIN, now=now) == 0
    assert path.read_text() == content
    async with audit_db.read_sessions() as session:
        with pytest.raises(AuditChainBrokenError):
            await make_checkpoint(session, origin=ORIGIN, now=now, previous=last)


def _client(database: Database, anchor: CheckpointAnchor) -> httpx.AsyncClient:
    class Reader:
        async def authenticate(self, key: str) -> Principal | None:
            return Principal(uuid.uuid4(), "auditor", frozenset({"audit:read"}))

    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)
    app.state.db = database
    app.state.audit_anchor = anchor
    app.state.authenticator = Reader()
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": "Bearer ck_test"},
    )


async def test_the_verify_endpoint_checks_the_configured_checkpoint_file(
    audit_db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "audit.checkpoints"
    async with _client(audit_db, CheckpointAnchor(path, ORIGIN)) as client:
        await _append(audit_db, 5)
        body = (await client.get("/v1/audit/verify")).json()
        assert (body["ok"], body["checkpoint_tree_size"]) == (True, None)  # no file yet

        assert await export_checkpoint(audit_db, path, origin=ORIGIN, now=utcnow()) == 1
        body = (await client.get("/v1/audit/verify")).json()
        assert (body["ok"], body["checkpoint_tree_size"], body["entries_checked"]) == (True, 5, 5)

        await _truncate(audit_db, keep=2)
        response = await client.get("/v1/audit/verify")
        assert response.status_code == 200
        body = response.json()
        assert (body["ok"], body["first_broken_seq"], body["reason"]) == (False, 3, "truncated")

        append_to_file(path, "\u2014 not a checkpoint\n")
        body = (await client.get("/v1/audit/verify")).json()
        assert (body["ok"], body["reason"]) == (False, "checkpoint invalid")


async def test_every_dispatcher_process_exports_checkpoints_when_configured(
    audit_db: Database, database_url: str, tmp_path: Path
) -> None:
    """With COMMCENTRE_AUDIT_CHECKPOINT_PATH set, the housekeeping of `serve` and of each
    `worker` appends checkpoints, so that production always has a recent anchor."""
    path = tmp_path / "audit.checkpoints"
    settings = Settings(database_url=database_url, audit_checkpoint_path=path, audit_origin=ORIGIN)
    housekeeper = build_housekeeper(settings, audit_db, clock=utcnow)
    await _append(audit_db, 3)
    assert (await housekeeper.run_once())["audit-checkpoint"] == 1
    note = read_last(path)
    assert note is not None
    assert (await _verify(audit_db, note)).checkpoint_tree_size == 3
    unset = build_housekeeper(Settings(database_url=database_url), audit_db, clock=utcnow)
    assert "audit-checkpoint" not in unset.runs


async def test_the_exporter_reads_only_new_entries_and_never_signs_over_a_tampered_log(
    audit_db: Database, tmp_path: Path
) -> None:
    """Between full verifications a process resumes from where it ended, so it can
    anchor a long log often. An entry edited meanwhile is not vouched for: the new
    checkpoint's tree is the one verified, so verification against it names the
    edit, and the next full run refuses to sign."""
    path = tmp_path / "audit.checkpoints"
    exporter = CheckpointExporter(audit_db, path, origin=ORIGIN, full_every=timedelta(hours=1))
    now = utcnow()
    await _append(audit_db, 5)
    assert await exporter.export(now) == 1
    assert await exporter.export(now) == 0  # unchanged
    async with audit_db.write_engine.begin() as conn:
        await conn.execute(update(_entries).where(_entries.c.seq == 2).values(actor="client:x"))
    await _append(audit_db, 3, tag="later")

    assert await exporter.export(now + timedelta(minutes=5)) == 1  # resumed: 6..8 only
    note = read_last(path)
    assert note is not None
    assert note.split("\n")[1] == "8"
    assert _summary(await _verify(audit_db, note)) == (False, 2, ChainBreak.HASH_MISMATCH)
    async with audit_db.write_engine.begin() as conn:  # the honest log had that root
        await conn.execute(update(_entries).where(_entries.c.seq == 2).values(actor="client:t"))
    assert (await _verify(audit_db, note)).ok
    async with audit_db.write_engine.begin() as conn:
        await conn.execute(update(_entries).where(_entries.c.seq == 2).values(actor="client:x"))

    await _append(audit_db, 1, tag="latest")
    assert await exporter.export(now + timedelta(hours=2)) == 0  # full run: refused
    assert read_last(path) == note


async def test_the_resumed_exporter_checks_the_files_last_checkpoint_and_truncations(
    audit_db: Database, tmp_path: Path
) -> None:
    """Several processes append to one file: a resumed run checks the last checkpoint,
    whoever wrote it, on its way through the new entries; a tail cut off stops it."""
    path = tmp_path / "audit.checkpoints"
    exporter = CheckpointExporter(audit_db, path, origin=ORIGIN, full_every=timedelta(hours=1))
    now = utcnow()
    await _append(audit_db, 6)
    assert await exporter.export(now) == 1
    # Another process (or `audit checkpoint --output`) writes the next checkpoint.
    await _append(audit_db, 2)
    assert await export_checkpoint(audit_db, path, origin=ORIGIN, now=now) == 1
    await _append(audit_db, 1)
    assert await exporter.export(now) == 1
    last = read_last(path)
    assert last is not None
    assert last.split("\n")[1] == "9"

    await _truncate(audit_db, keep=4)
    assert await exporter.export(now) == 0
    assert read_last(path) == last
    assert _summary(await _verify(audit_db, last)) == (False, 5, ChainBreak.TRUNCATED)


async def test_a_forged_checkpoint_in_the_file_stops_the_exporter(
    audit_db: Database, tmp_path: Path
) -> None:
    """Someone appends a checkpoint of their own making to the file (to make a later
    truncation look anchored): no process signs after it until an operator looks."""
    path = tmp_path / "audit.checkpoints"
    exporter = CheckpointExporter(audit_db, path, origin=ORIGIN, full_every=timedelta(hours=1))
    now = utcnow()
    await _append(audit_db, 3)
    assert await exporter.export(now) == 1
    ours = read_last(path)
    assert ours is not None
    stranger = AuditKey.build(1, utcnow(), b"\x03" * 32, b"\x04" * 32)
    append_to_file(path, _resigned(ours, stranger, tree_size=3))
    await _append(audit_db, 2)
    assert await exporter.export(now) == 0
    assert await export_checkpoint(audit_db, path, origin=ORIGIN, now=now) == 0
    assert path.read_text().count("\u2014 ") == 2
