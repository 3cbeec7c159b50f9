"""Versioned key-encryption keys (KEKs) behind a small provider seam.

`KeyProvider` is all the envelope needs: wrap/unwrap a data key under a
versioned KEK, plus the blind-index key. `FileKeyring` is the embedded
implementation (a 0600 JSON file); a KMS or HSM backend implements the same
protocol and the rest of the code does not change.

A running process follows changes another process makes to the file (`commcentre
keys rotate`, `retire`): `current_version` and `wrap_key` look at the file's
(mtime, size, inode) at most once every `reload_interval` seconds and reload it
when it changed; `unwrap_key` of an unknown version looks at once. A reload that
fails keeps the keys in memory and is retried at the next interval.

The file also holds our exchange keys: EC P-256 private JWKs that partners
encrypt inbound JWEs to (ECDH-ES+A256KW). The last one is current and is the
first of the public JWK Set we publish; older ones stay for decryption until
partners have moved on. A keyring written before exchange keys existed loads
with none (`commcentre keys exchange-rotate` adds one).

And the audit keys: per version, an HMAC-SHA256 key that keys the audit chain and
an Ed25519 key that signs its checkpoints. The last one is current (new entries and
checkpoints); older ones stay so that the entries and checkpoints they made still
verify. A keyring written before audit keys existed loads with none; `commcentre
keys audit-rotate` adds them (production refuses to start without), and records
that the log it serves may begin with unkeyed entries written before: a keyring
born with audit keys serves a log that is keyed from its first entry, so an
unkeyed entry there can only be a forgery.
"""

import base64
import binascii
import contextlib
import hmac
import json
import math
import os
import secrets
import stat
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from commcentre.clock import Clock, utcnow
from commcentre.crypto.audit_keys import AuditKey, new_audit_key
from commcentre.crypto.errors import DecryptionError, KeyringError, UnknownKeyVersion

log = structlog.get_logger(__name__)

KEYRING_FORMAT = 1
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
# A keyring is a few hundred bytes per version; anything this big is the wrong file.
_MAX_FILE_BYTES = 1 << 20
_TOP_LEVEL_FIELDS = frozenset(
    {
        "format",
        "dev",
        "current",
        "keks",
        "retired",
        "blind_index_key",
        "created_at",
        "exchange_keys",
        "audit_keys",
        "audit_unkeyed_prefix",
    }
)
# Partners encrypt inbound JWEs to these: ECDH-ES key agreement on P-256, key wrap A256KW.
EXCHANGE_CURVE = "P-256"
EXCHANGE_ALG = "ECDH-ES+A256KW"
_EXCHANGE_PUBLIC_MEMBERS = ("kty", "crv", "x", "y")
DEFAULT_RELOAD_INTERVAL = 2.0

# (st_mtime_ns, st_size, st_ino): a rewrite is an atomic rename of a new file, so any
# change made through a FileKeyring changes the inode, whatever the clock's resolution.
_Signature = tuple[int, int, int]


