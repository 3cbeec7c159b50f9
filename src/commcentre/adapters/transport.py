"""The HTTP transport under the shared client: httpx's API on aiohttp's connection pool.

Adapters speak httpx (`AsyncClient.build_request`, `send`, `Response`); the requests
travel on `httpx_aiohttp.AiohttpTransport`, which hands them to an aiohttp session.
Per POST that costs a fifth of the CPU of httpx's own transport (httpcore, h11 and
anyio), and most of a delivery's CPU was that (docs/performance.md).

The session is built here, not left to the defaults, because every delivery goes
to an address the SSRF guard vetted (`netguard.resolve_pinned`):

- Its resolver resolves nothing. A delivery URL carries the pinned IP and the
  partner's name travels only in `Host` and in TLS (SNI and the certificate check,
  from the request's `sni_hostname` extension). A URL with a host name reaching
  this transport is refused before any lookup: the only resolution is netguard's.
- Pooled connections are keyed by IP, port, TLS settings and the TLS server name
  (aiohttp >= 3.14.1 keys by `server_hostname`), so a connection verified for one
  name is never reused for another name on the same IP.
- No cookies, in aiohttp's session or in httpx's client: a `Set-Cookie` from one
  partner must never travel to another that shares its address.
- Failures surface as the httpx error they are (`ConnectError` for a refused
  connection or a certificate that does not match, `ReadTimeout`, ...), mapped here
  from aiohttp's types: httpx_aiohttp's own table turns most connection failures
  into `ConnectTimeout`.
- No environment proxies, no redirects, no decompression (httpx_aiohttp asks for
  neither of the last two on each request).
"""

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_reqrep import ConnectionKey
from httpx_aiohttp import AiohttpTransport

from commcentre.adapters.netguard import parse_ip

if "server_hostname" not in ConnectionKey._fields:  # pragma: no cover - guards the install
    raise ImportError(
        "aiohttp >= 3.14.1 is required: older pools may reuse a TLS connection verified "
        "for another host name"
    )


class NoNameResolver(AbstractResolver):
    """A resolver that resolves nothing: delivery URLs carry netguard's pinned address."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        raise OSError(f"the delivery transport resolves no host names ({host!r})")

    async def close(self) -> None:
        return None


def httpx_error(exc: BaseException) -> httpx.TransportError:
    """The httpx error for an aiohttp failure (the most specific type first)."""
    text = f"{type(exc).__name__}: {exc}"
    kinds: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
        (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
        (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
        (aiohttp.ClientConnectorError, httpx.ConnectError),  # refused, TLS, certificate
        (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
        (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a malformed answer
        (aiohttp.ClientConnectionError, httpx.NetworkError),
    )
    for aiohttp_type, httpx_type in kinds:
        if isinstance(exc, aiohttp_type):
            return httpx_type(text)
    return httpx.TransportError(text)


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request | None = None) -> Iterator[None]:
    """Raise an aiohttp failure, raw or as httpx_aiohttp mapped it, as `httpx_error` maps it."""
    try:
        yield
    except (aiohttp.ClientError, httpx.TransportError) as exc:
        cause = exc if isinstance(exc, aiohttp.ClientError) else exc.__cause__
        if not isinstance(cause, aiohttp.ClientError):
            raise
        error = httpx_error(cause)
        if request is not None:
            error.request = request
        raise error from cause


class _MappedStream(httpx.AsyncByteStream):
    """A response body whose read failures are mapped like the request's."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._inner:
                yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class PinnedTransport(AiohttpTransport):
    """`AiohttpTransport` on a session that connects only to addresses given as IPs."""

    def __init__(self, *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False, limits=limits, client=self._new_session)

    def _new_session(self) -> aiohttp.ClientSession:
        # Called on the first request, inside the running loop the session belongs to.
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            resolver=NoNameResolver(),
            use_dns_cache=False,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=False,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if parse_ip(request.url.host) is None:
            raise httpx.ConnectError(
                "the delivery transport connects only to pinned IP addresses", request=request
            )
        with _as_httpx_errors(request):
            response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _MappedStream(response.stream)
        return response


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing: httpx offers it every response, it reads none."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _DeliveryClient(httpx.AsyncClient):
    """httpx's client whose cookie jar keeps nothing and cannot be replaced."""

    def __init__(self, **options: Any) -> None:
        self._no_cookies = _NoCookies()
        super().__init__(**options)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, _cookies: Any) -> None:
        self._no_cookies = _NoCookies()


def delivery_client(
    *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True, **options: Any
) -> httpx.AsyncClient:
    """An httpx client on `PinnedTransport`: no environment proxies, redirects or cookies."""
    return _DeliveryClient(
        trust_env=False,
        follow_redirects=False,
        transport=PinnedTransport(limits=limits, verify=verify),
        **options,
    )
