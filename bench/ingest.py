"""Ingest benchmark (not a test): POST /v1/messages requests/s and latency under wrk.

Usage: .venv/bin/python bench/ingest.py [--duration 10] [--runs 3] [--connections 64]
                                        [--no-postgres] [--output bench/results/ingest.json]

Measures, in one run so the ratios compare (PERFORMANCE.md), three targets:

  ceiling   a bare FastAPI app that reads the raw body, validates it with
            MessageIn.model_validate_json and answers 202 (bench.apps:ceiling_app)
  sqlite    the real app on a fresh SQLite file (bench.apps:commcentre_app)
  postgres  the real app on PostgreSQL, database bench_ingest on 127.0.0.1:5432
            (created if missing, public schema recreated); skipped when PostgreSQL
            is unreachable or with --no-postgres

Each server is one uvicorn worker (uvloop, httptools) in a subprocess on a free
127.0.0.1 port. Per target: one probe request, a 2 s warm-up, then --runs measured
wrk runs (-t2 -c<connections> --timeout 10s --latency); the median run by req/s is
reported. For the real app, the messages stored in the database after the server
stopped are counted against the 2xx answers wrk saw: every 202 must be a stored row.
Temporary files (SQLite, keyring) go under $TMPDIR.

Exit status: 0 measured (whatever the verdict), 1 a run had errors (non-2xx or
socket errors) or an acknowledged message was not stored, 2 wrk is missing or a
server could not be started.
"""

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

from commcentre.crypto import FileKeyring
from commcentre.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "bench" / "results" / "ingest.json"

PG_HOST_DSN = "postgresql://postgres@127.0.0.1:5432"
PG_DATABASE = "bench_ingest"
PG_URL = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DATABASE}"

WRK_THREADS = 2
WRK_TIMEOUT = "10s"
WARMUP_SECONDS = 2
STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0

TARGET_RATIO = 0.60  # of the ceiling's req/s
TARGET_P99_MS = 50.0
CONTENDED_CORES = 0.15  # other processes busier than this during a run: say so

PACKAGES = (
    "fastapi",
    "starlette",
    "pydantic",
    "pydantic-core",
    "uvicorn",
    "uvloop",
    "httptools",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
)


class BenchError(Exception):
    """The benchmark cannot go on (exit 2)."""


# --- wrk -------------------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_UNIT = r"(us|ms|s|m|h)"
_PERCENTILE = re.compile(rf"^\s*(50|75|90|99)%\s+([\d.]+){_UNIT}\s*$", re.MULTILINE)
_REQUESTS = re.compile(rf"^\s*(\d+) requests in ([\d.]+){_UNIT},", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run, latencies in milliseconds."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int] = field(default_factory=dict)
    cpu_cores: dict[str, float] = field(default_factory=dict)  # mean cores busy during the run

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())

    @property
    def acked(self) -> int:
        """Completed responses below 400 (wrk counts only status > 399 as errors)."""
        return self.requests - self.non_2xx

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"errors": self.errors, "acked": self.acked}


def parse_wrk(output: str) -> WrkResult:
    """Requests, req/s, latency percentiles and errors from `wrk --latency` output."""
    percentiles = {
        int(p): float(value) * _TIME_UNITS_MS[unit]
        for p, value, unit in _PERCENTILE.findall(output)
    }
    requests = _REQUESTS.search(output)
    rps = _RPS.search(output)
    if requests is None or rps is None or set(percentiles) != {50, 75, 90, 99}:
        raise BenchError(f"cannot parse the wrk output:\n{output}")
    socket_errors = _SOCKET_ERRORS.search(output)
    non_2xx = _NON_2XX.search(output)
    return WrkResult(
        requests=int(requests.group(1)),
        seconds=float(requests.group(2)) * _TIME_UNITS_MS[requests.group(3)] / 1000,
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(
            zip(
                ("connect", "read", "write", "timeout"),
                (int(n) for n in socket_errors.groups()) if socket_errors else (0, 0, 0, 0),
                strict=True,
            )
        ),
    )


def seed_demo_partners(database_url: str, workdir: Path) -> None:
    """Loopback partners and rules (`commcentre demo`), so the example message routes."""
    env = os.environ | {
        "COMMCENTRE_DATABASE_URL": database_url,
        "COMMCENTRE_KEYRING_PATH": str(workdir / "keyring.json"),
    }
    subprocess.run(
        [sys.executable, "-m", "commcentre", "demo"], env=env, check=True, capture_output=True
    )


