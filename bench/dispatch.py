"""Dispatch benchmark (not a test): deliveries/s, CPU per message, accept-to-receipt latency.

Usage: .venv/bin/python bench/dispatch.py [--messages 2000] [--concurrency 32] [--runs 3]
                                          [--rate 100] [--latency-seconds 10]
                                          [--no-postgres] [--no-pgqueuer]
                                          [--output bench/results/dispatch.json]

Every target delivers to one receiver, with the same concurrency, in one run.

Ceilings: each POSTs the same kind of prepared, signed webhook requests (the bodies
and headers the webhook adapter sends, from RequestFactory), nothing else:

  aiohttp        raw aiohttp: one ClientSession on a TCPConnector(limit=concurrency),
                 no cookies, session.post(url, data=body, headers=headers), body read.
                 THE ceiling: the deliveries/s target is a ratio to it.
  httpx          raw httpx on its own transport (httpcore, h11, anyio)
  httpx-aiohttp  the client the dispatcher uses (bootstrap.build_http_client: httpx's
                 API on aiohttp's pool), so "vs httpx-aiohttp" is commcentre's own cost
                 above its transport

All three get the dispatcher's timeouts; their runs are interleaved (run 1 of each,
then run 2 of each, ...), so a machine that slows down mid-run slows all of them. For
each, the bench process's CPU per POST (cores x seconds / requests) is the transport's
cost of one delivery.

commcentre and the comparison:

  sqlite    commcentre's Dispatcher, built as `commcentre serve` builds it, on a
            fresh SQLite file
  postgres  the same on PostgreSQL, database bench_dispatch on 127.0.0.1:5432
            (created if missing, public schema recreated)
  pgqueuer  pgqueuer's QueueManager on that same PostgreSQL: one job per delivery,
            payload = the prepared request, an entrypoint that POSTs it with the
            dispatcher's httpx client (it neither decrypts nor signs: a lower bound
            of what a queue library costs, not a full gateway). A comparison only:
            its ratio is shown, it is no goal.

Everything on the sending side runs on the event loop `commcentre serve` runs on
(uvloop, commcentre.loops), as does a `commcentre worker` process.
This process logs as `commcentre serve` does in production (JSON lines, one per
delivery attempt) into a file in its temporary directory, so each line costs what it
costs there; a `commcentre worker` process logs as it does by default (readable lines)
into its own log file there.

The receiver is a raw ASGI app (`bench.dispatch:receiver_app`) under uvicorn
(uvloop, httptools) in a process of its own, so its CPU never shares a GIL with
the sender and is never counted as the sender's. It answers 200 and records each
request's `webhook-id` and arrival time (wall clock; the sender runs on the same
machine, so the clocks agree).

Throughput (median of --runs by deliveries/s): --messages messages are ingested
(prepare_outbound + IngestWriter.submit: validated, sealed, one outbox row each for
one webhook partner, audited) while no dispatcher runs; then one starts and drains
them. deliveries/s = messages / (last receipt - start). Every measured run starts
with a fresh HTTP client (empty pool) and reports the requests it actually kept in
flight (mean, peak: httpx event hooks, or counted around raw aiohttp's post), next
to the cores each process used and those the rest of the machine took ("others": a
busy machine understates every figure; compare ratios within one run).

CPU per message is commcentre's own processes' CPU (user + system, every thread:
the ingest writer's thread included) divided by the messages:

  throughput  ingest_cpu_ms_per_message: this process during the ingest of the
              backlog; delivery_cpu_ms_per_message: this process during the drain
              (claim, decrypt, sign, POST, record the outcome); cpu_ms_per_message:
              their sum. Median of the runs, each figure on its own. Only this
              process runs commcentre then, so it is commcentre's whole CPU.
  fixed rate  (this process [+ the `commcentre worker` process]) / messages, from
              the first accept to the last receipt. This process also generates the
              load there (the schedule, one task per message, the receipt polling
              after the schedule): a few microseconds per message, counted in.

The receiver's CPU is never in these figures. PostgreSQL's server CPU (its processes,
less client backends of other databases) is reported separately for the PostgreSQL
targets (postgres_cpu_ms_per_message) and is not part of the target: the target is
judged on commcentre's processes.

Latency (one run of --latency-seconds): a dispatcher runs idle while messages are
accepted at --rate per second on a fixed schedule (open loop); accept-to-receipt
is receipt time - the message's created_at. The dispatcher runs in the accepting
process (the embedded shape, woken by the ingest writer's commits), and on
PostgreSQL once more as a `commcentre worker` process woken by LISTEN/NOTIFY (the
scaled-out shape). pgqueuer gets the same: jobs enqueued at that rate, receipt -
enqueue time.

Targets, for sqlite and postgres:

  ratio_to_aiohttp_ok            deliveries/s >= 50% of raw aiohttp's, same run
  cpu_per_message_ok             throughput runs' median cpu_ms_per_message <= 1.5 ms
  fixed_rate_cpu_per_message_ok  the judged fixed-rate run's cpu_ms_per_message <= 1.5 ms
  latency_p50_ok, latency_p99_ok accept-to-receipt p50 <= 15 ms and p99 <= 60 ms at
                                 --rate, judged on SQLite's embedded run and on
                                 PostgreSQL's worker run (PostgreSQL's embedded run
                                 is measured and reported, not judged)
  nothing_lost                   a target that loses or mangles a delivery fails
                                 whatever its speed

Exit status: 0 measured (whatever the verdict), 1 a delivery was lost or
unexpected, 2 the receiver or a store could not be set up.
"""

import argparse
import asyncio
import contextlib
import http.client
import math
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import metadata, util
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import orjson
import structlog
from pydantic import SecretStr

from commcentre import loops
from commcentre.adapters.base import AdapterContext, DeliveryContext, OutboundMessage, PartnerView
from commcentre.adapters.http import HttpPushConfig, sign
from commcentre.adapters.netguard import system_resolver
from commcentre.adapters.webhook import WebhookAdapter
from commcentre.auth.deps import Principal
from commcentre.auth.service import create_client
from commcentre.bootstrap import (
    build_adapters,
    build_dispatcher,
    build_http_client,
    build_vault,
    open_database,
)
from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.crypto import FileKeyring
from commcentre.db import Database
from commcentre.delivery.dispatcher import Dispatcher
from commcentre.destinations import DestinationRules
from commcentre.ids import new_id
from commcentre.logs import configure_logging
from commcentre.messages.ingest import IngestOutcome, IngestWriter, PendingMessage
from commcentre.messages.schemas import MessageIn
from commcentre.messages.service import MessageVault, prepare_outbound
from commcentre.migrate import upgrade
from commcentre.partners import service as partners
from commcentre.partners.schemas import PartnerCreate, generate_signing_secret

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "bench" / "results" / "dispatch.json"

PG_HOST_DSN = "postgresql://postgres@127.0.0.1:5432"
PG_DATABASE = "bench_dispatch"
PG_DSN = f"{PG_HOST_DSN}/{PG_DATABASE}"
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DATABASE}"

