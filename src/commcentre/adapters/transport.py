"""The HTTP transport under the shared client: httpx's pool on a cheaper network stream.

Before it hands out a connection, and again when a response closes, httpcore's pool
asks every idle connection whether the server has closed it (`has_expired`). It asks
through the network stream's `get_extra_info("is_readable")`, and httpcore's anyio
stream answers by asking anyio for the raw socket. anyio then rebuilds the socket's
whole attribute table, which includes a `getpeername()` system call. With 32
connections to a partner, that happened 64 times per delivery, and it was about a
third of the dispatcher's HTTP time.

The streams here keep the raw socket from the start and poll it directly. Everything
else is left to httpcore's own anyio backend: connecting, TLS, reads and writes,
timeouts and their exceptions.
"""

# The `timeout` parameters are httpcore's network-stream interface, not a choice made here.
# ruff: noqa: ASYNC109

import select
import ssl
from collections.abc import Iterable
from typing import Any, Protocol

import httpcore
import httpx


class _Socket(Protocol):
    def fileno(self) -> int: ...


def _readable(sock: _Socket | None) -> bool:
    """True when a read would not block: data, EOF or an error (as httpcore decides)."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """An httpcore network stream that knows its socket."""

    __slots__ = ("_inner", "_socket")

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        # For TLS this is still the TCP socket underneath, which is what must be polled.
        self._socket: _Socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


class SocketKeepingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, with streams that poll their socket directly."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PoolTransport(httpx.AsyncHTTPTransport):
    """httpx's HTTP/1.1 transport over `SocketKeepingBackend`.

    httpx builds its httpcore pool without a way to choose the network backend, so
    the pool is built here the way httpx builds it (certificates from certifi, no
    environment settings), with the backend given.
    """

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=SocketKeepingBackend(),
        )
