"""Crypto misuse and audit tamper (RELIABILITY.md), beyond tests/unit/test_crypto.py
(any flipped or cut byte, fixed swaps, rotate-then-open) and
tests/integration/test_audit_chain.py (one case per kind of tamper):

- the AAD binds a payload to its row and its context for every pair of rows, and wrapped
  keys do not move between rows;
- any sequence of seals, rotations, rewraps and retirements keeps 100% of the rows
  readable, through a live keyring and one reloaded from its file;
- every edit of every column of every audit entry, every deletion, every swap of two
  entries and every truncation under the anchored head is reported at the exact entry.
  (Rewrites by an attacker without the audit key, and truncations behind the head's
  back, are in tests/integration/test_audit_keyed.py.)
"""

import dataclasses
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from commcentre.audit.models import AuditEntry, AuditHead, genesis_head_values
from commcentre.audit.service import (
    AuditAction,
    AuditRecord,
    ChainBreak,
    ChainVerification,
    append,
    audit_session_info,
    verify_chain,
)
from commcentre.clock import utcnow
from commcentre.crypto import (
    DecryptionError,
    Envelope,
    FileKeyring,
    SealedPayload,
    UnknownKeyVersion,
)
from commcentre.db import Base, Database

CONTEXTS = ("message", "request", "partner", "subscription")
PROPERTY = settings(max_examples=60, deadline=None, database=None)


@pytest.fixture(scope="module")
def envelope(tmp_path_factory: pytest.TempPathFactory) -> Envelope:
    path = tmp_path_factory.mktemp("aad") / "keyring.json"
    return Envelope(FileKeyring.generate(path, dev=True))


rows = st.tuples(st.uuids(), st.sampled_from(CONTEXTS))


@PROPERTY
@given(first=rows, second=rows, plaintext=st.binary(max_size=64))
def test_a_payload_opens_only_for_its_own_row_and_context(
    envelope: Envelope,
    first: tuple[uuid.UUID, str],
    second: tuple[uuid.UUID, str],
    plaintext: bytes,
) -> None:
    sealed = envelope.seal(plaintext, record_id=first[0], context=first[1])
    assert envelope.open(sealed, record_id=first[0], context=first[1]) == plaintext
    if second != first:
        with pytest.raises(DecryptionError):
            envelope.open(sealed, record_id=second[0], context=second[1])


@PROPERTY
@given(first=rows, second=rows)
def test_wrapped_keys_and_ciphertexts_do_not_move_between_rows(
    envelope: Envelope, first: tuple[uuid.UUID, str], second: tuple[uuid.UUID, str]
) -> None:
    a = envelope.seal(b"row a", record_id=first[0], context=first[1])
    b = envelope.seal(b"row b", record_id=second[0], context=second[1])
    for target, record in ((a, first), (b, second)):
        for donor in (a, b):
            if donor is target:
                continue
            for mixed in (
                dataclasses.replace(target, wrapped_key=donor.wrapped_key),
                dataclasses.replace(target, ciphertext=donor.ciphertext),
            ):
                with pytest.raises(DecryptionError):
                    envelope.open(mixed, record_id=record[0], context=record[1])