PARTNER = "bench-receiver"
CEILINGS = ("aiohttp", "httpx", "httpx-aiohttp")
TARGET_RATIO_TO_AIOHTTP = 0.50
TARGET_CPU_MS_PER_MESSAGE = 1.5
TARGET_LATENCY_P50_MS = 15.0
TARGET_LATENCY_P99_MS = 60.0
# The fixed-rate run each store's latency and fixed-rate CPU are judged on.
JUDGED_FIXED_RATE = {"sqlite": "latency_run", "postgres": "latency_run_worker"}
STARTUP_SECONDS = 60.0
DRAIN_SECONDS = 300.0
CONTENDED_CORES = 0.15  # other processes busier than this during a run: say so
PACKAGES = (
    "aiohttp",
    "httpx-aiohttp",
    "yarl",
    "multidict",
    "httpx",
    "httpcore",
    "anyio",
    "sniffio",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "pgqueuer",
)


class BenchError(Exception):
    """The benchmark cannot go on (exit 2)."""


# --- the receiver (runs in its own process: `uvicorn bench.dispatch:receiver_app`) ----------

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_receipts: list[tuple[str, float]] = []


async def receiver_app(scope: Scope, receive: Receive, send: Send) -> None:
    """POST /hook: record (webhook-id, arrival time), answer 200. GET /receipts: hand over
    and forget what was recorded. GET /healthz."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    status, body = 200, b"{}"
    path = scope["path"]
    if path == "/hook":
        at = time.time()
        webhook_id = next((v for k, v in scope["headers"] if k == b"webhook-id"), b"")
        _receipts.append((webhook_id.decode(), at))
    elif path == "/receipts":
        body = orjson.dumps(_receipts)
        _receipts.clear()
    elif path != "/healthz":
        status = 404
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(port: int, path: str, timeout: float = 10) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass(frozen=True)
class ReceiverProcess:
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def take_receipts(self) -> list[tuple[str, float]]:
        """What arrived since the last call: (webhook-id, wall-clock arrival)."""
        status, body = _get(self.port, "/receipts", timeout=30)
        if status != 200:
            raise BenchError(f"the receiver answered {status} to GET /receipts")
        return [(str(i), float(t)) for i, t in orjson.loads(body)]


@contextlib.contextmanager
def receiver(log: Path) -> Iterator[ReceiverProcess]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.dispatch:receiver_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--lifespan",
        "off",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "2048",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise BenchError(f"the receiver exited with {process.returncode}: see {log}")
            with contextlib.suppress(OSError):
                if _get(port, "/healthz", timeout=2)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"the receiver did not answer in {STARTUP_SECONDS:.0f} s")
            time.sleep(0.1)
        yield ReceiverProcess(port, process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()


# --- measuring ----------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def _cpu_seconds(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pid_cpu_seconds(pid: int) -> float:
    try:
        return _cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return 0.0


_CLIENT_ADDRESS = re.compile(r"\S+\(\d+\)|\[local\]")  # "127.0.0.1(43210)" in a backend's title


def _other_database_backend(process: Path) -> bool:
    """Whether a postgres process is a client backend of a database other than ours (its
    title: "postgres: [cluster: ]user database address(port) activity")."""
    try:
        words = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode().split()
    except (OSError, UnicodeDecodeError):
        return False
    for n, word in enumerate(words[2:], start=2):
        if _CLIENT_ADDRESS.fullmatch(word):
            return words[n - 1] != PG_DATABASE
    return False


def _postgres_cpu_seconds() -> float:
    """PostgreSQL's processes: the server, its helpers and the backends of bench_dispatch
    (other work on the machine may use other databases of the same server)."""
    total = 0.0
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = path.read_text()
        except OSError:
            continue
        if stat[stat.find("(") + 1 : stat.rfind(")")].startswith(
            "postgres"
        ) and not _other_database_backend(path.parent):
            total += _cpu_seconds(stat)
    return total


def _self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """Cores busy between start and stop: this process ("bench", every thread), the
    receiver, a worker process if any, PostgreSQL, and the rest of the machine
    (`others`: competition for the cores); `seconds` holds the CPU seconds of each.

    This process's clock is read last on start and first on stop, so the meter's own
    walk through /proc is not counted as this process's work."""

    def __init__(self, receiver_pid: int, worker_pid: int | None = None) -> None:
        self._pids = {"receiver": receiver_pid}
        if worker_pid is not None:
            self._pids["worker"] = worker_pid
        self._start: dict[str, float] = {}
        self._jiffies = (0, 0)
        self.seconds: dict[str, float] = {}

    def _others(self) -> dict[str, float]:
        sample = {name: _pid_cpu_seconds(pid) for name, pid in self._pids.items()}
        return sample | {"postgres": _postgres_cpu_seconds()}

    def start(self) -> None:
        others, self._jiffies = self._others(), _machine_jiffies()
        self._start = others | {"at": time.monotonic(), "bench": _self_cpu_seconds()}

    def stop(self) -> dict[str, float]:
        end = {"at": time.monotonic(), "bench": _self_cpu_seconds()}
        end |= self._others()
        busy1, total1 = _machine_jiffies()
        busy0, total0 = self._jiffies
        elapsed = max(end.pop("at") - self._start["at"], 1e-9)
        self.seconds = {name: max(end[name] - self._start[name], 0.0) for name in end}
        cores = {name: used / elapsed for name, used in self.seconds.items()}
        machine = (busy1 - busy0) / max(total1 - total0, 1) * (os.cpu_count() or 1)
        cores["others"] = max(machine - sum(cores.values()), 0.0)
        cores["machine"] = machine
        return {k: round(v, 2) for k, v in cores.items()}

    def ms_per(self, count: int, *names: str) -> float:
        """CPU milliseconds of the named processes (summed) per item, after stop()."""
        return round(sum(self.seconds[name] for name in names) * 1000 / max(count, 1), 4)


class InFlight:
    """Requests sent and not yet answered (response headers in): the time-weighted mean
    and the peak. An httpx client reports through its event hooks, a raw aiohttp sender
    calls sent() and answered() around its post. Nominal concurrency is not always what
    a sender keeps."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self._area = 0.0
        self._start = self._since = time.monotonic()

    def _move(self, step: int) -> None:
        at = time.monotonic()
        self._area += self.now * (at - self._since)
        self._since = at
        self.now += step
        self.peak = max(self.peak, self.now)

    def sent(self) -> None:
        self._move(1)

    def answered(self) -> None:
        self._move(-1)

    async def _sent(self, _request: httpx.Request) -> None:
        self._move(1)

    async def _answered(self, _response: httpx.Response) -> None:
        self._move(-1)

    def watch(self, http: httpx.AsyncClient) -> httpx.AsyncClient:
        http.event_hooks = {"request": [self._sent], "response": [self._answered]}
        return http

    def summary(self) -> dict[str, float]:
        self._move(0)
        mean = self._area / max(self._since - self._start, 1e-9)
        return {"mean": round(mean, 1), "peak": self.peak}


@dataclass
class RunResult:
    """One measured run of one target."""

    deliveries: int
    seconds: float  # start to last receipt
    lost: int
    unexpected: int
    duplicates: int
    latency_ms: dict[str, float]
    cores: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "seconds": round(self.seconds, 4),
            "deliveries_per_s": round(self.rate, 1),
            "received": self.deliveries - self.lost,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "duplicates": self.duplicates,
            "latency_ms": self.latency_ms,
            "cores": self.cores,
            **self.extra,
        }


def judge(
    sent_at: dict[str, float],
    receipts: Sequence[tuple[str, float]],
    started: float,
    cores: dict[str, float],
    *,
    seconds: float | None = None,
    refused: int = 0,
    **extra: Any,
) -> RunResult:
    """Match receipts to what was sent: lost, unexpected, duplicates, and the latency of
    each delivery's first arrival. `seconds` defaults to start-to-last-receipt."""
    first: dict[str, float] = {}
    unexpected = duplicates = 0
    for webhook_id, at in receipts:
        if webhook_id not in sent_at:
            unexpected += 1
        elif webhook_id in first:
            duplicates += 1
        else:
            first[webhook_id] = at
    latencies = [(first[i] - sent_at[i]) * 1000 for i in first]
    latency = {
        "p50": round(percentile(latencies, 0.50), 2),
        "p90": round(percentile(latencies, 0.90), 2),
        "p99": round(percentile(latencies, 0.99), 2),
        "max": round(max(latencies, default=math.nan), 2),
    }
    if seconds is None:
        seconds = max(first.values(), default=started) - started
    lost = len(sent_at) - len(first) + refused
    return RunResult(len(sent_at), seconds, lost, unexpected, duplicates, latency, cores, extra)


