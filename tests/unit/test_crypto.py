"""Envelope encryption, the file keyring and blind indexes (RELIABILITY.md: crypto misuse)."""

import base64
import dataclasses
import json
import os
import stat
import uuid
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from commcentre.crypto import (
    FORMAT_VERSION,
    BlindIndex,
    DecryptionError,
    Envelope,
    FileKeyring,
    KeyringError,
    SealedPayload,
    UnknownKeyVersion,
)

CANARY = b"CANARY-7f3a Jane Q. Doe, passport X1234567"
# Module-scoped state below: hypothesis re-runs a test body many times, and
# must not share a function-scoped tmp_path between runs.
FUZZ = settings(max_examples=150, deadline=None, database=None)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _secrets_of(path: Path) -> list[str]:
    doc = json.loads(path.read_text())
    return [entry["key"] for entry in doc["keks"].values()] + [doc["blind_index_key"]]


def _with_field(sealed: SealedPayload, field: str, value: bytes) -> SealedPayload:
    if field == "wrapped_key":
        return dataclasses.replace(sealed, wrapped_key=value)
    return dataclasses.replace(sealed, ciphertext=value)


@pytest.fixture
def keyring(tmp_path: Path) -> FileKeyring:
    return FileKeyring.generate(tmp_path / "keys" / "keyring.json", dev=True)


@pytest.fixture
def envelope(keyring: FileKeyring) -> Envelope:
    return Envelope(keyring)


@pytest.fixture(scope="module")
def sealed_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Envelope, SealedPayload, uuid.UUID]:
    keyring = FileKeyring.generate(tmp_path_factory.mktemp("fuzz") / "keyring.json", dev=True)
    envelope = Envelope(keyring)
    record_id = uuid.uuid4()
    return envelope, envelope.seal(CANARY, record_id=record_id, context="message"), record_id


# -- envelope -------------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [b"", b"x", CANARY, os.urandom(1600)])
def test_round_trip(envelope: Envelope, plaintext: bytes) -> None:
    record_id = uuid.uuid4()
    sealed = envelope.seal(plaintext, record_id=record_id, context="message")
    assert sealed.format_version == FORMAT_VERSION
    assert sealed.key_version == 1
    assert CANARY not in sealed.ciphertext + sealed.wrapped_key
    assert envelope.open(sealed, record_id=record_id, context="message") == plaintext


@FUZZ
@given(
    field=st.sampled_from(["wrapped_key", "ciphertext"]),
    where=st.integers(0),
    mask=st.integers(1, 255),
)
def test_any_flipped_byte_is_detected(
    sealed_fixture: tuple[Envelope, SealedPayload, uuid.UUID], field: str, where: int, mask: int
) -> None:
    envelope, sealed, record_id = sealed_fixture
    original: bytes = getattr(sealed, field)
    tampered = bytearray(original)
    tampered[where % len(tampered)] ^= mask
    bad = _with_field(sealed, field, bytes(tampered))
    with pytest.raises(DecryptionError) as caught:
        envelope.open(bad, record_id=record_id, context="message")
    assert CANARY.decode() not in str(caught.value)


@FUZZ
@given(cut=st.integers(1, 200), field=st.sampled_from(["wrapped_key", "ciphertext"]))
def test_truncated_bytes_are_detected(
    sealed_fixture: tuple[Envelope, SealedPayload, uuid.UUID], cut: int, field: str
) -> None:
    envelope, sealed, record_id = sealed_fixture
    original: bytes = getattr(sealed, field)
    bad = _with_field(sealed, field, original[: max(0, len(original) - cut)])
    with pytest.raises(DecryptionError):
        envelope.open(bad, record_id=record_id, context="message")