class RotationMachine(RuleBasedStateMachine):
    """Seal, rotate, rewrap and retire in any order: every row stays readable."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="rotation-"))
        self.keyring = FileKeyring.generate(self.directory / "keyring.json", dev=True)
        self.envelope = Envelope(self.keyring)
        self.rows: dict[uuid.UUID, tuple[str, bytes, SealedPayload]] = {}
        self.retired: set[int] = set()

    @initialize(plaintext=st.binary(max_size=32), context=st.sampled_from(CONTEXTS))
    def first_row(self, plaintext: bytes, context: str) -> None:
        self.seal(plaintext, context)

    @rule(plaintext=st.binary(max_size=32), context=st.sampled_from(CONTEXTS))
    def seal(self, plaintext: bytes, context: str) -> None:
        record_id = uuid.uuid4()
        sealed = self.envelope.seal(plaintext, record_id=record_id, context=context)
        assert sealed.key_version == self.keyring.current_version
        self.rows[record_id] = (context, plaintext, sealed)

    @rule()
    def rotate(self) -> None:
        before = self.keyring.current_version
        assert self.keyring.rotate() == self.keyring.current_version > before

    @rule(pick=st.integers(min_value=0))
    def rewrap_one(self, pick: int) -> None:
        record_id = list(self.rows)[pick % len(self.rows)]
        context, plaintext, sealed = self.rows[record_id]
        new = self.envelope.rewrap(sealed, record_id=record_id, context=context)
        assert new.key_version == self.keyring.current_version
        assert new.ciphertext == sealed.ciphertext
        self.rows[record_id] = (context, plaintext, new)

    @rule()
    def rewrap_all(self) -> None:
        for record_id in list(self.rows):
            self.rewrap_one(list(self.rows).index(record_id))

    @precondition(lambda self: len(self.keyring.versions()) > 1)
    @rule()
    def retire_unused_versions(self) -> None:
        used = {sealed.key_version for _, _, sealed in self.rows.values()}
        for version in self.keyring.versions():
            if version not in used and version != self.keyring.current_version:
                self.keyring.retire(version)
                self.retired.add(version)

    @rule()
    def reload_from_file(self) -> None:
        self.keyring = FileKeyring.load(self.keyring.path)
        self.envelope = Envelope(self.keyring)

    @invariant()
    def every_row_is_readable(self) -> None:
        fresh = Envelope(FileKeyring.load(self.keyring.path))
        for record_id, (context, plaintext, sealed) in self.rows.items():
            assert sealed.key_version not in self.retired
            assert self.envelope.open(sealed, record_id=record_id, context=context) == plaintext
            assert fresh.open(sealed, record_id=record_id, context=context) == plaintext

    @invariant()
    def retired_versions_are_gone(self) -> None:
        assert not self.retired & set(self.keyring.versions())
        for version in self.retired:
            probe = next(iter(self.rows.values()))[2]
            record_id = next(iter(self.rows))
            with pytest.raises(UnknownKeyVersion):
                self.envelope.open(
                    dataclasses.replace(probe, key_version=version),
                    record_id=record_id,
                    context=self.rows[record_id][0],
                )

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


TestRotationAndRewrap = RotationMachine.TestCase
TestRotationAndRewrap.settings = settings(
    max_examples=15, stateful_step_count=15, deadline=None, database=None
)


# -- audit chain ----------------------------------------------------------------------------

ENTRIES = 10


@pytest.fixture(scope="module")
async def audit_db(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    directory = tmp_path_factory.mktemp("tamper")
    keyring = FileKeyring.generate(directory / "keyring.json", dev=True)
    database = Database(
        f"sqlite+aiosqlite:///{directory}/a.db", session_info=audit_session_info(keyring)
    )
    async with database.write_engine.begin() as conn:
        await conn.run_sync(
            Base.metadata.create_all, tables=[AuditEntry.__table__, AuditHead.__table__]
        )
        await conn.execute(insert(AuditHead).values(**genesis_head_values(utcnow())))
    for batch in (range(1, 5), range(5, ENTRIES + 1)):  # two transactions, one chain
        async with database.write_sessions() as session, session.begin():
            await append(
                session,
                [
                    AuditRecord(
                        action=AuditAction.CONSULTATION,
                        event="message.read",
                        actor=f"client:{n}",
                        subject_type="message",
                        subject_id=f"m-{n}",
                        recipient=f"partner-{n}",
                        justification=f"case 2026/{n}",
                        details={"n": n, "kinds": ["person"]},
                    )
                    for n in batch
                ],
                now=utcnow(),
            )
    try:
        yield database
    finally:
        await database.dispose()


async def _verify_after(database: Database, *statements: str, **params: Any) -> ChainVerification:
    """Verification of the chain with the statements applied; the tamper is rolled back."""
    async with database.write_engine.connect() as conn:
        transaction = await conn.begin()
        try:
            for statement in statements:
                await conn.execute(text(statement), params)
            async with AsyncSession(bind=conn, info=database.session_info) as session:
                return await verify_chain(session)
        finally:
            await transaction.rollback()


def _broken(seq: int, reason: ChainBreak) -> ChainVerification:
    return ChainVerification(False, seq - 1, ENTRIES, seq, reason)


def _without_root(result: ChainVerification) -> ChainVerification:
    """An intact chain's result carries its Merkle root: left out of the comparison."""
    return dataclasses.replace(result, root_hash=None)


