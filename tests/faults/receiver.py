"""A webhook receiver on 127.0.0.1 that records every request it gets.

A minimal HTTP/1.1 server (keep-alive, Content-Length bodies) on an event loop
of its own, in a thread of the test process: workers run in other processes,
so the receiver's clock is the single clock every request is timed on. It
answers 200 after an optional random delay, verifies the Standard Webhooks
signature, and tracks the requests in flight per `webhook-id`: a second one
arriving while the first is unanswered means two workers held the same
delivery at once.

A partner in trouble: with `answer`, a function of each request chooses what
it gets instead of 200 (see ANSWERS): 500, 429 with Retry-After, 410, `hang`
(no answer until the sender gives up and closes) or `reset` (the connection is
aborted with a TCP RST after the request was read).
"""

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
    b"connection: keep-alive\r\n\r\n{}"
)
START_SECONDS = 10.0
STOP_SECONDS = 5.0
HANG_SECONDS = 30.0  # the longest a `hang` waits for the sender to give up
RETRY_AFTER_SECONDS = 1


def _status(line: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 "
        + line
        + b"\r\ncontent-length: 0\r\n"
        + extra
        + b"connection: keep-alive\r\n\r\n"
    )


# What `answer` may choose; the values are the bytes written (hang and reset write none).
ANSWERS: dict[str, bytes | None] = {
    "200": RESPONSE,
    "500": _status(b"500 Internal Server Error"),
    "429": _status(b"429 Too Many Requests", b"retry-after: %d\r\n" % RETRY_AFTER_SECONDS),
    "410": _status(b"410 Gone"),
    "hang": None,
    "reset": None,
}


@dataclass(slots=True)
class Received:
    """One request as the receiver saw it; times from `time.monotonic()`."""

    webhook_id: str
    body: bytes
    signature_ok: bool
    started: float  # the request's head was read
    ended: float | None = None  # the answer was written (None: the sender was gone)
    answer: str = "200"  # a key of ANSWERS


class Receiver:
    """Records POSTs to any path; `url` is where partners should point."""

    def __init__(
        self,
        *,
        secret: str,
        delay: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
        answer: Callable[[Received], str] | None = None,
    ) -> None:
        self._webhook = Webhook(secret)
        self._delay = delay
        self._answer = answer
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._in_flight: dict[str, int] = {}
        self._overlaps: list[str] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "Receiver":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="fault-receiver", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_SECONDS):
            raise RuntimeError("the receiver did not start")
        if self._failure is not None:
            raise RuntimeError("the receiver could not listen") from self._failure

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        thread.join(START_SECONDS)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hook"

    # -- what was received -------------------------------------------------------------------

    def received(self) -> list[Received]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def ids(self) -> set[str]:
        with self._lock:
            return {r.webhook_id for r in self._received}

    def overlaps(self) -> list[str]:
        """webhook-ids that arrived while a request with the same id was unanswered."""
        with self._lock:
            return list(self._overlaps)

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._in_flight.values())

    def answers(self) -> Counter[str]:
        """How many requests got each answer."""
        with self._lock:
            return Counter(r.answer for r in self._received)

    def accepted_ids(self) -> set[str]:
        """webhook-ids answered 2xx at least once (the answer was written)."""
        with self._lock:
            return {r.webhook_id for r in self._received if r.answer == "200" and r.ended}

    def set_answer(self, answer: Callable[[Received], str] | None) -> None:
        """Change what later requests get (None: 200 again)."""
        with self._lock:
            self._answer = answer

    # -- the server --------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        handlers: set[asyncio.Task[None]] = set()
        writers: set[asyncio.StreamWriter] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            writers.add(writer)
            try:
                await self._connection(reader, writer)
            finally:
                handlers.discard(task)
                writers.discard(writer)
                writer.close()
                with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                    await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
        self._port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.close()
            # Closing a connection ends its handler (its next read finds the end); one
            # still waiting out a delay finishes it first. Cancelling is the last resort.
            for writer in list(writers):
                writer.close()
            if handlers:
                _, stuck = await asyncio.wait(set(handlers), timeout=STOP_SECONDS)
                for task in stuck:
                    task.cancel()
                await asyncio.gather(*stuck, return_exceptions=True)
            await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                started = time.monotonic()
                headers = _headers(head)
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                record = self._arrived(headers, body, started)
                try:
                    if record.answer == "reset":
                        _reset(writer)
                        return
                    if record.answer == "hang":
                        # Never answer; the sender times out and closes (EOF ends the read).
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(reader.read(), HANG_SECONDS)
                        return
                    low, high = self._delay
                    if high > 0:
                        await asyncio.sleep(self._random.uniform(low, high))
                    writer.write(ANSWERS[record.answer] or RESPONSE)
                    await writer.drain()
                    record.ended = time.monotonic()
                finally:
                    self._answered(record)
                if headers.get("connection", "").lower() == "close":
                    return

    def _arrived(self, headers: dict[str, str], body: bytes, started: float) -> Received:
        webhook_id = headers.get("webhook-id", "")
        try:
            self._webhook.verify(body, headers, json_parse=False)
            signature_ok = True
        except WebhookVerificationError:
            signature_ok = False
        record = Received(webhook_id, body, signature_ok, started)
        with self._lock:
            if self._answer is not None:
                record.answer = self._answer(record)
                if record.answer not in ANSWERS:
                    raise ValueError(f"unknown answer {record.answer!r}")
            self._received.append(record)
            if self._in_flight.get(webhook_id, 0):
                self._overlaps.append(webhook_id)
            self._in_flight[webhook_id] = self._in_flight.get(webhook_id, 0) + 1
        return record

    def _answered(self, record: Received) -> None:
        with self._lock:
            left = self._in_flight[record.webhook_id] - 1
            if left:
                self._in_flight[record.webhook_id] = left
            else:
                del self._in_flight[record.webhook_id]


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _headers(head: bytes) -> dict[str, str]:
    """Header names lower-cased; the request line is skipped."""
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers
