"""A private PostgreSQL cluster for crash tests: its own data directory, port and sockets.

Made with initdb in a temporary directory and run by pg_ctl on a free port on
127.0.0.1 (Unix sockets in the same directory), so that crashing it with
`pg_ctl stop -m immediate` touches nothing else: never the machine's main
cluster on 5432. The binaries come from /usr/lib/postgresql/<version>/bin (the
newest), or PG_BIN. PostgreSQL refuses to run as root: as root, every command
runs as the `postgres` user through `runuser`, in a directory it owns.

`unavailable()` says why a cluster cannot be made here (the test skips with it).
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.faults.processes import free_port

PG_BIN_ENV = "PG_BIN"
SERVICE_USER = "postgres"
START_SECONDS = 60


def find_bin() -> Path | None:
    """The directory of initdb and pg_ctl: PG_BIN, else the newest /usr/lib/postgresql/*/bin."""
    given = os.environ.get(PG_BIN_ENV)
    if given:
        return Path(given) if (Path(given) / "initdb").exists() else None
    found = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").exists() and (path / "pg_ctl").exists()
    ]

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.parent.name.split(".") if p.isdigit())

    return max(found, key=version) if found else None


def _runas() -> list[str] | None:
    """The prefix that runs a command as a user PostgreSQL accepts; None when impossible."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", SERVICE_USER, "--"]
    return None


def unavailable() -> str | None:
    """Why no private cluster can be made here, or None."""
    if find_bin() is None:
        return (
            "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin; "
            f"install the server package or set {PG_BIN_ENV}"
        )
    if _runas() is None:
        return (
            "running as root and cannot run initdb as the `postgres` user "
            "(no such user, or no runuser)"
        )
    return None


class PrivateCluster:
    """initdb + pg_ctl start on a free port; `crash()` and `start()`; `close()` removes it."""

    def __init__(self) -> None:
        bindir, runas = find_bin(), _runas()
        if bindir is None or runas is None:
            raise RuntimeError(unavailable())
        self.bindir, self.runas = bindir, runas
        self.root = Path(tempfile.mkdtemp(prefix="commcentre-pg-"))
        if runas:
            user = pwd.getpwnam(SERVICE_USER)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.crashes = 0
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )

    @property
    def server_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = START_SECONDS) -> str:
        command = [*self.runas, str(self.bindir / tool), *args]
        done = subprocess.run(
            command,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} exited with {done.returncode}: {done.stderr.strip() or done.stdout}\n"
                f"{self.log_tail()}"
            )
        return done.stdout

    def start(self) -> float:
        """Start (or restart after a crash, replaying the WAL); seconds until it accepts."""
        began = time.monotonic()
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c max_connections=100 -c fsync=on"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return time.monotonic() - began

    def crash(self) -> float:
        """`pg_ctl stop -m immediate`: every server process quits at once, no checkpoint."""
        began = time.monotonic()
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.crashes += 1
        return time.monotonic() - began

    def running(self) -> bool:
        done = subprocess.run(
            [*self.runas, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def recovered_from_crash(self) -> int:
        """How many times the server log says it recovered (redo) after an unclean stop."""
        return self.log_tail(lines=100_000).count("automatic recovery in progress")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            if self.running():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