def lua_script(body: bytes, api_key: str) -> str:
    """A wrk script: POST the body as JSON with a bearer key."""
    text = body.decode()
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = [{eq}[{text}]{eq}]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {api_key}"\n'
    )


def run_wrk(wrk: str, url: str, script: Path, seconds: int, connections: int) -> WrkResult:
    command = [
        wrk,
        f"-t{min(WRK_THREADS, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        WRK_TIMEOUT,
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _cpu_seconds(stat: str) -> float:
    """utime + stime (all threads) from the text of /proc/<pid>/stat."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_cpu_seconds(pid: int) -> float:
    return _cpu_seconds(Path(f"/proc/{pid}/stat").read_text())


def _postgres_cpu_seconds() -> float:
    """CPU time of the local PostgreSQL processes (a store under test, not `others`)."""
    total = 0.0
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = path.read_text()
        except OSError:  # exited meanwhile
            continue
        if stat[stat.find("(") + 1 : stat.rfind(")")].startswith("postgres"):
            total += _cpu_seconds(stat)
    return total


def run_wrk_measured(
    wrk: str, url: str, script: Path, seconds: int, connections: int, server_pid: int
) -> WrkResult:
    """run_wrk, plus the cores the server, wrk and everything else used meanwhile.

    `others` is what none of server, wrk and PostgreSQL used: other processes (and
    the kernel's share) competing for the same cores. Much above 0.1 and the
    figures are understated.
    """
    busy0, total0 = _machine_jiffies()
    postgres0 = _postgres_cpu_seconds()
    server0 = _process_cpu_seconds(server_pid)
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = run_wrk(wrk, url, script, seconds, connections)
    elapsed = time.monotonic() - start
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server1 = _process_cpu_seconds(server_pid)
    postgres1 = _postgres_cpu_seconds()
    busy1, total1 = _machine_jiffies()
    ncpu = os.cpu_count() or 1
    machine = (busy1 - busy0) / max(total1 - total0, 1) * ncpu
    server = (server1 - server0) / elapsed
    wrk_cpu = (
        children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime
    ) / elapsed
    postgres = max(postgres1 - postgres0, 0.0) / elapsed
    cores = {
        "server": round(server, 2),
        "wrk": round(wrk_cpu, 2),
        "postgres": round(postgres, 2),
        "machine": round(machine, 2),
        "others": round(max(machine - server - wrk_cpu - postgres, 0.0), 2),
    }
    return replace(result, cpu_cores=cores)


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).splitlines()
    return lines[0].strip() if lines else ""


# --- servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"the server exited with {process.returncode}:\n{_tail(log)}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise BenchError(f"the server did not answer /healthz in {STARTUP_SECONDS:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts down gracefully), SIGKILL if it takes too long."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        print(f"  server {process.pid} ignored SIGTERM for {STOP_SECONDS:.0f} s: SIGKILL")
        process.kill()
        process.wait()


@contextlib.contextmanager
def serve(factory: str, env: dict[str, str], log: Path) -> Iterator[tuple[int, int]]:
    """Run `bench.apps:<factory>` under uvicorn on a free port; yields (port, pid)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        f"bench.apps:{factory}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--workers",
        "1",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=out)
    try:
        _wait_healthy(process, port, log)
        yield port, process.pid
    finally:
        _stop(process)


def probe(port: int, body: bytes, api_key: str) -> None:
    """One request before loading: the target must answer 202, or the load is pointless."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            "/v1/messages",
            body=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
        )
        response = connection.getresponse()
        answer = response.read()[:500]
    finally:
        connection.close()
    if response.status != 202:
        raise BenchError(f"the probe POST got {response.status}, not 202: {answer!r}")


# --- stores ----------------------------------------------------------------------------


async def _pg_prepare() -> str:
    """Create bench_ingest if missing, recreate its public schema; the server version."""
    conn = await asyncpg.connect(f"{PG_HOST_DSN}/postgres", timeout=5)
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


async def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        conn = await asyncpg.connect(f"{PG_HOST_DSN}/postgres", timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def _pg_count_messages() -> int:
    conn = await asyncpg.connect(f"{PG_HOST_DSN}/{PG_DATABASE}", timeout=5)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages"))
    finally:
        await conn.close()


def sqlite_count_messages(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


# --- targets ---------------------------------------------------------------------------


@dataclass(slots=True)
class Target:
    name: str
    factory: str
    database_url: str | None = None  # None: the ceiling app, no store


def example_body() -> bytes:
    """tests/factories.py EXAMPLE_MESSAGE, compact JSON as a client would send it."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.factories import EXAMPLE_MESSAGE

    return json.dumps(EXAMPLE_MESSAGE, separators=(",", ":")).encode()


def median_run(runs: list[WrkResult]) -> WrkResult:
    """The median run by req/s (the lower middle one for an even count)."""
    return sorted(runs, key=lambda run: run.rps)[(len(runs) - 1) // 2]


def _show(name: str, label: str, run: WrkResult) -> None:
    flag = f"  ERRORS: {run.non_2xx} non-2xx, sockets {run.socket_errors}" if run.errors else ""
    cpu = run.cpu_cores
    print(
        f"  {name:8} {label:9} {run.rps:8,.0f} req/s  p50 {run.p50_ms:7.2f} ms  "
        f"p99 {run.p99_ms:7.2f} ms  {run.requests:8,} requests  cores: server "
        f"{cpu.get('server', 0):.2f} wrk {cpu.get('wrk', 0):.2f} pg "
        f"{cpu.get('postgres', 0):.2f} others "
        f"{cpu.get('others', 0):.2f}{flag}",
        flush=True,
    )


def measure(
    target: Target,
    *,
    wrk: str,
    args: argparse.Namespace,
    body: bytes,
    api_key: str,
    script: Path,
    workdir: Path,
) -> dict[str, Any]:
    """Start the target's server, probe, warm up, measure; count what it stored."""
    env = os.environ.copy()
    if target.database_url is not None:
        env |= {
            "COMMCENTRE_ENVIRONMENT": "dev",
            "COMMCENTRE_DATABASE_URL": target.database_url,
            "COMMCENTRE_KEYRING_PATH": str(workdir / "keyring.json"),
            "COMMCENTRE_BOOTSTRAP_ADMIN_KEY": api_key,
            # Ingest alone, as `serve --no-worker` runs it in the scaled shape: the
            # deliveries wait in the outbox (bench/dispatch.py measures dispatching).
            "COMMCENTRE_DISPATCHER_ENABLED": "false",
        }
    log = workdir / f"{target.name}-server.log"
    with serve(target.factory, env, log) as (port, pid):
        url = f"http://127.0.0.1:{port}/v1/messages"
        probe(port, body, api_key)
        warmup = run_wrk_measured(wrk, url, script, WARMUP_SECONDS, args.connections, pid)
        _show(target.name, "warm-up", warmup)
        runs: list[WrkResult] = []
        for i in range(args.runs):
            runs.append(run_wrk_measured(wrk, url, script, args.duration, args.connections, pid))
            _show(target.name, f"run {i + 1}/{args.runs}", runs[-1])
    median = median_run(runs)
    result: dict[str, Any] = {
        "status": "measured",
        "app": f"bench.apps:{target.factory}",
        "database": target.database_url,
        "warmup": warmup.as_dict(),
        "runs": [run.as_dict() for run in runs],
        "median": median.as_dict(),
        "errors": sum(run.errors for run in runs),
        "warmup_errors": warmup.errors,
    }
    if target.database_url is not None:
        acked = 1 + warmup.acked + sum(run.acked for run in runs)  # 1: the probe
        if target.database_url.startswith("sqlite"):
            stored = sqlite_count_messages(workdir / "ingest.db")
        else:
            stored = asyncio.run(_pg_count_messages())
        wrk_invocations = 1 + len(runs)
        timeouts = warmup.socket_errors["timeout"] + sum(r.socket_errors["timeout"] for r in runs)
        result["store"] = {
            "acked_2xx": acked,
            "stored_messages": stored,
            "acked_all_stored": stored >= acked,
            # wrk stops with up to one request per connection in flight: the server may
            # still commit those (and timed-out ones) without wrk counting the answer.
            "stored_unacked": stored - acked,
            "stored_unacked_max_expected": wrk_invocations * args.connections + timeouts,
        }
    result["server_log"] = server_log_summary(log)
    return result


def server_log_summary(log: Path) -> dict[str, Any]:
    """What the server logged at warning and above: counts, and the last lines."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return {
        "lines": len(text.splitlines()),
        "unhandled_exceptions": text.count("Exception in ASGI application"),
        "client_disconnects": text.count("ClientDisconnect"),
        "tail": _tail(log, 12),
    }


# --- report ----------------------------------------------------------------------------


def machine_info(wrk: str) -> dict[str, Any]:
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
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "wrk": wrk_version(wrk),
        "packages": versions,
    }


def _filesystem(path: Path) -> str:
    """The filesystem type holding `path` (ext4, tmpfs...): tmpfs makes fsync free."""
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def verdicts(targets: dict[str, dict[str, Any]]) -> tuple[dict[str, float], dict[str, Any]]:
    """Ratios to the ceiling, and pass/fail of each real target."""
    ceiling = targets.get("ceiling", {})
    ceiling_rps = ceiling["median"]["rps"] if ceiling.get("status") == "measured" else None
    ratios: dict[str, float] = {}
    verdict: dict[str, Any] = {}
    for name, target in targets.items():
        if target.get("status") != "measured" or not ceiling_rps:
            continue
        median = target["median"]
        ratio = median["rps"] / ceiling_rps
        ratios[name] = round(ratio, 4)
        if name == "ceiling":
            continue
        store = target.get("store", {})
        checks = {
            "ratio_ok": ratio >= TARGET_RATIO,
            "p99_ok": median["p99_ms"] <= TARGET_P99_MS,
            "no_errors": target["errors"] == 0,
            "acked_all_stored": bool(store.get("acked_all_stored", True)),
        }
        verdict[name] = checks | {"pass": all(checks.values())}
    return ratios, verdict


def print_report(
    targets: dict[str, dict[str, Any]], ratios: dict[str, float], verdict: dict[str, Any]
) -> None:
    print()
    header = (
        f"{'target':10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'sock err':>8} {'vs ceiling':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, target in targets.items():
        if target.get("status") != "measured":
            print(f"{name:10} {target.get('status', '?')}: {target.get('reason', '')}")
            continue
        median = target["median"]
        non_2xx = sum(run["non_2xx"] for run in target["runs"])
        sockets = sum(sum(run["socket_errors"].values()) for run in target["runs"])
        ratio = f"{ratios[name]:.0%}" if name in ratios else "-"
        print(
            f"{name:10} {median['rps']:10,.0f} {median['p50_ms']:8.2f} {median['p99_ms']:8.2f} "
            f"{non_2xx:8,} {sockets:8,} {ratio:>10}"
        )
    print("(median run by req/s; non-2xx and socket errors summed over the measured runs)")
    print()
    print(
        f"verdict (targets: >= {TARGET_RATIO:.0%} of the ceiling, p99 <= {TARGET_P99_MS:.0f} ms, "
        "no errors, every 202 stored):"
    )
    if not verdict:
        print("  nothing to judge (no real target measured, or no ceiling)")
    for name, checks in verdict.items():
        target = targets[name]
        median = target["median"]
        line = (
            f"  {name:9} {'PASS' if checks['pass'] else 'FAIL'}  "
            f"ratio {ratios[name]:.0%} {'ok' if checks['ratio_ok'] else 'LOW'}, "
            f"p99 {median['p99_ms']:.1f} ms {'ok' if checks['p99_ok'] else 'HIGH'}, "
            f"errors {target['errors']:,}"
        )
        print(line)
        store = target.get("store")
        if store:
            state = (
                "every 202 is stored"
                if store["acked_all_stored"]
                else "ACKNOWLEDGED MESSAGES MISSING"
            )
            print(
                f"  {'':9} acked (2xx seen by wrk + probe) {store['acked_2xx']:,}, "
                f"stored {store['stored_messages']:,}: {state} "
                f"({store['stored_unacked']:,} stored without a seen answer, in flight at "
                f"wrk's stop; at most {store['stored_unacked_max_expected']:,} expected)"
            )
    ceiling = targets.get("ceiling", {})
    if ceiling.get("status") == "measured" and ceiling["median"]["p99_ms"] > TARGET_P99_MS:
        print(
            f"  note: the ceiling itself has p99 {ceiling['median']['p99_ms']:.0f} ms > "
            f"{TARGET_P99_MS:.0f} ms: at this many connections the server is saturated and "
            "p99 is queueing, not the store"
        )
    for name, target in targets.items():
        if target.get("status") != "measured":
            continue
        if target["warmup_errors"]:
            print(f"  note: {name} warm-up had {target['warmup_errors']:,} errors")
        others = max(run["cpu_cores"].get("others", 0.0) for run in target["runs"])
        if others > CONTENDED_CORES:
            print(
                f"  note: {name}: other processes used up to {others:.2f} cores during the "
                "runs; its figures are understated (compare ratios within one quiet run)"
            )
        server_log = target["server_log"]
        if server_log["unhandled_exceptions"]:
            print(
                f"  note: {name} server logged {server_log['unhandled_exceptions']:,} unhandled "
                f"exceptions ({server_log['client_disconnects']:,} mention ClientDisconnect: "
                "requests cut off when wrk stopped); see server_log in the JSON"
            )


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per target")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL target")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.runs < 1 or args.connections < 1:
        parser.error("--duration, --runs and --connections must be at least 1")

    wrk = shutil.which("wrk")
    if wrk is None:
        print(
            "wrk is not installed: the ingest benchmark needs it as its load generator.\n"
            "Install it with:  apt-get install wrk   (Debian/Ubuntu package `wrk`)",
            file=sys.stderr,
        )
        return 2

    body = example_body()
    api_key = secrets.token_urlsafe(32)  # 43 characters; the bootstrap admin's key
    targets: dict[str, dict[str, Any]] = {}
    postgres_version: str | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
            workdir = Path(tmp)
            script = workdir / "post.lua"
            script.write_text(lua_script(body, api_key))
            FileKeyring.generate(workdir / "keyring.json", dev=True)
            common: dict[str, Any] = {
                "wrk": wrk,
                "args": args,
                "body": body,
                "api_key": api_key,
                "script": script,
                "workdir": workdir,
            }
            print(
                f"ingest benchmark: {args.runs} x {args.duration} s at {args.connections} "
                f"connections, {len(body):,}-byte message, {os.cpu_count()} CPUs",
                flush=True,
            )

            targets["ceiling"] = measure(Target("ceiling", "ceiling_app"), **common)

            sqlite_url = f"sqlite+aiosqlite:///{workdir / 'ingest.db'}"
            upgrade(sqlite_url)
            seed_demo_partners(sqlite_url, workdir)
            targets["sqlite"] = measure(Target("sqlite", "commcentre_app", sqlite_url), **common)

            if args.no_postgres:
                targets["postgres"] = {"status": "skipped", "reason": "--no-postgres"}
            elif (why := asyncio.run(_pg_reachable())) is not None:
                reason = f"PostgreSQL unreachable at 127.0.0.1:5432 ({why})"
                targets["postgres"] = {"status": "skipped", "reason": reason}
                print(f"  postgres skipped: {reason}", flush=True)
            else:
                postgres_version = asyncio.run(_pg_prepare())
                upgrade(PG_URL)
                seed_demo_partners(PG_URL, workdir)
                targets["postgres"] = measure(
                    Target("postgres", "commcentre_app", PG_URL), **common
                )
            tmp_filesystem = _filesystem(workdir)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2

    ratios, verdict = verdicts(targets)
    print_report(targets, ratios, verdict)
    overrides = {
        key: value
        for key, value in os.environ.items()
        if key.startswith("COMMCENTRE_") and key != "COMMCENTRE_BOOTSTRAP_ADMIN_KEY"
    }
    result = {
        "benchmark": "ingest",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(wrk),
        "parameters": {
            "duration_s": args.duration,
            "runs": args.runs,
            "connections": args.connections,
            "wrk_threads": min(WRK_THREADS, args.connections),
            "wrk_timeout": WRK_TIMEOUT,
            "warmup_s": WARMUP_SECONDS,
            "message_bytes": len(body),
            "postgres": not args.no_postgres,
            "postgres_version": postgres_version,
            "tmp_filesystem": tmp_filesystem,
            "server": "uvicorn, 1 worker, uvloop, httptools, no access log",
            "commcentre_env": overrides,
        },
        "targets": targets,
        "ratios_to_ceiling": ratios,
        "goals": {"min_ratio_to_ceiling": TARGET_RATIO, "max_p99_ms": TARGET_P99_MS},
        "verdict": verdict,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")

    measured = [t for t in targets.values() if t.get("status") == "measured"]
    failed = any(t["errors"] for t in measured) or any(
        not t["store"]["acked_all_stored"] for t in measured if "store" in t
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
