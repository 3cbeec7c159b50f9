"""The shared client's transport: pooled connections, and the check for closed ones.

httpcore reuses an idle connection only when `get_extra_info("is_readable")` says
the server has not closed it. These tests run a real server on 127.0.0.1 that keeps
connections open, or closes them while they sit idle, and count its connections.
"""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from commcentre.adapters.transport import PoolTransport, SocketKeepingBackend, _readable

MAX_CONNECTIONS = 10
LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=5)


class KeepAliveServer:
    """Answers 200 with keep-alive; with `close_idle`, closes each connection after answering."""

    def __init__(self, *, close_idle: bool = False) -> None:
        self.close_idle = close_idle
        self.connections = 0
        self.open = 0
        self.peak_open = 0
        self.requests = 0
        self.closed = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()  # the handlers see EOF and end
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                self.requests += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok"
                )
                await writer.drain()
                if self.close_idle:
                    break  # the connection now idles in the client's pool, and is closed here
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.closed.set()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, transport=PoolTransport(limits=LIMITS)) as http:
        yield http


async def started(server: KeepAliveServer) -> KeepAliveServer:
    await server.start()
    return server


async def test_an_open_idle_connection_is_reused(client: httpx.AsyncClient) -> None:
    server = await started(KeepAliveServer())
    try:
        for _ in range(5):
            response = await client.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")
            assert response.status_code == 200
        assert (server.requests, server.connections) == (5, 1)
    finally:
        await server.stop()


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    client: httpx.AsyncClient,
) -> None:
    # If the pool could not see the close, the second request would go out on the dead
    # connection and fail ("Server disconnected"): httpcore does not resend it.
    server = await started(KeepAliveServer(close_idle=True))
    try:
        for expected in (1, 2, 3):
            server.closed.clear()
            response = await client.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")
            assert response.status_code == 200
            await asyncio.wait_for(server.closed.wait(), 5)
            assert server.connections == expected
        assert server.requests == 3
    finally:
        await server.stop()


async def test_concurrent_requests_share_the_pool_within_its_limit(
    client: httpx.AsyncClient,
) -> None:
    server = await started(KeepAliveServer())
    try:
        url = f"http://127.0.0.1:{server.port}/hook"
        for _ in range(3):
            answers = await asyncio.gather(*(client.post(url, content=b"{}") for _ in range(25)))
            assert {a.status_code for a in answers} == {200}
        assert server.requests == 75
        assert 1 < server.peak_open <= MAX_CONNECTIONS
    finally:
        await server.stop()


async def test_connect_errors_and_timeouts_keep_httpx_types() -> None:
    # A port nobody listens on: refused at once, and mapped as httpx maps it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient(trust_env=False, transport=PoolTransport(limits=LIMITS)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/hook", content=b"{}")

    # A server that accepts and never answers: the read timeout is httpx's ReadTimeout.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        async with httpx.AsyncClient(
            trust_env=False, transport=PoolTransport(limits=LIMITS), timeout=0.2
        ) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.post(f"http://127.0.0.1:{port}/hook", content=b"{}")
    finally:
        server.close()


def test_readable_means_data_eof_or_no_socket() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert _readable(left) is False  # idle and open: reusable
        right.sendall(b"x")
        assert _readable(left) is True  # unexpected data: not reusable
        left.recv(1)
        assert _readable(left) is False
        right.close()
        assert _readable(left) is True  # EOF: the peer closed it
    assert _readable(left) is True  # closed here (no descriptor)
    assert _readable(None) is True


async def test_the_backend_hands_out_streams_that_know_their_socket() -> None:
    server = await started(KeepAliveServer())
    try:
        stream = await SocketKeepingBackend().connect_tcp("127.0.0.1", server.port, timeout=5)
        try:
            assert stream.get_extra_info("socket").fileno() >= 0
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
            assert stream.get_extra_info("is_readable") is False
        finally:
            await stream.aclose()
    finally:
        await server.stop()