def median_run(runs: list[RunResult]) -> RunResult:
    return sorted(runs, key=lambda run: run.rate)[(len(runs) - 1) // 2]


def _show(name: str, label: str, run: RunResult) -> None:
    flag = f"  LOST {run.lost} UNEXPECTED {run.unexpected}" if run.lost or run.unexpected else ""
    cores = " ".join(f"{k} {v:.2f}" for k, v in run.cores.items() if k != "machine")
    in_flight = run.extra.get("in_flight")
    sending = f"  in flight {in_flight['mean']:.0f} (peak {in_flight['peak']})" if in_flight else ""
    cpu = ""
    if "cpu_ms_per_post" in run.extra:
        cpu = f"  cpu {run.extra['cpu_ms_per_post']:.3f} ms/POST"
    elif "ingest_cpu_ms_per_message" in run.extra:
        cpu = (
            f"  cpu {run.extra['ingest_cpu_ms_per_message']:.3f} ingest + "
            f"{run.extra['delivery_cpu_ms_per_message']:.3f} delivery = "
            f"{run.extra['cpu_ms_per_message']:.3f} ms/msg"
        )
    elif "cpu_ms_per_message" in run.extra:
        cpu = f"  cpu {run.extra['cpu_ms_per_message']:.3f} ms/msg"
    elif "delivery_cpu_ms_per_message" in run.extra:
        cpu = f"  cpu {run.extra['delivery_cpu_ms_per_message']:.3f} delivery ms/msg"
    if "postgres_cpu_ms_per_message" in run.extra:
        cpu += f" (postgres {run.extra['postgres_cpu_ms_per_message']:.3f})"
    print(
        f"  {name:13} {label:11} {run.rate:6,.0f} deliveries/s  {run.deliveries:5,} in "
        f"{run.seconds:6.2f} s  latency p50 {run.latency_ms['p50']:7.1f} ms p99 "
        f"{run.latency_ms['p99']:7.1f} ms  dup {run.duplicates}{sending}{cpu}  "
        f"cores: {cores}{flag}",
        flush=True,
    )


# --- what gets delivered ------------------------------------------------------------------


def example_message() -> MessageIn:
    """tests/factories.py EXAMPLE_MESSAGE, addressed to the benchmark's partner."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.factories import EXAMPLE_MESSAGE

    return MessageIn.model_validate({**EXAMPLE_MESSAGE, "recipients": [PARTNER]})


@dataclass(frozen=True)
class PreparedRequest:
    webhook_id: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class RequestFactory:
    """Makes the requests the webhook adapter sends (same body, same headers), signed."""

    adapter: WebhookAdapter
    partner: PartnerView
    content: MessageIn

    def make(self, count: int) -> list[PreparedRequest]:
        config = self.partner.config
        assert isinstance(config, HttpPushConfig)
        host = config.url.split("/")[2]
        out: list[PreparedRequest] = []
        for _ in range(count):
            delivery_id, now = new_id(), utcnow()
            outbound = OutboundMessage(id=new_id(), created_at=now, content=self.content)
            context = DeliveryContext(delivery_id=delivery_id, attempt=1, timestamp=now)
            body = orjson.dumps(self.adapter.build_body(outbound, self.partner, context))
            timestamp = math.floor(now.timestamp())
            signature = sign(str(delivery_id), timestamp, body, self.partner.signing_secrets)
            headers = {
                "host": host,
                "content-type": "application/json",
                "accept-encoding": "identity",
                "user-agent": "commcentre",
                "webhook-id": str(delivery_id),
                "webhook-timestamp": str(timestamp),
                "webhook-signature": signature,
            }
            out.append(PreparedRequest(str(delivery_id), body, headers))
        return out


def _answered(status: int) -> None:
    if status != 200:
        raise BenchError(f"the receiver answered {status}")


async def post_prepared(http: httpx.AsyncClient, url: str, request: PreparedRequest) -> None:
    response = await http.post(url, content=request.body, headers=request.headers)
    _answered(response.status_code)


# --- ceilings: raw aiohttp, raw httpx, httpx on aiohttp -----------------------------------

Poster = Callable[[PreparedRequest], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_aiohttp(
    url: str, *, concurrency: int, settings: Settings, in_flight: InFlight
) -> AsyncIterator[Poster]:
    """One aiohttp session, a pool of `concurrency` connections, no cookies; the timeouts
    httpx_aiohttp gives the dispatcher's requests."""
    timeout = settings.delivery_timeout_seconds
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout, connect=timeout),
    ) as session:

        async def post(request: PreparedRequest) -> None:
            in_flight.sent()
            async with session.post(url, data=request.body, headers=request.headers) as response:
                in_flight.answered()
                await response.read()
            _answered(response.status)

        yield post


@contextlib.asynccontextmanager
async def httpx_client(
    kind: str, url: str, *, concurrency: int, settings: Settings, in_flight: InFlight
) -> AsyncIterator[Poster]:
    """Raw httpx on its own transport (httpcore), or the dispatcher's client."""
    if kind == "httpx":
        http = httpx.AsyncClient(
            trust_env=False,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            timeout=httpx.Timeout(settings.delivery_timeout_seconds),
        )
    else:
        http = build_http_client(settings)
    async with in_flight.watch(http):

        async def post(request: PreparedRequest) -> None:
            await post_prepared(http, url, request)

        yield post


