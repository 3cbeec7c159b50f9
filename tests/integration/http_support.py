"""A minimal asyncio HTTP/1.1 server on 127.0.0.1 whose answers a test chooses.

Used by the webhook adapter's contract tests, the shared transport's tests and the
dispatcher tests' scripted partner.
"""

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Respond = Callable[[Received, asyncio.StreamWriter], Awaitable[None]]


def reply(
    status: int,
    body: bytes = b"",
    headers: Sequence[tuple[str, str]] = (),
    *,
    keep_alive: bool = False,
) -> Respond:
    async def respond(request: Received, writer: asyncio.StreamWriter) -> None:
        connection = "keep-alive" if keep_alive else "close"
        lines = [
            f"HTTP/1.1 {status} X",
            f"content-length: {len(body)}",
            f"connection: {connection}",
        ]
        lines += [f"{name}: {value}" for name, value in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()

    return respond


@dataclass
class LocalServer:
    """`respond` decides what the partner does; connections are kept only with `keep_alive`."""

    ssl_context: ssl.SSLContext | None = None
    keep_alive: bool = False
    respond: Respond = field(default_factory=lambda: reply(200, b'{"id": "ref-1"}'))
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    peak_open: int = 0  # the most connections open at once
    closed: int = 0  # connections this server has closed
    port: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, ssl=self.ssl_context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.peak_open = max(self.peak_open, len(self._tasks))
        try:
            while True:
                request = await self._read_request(reader)
                self.requests.append(request)
                await self.respond(request, writer)
                if not self.keep_alive or request.headers.get("connection") == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            # Teardown cancels hung handlers; on 3.11 asyncio.streams would log the
            # cancellation as an error, so the handler ends normally instead.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            self.closed += 1

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Received:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers = {}
        for line in filter(None, head[1:]):
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Received(method, path, headers, body)


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[..., Awaitable[LocalServer]]]:
    started: list[LocalServer] = []

    async def start(**kwargs: Any) -> LocalServer:
        server = LocalServer(**kwargs)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
