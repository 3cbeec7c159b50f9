"""Signed checkpoints of the audit log: C2SP tlog-checkpoint text in a signed note.

A checkpoint commits to the first `tree_size` entries of the log through the
RFC 9162 Merkle root of their chain hashes (merkle.py), and is signed with the
current audit key's Ed25519 key. It is written outside the database (a file,
or printed), so that an attacker who can rewrite the database cannot rewrite
it too; verification compares the log against the last one exported.

The text, per c2sp.org/tlog-checkpoint and c2sp.org/signed-note::

    <origin>
    <tree size, decimal>
    <root hash, standard base64>
    time <issued at, RFC 3339 UTC>

    — <key name> <base64(key id (4 bytes, big-endian) || Ed25519 signature)>

The signature covers the note text (the four lines, with their newlines). The
`time` extension line carries the timestamp; the key name is the origin, and
the key id is SHA-256(key name || 0x0A || 0x01 || public key)[:4]. A public key
is published as a note verifier key: `<name>+<key id hex>+<base64(0x01 || key)>`.

A checkpoint file holds checkpoints one after another, each followed by a blank
line; the last one is the latest.
"""

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from commcentre.crypto import AuditKey

ED25519_TYPE = b"\x01"
SIGNATURE_PREFIX = "\u2014 "
TIME_PREFIX = "time "
MAX_FILE_BYTES = 64 << 20
_MAX_NOTE_BYTES = 4096


class CheckpointError(ValueError):
    """A checkpoint is malformed, or no known key's signature on it verifies."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log named `origin` had `tree_size` entries with this root."""

    origin: str
    tree_size: int
    root_hash: bytes
    timestamp: datetime

    def note_text(self) -> str:
        """The signed part: the checkpoint body, ending with a newline."""
        when = self.timestamp.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        root = base64.b64encode(self.root_hash).decode("ascii")
        return f"{self.origin}\n{self.tree_size}\n{root}\n{TIME_PREFIX}{when}\n"


def check_origin(origin: str) -> str:
    """An origin usable as a key name too: non-empty, no spaces, no plus, printable."""
    if (
        not origin
        or "+" in origin
        or any(ch.isspace() or ord(ch) < 0x20 or ch == "\u2014" for ch in origin)
    ):
        raise ValueError("audit checkpoint origin must be non-empty, without spaces or '+'")
    return origin


def key_id(name: str, public_key: bytes) -> bytes:
    """The signed-note key id of an Ed25519 key (4 bytes)."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_TYPE + public_key).digest()[:4]


def verifier_key(name: str, key: AuditKey) -> str:
    """The public key as a signed-note verifier key string, for third parties."""
    encoded = base64.b64encode(ED25519_TYPE + key.public_key).decode("ascii")
    return f"{name}+{key_id(name, key.public_key).hex()}+{encoded}"


def sign(checkpoint: Checkpoint, key: AuditKey) -> str:
    """The signed note of `checkpoint` under `key`, named after the origin."""
    check_origin(checkpoint.origin)
    text = checkpoint.note_text()
    signature = key_id(checkpoint.origin, key.public_key) + key.sign(text.encode("utf-8"))
    return f"{text}\n{SIGNATURE_PREFIX}{checkpoint.origin} {base64.b64encode(signature).decode()}\n"


def open_note(note: str, *, origin: str, public_keys: Sequence[bytes]) -> Checkpoint:
    """Parse and verify a signed checkpoint of the log `origin`; CheckpointError unless
    one of `public_keys` (Ed25519, 32 bytes each) signed it.

    The origin must be ours: another log's checkpoint is no anchor.
    """
    checkpoint = _parse_text(open_signed_note(note, name=origin, public_keys=public_keys))
    if checkpoint.origin != origin:
        raise CheckpointError("checkpoint origin is not this log's")
    return checkpoint


def open_signed_note(note: str, *, name: str, public_keys: Sequence[bytes]) -> str:
    """The text of a signed note verified under one of `public_keys` named `name`.

    Per signed-note, signatures from unknown keys are ignored, a failing signature
    from a known key (name and key id match) rejects the note, and at least one
    must verify. CheckpointError otherwise.
    """
    if len(note.encode("utf-8")) > _MAX_NOTE_BYTES:
        raise CheckpointError("checkpoint is too large")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in note):
        raise CheckpointError("checkpoint holds control characters")
    if not note.endswith("\n"):
        raise CheckpointError("checkpoint does not end with a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("checkpoint has no signature block")
    text, signature_lines = note[: split + 1], note[split + 2 :].splitlines()
    if not signature_lines:
        raise CheckpointError("checkpoint has no signature")
    known = {key_id(name, key): key for key in public_keys}
    verified = False
    for line in signature_lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise CheckpointError("checkpoint signature line is malformed")
        signer, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise CheckpointError("checkpoint signature is not base64") from None
        if len(raw) < 5:
            raise CheckpointError("checkpoint signature is too short")
        public_key = known.get(raw[:4]) if signer == name else None
        if public_key is None:
            continue  # someone else's (a witness's): not ours to judge
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise CheckpointError("checkpoint signature does not verify") from None
        verified = True
    if not verified:
        raise CheckpointError("checkpoint is not signed by any of this log's audit keys")
    return text


def _parse_text(text: str) -> Checkpoint:
    lines = text.split("\n")[:-1]
    if len(lines) < 3 or any(not line for line in lines):
        raise CheckpointError("checkpoint text must be at least three non-empty lines")
    origin, size_text, root_text, *extensions = lines
    if not (size_text.isascii() and size_text.isdigit()) or str(int(size_text)) != size_text:
        raise CheckpointError("checkpoint tree size is not a decimal without leading zeros")
    try:
        root = base64.b64decode(root_text, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError("checkpoint root hash is not base64") from None
    if len(root) != 32:
        raise CheckpointError("checkpoint root hash is not 32 bytes")
    times = [line[len(TIME_PREFIX) :] for line in extensions if line.startswith(TIME_PREFIX)]
    if len(times) != 1:
        raise CheckpointError("checkpoint must carry exactly one time line")
    try:
        timestamp = datetime.fromisoformat(times[0])
    except ValueError:
        raise CheckpointError("checkpoint time is not an RFC 3339 timestamp") from None
    if timestamp.tzinfo is None:
        raise CheckpointError("checkpoint time has no time zone")
    return Checkpoint(origin, int(size_text), root, timestamp)


def last_note(content: str) -> str | None:
    """The last checkpoint in a checkpoint file's content, or None when it holds none.

    Notes are separated by a blank line after their signature lines; the last
    note starts after the last blank line that follows a signature line.
    """
    lines = content.split("\n")
    start = 0
    for i in range(1, len(lines) - 1):
        if not lines[i] and lines[i + 1] and lines[i - 1].startswith(SIGNATURE_PREFIX):
            start = i + 1
    note = "\n".join(lines[start:]).rstrip("\n")
    return note + "\n" if note.strip() else None


def read_last(path: Path) -> str | None:
    """The last checkpoint stored in the file at `path` (None when it holds none).

    OSError when it cannot be read; CheckpointError when it is not text.
    """
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        # Only the tail matters: the last note is far smaller than this.
        f.seek(max(0, size - _MAX_NOTE_BYTES * 2))
        tail = f.read()
    try:
        content = tail.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError("checkpoint file is not UTF-8 text") from None
    return last_note(content)


def append_to_file(path: Path, note: str) -> None:
    """Append a signed note and a blank line to `path` (0600 when created), durably.

    One write with O_APPEND, so that processes appending to the same file do
    not interleave their checkpoints.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        data = (note + "\n").encode("utf-8")
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
