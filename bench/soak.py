"""Soak run (not a test, not in CI): hours-shaped mixed traffic against `commcentre serve`.

Usage: .venv/bin/python bench/soak.py [--minutes 30] [--rate 1.0] [--interval 30]
                                      [--database-url URL] [--output bench/results/soak.json]
       make soak                        # the 30-minute default

Starts `python -m commcentre serve` (API and embedded dispatcher, one process)
on a free 127.0.0.1 port with a fresh SQLite database and a dev keyring under
$TMPDIR (or --database-url, e.g. a PostgreSQL database you made for it: its
schema is migrated, never reset). A loopback receiver in this process answers
the deliveries 200. Then, for --minutes, at a moderate rate (per second, times
--rate):

  20  POST /v1/messages          to the loopback partner (a unique case_ref each)
  10  GET  /v1/messages/{id}     with X-Justification, of a message sent before
   5  POST /v1/lookups           a document number sent before, with X-Justification
   5  POST /v1/inbound/{partner} a partner's event, signed with `standardwebhooks`
   2  GET  /v1/messages?limit=50 listing

Every --interval seconds it prints, and records, the server process's RSS and
peak RSS (/proc/<pid>/status), its open file descriptors (/proc/<pid>/fd) and
threads, and per kind of request the count, errors and p50/p99 latency in the
interval. At the end it waits for the outbox to drain (every 202 delivered to
the receiver), stops the server with SIGTERM and writes bench/results/soak.json.

What to look for: RSS and descriptors flat after warm-up (the result holds the
growth from the first sample after --warmup to the last); no 5xx, no transport
errors; everything accepted delivered.

`make bench` (bench/run_all.py) runs a 1-minute version (`--minutes 1`) as a
smoke check that the soak still works; run this script alone for the real run.

Exit status: 0 clean; 1 a request failed (5xx, unexpected status, transport
error) or an accepted message was not delivered; 2 the server could not start.
"""

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from standardwebhooks import Webhook

from commcentre.crypto import FileKeyring
from commcentre.migrate import upgrade

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO / "bench" / "results" / "soak.json"
START_SECONDS = 60.0
DRAIN_SECONDS = 60.0
OUT_PARTNER = "soak-receiver"
IN_PARTNER = "soak-sender"
# Requests per second of each kind at --rate 1.
RATES = {"submit": 20.0, "read": 10.0, "lookup": 5.0, "inbound": 5.0, "list": 2.0}
MESSAGE: dict[str, Any] = {
    "type": "request",
    "channel": "interpol",
    "priority": "urgent",
    "legal_basis": "DIR_2023_977",
    "handling_codes": ["H2"],
    "source_reliability": "B",
    "info_accuracy": 2,
    "subjects": [
        {
            "kind": "person",
            "surnames": ["VIRTANEN"],
            "forenames": ["MATTI"],
            "date_of_birth": "1984-07",
            "nationalities": ["FI"],
            "role": "suspect",
        },
        {
            "kind": "vehicle",
            "vin": "WVWZZZ1KZAW000001",
            "plate": "ABC-123",
            "registration_country": "FI",
            "status": "stolen",
        },
    ],
    "body": "Soak traffic: suspect crossed at Tornio; vehicle reported stolen.",
}


class SoakError(Exception):
    pass