def test_payload_swapped_between_records_fails(envelope: Envelope) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    sealed_first = envelope.seal(b"first", record_id=first, context="message")
    sealed_second = envelope.seal(b"second", record_id=second, context="message")
    with pytest.raises(DecryptionError):
        envelope.open(sealed_first, record_id=second, context="message")
    with pytest.raises(DecryptionError):
        envelope.open(sealed_second, record_id=first, context="message")
    # Mixing halves of two rows (wrapped key of one, ciphertext of the other) fails too.
    mixed = dataclasses.replace(sealed_first, ciphertext=sealed_second.ciphertext)
    with pytest.raises(DecryptionError):
        envelope.open(mixed, record_id=first, context="message")


def test_changed_context_fails(envelope: Envelope) -> None:
    record_id = uuid.uuid4()
    sealed = envelope.seal(CANARY, record_id=record_id, context="message")
    with pytest.raises(DecryptionError):
        envelope.open(sealed, record_id=record_id, context="request")


def test_changed_format_version_fails(envelope: Envelope) -> None:
    record_id = uuid.uuid4()
    sealed = envelope.seal(CANARY, record_id=record_id, context="message")
    for version in (0, FORMAT_VERSION + 1):
        with pytest.raises(DecryptionError):
            envelope.open(
                dataclasses.replace(sealed, format_version=version),
                record_id=record_id,
                context="message",
            )


def test_relabelled_key_version_fails(keyring: FileKeyring, envelope: Envelope) -> None:
    record_id = uuid.uuid4()
    sealed = envelope.seal(CANARY, record_id=record_id, context="message")
    keyring.rotate()
    with pytest.raises(DecryptionError):
        envelope.open(
            dataclasses.replace(sealed, key_version=2), record_id=record_id, context="message"
        )
    with pytest.raises(UnknownKeyVersion):
        envelope.open(
            dataclasses.replace(sealed, key_version=9), record_id=record_id, context="message"
        )


@pytest.mark.parametrize("context", ["", "a|b"])
def test_ambiguous_context_is_refused(envelope: Envelope, context: str) -> None:
    with pytest.raises(ValueError):
        envelope.seal(b"x", record_id=uuid.uuid4(), context=context)


def test_rotate_then_open_old_payloads(keyring: FileKeyring, envelope: Envelope) -> None:
    rows = {uuid.uuid4(): os.urandom(64) for _ in range(20)}
    sealed = {rid: envelope.seal(p, record_id=rid, context="message") for rid, p in rows.items()}
    assert keyring.rotate() == 2
    assert keyring.current_version == 2
    newer = envelope.seal(b"new", record_id=uuid.uuid4(), context="message")
    assert newer.key_version == 2
    reloaded = Envelope(FileKeyring.load(keyring.path))
    for rid, payload in rows.items():
        assert envelope.open(sealed[rid], record_id=rid, context="message") == payload
        assert reloaded.open(sealed[rid], record_id=rid, context="message") == payload


def test_rewrap_moves_to_current_key_and_keeps_ciphertext(
    keyring: FileKeyring, envelope: Envelope
) -> None:
    record_id = uuid.uuid4()
    old = envelope.seal(CANARY, record_id=record_id, context="request")
    keyring.rotate()
    keyring.rotate()
    new = envelope.rewrap(old, record_id=record_id, context="request")
    assert new.key_version == keyring.current_version == 3
    assert new.ciphertext is old.ciphertext
    assert new.wrapped_key != old.wrapped_key
    assert envelope.open(new, record_id=record_id, context="request") == CANARY
    assert envelope.rewrap(new, record_id=record_id, context="request") is new
    with pytest.raises(DecryptionError):
        envelope.rewrap(old, record_id=uuid.uuid4(), context="request")


def test_retired_version_cannot_open(keyring: FileKeyring, envelope: Envelope) -> None:
    record_id = uuid.uuid4()
    sealed = envelope.seal(CANARY, record_id=record_id, context="message")
    keyring.rotate()
    keyring.retire(1)
    assert list(keyring.versions()) == [2]
    with pytest.raises(UnknownKeyVersion):
        envelope.open(sealed, record_id=record_id, context="message")
    reloaded = FileKeyring.load(keyring.path)
    with pytest.raises(UnknownKeyVersion):
        Envelope(reloaded).open(sealed, record_id=record_id, context="message")
    # The key material is gone from the file, and the number is never handed out again.
    doc = json.loads(keyring.path.read_text())
    assert list(doc["keks"]) == ["2"]
    assert [r["version"] for r in doc["retired"]] == [1]
    assert reloaded.rotate() == 3


def test_retire_refuses_current_and_unknown(keyring: FileKeyring) -> None:
    with pytest.raises(KeyringError):
        keyring.retire(1)
    with pytest.raises(UnknownKeyVersion):
        keyring.retire(7)


def test_nonces_are_unique(envelope: Envelope) -> None:
    record_id = uuid.uuid4()
    payload_nonces: set[bytes] = set()
    wrap_nonces: set[bytes] = set()
    count = 100_000
    for _ in range(count):
        sealed = envelope.seal(b"x", record_id=record_id, context="message")
        payload_nonces.add(sealed.ciphertext[:12])
        wrap_nonces.add(sealed.wrapped_key[:12])  # one KEK for all: these matter most
    assert len(payload_nonces) == count
    assert len(wrap_nonces) == count


# -- keyring file ---------------------------------------------------------------------------


def test_keyring_file_is_0600_after_every_write(keyring: FileKeyring) -> None:
    assert _mode(keyring.path) == 0o600
    keyring.rotate()
    assert _mode(keyring.path) == 0o600
    keyring.retire(1)
    assert _mode(keyring.path) == 0o600
    assert os.listdir(keyring.path.parent) == [keyring.path.name]  # no temp files left


def test_load_refuses_group_or_world_access(keyring: FileKeyring) -> None:
    for mode in (0o644, 0o640, 0o604, 0o660):
        keyring.path.chmod(mode)
        with pytest.raises(KeyringError, match="chmod 600"):
            FileKeyring.load(keyring.path)


def test_load_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="not found"):
        FileKeyring.load(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda doc: "{not json", "not JSON"),
        (lambda doc: "[]", "not an object"),
        (lambda doc: {**doc, "format": 2}, "'format'"),
        (lambda doc: {**doc, "current": 5}, "no key"),
        (lambda doc: {**doc, "keks": {}}, "'keks'"),
        (lambda doc: {**doc, "surprise": 1}, "unknown fields"),
        (lambda doc: {**doc, "blind_index_key": "c2hvcnQ"}, "32 bytes"),
        (lambda doc: {**doc, "blind_index_key": "not base64!"}, "base64url"),
        (lambda doc: {**doc, "created_at": "2024-01-01T00:00:00"}, "timezone"),
        (lambda doc: {**doc, "keks": {"01": doc["keks"]["1"]}}, "leading zeros"),
    ],
)
def test_load_refuses_malformed_content(
    keyring: FileKeyring, mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    secrets = _secrets_of(keyring.path)
    changed = mutate(json.loads(keyring.path.read_text()))
    keyring.path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(KeyringError, match=message) as caught:
        FileKeyring.load(keyring.path)
    assert not any(secret in str(caught.value) for secret in secrets)
    assert caught.value.__cause__ is None


def test_generate_refuses_to_overwrite(keyring: FileKeyring) -> None:
    before = keyring.path.read_bytes()
    with pytest.raises(KeyringError, match="already exists"):
        FileKeyring.generate(keyring.path, dev=False)
    assert keyring.path.read_bytes() == before
    replaced = FileKeyring.generate(keyring.path, dev=False, overwrite=True)
    assert keyring.path.read_bytes() != before
    assert not replaced.is_dev


def test_generated_file_matches_documented_format(keyring: FileKeyring) -> None:
    doc = json.loads(keyring.path.read_text())
    assert doc["format"] == 1
    assert doc["dev"] is True
    assert doc["current"] == 1
    assert doc["keks"]["1"]["retired_at"] is None
    for secret in _secrets_of(keyring.path):
        assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) == 32
    assert keyring.is_dev