async def measure_ceiling(
    kind: str,
    rx: ReceiverProcess,
    requests: list[PreparedRequest],
    *,
    concurrency: int,
    settings: Settings,
) -> RunResult:
    """POST `requests` from `concurrency` senders on a fresh client of `kind` (CEILINGS)."""
    rx.take_receipts()
    meter = CpuMeter(rx.pid)
    in_flight = InFlight()
    todo = iter(requests)
    if kind == "aiohttp":
        client = raw_aiohttp(
            rx.url, concurrency=concurrency, settings=settings, in_flight=in_flight
        )
    else:
        client = httpx_client(
            kind, rx.url, concurrency=concurrency, settings=settings, in_flight=in_flight
        )
    async with client as post:

        async def sender() -> None:
            for request in todo:
                await post(request)

        meter.start()
        started = time.time()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        cores = meter.stop()
    sent_at = dict.fromkeys((r.webhook_id for r in requests), started)
    return judge(
        sent_at,
        rx.take_receipts(),
        started,
        cores,
        in_flight=in_flight.summary(),
        cpu_ms_per_post=meter.ms_per(len(requests), "bench"),
    )


# --- commcentre ---------------------------------------------------------------------------


class Wakeup:
    """The ingest writer's on_committed hook: wakes whichever dispatcher runs now."""

    def __init__(self) -> None:
        self.dispatcher: Dispatcher | None = None

    def __call__(self, _count: int) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()


@dataclass
class Gateway:
    """commcentre's parts in this process, as `commcentre serve` builds them."""

    settings: Settings
    db: Database
    vault: MessageVault
    writer: IngestWriter
    wakeup: Wakeup
    principal: Principal
    content: MessageIn

    def prepare(self, count: int) -> list[PendingMessage]:
        return [
            prepare_outbound(
                self.content,
                principal=self.principal,
                idempotency_key=None,
                vault=self.vault,
                destinations=[PARTNER],
                now=utcnow(),
            )
            for _ in range(count)
        ]

    @contextlib.asynccontextmanager
    async def dispatcher(self, in_flight: InFlight) -> AsyncIterator[Dispatcher]:
        """A dispatcher (not started) with adapters on an HTTP client of its own: every
        measured run of every target starts from an empty connection pool."""
        async with in_flight.watch(build_http_client(self.settings)) as http:
            adapters = build_adapters(self.settings, http, system_resolver)
            dispatcher = build_dispatcher(
                self.settings, self.db, self.vault, adapters, clock=utcnow
            )
            self.wakeup.dispatcher = dispatcher
            try:
                yield dispatcher
            finally:
                self.wakeup.dispatcher = None
                await dispatcher.stop()


def _sent_at(pending: Sequence[PendingMessage]) -> dict[str, float]:
    """delivery id -> the message's created_at (epoch seconds)."""
    return {
        str(row["id"]): p.message_row["created_at"].timestamp()
        for p in pending
        for row in p.delivery_rows
    }


async def _accept(gateway: Gateway, pending: Sequence[PendingMessage]) -> None:
    outcomes = await asyncio.gather(*(gateway.writer.submit(p) for p in pending))
    refused = [o.status_code for o in outcomes if o.status_code != 202]
    if refused:
        raise BenchError(f"{len(refused)} messages refused: {refused[:5]}")


@contextlib.asynccontextmanager
async def gateway(
    name: str, url: str, workdir: Path, rx: ReceiverProcess, concurrency: int, secret: str
) -> AsyncIterator[Gateway]:
    """A migrated store with one API client and one webhook partner (the receiver), and
    an ingest writer whose commits wake the current dispatcher, as in `commcentre serve`."""
    await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop
    keyring_path = workdir / f"keyring-{name}.json"
    FileKeyring.generate(keyring_path, dev=True)
    settings = Settings(
        database_url=url, keyring_path=keyring_path, dispatcher_concurrency=concurrency
    )
    db = open_database(settings, FileKeyring.load(keyring_path))
    wakeup = Wakeup()
    writer = IngestWriter(
        url,
        clock=utcnow,
        batch_max=settings.ingest_batch_max,
        batch_wait=settings.ingest_batch_wait_ms / 1000,
        idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
        on_committed=wakeup,
        database=db,
    )
    try:
        vault = build_vault(settings, FileKeyring.load(keyring_path))
        body = PartnerCreate.model_validate(
            {
                "id": PARTNER,
                "name": "Benchmark receiver",
                "adapter": "webhook",
                "config": {"url": rx.url},
                "outbound_secrets": [secret],
                "allow_loopback": True,
            }
        )
        async with build_http_client(settings) as http:  # the registry only checks the config
            registry = build_adapters(settings, http, system_resolver)
            async with db.write_sessions() as session, session.begin():
                issued = await create_client(
                    session, name="bench", scopes=["messages:write"], actor="bench", now=utcnow()
                )
                await partners.create_partner(
                    session,
                    body,
                    registry=registry,
                    envelope=vault.envelope,
                    destinations=DestinationRules.from_settings(settings, system_resolver),
                    actor="bench",
                    now=utcnow(),
                )
        await writer.start()
        yield Gateway(
            settings=settings,
            db=db,
            vault=vault,
            writer=writer,
            wakeup=wakeup,
            principal=Principal(issued.client.id, "bench", frozenset({"messages:write"})),
            content=example_message(),
        )
    finally:
        await writer.stop()
        await db.dispose()


async def commcentre_throughput(gw: Gateway, rx: ReceiverProcess, count: int) -> RunResult:
    """Ingest `count` messages with no dispatcher running, then drain them with one; this
    process's CPU per message in each phase (PostgreSQL's apart)."""
    rx.take_receipts()
    ingest = CpuMeter(rx.pid)
    ingest.start()
    ingest_started = time.monotonic()
    pending = gw.prepare(count)
    await _accept(gw, pending)
    ingest_seconds = time.monotonic() - ingest_started
    ingest_cores = ingest.stop()
    meter = CpuMeter(rx.pid)
    in_flight = InFlight()
    async with gw.dispatcher(in_flight) as dispatcher:
        meter.start()
        started = time.time()
        await dispatcher.start()
        drained = await dispatcher.drain(within=DRAIN_SECONDS)
        # The drain also waits for every outcome to be written; deliveries/s counts receipts.
        recorded = time.time() - started
        cores = meter.stop()
    ingest_ms, delivery_ms = ingest.ms_per(count, "bench"), meter.ms_per(count, "bench")
    cpu: dict[str, Any] = {
        "ingest_cpu_ms_per_message": ingest_ms,
        "delivery_cpu_ms_per_message": delivery_ms,
        "cpu_ms_per_message": round(ingest_ms + delivery_ms, 4),
    }
    if not gw.settings.is_sqlite:
        ingest_pg, delivery_pg = ingest.ms_per(count, "postgres"), meter.ms_per(count, "postgres")
        cpu |= {
            "postgres_ingest_cpu_ms_per_message": ingest_pg,
            "postgres_delivery_cpu_ms_per_message": delivery_pg,
            "postgres_cpu_ms_per_message": round(ingest_pg + delivery_pg, 4),
        }
    return judge(
        _sent_at(pending),
        rx.take_receipts(),
        started,
        cores,
        recorded_seconds=round(recorded, 4),
        drained=drained,
        in_flight=in_flight.summary(),
        stats=_dispatcher_stats(dispatcher),
        ingest_seconds=round(ingest_seconds, 4),
        ingest_cores=ingest_cores,
        **cpu,
    )


def _dispatcher_stats(dispatcher: Dispatcher) -> dict[str, Any]:
    stats = dispatcher.stats
    return {
        "claimed": stats.claimed,
        "delivered": stats.delivered,
        "retried": stats.retried,
        "dead": stats.dead,
        "batches_recorded": stats.batches,
    }