# --- the server ---------------------------------------------------------------------------


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


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "commcentre",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=log.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SoakError(f"server exited with {process.returncode}:\n{_tail(log)}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    stop_server(process)
    raise SoakError(f"server not ready in {START_SECONDS:.0f} s:\n{_tail(log)}")


def stop_server(process: subprocess.Popen[bytes]) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def process_sample(pid: int) -> dict[str, int]:
    """RSS and peak RSS (KiB), open descriptors and threads of a process, from /proc."""
    status: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "Threads"):
            status[name] = int(value.split()[0])
    return {
        "rss_kib": status.get("VmRSS", 0),
        "peak_rss_kib": status.get("VmHWM", 0),
        "threads": status.get("Threads", 0),
        "open_fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


# --- the loopback receiver ------------------------------------------------------------------


@dataclass
class Receiver:
    """Answers every POST 200 and remembers the webhook-ids (on the driver's event loop)."""

    ids: set[str] = field(default_factory=set)
    requests: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every kept-alive connection (their handlers see EOF)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self._writers.add(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                self.requests += 1
                self.ids.add(headers.get("webhook-id", ""))
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: 2\r\nconnection: keep-alive\r\n\r\n{}"
                )
                await writer.drain()
        self._writers.discard(writer)
        writer.close()


# --- the traffic ----------------------------------------------------------------------------


@dataclass
class Interval:
    """Per kind of request: latencies (ms) and failures since the last sample."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in RATES:
            values = sorted(self.latencies.get(kind, []))
            failures = dict(self.failures.get(kind, {}))
            out[kind] = {
                "ok": len(values),
                "failed": sum(failures.values()),
                "failures": failures,
                "p50_ms": round(_percentile(values, 0.50), 1),
                "p99_ms": round(_percentile(values, 0.99), 1),
            }
        return out


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(fraction * len(values)))]


@dataclass
class Traffic:
    client: httpx.AsyncClient
    admin_key: str
    inbound_secret: str
    rng: random.Random
    interval: Interval = field(default_factory=Interval)
    sent_ids: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    accepted_deliveries: set[str] = field(default_factory=set)
    inbound_stored: int = 0
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    number: int = 0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    async def one(self, kind: str) -> None:
        began = time.monotonic()
        try:
            ok, why = await getattr(self, f"_{kind}")()
        except httpx.HTTPError as exc:
            ok, why = False, type(exc).__name__
        elapsed = (time.monotonic() - began) * 1000
        if ok:
            self.interval.latencies[kind].append(elapsed)
            self.totals[kind] += 1
        else:
            self.interval.failures[kind][why] += 1
            self.failed[kind] += 1

    async def _submit(self) -> tuple[bool, str]:
        self.number += 1
        document = f"SK{self.number:07d}"
        body = {
            **MESSAGE,
            "recipients": [OUT_PARTNER],
            "case_ref": f"SOAK-{self.number:07d}",
            "subjects": [
                *MESSAGE["subjects"],
                {
                    "kind": "document",
                    "number": document,
                    "type": "passport",
                    "issuing_country": "FI",
                    "status": "stolen",
                },
            ],
        }
        response = await self.client.post("/v1/messages", json=body, headers=self.auth)
        if response.status_code != 202:
            return False, str(response.status_code)
        answer = response.json()
        self.sent_ids.append(answer["id"])
        self.documents.append(document)
        self.accepted_deliveries.update(d["id"] for d in answer["deliveries"])
        return True, ""

    async def _read(self) -> tuple[bool, str]:
        if not self.sent_ids:
            return await self._list()
        message_id = self.rng.choice(self.sent_ids[-5000:])
        response = await self.client.get(
            f"/v1/messages/{message_id}",
            headers={**self.auth, "X-Justification": "soak: case work on a sent message"},
        )
        return response.status_code == 200, str(response.status_code)

    async def _lookup(self) -> tuple[bool, str]:
        number = self.rng.choice(self.documents) if self.documents else "SK0000000"
        query = {"queries": [{"kind": "document", "number": number, "issuing_country": "FI"}]}
        response = await self.client.post(
            "/v1/lookups",
            json=query,
            headers={**self.auth, "X-Justification": "soak: hit check at a border stop"},
        )
        return response.status_code == 200, str(response.status_code)

    async def _inbound(self) -> tuple[bool, str]:
        now = datetime.now(UTC)
        event = {
            "type": "message.outbound",
            "id": str(uuid.uuid4()),
            "timestamp": now.isoformat(),
            "data": {
                **MESSAGE,
                "recipients": ["FI"],
                "message_id": str(uuid.uuid4()),
                "created_at": now.isoformat(),
            },
        }
        body = orjson.dumps(event)
        webhook_id = f"msg_{uuid.uuid4().hex}"
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(self.inbound_secret).sign(webhook_id, now, body.decode()),
        }
        response = await self.client.post(
            f"/v1/inbound/{IN_PARTNER}", content=body, headers=headers
        )
        if response.status_code in (200, 202):
            self.inbound_stored += 1
            return True, ""
        return False, str(response.status_code)

    async def _list(self) -> tuple[bool, str]:
        response = await self.client.get("/v1/messages", params={"limit": 50}, headers=self.auth)
        return response.status_code == 200, str(response.status_code)


async def paced(traffic: Traffic, kind: str, per_second: float, until: float) -> None:
    """Start `kind` requests at `per_second` (Poisson arrivals), without waiting for answers."""
    pending: set[asyncio.Task[None]] = set()
    while time.monotonic() < until:
        await asyncio.sleep(traffic.rng.expovariate(per_second))
        task = asyncio.create_task(traffic.one(kind))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)


async def register_partners(traffic: Traffic, receiver_port: int, out_secret: str) -> None:
    partners = [
        {
            "id": OUT_PARTNER,
            "name": "Soak receiver",
            "adapter": "webhook",
            "config": {"url": f"http://127.0.0.1:{receiver_port}/hook"},
            "outbound_secrets": [out_secret],
            "allow_loopback": True,
        },
        {
            "id": IN_PARTNER,
            "name": "Soak sender",
            "adapter": "webhook",
            "config": {"url": "https://sender.example/in"},
            "inbound_secrets": [traffic.inbound_secret],
        },
    ]
    for partner in partners:
        response = await traffic.client.post("/v1/partners", json=partner, headers=traffic.auth)
        if response.status_code != 201:
            raise SoakError(f"cannot register {partner['id']}: {response.text}")


async def soak(args: argparse.Namespace, pid: int, port: int, admin_key: str) -> dict[str, Any]:
    receiver = Receiver()
    await receiver.start()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30, limits=limits
    ) as client:
        traffic = Traffic(client, admin_key, new_secret(), random.Random(args.seed))
        await register_partners(traffic, receiver.port, new_secret())

        started = time.monotonic()
        until = started + args.minutes * 60
        runners = [
            asyncio.create_task(paced(traffic, kind, rate * args.rate, until))
            for kind, rate in RATES.items()
        ]
        samples: list[dict[str, Any]] = []

        def sample() -> None:
            elapsed = time.monotonic() - started
            proc = process_sample(pid)
            entry = {
                "t_s": round(elapsed, 1),
                **proc,
                "delivered": len(receiver.ids),
                "accepted": len(traffic.accepted_deliveries),
                "requests": traffic.interval.summary(),
            }
            traffic.interval = Interval()
            samples.append(entry)
            req = entry["requests"]
            done = sum(v["ok"] for v in req.values())
            failed = sum(v["failed"] for v in req.values())
            print(
                f"{elapsed / 60:6.1f} min  rss {proc['rss_kib'] / 1024:7.1f} MiB  "
                f"peak {proc['peak_rss_kib'] / 1024:7.1f} MiB  fds {proc['open_fds']:4d}  "
                f"threads {proc['threads']:3d}  requests {done:6d} (failed {failed})  "
                f"submit p99 {req['submit']['p99_ms']:6.1f} ms  "
                f"delivered {entry['delivered']}/{entry['accepted']}",
                flush=True,
            )

        sample()
        while time.monotonic() < until:
            await asyncio.sleep(min(args.interval, max(0.0, until - time.monotonic())))
            if time.monotonic() < until - 1:
                sample()
        await asyncio.gather(*runners)
        sample()

        drain_started = time.monotonic()
        while not traffic.accepted_deliveries <= receiver.ids:
            if time.monotonic() - drain_started > DRAIN_SECONDS:
                break
            await asyncio.sleep(0.2)
        drain_seconds = time.monotonic() - drain_started
    await receiver.stop()
    undelivered = len(traffic.accepted_deliveries - receiver.ids)
    return {
        "samples": samples,
        "totals": {
            "ok": dict(traffic.totals),
            "failed": dict(traffic.failed),
            "messages_sent": len(traffic.sent_ids),
            "inbound_stored": traffic.inbound_stored,
            "deliveries_accepted": len(traffic.accepted_deliveries),
            "deliveries_received": len(receiver.ids & traffic.accepted_deliveries),
            "receiver_requests": receiver.requests,
            "undelivered": undelivered,
            "drain_s": round(drain_seconds, 1),
        },
    }


def new_secret() -> str:
    """A Standard Webhooks signing secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def growth(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any]:
    """RSS and descriptor change from the first sample after warm-up to the last."""
    after = [s for s in samples if s["t_s"] >= warmup_s] or samples[-1:]
    first, last = after[0], samples[-1]
    minutes = max((last["t_s"] - first["t_s"]) / 60, 1e-9)
    rss_mib = (last["rss_kib"] - first["rss_kib"]) / 1024
    return {
        "from_t_s": first["t_s"],
        "to_t_s": last["t_s"],
        "rss_mib": round(rss_mib, 1),
        "rss_mib_per_hour": round(rss_mib / minutes * 60, 1) if minutes > 1e-6 else None,
        "open_fds": last["open_fds"] - first["open_fds"],
        "threads": last["threads"] - first["threads"],
        "max_rss_mib": round(max(s["rss_kib"] for s in samples) / 1024, 1),
        "max_open_fds": max(s["open_fds"] for s in samples),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the traffic runs")
    parser.add_argument("--rate", type=float, default=1.0, help="multiplies every rate")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds before growth is measured"
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--seed", type=int, default=None, help="replay the traffic's choices")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    args = parser.parse_args(argv)
    args.seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    warmup = args.warmup if args.warmup is not None else min(120.0, args.minutes * 60 / 5)

    admin_key = "ck_" + secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="commcentre-soak-") as tmp:
        workdir = Path(tmp)
        database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'soak.db'}"
        keyring = workdir / "keyring.json"
        FileKeyring.generate(keyring, dev=True)
        upgrade(database_url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMMCENTRE_")}
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "COMMCENTRE_ENVIRONMENT": "dev",
                "COMMCENTRE_DATABASE_URL": database_url,
                "COMMCENTRE_KEYRING_PATH": str(keyring),
                "COMMCENTRE_BOOTSTRAP_ADMIN_KEY": admin_key,
            }
        )
        port = free_port()
        log = workdir / "server.log"
        print(
            f"soak: {args.minutes:g} min at rate x{args.rate:g} "
            f"({sum(RATES.values()) * args.rate:g} requests/s), seed {args.seed}, "
            f"{'sqlite' if database_url.startswith('sqlite') else 'postgresql'}",
            flush=True,
        )
        try:
            process = start_server(env, port, log)
        except SoakError as exc:
            print(f"soak failed: {exc}", file=sys.stderr)
            return 2
        try:
            result = asyncio.run(soak(args, process.pid, port, admin_key))
        finally:
            exit_code = stop_server(process)
        server_log = log.read_text(errors="replace")

    totals = result["totals"]
    change = growth(result["samples"], warmup)
    failed = sum(totals["failed"].values())
    verdict = {
        "failed_requests": failed,
        "undelivered": totals["undelivered"],
        "server_exit": exit_code,  # -15: uvicorn re-raises the SIGTERM after a clean shutdown
        "clean": failed == 0 and totals["undelivered"] == 0,
    }
    report = {
        "benchmark": "soak",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "parameters": {
            "minutes": args.minutes,
            "rate": args.rate,
            "requests_per_second": {k: v * args.rate for k, v in RATES.items()},
            "interval_s": args.interval,
            "warmup_s": warmup,
            "seed": args.seed,
            "database": "sqlite" if database_url.startswith("sqlite") else "postgresql",
            "server": "python -m commcentre serve (API + embedded dispatcher, one process)",
        },
        "samples": result["samples"],
        "totals": totals,
        "growth_after_warmup": change,
        "server_log": {
            "lines": len(server_log.splitlines()),
            "errors": server_log.count("[error"),
            "unhandled_exceptions": server_log.count("Exception in ASGI application"),
        },
        "verdict": verdict,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"\nrequests ok {dict(totals['ok'])}, failed {dict(totals['failed'])}; "
        f"messages sent {totals['messages_sent']}, inbound stored {totals['inbound_stored']}"
    )
    print(
        f"deliveries: {totals['deliveries_received']} of {totals['deliveries_accepted']} "
        f"received (undelivered {totals['undelivered']}, drained in {totals['drain_s']} s)"
    )
    print(
        f"after {warmup:g} s warm-up: rss {change['rss_mib']:+.1f} MiB "
        f"({change['rss_mib_per_hour']} MiB/h), fds {change['open_fds']:+d}, "
        f"threads {change['threads']:+d}; max rss {change['max_rss_mib']} MiB, "
        f"max fds {change['max_open_fds']}"
    )
    print(f"server log: {report['server_log']}; exit {exit_code}")
    print(f"wrote {args.output}")
    return 0 if verdict["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
