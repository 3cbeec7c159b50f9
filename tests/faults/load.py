"""A client load on POST /v1/messages that outlives the API process it talks to.

Submitters in a thread of their own send messages until stopped, each with a
unique `case_ref` and `Idempotency-Key` (its number), and sort every request
by what the client could know of it:

- `accepted`: answered 202; the message must be delivered (acked).
- `refused`: the connection was refused or never made: the request was not sent.
- `unknown`: sent, and the connection died without an answer (SIGKILL mid-request):
  stored or not, the client cannot tell. A client retries these with the same
  Idempotency-Key; `retry_unknown` does, once the API is back.
- `answered`: any other status; none is expected.
"""

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.factories import message

CASE_PREFIX = "FAULT-LOAD-"
REFUSED_PAUSE = 0.05  # a submitter whose connection was refused waits this long
REQUEST_TIMEOUT = 10.0
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_UNKNOWN = (httpx.TransportError,)  # read/write errors, RemoteProtocolError, ReadTimeout


@dataclass
class Outcome:
    kind: str  # accepted, refused, unknown, answered
    status: int | None = None
    message_id: str | None = None
    deliveries: tuple[str, ...] = ()
    error: str | None = None
    replayed: bool = False  # a retry was answered from the stored Idempotency-Key response


def case_ref(number: int) -> str:
    return f"{CASE_PREFIX}{number:07d}"


@dataclass
class IngestLoad:
    """`concurrency` submitters on `base_url`; `outcomes` maps request number to Outcome."""

    base_url: str
    api_key: str
    partner_id: str
    concurrency: int = 8
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _next: int = 0
    _failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="fault-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT + 5)
            self._thread = None
        if self._failure is not None:
            raise RuntimeError("the load generator failed") from self._failure

    # -- figures -----------------------------------------------------------------------------

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(o.kind for o in self.outcomes.values())

    def acknowledged(self) -> dict[str, str]:
        """{delivery id: message id} of every request answered 202 (retries included)."""
        with self._lock:
            return {
                d: o.message_id
                for o in self.outcomes.values()
                if o.kind == "accepted" and o.message_id is not None
                for d in o.deliveries
            }

    def unknown(self) -> list[int]:
        with self._lock:
            return sorted(n for n, o in self.outcomes.items() if o.kind == "unknown")

    # -- requests ----------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by stop()
            self._failure = exc

    async def _run(self) -> None:
        async with self._client() as client:
            await asyncio.gather(*(self._submitter(client) for _ in range(self.concurrency)))

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, trust_env=False, timeout=REQUEST_TIMEOUT)

    async def _submitter(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            with self._lock:
                number, self._next = self._next, self._next + 1
            outcome = await self._send(client, number)
            with self._lock:
                self.outcomes[number] = outcome
            if outcome.kind == "refused":
                await asyncio.sleep(REFUSED_PAUSE)

    async def _send(self, client: httpx.AsyncClient, number: int) -> Outcome:
        body = message(recipients=[self.partner_id], case_ref=case_ref(number))
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Idempotency-Key": f"fault-load-{number}",
        }
        try:
            response = await client.post("/v1/messages", json=body, headers=headers)
        except _NOT_SENT as exc:
            return Outcome("refused", error=type(exc).__name__)
        except _UNKNOWN as exc:
            return Outcome("unknown", error=type(exc).__name__)
        if response.status_code != 202:
            return Outcome("answered", status=response.status_code, error=response.text[:200])
        answer: dict[str, Any] = response.json()
        return Outcome(
            "accepted",
            status=202,
            message_id=answer["id"],
            deliveries=tuple(d["id"] for d in answer["deliveries"]),
            replayed=response.headers.get("idempotent-replayed") == "true",
        )

    def retry_unknown(self, *, attempts: int = 20) -> dict[int, Outcome]:
        """Send each unknown-outcome request again with its Idempotency-Key until answered.

        The outcome of the retry replaces the unknown one; returns the retries' outcomes.
        """

        async def run() -> dict[int, Outcome]:
            retried: dict[int, Outcome] = {}
            async with self._client() as client:
                for number in self.unknown():
                    for _ in range(attempts):
                        outcome = await self._send(client, number)
                        # 409: the first is still in flight (cannot be after a restart, but
                        # a client would wait and retry); refused/unknown: try again.
                        if outcome.kind == "accepted" or outcome.status not in (None, 409):
                            break
                        await asyncio.sleep(0.1)
                    retried[number] = outcome
            return retried

        retried = asyncio.run(run())
        with self._lock:
            self.outcomes.update(retried)
        return retried
