"""Merkle tree heads and signed checkpoints of the audit log (pure, no database).

The tree must be exactly RFC 9162's, or a third party recomputing the root from the
entries' hashes would not get ours; the signed note must be exactly C2SP's, or their
tools would not read it; and a checkpoint altered or signed by anyone else must be
refused, since it is what anchors the log outside the database.
"""

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commcentre.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    append_to_file,
    key_id,
    last_note,
    open_note,
    open_signed_note,
    read_last,
    sign,
    verifier_key,
)
from commcentre.audit.merkle import EMPTY_ROOT, MerkleAccumulator, leaf_hash, node_hash
from commcentre.crypto import AuditKey

ORIGIN = "example.test/audit"
WHEN = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)

# The inputs and tree heads of the RFC 6962 reference test vectors (certificate-
# transparency's merkle tree tests): the root after each of the first 8 leaves.
RFC6962_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
RFC6962_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _reference_root(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1 as written: split at the largest power of two below n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    left, right = _reference_root(leaves[:k]), _reference_root(leaves[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def _key(version: int = 1, seed: int = 1) -> AuditKey:
    return AuditKey.build(version, WHEN, bytes([seed]) * 32, bytes([seed + 100]) * 32)


# -- Merkle tree ----------------------------------------------------------------------------


def test_roots_match_the_rfc6962_reference_vectors() -> None:
    tree = MerkleAccumulator()
    assert tree.root() == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for leaf, expected in zip(RFC6962_LEAVES, RFC6962_ROOTS, strict=True):
        tree.append(leaf)
        assert tree.root().hex() == expected, tree.size


def test_roots_match_the_recursive_definition_for_every_size_to_130() -> None:
    leaves = [hashlib.sha256(str(i).encode()).digest() for i in range(130)]
    tree = MerkleAccumulator()
    for n, leaf in enumerate(leaves, start=1):
        tree.append(leaf)
        assert tree.root() == _reference_root(leaves[:n]), n


@given(st.lists(st.binary(max_size=40), max_size=70))
def test_roots_match_the_recursive_definition_for_any_leaves(leaves: list[bytes]) -> None:
    tree = MerkleAccumulator()
    for leaf in leaves:
        tree.append(leaf)
    assert (tree.size, tree.root()) == (len(leaves), _reference_root(leaves))


def test_leaves_and_nodes_are_domain_separated() -> None:
    # Without the 0x00 / 0x01 prefixes, a node could pass for a leaf (second preimage).
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(left, right) != leaf_hash(left + right)
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def test_memory_stays_logarithmic() -> None:
    tree = MerkleAccumulator()
    for i in range(5000):
        tree.append(i.to_bytes(4, "big"))
        assert len(tree._stack) == bin(tree.size).count("1")


# -- signed checkpoints ---------------------------------------------------------------------


def test_sign_then_open_round_trips() -> None:
    key = _key()
    checkpoint = Checkpoint(ORIGIN, 42, bytes(range(32)), WHEN)
    note = sign(checkpoint, key)
    root = base64.b64encode(bytes(range(32))).decode()
    body = f"{ORIGIN}\n42\n{root}\ntime 2026-12-05T12:00:00Z\n\n"
    assert note.startswith(body)
    signature_line = note[len(body) :]
    assert signature_line.startswith(f"\u2014 {ORIGIN} ")
    assert signature_line.endswith("=\n")
    raw = base64.b64decode(signature_line.split(" ")[2])
    assert raw[:4] == key_id(ORIGIN, key.public_key)
    assert len(raw) == 4 + 64
    assert open_note(note, origin=ORIGIN, public_keys=[key.public_key]) == checkpoint


def test_key_id_and_verifier_key_follow_signed_note() -> None:
    key = _key()
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + key.public_key).digest()[:4]
    assert key_id(ORIGIN, key.public_key) == expected_id
    name, hex_id, encoded = verifier_key(ORIGIN, key).split("+", 2)
    assert (name, hex_id) == (ORIGIN, expected_id.hex())
    assert base64.b64decode(encoded) == b"\x01" + key.public_key


def test_a_note_signed_by_the_go_reference_implementation_verifies() -> None:
    """Interoperability: golang.org/x/mod/sumdb/note's documented example note and key."""
    name, hex_id, encoded = [
        "PeterNeumann",
        "c74f20a3",
        "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]
    public_key = base64.b64decode(encoded)[1:]
    assert key_id(name, public_key).hex() == hex_id
    text = (
        "If you think cryptography is the answer to your problem,\n"
        "then you don't know what your problem is.\n"
    )
    note = (
        f"{text}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2p"
        "ZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
    )
    assert open_signed_note(note, name=name, public_keys=[public_key]) == text
    with pytest.raises(CheckpointError):
        open_signed_note(note.replace("problem,", "problem;"), name=name, public_keys=[public_key])


def _altered(note: str, old: str, new: str) -> str:
    assert old in note
    return note.replace(old, new, 1)


@pytest.mark.parametrize(
    "alter",
    [
        lambda note: _altered(note, "\n42\n", "\n43\n"),
        lambda note: _altered(note, "\n42\n", "\n042\n"),
        lambda note: _altered(note, "AAECAwQF", "AAECAwQG"),
        lambda note: _altered(note, "2026-12-05T12:00:00Z", "2026-12-06T12:00:00Z"),
        lambda note: _altered(note, ORIGIN + "\n", "other.test/audit\n"),
        lambda note: note.split("\n\n")[0] + "\n",
        lambda note: note[:-3] + ("A==\n" if note[-4] != "A" else "B==\n"),
        lambda note: note.replace("\n\u2014", "\n-"),
        lambda note: note.replace("time ", "time\x07"),
        lambda note: "",
    ],
    ids=[
        "size",
        "size-leading-zero",
        "root",
        "time",
        "origin",
        "signature-removed",
        "signature-bytes",
        "signature-dash",
        "control-character",
        "empty",
    ],
)
def test_an_altered_checkpoint_is_refused(alter: object) -> None:
    key = _key()
    note = sign(Checkpoint(ORIGIN, 42, bytes(range(32)), WHEN), key)
    assert callable(alter)
    with pytest.raises(CheckpointError):
        open_note(alter(note), origin=ORIGIN, public_keys=[key.public_key])


def test_a_checkpoint_signed_by_another_key_is_refused() -> None:
    ours, forger = _key(seed=1), _key(seed=2)
    note = sign(Checkpoint(ORIGIN, 7, bytes(32), WHEN), forger)
    with pytest.raises(CheckpointError, match="not signed by any"):
        open_note(note, origin=ORIGIN, public_keys=[ours.public_key])
    # The forger reusing our key id: its signature is checked with our key, and fails.
    forged = note.replace(
        base64.b64encode(key_id(ORIGIN, forger.public_key)).decode()[:4],
        base64.b64encode(key_id(ORIGIN, ours.public_key)).decode()[:4],
    )
    raw = base64.b64decode(forged.rsplit(" ", 1)[1])
    raw = key_id(ORIGIN, ours.public_key) + raw[4:]
    forged = forged.rsplit(" ", 1)[0] + " " + base64.b64encode(raw).decode() + "\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(forged, origin=ORIGIN, public_keys=[ours.public_key])


def test_a_witness_cosignature_is_ignored_and_older_keys_still_verify() -> None:
    old, current = _key(1, seed=1), _key(2, seed=2)
    note = sign(Checkpoint(ORIGIN, 9, bytes(32), WHEN), old)
    witness = base64.b64encode(b"\x01\x02\x03\x04" + bytes(64)).decode()
    cosigned = note + f"\u2014 witness.example {witness}\n"
    keys = [old.public_key, current.public_key]
    assert open_note(cosigned, origin=ORIGIN, public_keys=keys).tree_size == 9


def test_a_file_of_checkpoints_yields_the_last(tmp_path: Path) -> None:
    key = _key()
    path = tmp_path / "checkpoints"
    assert last_note("") is None
    for size in (1, 5, 12):
        append_to_file(path, sign(Checkpoint(ORIGIN, size, bytes(32), WHEN), key))
    assert path.stat().st_mode & 0o777 == 0o600
    note = read_last(path)
    assert note is not None
    assert open_note(note, origin=ORIGIN, public_keys=[key.public_key]).tree_size == 12
    # A truncated last note is not silently replaced by the one before it.
    path.write_text(path.read_text()[:-20])
    broken = read_last(path)
    assert broken is not None
    with pytest.raises(CheckpointError):
        open_note(broken, origin=ORIGIN, public_keys=[key.public_key])
