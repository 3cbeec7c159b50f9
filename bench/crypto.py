"""Crypto benchmark (not a test): envelope seal/open cost per 1.6 KB payload.

Usage: .venv/bin/python bench/crypto.py [-n 100000] [--size 1600] [--nonces]

Also times the raw AES-GCM baselines PERFORMANCE.md quotes (one reused AESGCM
object vs a new one per call) so the envelope overhead can be read off, and
with --nonces seals 1,000,000 payloads and checks every nonce is unique.
Results are printed and written as JSON (default bench/results/crypto.json).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from commcentre.crypto import BlindIndex, Envelope, FileKeyring, SealedPayload

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "crypto.json"
BATCH = 10_000  # seal/open in batches so 100k sealed payloads never sit in memory at once


def _per_op_us(n: int, run: Callable[[int], None]) -> float:
    """Microseconds per operation for `run(count)` over n operations in batches."""
    total_ns = 0
    done = 0
    while done < n:
        count = min(BATCH, n - done)
        start = time.perf_counter_ns()
        run(count)
        total_ns += time.perf_counter_ns() - start
        done += count
    return total_ns / n / 1_000


def bench_envelope(envelope: Envelope, n: int, size: int) -> dict[str, float]:
    """Seal then open n payloads of `size` bytes; seal and open timed separately."""
    plaintext = os.urandom(size)
    seal_ns = open_ns = 0
    done = 0
    while done < n:
        ids = [uuid.uuid4() for _ in range(min(BATCH, n - done))]  # not timed
        sealed: list[SealedPayload] = []
        start = time.perf_counter_ns()
        for rid in ids:
            sealed.append(envelope.seal(plaintext, record_id=rid, context="message"))
        seal_ns += time.perf_counter_ns() - start
        start = time.perf_counter_ns()
        for rid, payload in zip(ids, sealed, strict=True):
            envelope.open(payload, record_id=rid, context="message")
        open_ns += time.perf_counter_ns() - start
        done += len(ids)
    return {"seal_us": seal_ns / n / 1_000, "open_us": open_ns / n / 1_000}


def bench_baselines(n: int, size: int) -> dict[str, float]:
    """Raw AES-GCM encrypt with a reused object vs a new one per call."""
    key, plaintext, aad = AESGCM.generate_key(bit_length=256), os.urandom(size), b"aad"
    aead = AESGCM(key)

    def reused(count: int) -> None:
        for _ in range(count):
            aead.encrypt(os.urandom(12), plaintext, aad)

    def fresh(count: int) -> None:
        for _ in range(count):
            AESGCM(key).encrypt(os.urandom(12), plaintext, aad)

    return {
        "aesgcm_encrypt_reused_us": _per_op_us(n, reused),
        "aesgcm_encrypt_new_object_us": _per_op_us(n, fresh),
    }


def bench_blind_index(index: BlindIndex, n: int) -> dict[str, float]:
    """One blind-index digest of a document-number-sized token."""

    def run(count: int) -> None:
        for i in range(count):
            index.digest("document_number", f"X{i:08d}")

    return {"blind_index_digest_us": _per_op_us(n, run)}


def check_nonces(envelope: Envelope, count: int) -> dict[str, Any]:
    """Seal `count` tiny payloads; every payload nonce and KEK-wrap nonce must be unique."""
    record_id = uuid.uuid4()
    payload_nonces: set[bytes] = set()
    wrap_nonces: set[bytes] = set()
    start = time.perf_counter()
    for _ in range(count):
        sealed = envelope.seal(b"x", record_id=record_id, context="message")
        payload_nonces.add(sealed.ciphertext[:12])
        wrap_nonces.add(sealed.wrapped_key[:12])
    return {
        "count": count,
        "unique_payload_nonces": len(payload_nonces),
        "unique_wrap_nonces": len(wrap_nonces),
        "all_unique": len(payload_nonces) == len(wrap_nonces) == count,
        "seconds": round(time.perf_counter() - start, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a summary, write JSON; exit 1 if a nonce repeated."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", type=int, default=100_000, help="operations per measurement")
    parser.add_argument("--size", type=int, default=1600, help="payload bytes (default 1.6 KB)")
    parser.add_argument("--nonces", action="store_true", help="also check 1,000,000 nonces")
    parser.add_argument("--nonce-count", type=int, default=1_000_000, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        keyring = FileKeyring.generate(Path(tmp) / "keyring.json", dev=True)
        envelope = Envelope(keyring)
        envelope.open(  # warm-up: first-call costs out of the measurement
            envelope.seal(b"w", record_id=(rid := uuid.uuid4()), context="message"),
            record_id=rid,
            context="message",
        )
        timings = bench_envelope(envelope, args.n, args.size)
        timings |= bench_baselines(args.n, args.size)
        timings |= bench_blind_index(BlindIndex(keyring.blind_index_key()), args.n)
        nonces = check_nonces(envelope, args.nonce_count) if args.nonces else None

    per_op_us = {name: round(value, 3) for name, value in timings.items()}
    result = {
        "benchmark": "crypto",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n": args.n,
        "payload_bytes": args.size,
        "per_op_us": per_op_us,
        "nonces": nonces,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs",
    }
    for name, value in per_op_us.items():
        print(f"{name:32} {value:9.3f} us")
    if nonces is not None:
        print(f"nonces: {nonces}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 1 if nonces is not None and not nonces["all_unique"] else 0


if __name__ == "__main__":
    sys.exit(main())
