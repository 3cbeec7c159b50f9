"""Writer benchmark (not a test): the group-commit IngestWriter alone, no HTTP.

Usage: .venv/bin/python bench/writer.py [--messages 3000] [--serial-messages 400]
                                        [--concurrency 1,16,64,256] [--runs 3]
                                        [--batch-max 256] [--batch-wait-ms 1.0]
                                        [--no-idempotency-keys] [--partners 2]
                                        [--busy-loop-ms 0] [--switch-interval-ms 5]
                                        [--no-postgres]
                                        [--profile sqlite|postgres] [--label TEXT]
                                        [--output bench/results/writer.json]

For each store (a fresh SQLite file under $TMPDIR; PostgreSQL database
bench_writer on 127.0.0.1:5432, created if missing, public schema recreated,
skipped when unreachable or with --no-postgres), the schema is migrated with
`commcentre.migrate.upgrade`, one API client is created with
`auth.service.create_client`, and one IngestWriter is started with the app's
defaults (batch_max 256, batch_wait 1 ms).

Per concurrency level: --messages messages (--serial-messages at concurrency 1)
are prepared beforehand with `messages.service.prepare_outbound` (sealed and
indexed, each with its own Idempotency-Key unless --no-idempotency-keys, and
addressed to --partners partners, i.e. that many outbox rows, when this tree's
prepare_outbound takes destinations), then
`concurrency` tasks submit them, each waiting for its commit before the next,
like HTTP requests would. Reported: msg/s, batches written, messages per batch,
the time the writer spent inside each batch's transaction (mean, p50, p99), the
submit-to-commit latency per message (p50, p99), and the submitting loop's lag
(how late a 1 ms timer fires there: what the writer thread costs a request loop).
The median of --runs runs by msg/s is kept. After the runs, every submitted
message must be stored and the audit chain must verify.

--busy-loop-ms MS measures every level a second time while the submitting loop
runs pure Python in MS-long slices (yielding in between), as a saturated
request-handling loop does: the writer thread then competes for the GIL, which
it releases in every sqlite3 step and asyncpg/aiosqlite round trip.

--profile STORE runs cProfile on the writer thread during that store's largest
concurrency level and prints the heaviest functions (cumulative and own time).

Exit status: 0 measured, 1 a message was lost or refused or the chain broke.
"""

import argparse
import asyncio
import contextlib
import cProfile
import inspect
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import Column, func, insert, select

import commcentre
from commcentre.audit.service import audit_session_info, verify_chain
from commcentre.auth.deps import Principal
from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.crypto import BlindIndex, Envelope, FileKeyring
from commcentre.db import Base, Database
from commcentre.messages.ingest import IngestWriter, PendingMessage
from commcentre.messages.models import Message
from commcentre.messages.schemas import MessageIn
from commcentre.messages.service import MessageVault, prepare_outbound
from commcentre.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "bench" / "results" / "writer.json"

PG_HOST_DSN = "postgresql://postgres@127.0.0.1:5432"
PG_DATABASE = "bench_writer"
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DATABASE}"

COMMCENTRE_DIR = str(Path(commcentre.__file__).resolve().parent)  # which tree is measured
WARMUP_MESSAGES = 300
PACKAGES = ("sqlalchemy", "aiosqlite", "asyncpg", "pydantic", "cryptography")


def example_message() -> MessageIn:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.factories import EXAMPLE_MESSAGE

    return MessageIn.model_validate(EXAMPLE_MESSAGE)


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class TimedWriter:
    """An IngestWriter whose batches are timed (and optionally profiled) on its thread."""

    def __init__(self, writer: IngestWriter) -> None:
        self.writer = writer
        self.batch_seconds: list[float] = []
        self.profiler: cProfile.Profile | None = None
        self.last_profiler: cProfile.Profile | None = None
        original: Callable[[Sequence[PendingMessage]], Awaitable[None]] = writer._write

        async def timed(batch: Sequence[PendingMessage]) -> None:
            profiler = self.profiler
            if profiler is not None:
                profiler.enable()
            started = time.perf_counter()
            try:
                await original(batch)
            finally:
                self.batch_seconds.append(time.perf_counter() - started)
                if profiler is not None:
                    profiler.disable()

        # The writer looks `_write` up on the instance: the wrapper runs on its thread.
        writer._write = timed  # type: ignore[method-assign]


