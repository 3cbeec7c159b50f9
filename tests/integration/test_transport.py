"""The shared client's transport: pooled connections, and the check for closed ones.

httpcore reuses an idle connection only when `get_extra_info("is_readable")` says
the server has not closed it. These tests run a real server on 127.0.0.1 that keeps
connections open, or closes them while they sit idle, and count its connections.
"""

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from commcentre.adapters.transport import PoolTransport, SocketKeepingBackend, _readable
from tests.integration.http_support import LocalServer, Received, reply

MAX_CONNECTIONS = 10
LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=5)
# Every answer says keep-alive; whether the server then keeps the connection is its choice.
OK = reply(200, b"ok", keep_alive=True)

StartServer = Callable[..., Awaitable[LocalServer]]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, transport=PoolTransport(limits=LIMITS)) as http:
        yield http


async def test_an_open_idle_connection_is_reused(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    server = await start_server(keep_alive=True, respond=OK)
    for _ in range(5):
        response = await client.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")
        assert response.status_code == 200
    assert (len(server.requests), server.connections) == (5, 1)


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    # The server answers "keep-alive", then closes the connection while it idles in the
    # client's pool. If the pool could not see the close, the second request would go
    # out on the dead connection and fail ("Server disconnected"): httpcore does not
    # resend it.
    server = await start_server(keep_alive=False, respond=OK)
    for expected in (1, 2, 3):
        response = await client.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")
        assert response.status_code == 200
        deadline = time.monotonic() + 5
        while server.closed < expected:
            assert time.monotonic() < deadline, "the server did not close the connection"
            await asyncio.sleep(0.01)
        assert server.connections == expected
    assert len(server.requests) == 3


async def test_concurrent_requests_share_the_pool_within_its_limit(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    server = await start_server(keep_alive=True, respond=OK)
    url = f"http://127.0.0.1:{server.port}/hook"
    for _ in range(3):
        answers = await asyncio.gather(*(client.post(url, content=b"{}") for _ in range(25)))
        assert {a.status_code for a in answers} == {200}
    assert len(server.requests) == 75
    assert 1 < server.peak_open <= MAX_CONNECTIONS


async def test_connect_errors_and_timeouts_keep_httpx_types(start_server: StartServer) -> None:
    # A port nobody listens on: refused at once, and mapped as httpx maps it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with httpx.AsyncClient(trust_env=False, transport=PoolTransport(limits=LIMITS)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/hook", content=b"{}")

    # A server that reads the request and never answers: httpx's ReadTimeout.
    async def silent(_request: Received, _writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    server = await start_server(respond=silent)
    async with httpx.AsyncClient(
        trust_env=False, transport=PoolTransport(limits=LIMITS), timeout=0.2
    ) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")


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


async def test_the_backend_hands_out_streams_that_know_their_socket(
    start_server: StartServer,
) -> None:
    server = await start_server(keep_alive=True, respond=OK)
    stream = await SocketKeepingBackend().connect_tcp("127.0.0.1", server.port, timeout=5)
    try:
        assert stream.get_extra_info("socket").fileno() >= 0
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
        assert stream.get_extra_info("is_readable") is False
    finally:
        await stream.aclose()
