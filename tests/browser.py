"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for page tests.

The protocol runs over a pipe (`--remote-debugging-pipe`: commands on the child's fd 3,
answers and events on its fd 4, each message JSON ended by a NUL byte), so no port and
no client library are needed. Chromium resolves no host name but the ones mapped to
127.0.0.1 (`--host-resolver-rules`): a page that reaches outside fails to load that part
instead of fetching it, and every request the page makes is recorded.
"""

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
_IN_FD, _OUT_FD = 3, 4  # fixed by Chromium for --remote-debugging-pipe

# Recorded before any script of the page runs: what the page's Content-Security-Policy
# refused (the test fails on any), as "directive blocked-uri".
_RECORD_CSP_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def _high_pipe() -> tuple[int, int]:
    """A pipe whose two ends are fds 10 or above, clear of the 3 and 4 they move to."""
    ends = os.pipe()
    high = tuple(fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 10) for end in ends)
    for end in ends:
        os.close(end)
    return high[0], high[1]


def chromium_available() -> bool:
    return Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)


class BrowserError(AssertionError):
    pass


@dataclass
class Page:
    """One tab: what it requested and what its console reported."""

    browser: "Browser"
    session_id: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        return self.browser.send(method, params, session_id=self.session_id)

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The value of a JavaScript expression in the page (of its promise, if awaited)."""
        result = self.send(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, *, timeout: float) -> Any:
        """Poll `expression` until it is truthy; its value. Fails after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"{expression!r} still falsy after {timeout:.0f} s; requests "
                    f"{self.requests}, console errors {self.console_errors}"
                )
            time.sleep(0.1)

    def csp_violations(self) -> list[str]:
        return list(self.evaluate("window.__cspViolations") or [])

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"])
        path.write_bytes(data)
        return data


class Browser:
    """A headless Chromium process with a fresh profile in `workdir`; close() ends it."""

    def __init__(self, workdir: Path, *, allow_hosts: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self._next_id = 0
        self._buffer = b""
        self._pages: dict[str, Page] = {}
        to_child_r, self._to_child = _high_pipe()
        self._from_child, from_child_w = _high_pipe()
        rules = ", ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {host}" for host in allow_hosts)])
        args = [
            # The pipe ends move to fds 3 and 4 in the child. A shell does it rather than
            # a preexec_fn, which is unsafe in a process with threads (aiosqlite's).
            "/bin/bash",
            "-c",
            f'exec {_IN_FD}<&"$1" {_OUT_FD}>&"$2"; shift 2; exec "$@"',
            "chromium-pipe",
            str(to_child_r),
            str(from_child_w),
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--host-resolver-rules={rules}",
            f"--user-data-dir={workdir / 'profile'}",
            "--window-size=1280,900",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self._log = (workdir / "chromium.log").open("wb")
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(to_child_r, from_child_w),
        )
        os.close(to_child_r)
        os.close(from_child_w)

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None
    ) -> dict[str, Any]:
        """Send one command and wait for its answer, recording the events that come first."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self._record(answer)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self._from_child], [], [], max(remaining, 0))
            if not readable:
                raise BrowserError("Chromium did not answer in 30 s")
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise BrowserError(f"Chromium exited ({self.process.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _record(self, event: dict[str, Any]) -> None:
        page = self._pages.get(event.get("sessionId", ""))
        if page is None:
            return
        params = event.get("params", {})
        if event.get("method") == "Network.requestWillBeSent":
            page.requests.append(params["request"]["url"])
        elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
            page.console_errors.append(params["entry"].get("text", ""))
        elif event.get("method") == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            page.console_errors.append(
                details.get("exception", {}).get("description") or details.get("text", "")
            )

    def open(self, url: str, *, width: int = 1280, height: int = 900) -> Page:
        """A new tab that has started loading `url`, with requests and errors recorded."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        page = Page(self, session["sessionId"])
        self._pages[page.session_id] = page
        for domain in ("Page", "Network", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        page.send("Page.addScriptToEvaluateOnNewDocument", source=_RECORD_CSP_VIOLATIONS)
        page.send("Page.navigate", url=url)
        return page

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                with contextlib.suppress(BrowserError):  # it may be exiting already
                    self.send("Browser.close")
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        finally:
            os.close(self._to_child)
            os.close(self._from_child)
            self._log.close()


def require_chromium() -> None:
    """Fail with a clear message when Chromium is missing (CI must have it: .ci/run)."""
    if not chromium_available():
        raise BrowserError(
            f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run installs it); "
            f"found on PATH: {shutil.which('chromium')}"
        )