async def keep_busy(stop: asyncio.Event, slice_seconds: float) -> None:
    """Hold this thread on the CPU like a saturated request loop: run Python for
    `slice_seconds` at a time, letting the loop run its callbacks in between.
    The writer thread then competes for the GIL as it does under HTTP load."""
    while not stop.is_set():
        end = time.perf_counter() + slice_seconds
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(0)


async def probe_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late a 1 ms timer fires on this loop: a request loop's stall, e.g. waiting
    for the GIL while the writer thread holds it."""
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - started - 0.001)


async def submit_all(
    writer: IngestWriter,
    pending: list[PendingMessage],
    concurrency: int,
    *,
    busy_ms: float = 0,
    lags: list[float] | None = None,
) -> list[float]:
    """Submit with `concurrency` sequential submitters; per-message latencies (s)."""
    latencies: list[float] = []
    queue = iter(pending)

    async def submitter() -> None:
        for message in queue:
            started = time.perf_counter()
            outcome = await writer.submit(message)
            latencies.append(time.perf_counter() - started)
            if outcome.status_code != 202:
                raise RuntimeError(f"message refused: {outcome.status_code}")

    stop = asyncio.Event()
    helpers = [asyncio.create_task(probe_lag(stop, lags if lags is not None else []))]
    if busy_ms > 0:
        helpers.append(asyncio.create_task(keep_busy(stop, busy_ms / 1000)))
    try:
        await asyncio.gather(*(submitter() for _ in range(concurrency)))
    finally:
        stop.set()
        await asyncio.gather(*helpers)
    return latencies


@dataclass(frozen=True, slots=True)
class Workload:
    """What every prepared message is made of."""

    message: MessageIn
    principal: Principal
    vault: MessageVault
    keys: bool
    # Keyword arguments prepare_outbound takes in this tree (destinations, when it has them).
    extra: dict[str, Any]

    def prepare(self, count: int) -> list[PendingMessage]:
        # prepare_outbound makes the future on the running loop: call it from the loop.
        return [
            prepare_outbound(
                self.message,
                principal=self.principal,
                idempotency_key=f"bench-{uuid.uuid4()}" if self.keys else None,
                vault=self.vault,
                now=utcnow(),
                **self.extra,
            )
            for _ in range(count)
        ]


def _dummy(column: Column[Any], now: datetime) -> Any:
    """A value that fits a NOT NULL column with no default (partner rows are never read)."""
    python_type: type = getattr(column.type, "impl", column.type).python_type  # TypeDecorators
    samples: dict[type, Any] = {
        str: "bench",
        uuid.UUID: uuid.uuid4(),
        bool: True,
        int: 1,
        float: 1.0,
        datetime: now,
        bytes: b"bench",
        list: [],
        object: [],  # JSON
        dict: {},
    }
    return samples[python_type]


async def create_partners(db: Database, count: int) -> list[str]:
    """`count` partner rows for the outbox to point at, built from the table's columns
    so that the benchmark follows the partners model as it changes."""
    table = Base.metadata.tables["partners"]
    now = utcnow()
    ids = [f"bench-partner-{n}" for n in range(count)]
    rows = []
    for partner_id in ids:
        row = {
            column.name: _dummy(column, now)
            for column in table.columns
            if not column.nullable and column.default is None and column.server_default is None
        }
        row["id"] = partner_id
        rows.append(row)
    if rows:
        async with db.write_sessions() as session, session.begin():
            await session.execute(insert(table), rows)
    return ids


async def measure_level(
    timed: TimedWriter,
    concurrency: int,
    count: int,
    *,
    workload: Workload,
    profile: bool,
    busy_ms: float,
) -> dict[str, Any]:
    pending = workload.prepare(count)
    writer = timed.writer
    batches_before = writer.batches_written
    timed.batch_seconds.clear()
    if profile:
        timed.profiler = cProfile.Profile()
    started = time.perf_counter()
    lags: list[float] = []
    latencies = await submit_all(writer, pending, concurrency, busy_ms=busy_ms, lags=lags)
    elapsed = time.perf_counter() - started
    if profile:
        timed.last_profiler = timed.profiler
    timed.profiler = None
    batches = writer.batches_written - batches_before
    batch_ms = [s * 1000 for s in timed.batch_seconds]
    return {
        "concurrency": concurrency,
        "busy_loop_ms": busy_ms,
        "messages": count,
        "seconds": round(elapsed, 3),
        "msg_per_s": round(count / elapsed, 1),
        "batches": batches,
        "messages_per_batch": round(count / max(batches, 1), 1),
        "batch_ms_mean": round(statistics.fmean(batch_ms), 3) if batch_ms else 0.0,
        "batch_ms_p50": round(percentile(batch_ms, 0.5), 3),
        "batch_ms_p99": round(percentile(batch_ms, 0.99), 3),
        "latency_ms_p50": round(percentile(latencies, 0.5) * 1000, 3),
        "latency_ms_p99": round(percentile(latencies, 0.99) * 1000, 3),
        "loop_lag_ms_p50": round(percentile(lags, 0.5) * 1000, 3),
        "loop_lag_ms_p99": round(percentile(lags, 0.99) * 1000, 3),
    }


def _show(store: str, level: dict[str, Any]) -> None:
    busy = " busy" if level["busy_loop_ms"] else ""
    print(
        f"  {store:8}{busy:5} c={level['concurrency']:<4} {level['msg_per_s']:9,.0f} msg/s  "
        f"{level['batches']:6,} batches  {level['messages_per_batch']:6.1f} msg/batch  "
        f"batch {level['batch_ms_mean']:7.2f} ms (p50 {level['batch_ms_p50']:.2f}, "
        f"p99 {level['batch_ms_p99']:.2f})  latency p50 {level['latency_ms_p50']:.2f} ms "
        f"p99 {level['latency_ms_p99']:.2f} ms  loop lag p99 {level['loop_lag_ms_p99']:.2f} ms",
        flush=True,
    )


def _print_profile(profiler: cProfile.Profile) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(35)
    stats.sort_stats("tottime").print_stats(35)
    return out.getvalue()


async def run_store(name: str, url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    keyring = FileKeyring.generate(workdir / f"keyring-{name}.json", dev=True)
    vault = MessageVault(
        envelope=Envelope(keyring),
        blind_index=BlindIndex(keyring.blind_index_key()),
        retention=timedelta(days=30),
    )
    db = Database(url, session_info=audit_session_info(keyring))
    try:
        async with db.write_sessions() as session, session.begin():
            issued = await create_client(
                session, name="bench-writer", scopes=["messages:write"], actor="bench", now=utcnow()
            )
        client_id = issued.client.id
        extra: dict[str, Any] = {}
        if "destinations" in inspect.signature(prepare_outbound).parameters:
            extra["destinations"] = await create_partners(db, args.partners)
        workload = Workload(
            message=example_message(),
            principal=Principal(client_id, "bench", frozenset({"messages:write"})),
            vault=vault,
            keys=args.keys,
            extra=extra,
        )
        writer = IngestWriter(
            url,
            clock=utcnow,
            batch_max=args.batch_max,
            batch_wait=args.batch_wait_ms / 1000,
            idempotency_ttl=timedelta(hours=24),
            session_info=db.session_info,
        )
        timed = TimedWriter(writer)
        await writer.start()
        levels: list[dict[str, Any]] = []
        submitted = 0
        modes = [0.0] if args.busy_loop_ms <= 0 else [0.0, args.busy_loop_ms]
        try:
            await submit_all(writer, workload.prepare(WARMUP_MESSAGES), 16)
            submitted += WARMUP_MESSAGES
            for busy_ms in modes:
                for concurrency in args.concurrency:
                    count = args.serial_messages if concurrency == 1 else args.messages
                    profile = (
                        args.profile == name
                        and concurrency == max(args.concurrency)
                        and busy_ms == modes[-1]
                    )
                    runs = []
                    for run in range(args.runs):
                        runs.append(
                            await measure_level(
                                timed,
                                concurrency,
                                count,
                                workload=workload,
                                profile=profile and run == 0,
                                busy_ms=busy_ms,
                            )
                        )
                        submitted += count
                    runs.sort(key=lambda level: level["msg_per_s"])
                    median = runs[(len(runs) - 1) // 2]
                    median["runs_msg_per_s"] = [level["msg_per_s"] for level in runs]
                    levels.append(median)
                    _show(name, median)
        finally:
            await writer.stop()
        profiler = timed.last_profiler
        async with db.read_sessions() as session:
            stored = await session.scalar(
                select(func.count()).select_from(Message).where(Message.client_id == client_id)
            )
            chain = await verify_chain(session)
        result: dict[str, Any] = {
            "url": url if name == "postgres" else "sqlite+aiosqlite:///$TMPDIR/.../writer.db",
            "destinations_per_message": len(extra.get("destinations", [])),
            "levels": levels,
            "submitted": submitted,
            "stored": stored,
            "chain_ok": chain.ok,
        }
        if profiler is not None:
            profile_text = _print_profile(profiler)
            print(profile_text)
            result["profile"] = profile_text.splitlines()
        return result
    finally:
        await db.dispose()


async def pg_prepare() -> str | None:
    """Create bench_writer if missing and recreate its public schema; None when unreachable."""
    try:
        conn = await asyncpg.connect(f"{PG_HOST_DSN}/postgres", timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}", flush=True)
        return None
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE)
        if not exists:
            await conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(f"{PG_HOST_DSN}/{PG_DATABASE}", timeout=5)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    return version


def machine_info() -> dict[str, Any]:
    versions: dict[str, str] = {}
    for package in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def parse_levels(text: str) -> list[int]:
    levels = sorted({int(part) for part in text.split(",") if part.strip()})
    if not levels or levels[0] < 1:
        raise argparse.ArgumentTypeError("concurrency levels are positive integers")
    return levels


async def amain(args: argparse.Namespace) -> int:
    report: dict[str, Any] = {
        "benchmark": "writer",
        "label": args.label,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commcentre": COMMCENTRE_DIR,
        "machine": machine_info(),
        "parameters": {
            "messages": args.messages,
            "serial_messages": args.serial_messages,
            "concurrency": args.concurrency,
            "runs": args.runs,
            "batch_max": args.batch_max,
            "batch_wait_ms": args.batch_wait_ms,
            "idempotency_keys": args.keys,
            "partners": args.partners,
            "busy_loop_ms": args.busy_loop_ms,
            "switch_interval_ms": sys.getswitchinterval() * 1000,
        },
        "stores": {},
    }
    print(f"commcentre from {report['commcentre']}", flush=True)
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as tmp:
        workdir = Path(tmp)
        stores = [("sqlite", f"sqlite+aiosqlite:///{workdir / 'writer.db'}")]
        if not args.no_postgres:
            version = await pg_prepare()
            if version is not None:
                report["postgres_version"] = version
                stores.append(("postgres", PG_URL))
        for name, url in stores:
            result = await run_store(name, url, args, workdir)
            report["stores"][name] = result
            if result["stored"] != result["submitted"] or not result["chain_ok"]:
                print(
                    f"  {name}: {result['submitted']} submitted, {result['stored']} stored, "
                    f"chain ok: {result['chain_ok']}",
                    flush=True,
                )
                failed = True
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--serial-messages", type=int, default=400)
    parser.add_argument("--concurrency", type=parse_levels, default=[1, 16, 64, 256])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-max", type=int, default=256)
    parser.add_argument("--batch-wait-ms", type=float, default=1.0)
    parser.add_argument("--no-idempotency-keys", dest="keys", action="store_false")
    parser.add_argument(
        "--partners",
        type=int,
        default=2,
        help="outbox rows per message (partners created for them), when the tree has an outbox",
    )
    parser.add_argument(
        "--busy-loop-ms",
        type=float,
        default=0.0,
        help="also measure with the submitting loop kept busy in slices of this many ms "
        "(as a saturated request loop keeps it), the writer competing for the GIL",
    )
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        help="sys.setswitchinterval for this process (Python's default is 5 ms): how long "
        "a thread that wants the GIL waits before forcing a busy holder to give it up",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--profile", choices=("sqlite", "postgres"))
    parser.add_argument("--label", default="")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
