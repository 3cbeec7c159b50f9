"""A subscriber on 127.0.0.1 for the tests: a real HTTP server that records what it gets
and answers as the test says."""

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


Answer = Callable[[Request], Awaitable[int]]


def status(code: int) -> Answer:
    async def answer(request: Request) -> int:
        return code

    return answer


@dataclass
class Subscriber:
    """An HTTP/1.1 server that records requests and answers with `script`, then `otherwise`."""

    script: deque[Answer] = field(default_factory=deque)
    otherwise: Answer = field(default_factory=lambda: status(200))
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in filter(None, head[1:]):
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Request(headers, body)
            self.requests.append(request)
            answer = self.script.popleft() if self.script else self.otherwise
            code = await answer(request)
            writer.write(
                f"HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def free_port() -> int:
    """A port nothing listens on (for a subscriber that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