def _signature(st: os.stat_result) -> _Signature:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _check_interval(seconds: float) -> None:
    if not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError("reload_interval must be a finite number of seconds >= 0")


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A data key encrypted under KEK `version`; `blob` is nonce || ciphertext+tag."""

    version: int
    blob: bytes


@dataclass(frozen=True, slots=True)
class KeyVersionInfo:
    """Public facts about one KEK version (no key material)."""

    version: int
    created_at: datetime
    current: bool


@runtime_checkable
class ExchangeKeyProvider(Protocol):
    """Our key-agreement keys for inbound JWEs (a KeyProvider may also be one)."""

    def exchange_key(self, kid: str) -> ECKey | None:
        """The private exchange key named `kid`, or None when there is none."""
        ...

    def exchange_public_jwks(self) -> dict[str, Any]:
        """The public JWK Set of every exchange key, current first (never a private member)."""
        ...


class KeyProvider(Protocol):
    """Source of KEKs and the blind-index key: a file here, a KMS or HSM elsewhere."""

    @property
    def current_version(self) -> int:
        """The KEK version that new data keys are wrapped with."""
        ...

    def versions(self) -> Sequence[int]:
        """Every KEK version that can still unwrap, ascending."""
        ...

    def wrap_key(self, dek: bytes, *, aad: bytes) -> WrappedKey:
        """Encrypt a 32-byte data key under the current KEK, bound to `aad`."""
        ...

    def unwrap_key(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        """Decrypt a data key; `UnknownKeyVersion` or `DecryptionError` on failure."""
        ...

    def blind_index_key(self) -> bytes:
        """The HMAC key for blind indexes (not versioned: rotating it means reindexing)."""
        ...


def kek_aad(aad: bytes, version: int) -> bytes:
    """AAD for wrapping: binds the KEK version so a blob cannot be relabelled.

    The version is ASCII digits after the last separator, so the encoding is
    unambiguous whatever bytes the caller's AAD holds.
    """
    return aad + b"|kek-v" + str(version).encode("ascii")


@dataclass(frozen=True, slots=True)
class _Kek:
    key: bytes = field(repr=False)
    created_at: datetime
    # Built once per KEK: a new AESGCM per call doubles the cost (PERFORMANCE.md).
    aead: AESGCM = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class _ExchangeKey:
    """One of our EC P-256 exchange keys; `jwk` is the private JWK as stored."""

    kid: str
    created_at: datetime
    jwk: Mapping[str, Any] = field(repr=False)
    # Imported once: the JWE decryption uses it as is.
    key: ECKey = field(repr=False, compare=False)

    def public_jwk(self) -> dict[str, Any]:
        public = {name: self.jwk[name] for name in _EXCHANGE_PUBLIC_MEMBERS}
        return {**public, "kid": self.kid, "use": "enc", "alg": EXCHANGE_ALG}


def _new_exchange_key(now: datetime) -> _ExchangeKey:
    key = ECKey.generate_key(EXCHANGE_CURVE, private=True)
    # The RFC 7638 thumbprint: a kid that names the key itself, unique without coordination.
    kid = key.thumbprint()
    doc = {**key.as_dict(private=True), "kid": kid, "use": "enc", "alg": EXCHANGE_ALG}
    return _ExchangeKey(kid, now, doc, ECKey.import_key(doc))


@dataclass(frozen=True, slots=True)
class _State:
    """An immutable snapshot; mutations build a new one and swap it in after saving."""

    dev: bool
    current: int
    keks: Mapping[int, _Kek]
    retired: Mapping[int, datetime]
    blind_index_key: bytes = field(repr=False)
    created_at: datetime
    # Oldest first; the last is current.
    exchange: tuple[_ExchangeKey, ...] = ()
    # Oldest first; the last is current.
    audit: tuple[AuditKey, ...] = ()
    # The audit keys were added to a keyring that had none: the log it serves may
    # begin with entries written before the chain was keyed.
    audit_unkeyed_prefix: bool = False


class FileKeyring:
    """KEKs in a 0600 JSON file. Build with `generate` or `load`, not the constructor.

    Changes other processes make to the file are picked up within `reload_interval`
    seconds (0 checks on every call); see the module docstring.
    """

    def __init__(
        self,
        path: Path,
        state: _State,
        *,
        clock: Clock = utcnow,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
        signature: _Signature | None = None,
    ) -> None:
        _check_interval(reload_interval)
        self._path = path
        self._state = state
        self._clock = clock
        self._reload_interval = reload_interval
        # What the file looked like when `_state` was read from or written to it; None
        # (a keyring built by hand) makes the first check read the file.
        self._signature = signature
        self._next_check = time.monotonic() + reload_interval
        self._last_failure: str | None = None
        # Serialises reloads and rotate/retire within the process; across processes,
        # one admin at a time (rotate/retire re-read the file first, under this lock).
        self._lock = threading.Lock()

    @classmethod
    def generate(
        cls,
        path: str | os.PathLike[str],
        *,
        dev: bool,
        overwrite: bool = False,
        clock: Clock = utcnow,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
    ) -> "FileKeyring":
        """Create a keyring with KEK version 1 and a blind-index key, written atomically."""
        _check_interval(reload_interval)
        target = Path(path)
        if not overwrite and target.exists():
            raise KeyringError(
                f"keyring {target} already exists; refusing to overwrite it "
                "(replacing it makes every payload sealed under it unreadable)"
            )
        now = clock()
        key = AESGCM.generate_key(bit_length=256)
        state = _State(
            dev=dev,
            current=1,
            keks={1: _Kek(key, now, AESGCM(key))},
            retired={},
            blind_index_key=secrets.token_bytes(KEY_BYTES),
            created_at=now,
            exchange=(_new_exchange_key(now),),
            audit=(new_audit_key(1, now),),
        )
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise KeyringError(f"cannot create directory {target.parent}: {exc.strerror}") from None
        signature = _write_atomic(target, _dump(state))
        return cls(target, state, clock=clock, reload_interval=reload_interval, signature=signature)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Clock = utcnow,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
    ) -> "FileKeyring":
        """Read a keyring, refusing group/other access and malformed content."""
        target = Path(path)
        data, signature = _read_private(target)
        return cls(
            target,
            _parse(data, target),
            clock=clock,
            reload_interval=reload_interval,
            signature=signature,
        )

    @property
    def path(self) -> Path:
        """Where the keyring lives."""
        return self._path

    @property
    def is_dev(self) -> bool:
        """True for a development keyring, which production settings must refuse."""
        return self._state.dev

    @property
    def current_version(self) -> int:
        """The KEK version new data keys are wrapped with."""
        self._maybe_reload()
        return self._state.current

    def versions(self) -> Sequence[int]:
        """KEK versions still present (retired ones are gone), ascending."""
        self._maybe_reload()
        return sorted(self._state.keks)

    def describe(self) -> list[KeyVersionInfo]:
        """One entry per present KEK version, without key material."""
        self._maybe_reload()
        state = self._state
        return [
            KeyVersionInfo(
                version=v, created_at=state.keks[v].created_at, current=v == state.current
            )
            for v in sorted(state.keks)
        ]

    def blind_index_key(self) -> bytes:
        """The HMAC key for blind indexes."""
        return self._state.blind_index_key

    def wrap_key(self, dek: bytes, *, aad: bytes) -> WrappedKey:
        """Encrypt a data key under the current KEK with a fresh random nonce."""
        if len(dek) != KEY_BYTES:
            raise ValueError(f"data key must be {KEY_BYTES} bytes")
        self._maybe_reload()
        state = self._state  # one snapshot, so version and key always match
        version = state.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = state.keks[version].aead.encrypt(nonce, dek, kek_aad(aad, version))
        return WrappedKey(version=version, blob=nonce + sealed)

    def unwrap_key(self, wrapped: WrappedKey, *, aad: bytes) -> bytes:
        """Decrypt a data key wrapped by `wrap_key` with the same `aad`."""
        state = self._state
        kek = state.keks.get(wrapped.version)
        if kek is None:
            # Perhaps another process rotated and rewrapped: look at the file now.
            self._reload(force=True)
            state = self._state
            kek = state.keks.get(wrapped.version)
        if kek is None:
            why = " (retired)" if wrapped.version in state.retired else ""
            raise UnknownKeyVersion(f"key version {wrapped.version} is not in the keyring{why}")
        blob = wrapped.blob
        if len(blob) != NONCE_BYTES + KEY_BYTES + TAG_BYTES:
            raise DecryptionError("wrapped data key has the wrong length")
        try:
            return kek.aead.decrypt(
                blob[:NONCE_BYTES], blob[NONCE_BYTES:], kek_aad(aad, wrapped.version)
            )
        except InvalidTag:
            raise DecryptionError(
                "data key failed authentication (wrong record, context or key, or tampered)"
            ) from None

    def exchange_key(self, kid: str) -> ECKey | None:
        """Our private exchange key `kid` (current or older), or None."""
        self._maybe_reload()
        found = self._find_exchange(kid)
        if found is None:
            # Perhaps another process ran `keys exchange-rotate`: look at the file now.
            self._reload(force=True)
            found = self._find_exchange(kid)
        return found

    def _find_exchange(self, kid: str) -> ECKey | None:
        for entry in self._state.exchange:
            if entry.kid == kid:
                return entry.key
        return None

    def exchange_public_jwks(self) -> dict[str, Any]:
        """The public JWK Set partners encrypt to: current key first, no private member."""
        self._maybe_reload()
        return {"keys": [entry.public_jwk() for entry in reversed(self._state.exchange)]}

    def exchange_rotate(self) -> str:
        """Add a new exchange key and make it current (older ones still decrypt); its kid."""
        with self._lock:
            self._reload_locked(strict=True)
            state = self._state
            fresh = _new_exchange_key(self._clock())
            self._commit(replace(state, exchange=(*state.exchange, fresh)))
            return fresh.kid

    def audit_key(self) -> AuditKey:
        """The current audit key (new chain entries and checkpoints use it)."""
        self._maybe_reload()
        audit = self._state.audit
        if not audit:
            raise KeyringError(
                f"keyring {self._path} has no audit keys; run `commcentre keys audit-rotate`"
            )
        return audit[-1]

    def audit_key_version(self, version: int) -> AuditKey | None:
        """Audit key `version`, or None; looks at the file at once when it is unknown."""
        self._maybe_reload()
        found = self._find_audit(version)
        if found is None:
            # Perhaps another process ran `keys audit-rotate`: look at the file now.
            self._reload(force=True)
            found = self._find_audit(version)
        return found

    def _find_audit(self, version: int) -> AuditKey | None:
        for key in self._state.audit:
            if key.version == version:
                return key
        return None

    def audit_keys(self) -> Sequence[AuditKey]:
        """Every audit key, oldest first."""
        self._maybe_reload()
        return self._state.audit

    def audit_unkeyed_prefix(self) -> bool:
        """True when the log may begin with unkeyed entries (see the module docstring)."""
        return self._state.audit_unkeyed_prefix

    @property
    def has_audit_keys(self) -> bool:
        """False for a keyring written before the audit chain was keyed."""
        return bool(self._state.audit)

    def audit_rotate(self) -> int:
        """Add a new audit key version and make it current (older ones still verify)."""
        with self._lock:
            self._reload_locked(strict=True)
            state = self._state
            version = max((key.version for key in state.audit), default=0) + 1
            fresh = new_audit_key(version, self._clock())
            # The first audit keys of a keyring in use: its log began unkeyed.
            prefix = state.audit_unkeyed_prefix or not state.audit
            self._commit(replace(state, audit=(*state.audit, fresh), audit_unkeyed_prefix=prefix))
            return version

    def rotate(self) -> int:
        """Add a new KEK version, make it current, save; return the new version."""
        with self._lock:
            self._reload_locked(strict=True)
            state = self._state
            version = max([*state.keks, *state.retired]) + 1
            key = AESGCM.generate_key(bit_length=256)
            keks = {**state.keks, version: _Kek(key, self._clock(), AESGCM(key))}
            self._commit(replace(state, current=version, keks=keks))
            return version

    def retire(self, version: int) -> None:
        """Delete a KEK for good; its number is never reused.

        The caller must first make sure no payload is still wrapped under it
        (rewrap them): afterwards they raise `UnknownKeyVersion` forever.
        """
        with self._lock:
            self._reload_locked(strict=True)
            state = self._state
            if version == state.current:
                raise KeyringError(f"refusing to retire the current key version {version}")
            if version not in state.keks:
                raise UnknownKeyVersion(f"key version {version} is not in the keyring")
            keks = {v: k for v, k in state.keks.items() if v != version}
            retired = {**state.retired, version: self._clock()}
            self._commit(replace(state, keks=keks, retired=retired))

    def _commit(self, state: _State) -> None:
        # Memory changes only once the file is durable, so both always agree.
        self._signature = _write_atomic(self._path, _dump(state))
        self._state = state

    def _maybe_reload(self) -> None:
        """The cheap path of every call: one clock read until the interval is up."""
        if time.monotonic() >= self._next_check:
            self._reload(force=False)

    def _reload(self, *, force: bool) -> None:
        if force:
            with self._lock:
                self._reload_locked(strict=False)
            return
        # Another thread already looking at the file will swap the state in for us.
        if not self._lock.acquire(blocking=False):
            return
        try:
            if time.monotonic() >= self._next_check:
                self._reload_locked(strict=False)
        finally:
            self._lock.release()

    def _reload_locked(self, *, strict: bool) -> None:
        """Re-read the file if it changed since we last read or wrote it (lock held).

        Not strict (serving): a failure keeps the keys in memory, is logged once, and
        is retried at the next interval. Strict (before rotate/retire): it raises, so
        a change is never written on top of a file we could not read.
        """
        self._next_check = time.monotonic() + self._reload_interval
        try:
            try:
                current = _signature(os.stat(self._path))
            except OSError as exc:
                raise KeyringError(f"cannot stat keyring {self._path}: {exc.strerror}") from None
            if current == self._signature:
                return
            data, signature = _read_private(self._path)
            state = _parse(data, self._path)
            if not hmac.compare_digest(state.blind_index_key, self._state.blind_index_key):
                raise KeyringError(
                    f"keyring {self._path} was replaced by a different keyring "
                    "(its blind-index key changed); restart to use it"
                )
        except KeyringError as exc:
            if strict:
                raise
            # KeyringError messages name the path and the offending field, never a value.
            reason = str(exc)
            if reason != self._last_failure:
                log.warning("keyring_reload_failed", path=str(self._path), reason=reason)
            self._last_failure = reason
            return
        self._state, self._signature, self._last_failure = state, signature, None
        log.info(
            "keyring_reloaded",
            path=str(self._path),
            current=state.current,
            versions=sorted(state.keks),
        )

    def __repr__(self) -> str:
        state = self._state
        return (
            f"FileKeyring(path={str(self._path)!r}, current={state.current}, "
            f"versions={sorted(state.keks)}, dev={state.dev})"
        )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _dump(state: _State) -> bytes:
    doc = {
        "format": KEYRING_FORMAT,
        "dev": state.dev,
        "current": state.current,
        "keks": {
            str(v): {"key": _b64(k.key), "created_at": k.created_at.isoformat(), "retired_at": None}
            for v, k in sorted(state.keks.items())
        },
        "retired": [
            {"version": v, "retired_at": at.isoformat()} for v, at in sorted(state.retired.items())
        ],
        "blind_index_key": _b64(state.blind_index_key),
        "created_at": state.created_at.isoformat(),
        "exchange_keys": [
            {"jwk": dict(entry.jwk), "created_at": entry.created_at.isoformat()}
            for entry in state.exchange
        ],
        "audit_keys": [
            {
                "version": key.version,
                "mac_key": _b64(key.mac_key),
                "signing_key": _b64(key.signing_seed),
                "created_at": key.created_at.isoformat(),
            }
            for key in state.audit
        ],
        "audit_unkeyed_prefix": state.audit_unkeyed_prefix,
    }
    return json.dumps(doc, indent=2).encode("utf-8") + b"\n"


def _write_atomic(path: Path, data: bytes) -> _Signature:
    """Temp file (0600) in the same directory, fsync, rename over, fsync the directory.

    Returns the new file's signature (a rename keeps mtime, size and inode).
    """
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # the umask can only narrow 0o600; make it exact
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            signature = _signature(os.fstat(fd))
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise KeyringError(f"cannot write keyring {path}: {exc.strerror}") from None
    return signature


def _read_private(path: Path) -> tuple[bytes, _Signature]:
    """Read the file through one descriptor, so the mode checked is the file read.

    Returns the content and the signature of that same file (not of whatever the
    path names by the time we return).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyringError(f"keyring {path} not found") from None
    except OSError as exc:
        raise KeyringError(f"cannot open keyring {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise KeyringError(f"keyring {path} is not a regular file")
        if st.st_mode & 0o077:
            raise KeyringError(
                f"keyring {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        data = f.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise KeyringError(f"keyring {path} is implausibly large")
    return data, _signature(st)


class _MalformedError(Exception):
    """Internal: names the offending field; `_parse` turns it into a KeyringError."""


def _parse(data: bytes, path: Path) -> _State:
    """Validate every field; messages name the field, never echo its value."""
    try:
        return _parse_doc(json.loads(data))
    except json.JSONDecodeError as exc:
        what = f"not JSON (line {exc.lineno}, column {exc.colno})"
    except UnicodeDecodeError:
        what = "not UTF-8 text"
    except _MalformedError as exc:
        what = str(exc)
    # `from None`: a JSONDecodeError carries the whole document, keys included.
    raise KeyringError(f"keyring {path} is malformed: {what}") from None


def _parse_doc(doc: object) -> _State:
    if not isinstance(doc, dict):
        raise _MalformedError("top level is not an object")
    if unknown := sorted(set(doc) - _TOP_LEVEL_FIELDS):
        raise _MalformedError(f"unknown fields {unknown}")
    if doc.get("format") != KEYRING_FORMAT or not isinstance(doc.get("dev"), bool):
        raise _MalformedError(f"'format' must be {KEYRING_FORMAT} and 'dev' true or false")
    keks_doc, retired_doc = doc.get("keks"), doc.get("retired", [])
    if not isinstance(keks_doc, dict) or not keks_doc or not isinstance(retired_doc, list):
        raise _MalformedError("'keks' must be a non-empty object and 'retired' a list")
    keks: dict[int, _Kek] = {}
    for name, entry in keks_doc.items():
        where = f"keks[{name!r}]"
        if not (name.isascii() and name.isdigit() and str(int(name)) == name):
            raise _MalformedError(f"{where}: version must be an integer without leading zeros")
        if not isinstance(entry, dict) or entry.get("retired_at") is not None:
            raise _MalformedError(f"{where} must be an object with retired_at null")
        key = _key(entry.get("key"), f"{where}.key")
        created_at = _when(entry.get("created_at"), f"{where}.created_at")
        keks[_version(int(name), where)] = _Kek(key, created_at, AESGCM(key))
    retired: dict[int, datetime] = {}
    for i, entry in enumerate(retired_doc):
        if not isinstance(entry, dict):
            raise _MalformedError(f"retired[{i}] must be an object")
        version = _version(entry.get("version"), f"retired[{i}].version")
        retired[version] = _when(entry.get("retired_at"), f"retired[{i}].retired_at")
    current = _version(doc.get("current"), "'current'")
    if current not in keks:
        raise _MalformedError(f"current version {current} has no key")
    if both := sorted(set(keks) & set(retired)):
        raise _MalformedError(f"versions {both} are listed as retired but still have keys")
    return _State(
        dev=doc["dev"],
        current=current,
        keks=keks,
        retired=retired,
        blind_index_key=_key(doc.get("blind_index_key"), "'blind_index_key'"),
        created_at=_when(doc.get("created_at"), "'created_at'"),
        exchange=_exchange_keys(doc.get("exchange_keys", [])),
        audit=_audit_keys(doc.get("audit_keys", [])),
        audit_unkeyed_prefix=_flag(doc.get("audit_unkeyed_prefix", False), "audit_unkeyed_prefix"),
    )


def _flag(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _MalformedError(f"'{where}' must be true or false")
    return value


def _audit_keys(value: object) -> tuple[AuditKey, ...]:
    if not isinstance(value, list):
        raise _MalformedError("'audit_keys' must be a list")
    keys: list[AuditKey] = []
    for i, entry in enumerate(value):
        where = f"audit_keys[{i}]"
        if not isinstance(entry, dict):
            raise _MalformedError(f"{where} must be an object")
        version = _version(entry.get("version"), f"{where}.version")
        if keys and version <= keys[-1].version:
            raise _MalformedError(f"{where}.version must be above the previous one")
        keys.append(
            AuditKey.build(
                version,
                _when(entry.get("created_at"), f"{where}.created_at"),
                _key(entry.get("mac_key"), f"{where}.mac_key"),
                _key(entry.get("signing_key"), f"{where}.signing_key"),
            )
        )
    return tuple(keys)


def _exchange_keys(value: object) -> tuple[_ExchangeKey, ...]:
    if not isinstance(value, list):
        raise _MalformedError("'exchange_keys' must be a list")
    entries: list[_ExchangeKey] = []
    for i, entry in enumerate(value):
        where = f"exchange_keys[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("jwk"), dict):
            raise _MalformedError(f"{where} must be an object with a 'jwk' object")
        doc: dict[str, Any] = entry["jwk"]
        kid = doc.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 128:
            raise _MalformedError(f"{where}.jwk.kid must be a string of 1..128 characters")
        if any(kid == seen.kid for seen in entries):
            raise _MalformedError(f"{where}.jwk.kid is used twice")
        if doc.get("kty") != "EC" or doc.get("crv") != EXCHANGE_CURVE or "d" not in doc:
            raise _MalformedError(f"{where}.jwk must be an EC {EXCHANGE_CURVE} private key")
        try:
            key = ECKey.import_key(doc)
        except (JoseError, ValueError, TypeError):
            raise _MalformedError(f"{where}.jwk is not a valid EC private key") from None
        created_at = _when(entry.get("created_at"), f"{where}.created_at")
        entries.append(_ExchangeKey(kid, created_at, dict(doc), key))
    return tuple(entries)


def _version(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _MalformedError(f"{where} must be a positive integer")
    return value


def _key(value: object, where: str) -> bytes:
    try:
        if not isinstance(value, str):
            raise ValueError
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _MalformedError(f"{where} must be a base64url string") from None
    if len(raw) != KEY_BYTES:
        raise _MalformedError(f"{where} must decode to {KEY_BYTES} bytes")
    return raw


def _when(value: object, where: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _MalformedError(f"{where} must be an ISO 8601 timestamp with a timezone")
    return parsed