async def at_fixed_rate(rate: float, seconds: float, action: Callable[[], None]) -> None:
    """Call `action` rate times a second for `seconds`, on schedule (open loop)."""
    total = round(rate * seconds)
    start = time.monotonic()
    for n in range(total):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        action()


async def collect(
    rx: ReceiverProcess, expected: Collection[str], *, within: float
) -> list[tuple[str, float]]:
    """Receipts until every expected webhook-id arrived (or `within` seconds passed)."""
    receipts: list[tuple[str, float]] = []
    seen: set[str] = set()
    deadline = time.monotonic() + within
    while True:
        more = rx.take_receipts()
        receipts += more
        seen.update(i for i, _ in more)
        if seen >= set(expected) or time.monotonic() > deadline:
            return receipts
        await asyncio.sleep(0.1)


async def accept_at_rate(
    gw: Gateway, *, rate: float, seconds: float
) -> tuple[list[PendingMessage], int]:
    """Accept messages at `rate`/s on a fixed schedule (open loop: a slow commit delays no
    later message); the messages, and how many were refused."""
    pending: list[PendingMessage] = []
    submits: list[asyncio.Task[IngestOutcome]] = []

    def accept_one() -> None:
        one = gw.prepare(1)
        pending.extend(one)
        submits.append(asyncio.create_task(gw.writer.submit(one[0])))

    await at_fixed_rate(rate, seconds, accept_one)
    outcomes = await asyncio.gather(*submits)
    return pending, sum(1 for o in outcomes if o.status_code != 202)


async def commcentre_latency(
    gw: Gateway, rx: ReceiverProcess, *, rate: float, seconds: float
) -> RunResult:
    """Embedded shape: an idle dispatcher in this process (woken by the ingest writer's
    commits); messages accepted at `rate`/s; accept-to-receipt per message."""
    in_flight = InFlight()
    async with gw.dispatcher(in_flight) as dispatcher:
        await dispatcher.start()
        await asyncio.sleep(0.5)
        rx.take_receipts()
        meter = CpuMeter(rx.pid)
        meter.start()
        started = time.time()
        pending, refused = await accept_at_rate(gw, rate=rate, seconds=seconds)
        sent_at = _sent_at(pending)
        receipts = await collect(rx, sent_at, within=DRAIN_SECONDS)
        cores = meter.stop()
    return judge(
        sent_at,
        receipts,
        started,
        cores,
        seconds=seconds,
        refused=refused,
        rate=rate,
        shape="embedded: dispatcher in the ingesting process",
        in_flight=in_flight.summary(),
        **_fixed_rate_cpu(meter, len(pending), gw.settings, "bench"),
    )


def _fixed_rate_cpu(
    meter: CpuMeter, count: int, settings: Settings, *processes: str
) -> dict[str, float]:
    """commcentre's CPU per message in a fixed-rate run (its processes), PostgreSQL's apart."""
    cpu = {"cpu_ms_per_message": meter.ms_per(count, *processes)}
    if len(processes) > 1:
        cpu |= {f"{name}_cpu_ms_per_message": meter.ms_per(count, name) for name in processes}
    if not settings.is_sqlite:
        cpu["postgres_cpu_ms_per_message"] = meter.ms_per(count, "postgres")
    return cpu


@contextlib.contextmanager
def worker_process(settings: Settings, log: Path) -> Iterator[int]:
    """`commcentre worker` on the gateway's database and keyring; yields its pid."""
    env = os.environ | {
        "PYTHONUNBUFFERED": "1",
        "COMMCENTRE_DATABASE_URL": settings.database_url,
        "COMMCENTRE_KEYRING_PATH": str(settings.keyring_path),
        "COMMCENTRE_DISPATCHER_CONCURRENCY": str(settings.dispatcher_concurrency),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "commcentre", "worker"],
            cwd=log.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "dispatcher_started" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"`commcentre worker` did not start: see {log}")
            time.sleep(0.05)
        yield process.pid
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()


async def worker_latency(
    gw: Gateway, rx: ReceiverProcess, workdir: Path, *, rate: float, seconds: float
) -> RunResult:
    """Scaled-out shape (PostgreSQL): an idle `commcentre worker` process woken by
    LISTEN/NOTIFY; this process only accepts, at `rate`/s."""
    with worker_process(gw.settings, workdir / "worker.log") as pid:
        await asyncio.sleep(0.5)
        rx.take_receipts()
        meter = CpuMeter(rx.pid, pid)
        meter.start()
        started = time.time()
        pending, refused = await accept_at_rate(gw, rate=rate, seconds=seconds)
        sent_at = _sent_at(pending)
        receipts = await collect(rx, sent_at, within=DRAIN_SECONDS)
        cores = meter.stop()
    return judge(
        sent_at,
        receipts,
        started,
        cores,
        seconds=seconds,
        refused=refused,
        rate=rate,
        shape="scaled out: `commcentre worker` process, LISTEN/NOTIFY",
        **_fixed_rate_cpu(meter, len(pending), gw.settings, "bench", "worker"),
    )


# --- pgqueuer -----------------------------------------------------------------------------

ENTRYPOINT = "deliver"


def _pgqueuer_payload(request: PreparedRequest) -> bytes:
    return orjson.dumps({"headers": request.headers, "body": request.body.decode()})


@contextlib.asynccontextmanager
async def pgqueuer_queue() -> AsyncIterator[asyncpg.Pool]:
    """pgqueuer's tables in bench_dispatch (installed once) and a pool for its driver."""
    from pgqueuer import Queries

    pool = await asyncpg.create_pool(PG_DSN, min_size=2, max_size=10)
    try:
        queries = Queries.from_asyncpg_pool(pool)
        if not await queries.has_table(queries.qbe.settings.queue_table):
            await queries.install()
        yield pool
    finally:
        await pool.close()


def _queue_manager(pool: asyncpg.Pool, http: httpx.AsyncClient, url: str) -> Any:
    from pgqueuer import Job, Queries, QueueManager

    manager = QueueManager(Queries.from_asyncpg_pool(pool))

    @manager.entrypoint(ENTRYPOINT)
    async def deliver(job: Job) -> None:
        assert job.payload is not None
        request = orjson.loads(job.payload)
        response = await http.post(
            url, content=request["body"].encode(), headers=request["headers"]
        )
        if response.status_code != 200:
            raise RuntimeError(f"receiver answered {response.status_code}")

    return manager