# An edited value of each column, of the column's type.
EDITS: dict[str, tuple[str, dict[str, Any]]] = {
    "id": ("id = :value", {"value": uuid.uuid4().hex}),
    "occurred_at": ("occurred_at = :value", {"value": "2020-01-01 00:00:00.000000"}),
    "action": ("action = 'alteration'", {}),
    "event": ("event = 'message.deleted'", {}),
    "actor": ("actor = 'client:someone-else'", {}),
    "subject_type": ("subject_type = NULL", {}),
    "subject_id": ("subject_id = 'm-999'", {}),
    "recipient": ("recipient = NULL", {}),
    "justification": ("justification = 'no reason'", {}),
    "details": ("details = :value", {"value": '{"n": 0, "kinds": ["person"]}'}),
    "prev_hash": ("prev_hash = :value", {"value": b"\x01" * 32}),  # not the genesis hash
    "hash": ("hash = :value", {"value": bytes(range(32))}),
    # This keyring was born with audit keys: no entry of its log can be unkeyed.
    "key_id": ("key_id = NULL", {}),
}


async def test_untouched_chain_verifies(audit_db: Database) -> None:
    result = await _verify_after(audit_db)
    assert result.root_hash is not None
    assert _without_root(result) == ChainVerification(True, ENTRIES, ENTRIES)


def test_every_column_has_an_edit() -> None:
    columns = {c.name for c in AuditEntry.__table__.columns} - {"seq"}
    assert columns == EDITS.keys(), columns ^ EDITS.keys()


@pytest.mark.parametrize("column", sorted(EDITS))
async def test_any_edit_of_any_entry_is_found_there(audit_db: Database, column: str) -> None:
    assignment, params = EDITS[column]
    for seq in range(1, ENTRIES + 1):
        statement = f"UPDATE audit_entries SET {assignment} WHERE seq = :seq"  # noqa: S608
        result = await _verify_after(audit_db, statement, seq=seq, **params)
        reason = {
            "prev_hash": ChainBreak.BROKEN_LINK,
            "key_id": ChainBreak.UNKEYED_ENTRY,
        }.get(column, ChainBreak.HASH_MISMATCH)
        assert result == _broken(seq, reason), (column, seq)


async def test_any_deleted_entry_is_found(audit_db: Database) -> None:
    for seq in range(1, ENTRIES + 1):
        result = await _verify_after(
            audit_db, "DELETE FROM audit_entries WHERE seq = :seq", seq=seq
        )
        if seq == ENTRIES:  # the last one: the head still names it
            assert result == _broken(seq, ChainBreak.TRUNCATED)
        else:  # named by its seq, now missing, while the next ones are there
            assert result == _broken(seq, ChainBreak.MISSING_ENTRY), seq


async def test_any_two_entries_swapped_are_found_at_the_first(audit_db: Database) -> None:
    for first in range(1, ENTRIES + 1):
        for second in range(first + 1, ENTRIES + 1):
            result = await _verify_after(
                audit_db,
                "UPDATE audit_entries SET seq = -1 WHERE seq = :first",
                "UPDATE audit_entries SET seq = :first WHERE seq = :second",
                "UPDATE audit_entries SET seq = :second WHERE seq = -1",
                first=first,
                second=second,
            )
            assert result == _broken(first, ChainBreak.BROKEN_LINK), (first, second)


async def test_any_truncation_under_the_anchored_head_is_found(audit_db: Database) -> None:
    for kept in range(ENTRIES):
        result = await _verify_after(
            audit_db, "DELETE FROM audit_entries WHERE seq > :kept", kept=kept
        )
        assert result == _broken(kept + 1, ChainBreak.TRUNCATED), kept
    # Entries appended behind the head's back (a forged tail) are past the anchor.
    result = await _verify_after(audit_db, "UPDATE audit_head SET seq = :seq", seq=ENTRIES - 3)
    assert (result.ok, result.first_broken_seq) == (False, ENTRIES - 2)
