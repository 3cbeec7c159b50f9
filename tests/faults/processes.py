"""`commcentre` child processes of a fault test, and the API calls made to them.

Every process is `python -m commcentre ...` with its settings in COMMCENTRE_*
variables and its output in a log file. `Children.close` leaves none behind:
SIGTERM, a short grace, then SIGKILL, and always a wait (no zombie, no
ResourceWarning).
"""

import asyncio
import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.factories import message

STARTUP_SECONDS = 30.0  # importing commcentre takes 2-3 s on a busy 2-core machine
STOP_GRACE_SECONDS = 3.0
_DELIVERED = re.compile(r"dispatcher_stopped\b.*?\bdelivered=(\d+)")
_OWNER = re.compile(r"dispatcher_started\b.*?\bowner=(\S+)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def commcentre_env(**settings: object) -> dict[str, str]:
    """This environment without any COMMCENTRE_ variable, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMCENTRE_")}
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the file before a SIGKILL
    env["COMMCENTRE_ENVIRONMENT"] = "dev"
    for name, value in settings.items():
        env[f"COMMCENTRE_{name.upper()}"] = str(value)
    return env


@dataclass
class Child:
    """One `commcentre` process and its log (stdout and stderr)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, needle: str, *, timeout: float = STARTUP_SECONDS) -> float:
        """Wait until the log holds `needle`; seconds waited. Fails if the process exits."""
        started = time.monotonic()
        deadline = started + timeout
        while needle not in self.log_text():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode} before logging "
                    f"{needle!r}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not log {needle!r} in {timeout:.0f} s")
            time.sleep(0.02)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or released."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, grace: float = STOP_GRACE_SECONDS) -> bool:
        """SIGTERM, SIGKILL after `grace` seconds; True when it stopped by itself, cleanly.

        Clean: exit status 0, or death by the SIGTERM itself, which uvicorn re-raises
        once its graceful shutdown is done.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return False
        return self.process.wait() in (0, -signal.SIGTERM)

    def lease_owner(self) -> str | None:
        """The dispatcher's lease owner name, from its dispatcher_started line."""
        found = _OWNER.search(self.log_text())
        return found.group(1) if found else None

    def delivered(self) -> int | None:
        """`delivered=` of the dispatcher_stopped line logged at a graceful stop."""
        found = _DELIVERED.search(self.log_text())
        return int(found.group(1)) if found else None


class Children:
    """The processes a test started; `close` stops every one still running."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Child] = []

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> Child:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "commcentre", *args],
                cwd=self.workdir,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        child = Child(name, process, log)
        self.started.append(child)
        return child

    def close(self) -> None:
        running = [c for c in self.started if c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in running:
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        for child in self.started:
            child.process.wait()


# -- the API of a `commcentre serve --no-worker` process -------------------------------------


@dataclass(frozen=True)
class Api:
    child: Child
    base_url: str
    admin_key: str


def start_api(
    children: Children,
    env: Mapping[str, str],
    *,
    name: str = "api",
    admin_key: str | None = None,
    port: int | None = None,
) -> Api:
    """`commcentre serve --no-worker` on a free port (or `port`), with a bootstrap admin key."""
    port = port or free_port()
    admin_key = admin_key or "ck_" + secrets.token_urlsafe(32)
    child = children.start(
        name,
        ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
        {**env, "COMMCENTRE_BOOTSTRAP_ADMIN_KEY": admin_key},
    )
    wait_healthy(child, port)
    return Api(child, f"http://127.0.0.1:{port}", admin_key)


def wait_healthy(child: Child, port: int, *, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise AssertionError(
                f"{child.name} exited with {child.process.returncode}:\n{child.tail()}"
            )
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.05)
    raise AssertionError(f"{child.name} did not answer /healthz in {timeout:.0f} s")


def create_webhook_partner(
    base_url: str, admin_key: str, *, partner_id: str, url: str, secret: str
) -> None:
    """A `webhook` partner pointing at the receiver (loopback allowed), through the API."""
    body = {
        "id": partner_id,
        "name": "Fault-test receiver",
        "adapter": "webhook",
        "config": {"url": url},
        "outbound_secrets": [secret],
        "allow_loopback": True,
    }
    with httpx.Client(base_url=base_url, trust_env=False, timeout=30) as client:
        response = client.post(
            "/v1/partners", json=body, headers={"Authorization": f"Bearer {admin_key}"}
        )
    assert response.status_code == 201, response.text


def ingest(
    base_url: str, api_key: str, *, partner_id: str, count: int, concurrency: int = 16
) -> dict[str, str]:
    """POST `count` messages addressed to the partner; {delivery id: message id} of the 202s."""

    async def run() -> dict[str, str]:
        accepted: dict[str, str] = {}
        body = message(recipients=[partner_id])
        headers = {"Authorization": f"Bearer {api_key}"}
        todo = iter(range(count))
        async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=30) as client:

            async def submitter() -> None:
                for _ in todo:
                    response = await client.post("/v1/messages", json=body, headers=headers)
                    assert response.status_code == 202, response.text
                    answer: dict[str, Any] = response.json()
                    for delivery in answer["deliveries"]:
                        accepted[delivery["id"]] = answer["id"]

            await asyncio.gather(*(submitter() for _ in range(concurrency)))
        return accepted

    return asyncio.run(run())
