"""The shared client's transport: aiohttp's pool under httpx, pinned to vetted addresses.

Each test runs a real server on 127.0.0.1 and counts what reaches it: connections
kept and reused, host names never resolved, no cookies, proxies or decompression,
and every failure surfacing as an httpx error.
"""

import asyncio
import gzip
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from commcentre.adapters.transport import NoNameResolver, delivery_client
from tests.integration.http_support import LocalServer, Received, reply

MAX_CONNECTIONS = 10
LIMITS = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=5)
# Every answer says keep-alive; whether the server then keeps the connection is its choice.
OK = reply(200, b"ok", keep_alive=True)

StartServer = Callable[..., Awaitable[LocalServer]]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with delivery_client(limits=LIMITS) as http:
        yield http


async def test_an_open_idle_connection_is_reused(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    server = await start_server(keep_alive=True, respond=OK)
    for _ in range(5):
        response = await client.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")
        assert response.status_code == 200
        assert response.text == "ok"
    assert (len(server.requests), server.connections) == (5, 1)


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    # The server answers "keep-alive", then closes the connection while it idles in the
    # client's pool. Were the close not seen, the next request would go out on the dead
    # connection and fail ("Can not write request body"). (A close that crosses a request
    # on the wire fails that delivery; the dispatcher retries it.)
    server = await start_server(keep_alive=False, respond=OK)
    for expected in (1, 2, 3):
        response = await client.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")
        assert response.status_code == 200
        deadline = time.monotonic() + 5
        while server.closed < expected:
            assert time.monotonic() < deadline, "the server did not close the connection"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # an idle connection: the close has reached the client
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


async def test_a_host_name_is_refused_before_any_lookup(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    # "localhost" would resolve to this very server: the transport must not try.
    server = await start_server(keep_alive=True, respond=OK)
    with pytest.raises(httpx.ConnectError, match="pinned IP"):
        await client.post(f"http://localhost:{server.port}/hook", content=b"{}")
    assert server.connections == 0
    with pytest.raises(OSError, match="resolves no host names"):
        await NoNameResolver().resolve("localhost", server.port)


async def test_ipv6_literals_are_addresses(client: httpx.AsyncClient) -> None:
    try:
        listener = await asyncio.start_server(_answer_ok, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    async with listener:
        port = listener.sockets[0].getsockname()[1]
        response = await client.post(f"http://[::1]:{port}/hook", content=b"{}")
    assert response.status_code == 200


async def _answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    await writer.drain()
    writer.close()


async def test_cookies_a_partner_sets_are_never_sent_back(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    # Two partners may share an address: what one sets must not reach the other.
    server = await start_server(
        keep_alive=True,
        respond=reply(200, headers=[("set-cookie", "session=abc; Path=/")], keep_alive=True),
    )
    for _ in range(2):
        await client.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")
    assert [r.headers.get("cookie") for r in server.requests] == [None, None]
    assert not client.cookies  # httpx's own jar kept nothing either


async def test_environment_proxies_are_ignored(
    client: httpx.AsyncClient, start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = await start_server(respond=OK)
    partner = await start_server(respond=OK)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with delivery_client(limits=LIMITS) as fresh:  # built after the environment changed
        response = await fresh.post(f"http://127.0.0.1:{partner.port}/hook", content=b"{}")
    assert response.status_code == 200
    assert (proxy.connections, len(partner.requests)) == (0, 1)


async def test_a_compressed_answer_is_not_decompressed(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    # A small gzip answer could expand to gigabytes: the raw bytes are what is read.
    packed = gzip.compress(b"x" * 100_000)
    server = await start_server(respond=reply(200, packed, [("content-encoding", "gzip")]))
    request = client.build_request("POST", f"http://127.0.0.1:{server.port}/", content=b"{}")
    response = await client.send(request, stream=True)
    try:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    assert raw == packed


async def test_a_redirect_is_returned_not_followed(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    elsewhere = await start_server(respond=OK)
    location = f"http://127.0.0.1:{elsewhere.port}/steal"
    server = await start_server(respond=reply(307, headers=[("location", location)]))
    response = await client.post(f"http://127.0.0.1:{server.port}/", content=b"{}")
    assert response.status_code == 307
    assert elsewhere.connections == 0


async def test_a_malformed_answer_is_an_httpx_transport_error(
    client: httpx.AsyncClient, start_server: StartServer
) -> None:
    async def garbage(_request: Received, writer: asyncio.StreamWriter) -> None:
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    server = await start_server(respond=garbage)
    with pytest.raises(httpx.TransportError):
        await client.post(f"http://127.0.0.1:{server.port}/", content=b"{}")


async def test_connect_errors_and_timeouts_keep_httpx_types(start_server: StartServer) -> None:
    # A port nobody listens on: refused at once, and mapped as httpx maps it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with delivery_client(limits=LIMITS) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/hook", content=b"{}")

    # A server that reads the request and never answers: an httpx timeout.
    async def silent(_request: Received, _writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()

    server = await start_server(respond=silent)
    async with delivery_client(limits=LIMITS, timeout=0.2) as http:
        with pytest.raises(httpx.TimeoutException):
            await http.post(f"http://127.0.0.1:{server.port}/hook", content=b"{}")