def _pgqueuer_run_options(concurrency: int) -> dict[str, Any]:
    # pgqueuer wants max_concurrent_tasks >= 2 x batch_size.
    return {"batch_size": max(1, concurrency // 2), "max_concurrent_tasks": max(2, concurrency)}


async def pgqueuer_throughput(
    pool: asyncpg.Pool,
    rx: ReceiverProcess,
    requests: list[PreparedRequest],
    *,
    concurrency: int,
    settings: Settings,
) -> RunResult:
    from pgqueuer import Queries
    from pgqueuer.types import QueueExecutionMode

    queries = Queries.from_asyncpg_pool(pool)
    for chunk in range(0, len(requests), 500):
        part = requests[chunk : chunk + 500]
        await queries.enqueue(
            [ENTRYPOINT] * len(part), [_pgqueuer_payload(r) for r in part], [0] * len(part)
        )
    rx.take_receipts()
    meter = CpuMeter(rx.pid)
    in_flight = InFlight()
    async with in_flight.watch(build_http_client(settings)) as http:
        manager = _queue_manager(pool, http, rx.url)
        meter.start()
        started = time.time()
        await manager.run(
            mode=QueueExecutionMode.drain,
            dequeue_timeout=timedelta(seconds=1),
            **_pgqueuer_run_options(concurrency),
        )
        finished = time.time() - started
        cores = meter.stop()
    sent_at = dict.fromkeys((r.webhook_id for r in requests), started)
    return judge(
        sent_at,
        rx.take_receipts(),
        started,
        cores,
        finished_seconds=round(finished, 4),
        in_flight=in_flight.summary(),
        delivery_cpu_ms_per_message=meter.ms_per(len(requests), "bench"),
        postgres_cpu_ms_per_message=meter.ms_per(len(requests), "postgres"),
        **_pgqueuer_run_options(concurrency),
    )


async def pgqueuer_latency(
    pool: asyncpg.Pool,
    rx: ReceiverProcess,
    requests: list[PreparedRequest],
    *,
    rate: float,
    seconds: float,
    concurrency: int,
    settings: Settings,
) -> RunResult:
    from pgqueuer import Queries

    queries = Queries.from_asyncpg_pool(pool)
    sent_at: dict[str, float] = {}
    enqueues: list[asyncio.Task[Any]] = []
    todo = iter(requests)

    def enqueue_one() -> None:
        request = next(todo)
        sent_at[request.webhook_id] = time.time()
        enqueues.append(
            asyncio.create_task(queries.enqueue(ENTRYPOINT, _pgqueuer_payload(request)))
        )

    async with build_http_client(settings) as http:
        manager = _queue_manager(pool, http, rx.url)
        runner = asyncio.create_task(
            manager.run(dequeue_timeout=timedelta(seconds=1), **_pgqueuer_run_options(concurrency))
        )
        try:
            await asyncio.sleep(1.0)
            rx.take_receipts()
            meter = CpuMeter(rx.pid)
            meter.start()
            started = time.time()
            await at_fixed_rate(rate, seconds, enqueue_one)
            await asyncio.gather(*enqueues)
            receipts = await collect(rx, sent_at, within=DRAIN_SECONDS)
            cores = meter.stop()
        finally:
            manager.shutdown.set()
            await runner
    return judge(
        sent_at,
        receipts,
        started,
        cores,
        seconds=seconds,
        rate=rate,
        cpu_ms_per_message=meter.ms_per(len(sent_at), "bench"),
        postgres_cpu_ms_per_message=meter.ms_per(len(sent_at), "postgres"),
    )


# --- stores -------------------------------------------------------------------------------


async def pg_prepare() -> str:
    """Create bench_dispatch if missing, recreate its public schema; the server version."""
    conn = await asyncpg.connect(f"{PG_HOST_DSN}/postgres", timeout=5)
    try:
        version = str(await conn.fetchval("SHOW server_version"))
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE)
        if not exists:
            await conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    return version


async def pg_unreachable() -> str | None:
    try:
        conn = await asyncpg.connect(f"{PG_HOST_DSN}/postgres", timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


# --- the run ------------------------------------------------------------------------------

# CPU figures a target reports as their median over its throughput runs, each figure's
# own median (the median run by deliveries/s need not be the median one in CPU).
CPU_FIGURES = (
    "cpu_ms_per_post",
    "ingest_cpu_ms_per_message",
    "delivery_cpu_ms_per_message",
    "cpu_ms_per_message",
    "postgres_ingest_cpu_ms_per_message",
    "postgres_delivery_cpu_ms_per_message",
    "postgres_cpu_ms_per_message",
)


def summarize(
    runs: list[RunResult], latency: RunResult | None, worker: RunResult | None = None
) -> dict[str, Any]:
    median = median_run(runs)
    result: dict[str, Any] = {
        "status": "measured",
        "runs": [run.as_dict() for run in runs],
        "median": median.as_dict(),
        "deliveries_per_s": round(median.rate, 1),
        "lost": sum(run.lost for run in runs),
        "unexpected": sum(run.unexpected for run in runs),
        "duplicates": sum(run.duplicates for run in runs),
    }
    for key in CPU_FIGURES:
        values = [run.extra[key] for run in runs if key in run.extra]
        if values:
            result[key] = round(statistics.median(values), 4)
    for key, run in (("latency_run", latency), ("latency_run_worker", worker)):
        if run is not None:
            result[key] = run.as_dict()
            result["lost"] += run.lost
            result["unexpected"] += run.unexpected
            result["duplicates"] += run.duplicates
    return result


async def run_commcentre(
    name: str,
    url: str,
    args: argparse.Namespace,
    workdir: Path,
    rx: ReceiverProcess,
    secret: str,
) -> dict[str, Any]:
    async with gateway(name, url, workdir, rx, args.concurrency, secret) as gw:
        await commcentre_throughput(gw, rx, min(200, args.messages))  # warm-up
        runs: list[RunResult] = []
        for n in range(args.runs):
            runs.append(await commcentre_throughput(gw, rx, args.messages))
            _show(name, f"run {n + 1}/{args.runs}", runs[-1])
        latency = await commcentre_latency(gw, rx, rate=args.rate, seconds=args.latency_seconds)
        _show(name, f"{args.rate:g}/s", latency)
        worker = None
        if not gw.settings.is_sqlite:  # SQLite has no NOTIFY: a worker process would poll
            worker = await worker_latency(
                gw, rx, workdir, rate=args.rate, seconds=args.latency_seconds
            )
            _show(name, f"{args.rate:g}/s wkr", worker)
    return summarize(runs, latency, worker)


async def run_pgqueuer(
    args: argparse.Namespace, rx: ReceiverProcess, factory: RequestFactory
) -> dict[str, Any]:
    settings = Settings(dispatcher_concurrency=args.concurrency)
    async with pgqueuer_queue() as pool:
        warmup = factory.make(min(200, args.messages))
        await pgqueuer_throughput(pool, rx, warmup, concurrency=args.concurrency, settings=settings)
        runs: list[RunResult] = []
        for n in range(args.runs):
            requests = factory.make(args.messages)
            runs.append(
                await pgqueuer_throughput(
                    pool, rx, requests, concurrency=args.concurrency, settings=settings
                )
            )
            _show("pgqueuer", f"run {n + 1}/{args.runs}", runs[-1])
        requests = factory.make(round(args.rate * args.latency_seconds))
        latency = await pgqueuer_latency(
            pool,
            rx,
            requests,
            rate=args.rate,
            seconds=args.latency_seconds,
            concurrency=args.concurrency,
            settings=settings,
        )
        _show("pgqueuer", f"{args.rate:g}/s", latency)
    return summarize(runs, latency)


async def run_ceilings(
    args: argparse.Namespace, rx: ReceiverProcess, factory: RequestFactory
) -> dict[str, dict[str, Any]]:
    """Every ceiling, runs interleaved (run 1 of each, then run 2 of each, ...)."""
    settings = Settings(dispatcher_concurrency=args.concurrency)
    for kind in CEILINGS:  # warm-up
        warmup = factory.make(min(200, args.messages))
        await measure_ceiling(kind, rx, warmup, concurrency=args.concurrency, settings=settings)
    runs: dict[str, list[RunResult]] = {kind: [] for kind in CEILINGS}
    for n in range(args.runs):
        for kind in CEILINGS:
            requests = factory.make(args.messages)
            runs[kind].append(
                await measure_ceiling(
                    kind, rx, requests, concurrency=args.concurrency, settings=settings
                )
            )
            _show(kind, f"run {n + 1}/{args.runs}", runs[kind][-1])
    return {kind: summarize(kind_runs, None) for kind, kind_runs in runs.items()}


def _measured_rate(targets: dict[str, dict[str, Any]], name: str) -> float | None:
    target = targets.get(name, {})
    return target["deliveries_per_s"] if target.get("status") == "measured" else None


def _key(name: str) -> str:
    return name.replace("-", "_")


def verdicts(targets: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    pairs = [("httpx", "aiohttp"), ("httpx-aiohttp", "aiohttp"), ("httpx-aiohttp", "httpx")]
    pairs += [(name, base) for name in ("sqlite", "postgres", "pgqueuer") for base in CEILINGS]
    pairs += [("sqlite", "pgqueuer"), ("postgres", "pgqueuer")]
    ratios: dict[str, Any] = {}
    for name, base in pairs:
        own, other = _measured_rate(targets, name), _measured_rate(targets, base)
        if own is not None and other:
            ratios[f"{_key(name)}_to_{_key(base)}"] = round(own / other, 3)
    aiohttp_rate = _measured_rate(targets, "aiohttp")
    verdict: dict[str, Any] = {}
    for name, fixed_run in JUDGED_FIXED_RATE.items():
        own = _measured_rate(targets, name)
        if own is None:
            continue
        target = targets[name]
        fixed = target[fixed_run]
        checks: dict[str, bool] = {
            "nothing_lost": target["lost"] == 0 and target["unexpected"] == 0,
            "ratio_to_aiohttp_ok": aiohttp_rate is not None
            and own >= TARGET_RATIO_TO_AIOHTTP * aiohttp_rate,
            "cpu_per_message_ok": target["cpu_ms_per_message"] <= TARGET_CPU_MS_PER_MESSAGE,
            "fixed_rate_cpu_per_message_ok": fixed["cpu_ms_per_message"]
            <= TARGET_CPU_MS_PER_MESSAGE,
            "latency_p50_ok": fixed["latency_ms"]["p50"] <= TARGET_LATENCY_P50_MS,
            "latency_p99_ok": fixed["latency_ms"]["p99"] <= TARGET_LATENCY_P99_MS,
        }
        verdict[name] = checks | {"pass": all(checks.values())}
    return ratios, verdict


def _fixed_rate_run(name: str, target: dict[str, Any]) -> dict[str, Any] | None:
    """The fixed-rate run a target's row shows: the judged one for a store."""
    run: dict[str, Any] | None = target.get(JUDGED_FIXED_RATE.get(name, "latency_run"))
    return run


def _ms(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(
    targets: dict[str, dict[str, Any]], ratios: dict[str, Any], verdict: dict[str, Any]
) -> None:
    print()
    header = (
        f"{'target':14} {'deliv/s':>8} {'vs aiohttp':>10} {'vs httpx':>8} {'cpu ms/msg':>10} "
        f"{'fixed cpu':>9} {'fixed-rate p50 / p99':>22} {'lost':>5} {'dup':>4}"
    )
    print(header)
    print("-" * len(header))
    aiohttp_rate = _measured_rate(targets, "aiohttp")
    httpx_rate = _measured_rate(targets, "httpx")
    for name, target in targets.items():
        if target.get("status") != "measured":
            print(f"{name:14} {target.get('status', '?')}: {target.get('reason', '')}")
            continue
        own = target["deliveries_per_s"]
        to_aiohttp = f"{own / aiohttp_rate:.0%}" if aiohttp_rate else "-"
        to_httpx = f"{own / httpx_rate:.0%}" if httpx_rate else "-"
        cpu = target.get("cpu_ms_per_message", target.get("cpu_ms_per_post"))
        if cpu is None:
            cpu = target.get("delivery_cpu_ms_per_message")
        fixed = _fixed_rate_run(name, target)
        fixed_cpu = fixed.get("cpu_ms_per_message") if fixed else None
        latency = (
            f"{fixed['latency_ms']['p50']:.1f} / {fixed['latency_ms']['p99']:.1f} ms"
            if fixed
            else "-"
        )
        print(
            f"{name:14} {own:8,.0f} {to_aiohttp:>10} {to_httpx:>8} {_ms(cpu, 3):>10} "
            f"{_ms(fixed_cpu, 3):>9} {latency:>22} {target['lost']:5} {target['duplicates']:4}"
        )
    print(
        "(median of the runs; cpu ms/msg: a ceiling's CPU per POST, commcentre's ingest + "
        "delivery CPU per message, pgqueuer's delivery CPU per job, all without PostgreSQL's; "
        "fixed cpu and fixed-rate latency: the --rate run, for PostgreSQL the one with a "
        "`commcentre worker` process)"
    )
    print()
    for name in JUDGED_FIXED_RATE:
        target = targets.get(name, {})
        if target.get("status") != "measured":
            continue
        line = (
            f"{name:9} cpu ms/msg: ingest {_ms(target.get('ingest_cpu_ms_per_message'), 3)} + "
            f"delivery {_ms(target.get('delivery_cpu_ms_per_message'), 3)} = "
            f"{_ms(target.get('cpu_ms_per_message'), 3)} (throughput)"
        )
        embedded = target["latency_run"]
        line += f"; at the fixed rate {_ms(embedded.get('cpu_ms_per_message'), 3)} embedded"
        worker = target.get("latency_run_worker")
        if worker:
            line += (
                f", {_ms(worker.get('cpu_ms_per_message'), 3)} with a worker (this process "
                f"{_ms(worker.get('bench_cpu_ms_per_message'), 3)} + worker "
                f"{_ms(worker.get('worker_cpu_ms_per_message'), 3)})"
            )
        print(line)
        if "postgres_cpu_ms_per_message" in target:
            line = (
                f"{'':9} PostgreSQL server, not in the target: ingest "
                f"{_ms(target.get('postgres_ingest_cpu_ms_per_message'), 3)} + delivery "
                f"{_ms(target.get('postgres_delivery_cpu_ms_per_message'), 3)} = "
                f"{_ms(target['postgres_cpu_ms_per_message'], 3)} ms/msg (throughput); "
                f"{_ms(embedded.get('postgres_cpu_ms_per_message'), 3)} embedded"
            )
            if worker:
                line += f", {_ms(worker.get('postgres_cpu_ms_per_message'), 3)} with a worker"
            print(line + " at the fixed rate")
        if worker:
            print(
                f"{'':9} fixed rate, dispatcher in the accepting process (reported, not "
                f"judged): p50 {embedded['latency_ms']['p50']:.1f} ms, p99 "
                f"{embedded['latency_ms']['p99']:.1f} ms"
            )
    pgqueuer = targets.get("pgqueuer", {})
    if pgqueuer.get("status") == "measured":
        print(
            f"pgqueuer  delivery cpu {_ms(pgqueuer.get('delivery_cpu_ms_per_message'), 3)} "
            f"ms/job, PostgreSQL {_ms(pgqueuer.get('postgres_cpu_ms_per_message'), 3)} ms/job "
            "(a comparison, no goal)"
        )
    print()
    print(
        f"verdict (targets: >= {TARGET_RATIO_TO_AIOHTTP:.0%} of raw aiohttp's deliveries/s; "
        f"<= {TARGET_CPU_MS_PER_MESSAGE:g} ms CPU per message in commcentre's processes, "
        f"throughput runs and fixed rate; fixed-rate p50 <= {TARGET_LATENCY_P50_MS:g} ms and "
        f"p99 <= {TARGET_LATENCY_P99_MS:g} ms, SQLite embedded, PostgreSQL with a worker; "
        "nothing lost):"
    )
    if not verdict:
        print("  nothing to judge")
    for name, checks in verdict.items():
        failed = [k for k, ok in checks.items() if k != "pass" and not ok]
        print(
            f"  {name:9} {'PASS' if checks['pass'] else 'FAIL'}"
            + (f"  ({', '.join(failed)})" if failed else "")
        )
    for name, target in targets.items():
        if target.get("status") != "measured":
            continue
        others = max(run["cores"].get("others", 0.0) for run in target["runs"])
        if others > CONTENDED_CORES:
            print(
                f"  note: {name}: other processes used up to {others:.2f} cores during its "
                "runs; compare ratios within one quiet run"
            )


def machine_info() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str] = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        # Only the raw httpx ceiling needs it (the `bench` extra): httpcore imports sniffio
        # on every lock it makes, and without it each is a failed import.
        "sniffio_installed": util.find_spec("sniffio") is not None,
    }


@contextlib.contextmanager
def production_logs(path: Path) -> Iterator[None]:
    """Log as `commcentre serve` does in prod (JSON lines), into `path`: every delivery's
    log line costs here what it costs in production, and the report stays readable."""
    configure_logging(json=True)
    with path.open("w") as out:
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(out))
        yield


async def amain(args: argparse.Namespace) -> int:
    targets: dict[str, dict[str, Any]] = {}
    postgres_version: str | None = None
    secret = generate_signing_secret()
    content = example_message()
    print(
        f"dispatch benchmark: {args.messages:,} deliveries x {args.runs} runs at concurrency "
        f"{args.concurrency}; latency at {args.rate:g}/s for {args.latency_seconds:g} s; "
        f"{os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        workdir = Path(tmp)
        with production_logs(workdir / "bench.log"), receiver(workdir / "receiver.log") as rx:
            view = PartnerView(
                id=PARTNER,
                name="Benchmark receiver",
                country=None,
                config=HttpPushConfig(url=rx.url),
                signing_secrets=[SecretStr(secret)],
                allow_loopback=True,
            )
            async with build_http_client(Settings()) as spare:
                adapter = WebhookAdapter(AdapterContext(http=spare, resolver=system_resolver))
                factory = RequestFactory(adapter, view, content)
                targets |= await run_ceilings(args, rx, factory)
                sqlite_url = f"sqlite+aiosqlite:///{workdir / 'dispatch.db'}"
                targets["sqlite"] = await run_commcentre(
                    "sqlite", sqlite_url, args, workdir, rx, secret
                )
                why_not = "--no-postgres" if args.no_postgres else await pg_unreachable()
                if why_not is not None:
                    targets["postgres"] = {"status": "skipped", "reason": why_not}
                    targets["pgqueuer"] = {"status": "skipped", "reason": why_not}
                else:
                    postgres_version = await pg_prepare()
                    targets["postgres"] = await run_commcentre(
                        "postgres", PG_URL, args, workdir, rx, secret
                    )
                    if args.no_pgqueuer:
                        targets["pgqueuer"] = {"status": "skipped", "reason": "--no-pgqueuer"}
                    else:
                        targets["pgqueuer"] = await run_pgqueuer(args, rx, factory)

    ratios, verdict = verdicts(targets)
    print_report(targets, ratios, verdict)
    overrides = {k: v for k, v in os.environ.items() if k.startswith("COMMCENTRE_")}
    report = {
        "benchmark": "dispatch",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "parameters": {
            "messages": args.messages,
            "concurrency": args.concurrency,
            "runs": args.runs,
            "rate_per_s": args.rate,
            "latency_seconds": args.latency_seconds,
            "postgres": not args.no_postgres,
            "pgqueuer": not args.no_pgqueuer,
            "postgres_version": postgres_version,
            "ceilings": {
                "aiohttp": "raw aiohttp ClientSession, TCPConnector(limit=concurrency)",
                "httpx": "raw httpx AsyncClient on httpcore, max_connections=concurrency",
                "httpx-aiohttp": "commcentre.bootstrap.build_http_client (the dispatcher's)",
            },
            "dispatcher": "in process, built by commcentre.bootstrap.build_dispatcher",
            "receiver": "uvicorn (uvloop, httptools), raw ASGI, own process",
            "cpu_per_message": (
                "commcentre's processes (this one, every thread, plus a `commcentre worker` "
                "process in that shape), receiver excluded; throughput: ingest + drain; "
                "fixed rate: first accept to last receipt, load generation included; "
                "PostgreSQL's server CPU reported apart"
            ),
            "commcentre_env": overrides,
        },
        "targets": targets,
        "ratios": ratios,
        "goals": {
            "min_ratio_to_aiohttp": TARGET_RATIO_TO_AIOHTTP,
            "max_cpu_ms_per_message": TARGET_CPU_MS_PER_MESSAGE,
            "cpu_judged_on": [
                "median cpu_ms_per_message of the throughput runs",
                "cpu_ms_per_message of the judged fixed-rate run",
            ],
            "cpu_counts": "commcentre's processes only, not PostgreSQL's",
            "max_latency_p50_ms": TARGET_LATENCY_P50_MS,
            "max_latency_p99_ms": TARGET_LATENCY_P99_MS,
            "fixed_rate_judged_on": JUDGED_FIXED_RATE,
            "pgqueuer": "comparison only",
        },
        "verdict": verdict,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(f"wrote {args.output}")
    measured = [t for t in targets.values() if t.get("status") == "measured"]
    return 1 if any(t["lost"] or t["unexpected"] for t in measured) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2000, help="deliveries per run")
    parser.add_argument("--concurrency", type=int, default=32, help="deliveries at once")
    parser.add_argument("--runs", type=int, default=3, help="throughput runs per target")
    parser.add_argument("--rate", type=float, default=100.0, help="messages/s, latency run")
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite and ceiling only")
    parser.add_argument("--no-pgqueuer", action="store_true", help="skip the pgqueuer target")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)
    if min(args.messages, args.concurrency, args.runs) < 1 or args.rate <= 0:
        parser.error("--messages, --concurrency, --runs and --rate must be positive")
    try:
        return loops.run(amain(args))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