def test_repr_and_describe_reveal_no_keys(keyring: FileKeyring) -> None:
    keyring.rotate()
    secrets = _secrets_of(keyring.path)
    raw_keys = [base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)) for s in secrets]
    shown = repr(keyring) + repr(keyring.describe()) + repr(BlindIndex(raw_keys[-1]))
    for secret, raw in zip(secrets, raw_keys, strict=True):
        assert secret not in shown
        assert repr(raw) not in shown
        assert raw.hex() not in shown
    assert [(i.version, i.current) for i in keyring.describe()] == [(1, False), (2, True)]


# -- reloading a keyring another process changed ------------------------------------------


def _reload_events(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"].startswith("keyring_reload")]


def test_running_keyring_follows_rotation_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    served = FileKeyring.generate(path, dev=True, reload_interval=0)  # process A, the server
    envelope = Envelope(served)
    old_id = uuid.uuid4()
    old = envelope.seal(b"before", record_id=old_id, context="message")
    admin = FileKeyring.load(path)  # process B, `commcentre keys rotate`
    assert admin.rotate() == 2
    with capture_logs() as logs:
        assert served.current_version == 2
    assert [e["event"] for e in _reload_events(logs)] == ["keyring_reloaded"]
    new_id = uuid.uuid4()
    new = envelope.seal(b"after", record_id=new_id, context="message")
    assert new.key_version == 2
    assert Envelope(admin).open(new, record_id=new_id, context="message") == b"after"
    assert envelope.open(old, record_id=old_id, context="message") == b"before"
    admin.retire(1)
    assert list(served.versions()) == [2]
    with pytest.raises(UnknownKeyVersion, match="retired"):
        envelope.open(old, record_id=old_id, context="message")


def test_unchanged_file_is_not_reread_and_interval_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    served = FileKeyring.generate(path, dev=True, reload_interval=3600)
    FileKeyring.load(path).rotate()
    # Within the interval nothing looks at the file: no per-call cost.
    assert served.current_version == 1
    idle = FileKeyring.load(path, reload_interval=0)
    with capture_logs() as logs:
        for _ in range(3):
            assert idle.current_version == 2
    assert _reload_events(logs) == []


def test_unwrap_of_a_version_added_elsewhere_reloads_at_once(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    served = FileKeyring.generate(path, dev=True, reload_interval=3600)
    admin = FileKeyring.load(path)
    admin.rotate()
    record_id = uuid.uuid4()
    # `keys rewrap` moved this payload to v2, which the server has not seen yet.
    sealed = Envelope(admin).seal(CANARY, record_id=record_id, context="message")
    assert sealed.key_version == 2
    assert Envelope(served).open(sealed, record_id=record_id, context="message") == CANARY
    assert served.current_version == 2  # the forced reload refreshed everything
    # A version that exists nowhere still fails, after one look at the file.
    with pytest.raises(UnknownKeyVersion):
        Envelope(served).open(
            dataclasses.replace(sealed, key_version=9), record_id=record_id, context="message"
        )


def test_corrupt_file_during_reload_keeps_the_old_keys(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    served = FileKeyring.generate(path, dev=True, reload_interval=0)
    envelope = Envelope(served)
    record_id = uuid.uuid4()
    sealed = envelope.seal(CANARY, record_id=record_id, context="message")
    admin = FileKeyring.load(path)
    good = path.read_bytes()
    secrets = _secrets_of(path)
    path.write_text('{"format": 1, "keks": {"1": ')  # what a torn in-place write leaves
    with capture_logs() as logs:
        for _ in range(3):
            assert served.current_version == 1
            assert envelope.open(sealed, record_id=record_id, context="message") == CANARY
            assert envelope.seal(b"x", record_id=uuid.uuid4(), context="message").key_version == 1
    failures = _reload_events(logs)
    # Retried on every check (interval 0), but logged once, with the path and no secret.
    assert [e["event"] for e in failures] == ["keyring_reload_failed"]
    assert failures[0]["path"] == str(path)
    assert not any(secret in repr(logs) for secret in secrets)
    # Rotating on top of a file it cannot read would lose whatever the file holds.
    with pytest.raises(KeyringError, match="malformed"):
        admin.rotate()
    path.write_bytes(good)
    assert admin.rotate() == 2
    assert served.current_version == 2
    assert envelope.open(sealed, record_id=record_id, context="message") == CANARY


def test_unreadable_file_during_reload_is_retried_until_fixed(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    served = FileKeyring.generate(path, dev=True, reload_interval=0)
    FileKeyring.load(path).rotate()
    path.chmod(0o644)
    assert served.current_version == 1
    assert served.current_version == 1
    path.chmod(0o600)
    assert served.current_version == 2


def test_reload_refuses_a_different_keyring(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    served = FileKeyring.generate(path, dev=True, reload_interval=0)
    blind_key = served.blind_index_key()
    record_id = uuid.uuid4()
    sealed = Envelope(served).seal(CANARY, record_id=record_id, context="message")
    replaced = FileKeyring.generate(path, dev=True, overwrite=True)
    replaced.rotate()
    with capture_logs() as logs:
        assert served.current_version == 1
    assert [e["event"] for e in _reload_events(logs)] == ["keyring_reload_failed"]
    assert "different keyring" in logs[0]["reason"]
    assert served.blind_index_key() == blind_key
    assert Envelope(served).open(sealed, record_id=record_id, context="message") == CANARY


def test_rotate_on_a_stale_keyring_keeps_the_other_rotation(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    first = FileKeyring.generate(path, dev=True, reload_interval=3600)
    second = FileKeyring.load(path, reload_interval=3600)
    assert second.rotate() == 2
    record_id = uuid.uuid4()
    sealed = Envelope(second).seal(CANARY, record_id=record_id, context="message")
    assert first.rotate() == 3  # not a second, different, version 2
    reloaded = FileKeyring.load(path)
    assert list(reloaded.versions()) == [1, 2, 3]
    assert Envelope(reloaded).open(sealed, record_id=record_id, context="message") == CANARY


@pytest.mark.parametrize("interval", [-1.0, float("nan"), float("inf")])
def test_reload_interval_must_be_finite_and_not_negative(tmp_path: Path, interval: float) -> None:
    path = tmp_path / "keyring.json"
    with pytest.raises(ValueError, match="reload_interval"):
        FileKeyring.generate(path, dev=True, reload_interval=interval)
    assert not path.exists()
    FileKeyring.generate(path, dev=True)
    with pytest.raises(ValueError, match="reload_interval"):
        FileKeyring.load(path, reload_interval=interval)


# -- blind index ----------------------------------------------------------------------------


def test_blind_index_is_deterministic_and_distinct_per_kind(keyring: FileKeyring) -> None:
    index = BlindIndex(keyring.blind_index_key())
    again = BlindIndex(FileKeyring.load(keyring.path).blind_index_key())
    digest = index.digest("document_number", "X1234567")
    assert len(digest) == 32
    assert digest == index.digest("document_number", "X1234567")
    assert digest == again.digest("document_number", "X1234567")
    assert digest != index.digest("surname", "X1234567")
    assert digest != index.digest("document_number", "X1234568")
    assert digest != BlindIndex(os.urandom(32)).digest("document_number", "X1234567")
    pairs = [("surname", "doe"), ("document_number", "X1234567")]
    assert index.digest_many(pairs) == [index.digest(k, t) for k, t in pairs]


@pytest.mark.parametrize(
    ("kind", "token"), [("sur\x1fname", "Doe"), ("surname", "Doe\x1fJane"), ("", "Doe")]
)
def test_blind_index_refuses_separator_and_empty_kind(kind: str, token: str) -> None:
    with pytest.raises(ValueError) as caught:
        BlindIndex(os.urandom(32)).digest(kind, token)
    assert "Doe" not in str(caught.value)


def test_blind_index_refuses_short_key() -> None:
    with pytest.raises(ValueError):
        BlindIndex(b"short")
