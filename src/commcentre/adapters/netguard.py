"""SSRF guard: vet a partner URL, resolve its host once, and pin the address.

A partner URL is operator input, and its DNS answer is attacker-influenced, so
every address the name resolves to must be a public one. The caller then
connects to the pinned IP (keeping the host name for `Host` and TLS), so a
second, different DNS answer (rebinding) can never be used.

Refusals raise `PermanentDeliveryError` naming the reason, never the internal
address itself; a resolver failure is `RetryableDeliveryError` (DNS is flaky).
"""

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from commcentre.adapters.base import PermanentDeliveryError, Resolver, RetryableDeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 6598 carrier-grade NAT space: Python's is_private misses it on 3.11.
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
# RFC 6052 well-known NAT64 prefix: the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# A label is "numeric" the way WHATWG URL parsers see it: these become IPv4 addresses
# (127.1, 0x7f000001, 2130706433, 0177.0.0.1), so they must never reach a resolver.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
# Characters on which URL parsers disagree (backslash, whitespace, controls).
_SUSPICIOUS = re.compile(r"[\\\s\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    """A vetted destination: connect to `ip`, but speak HTTP and TLS as `host`."""

    scheme: str
    host: str
    port: int
    ip: str
    path: str
    # The pinned address is not a public one (loopback, or a private network allowed by
    # the operator): what it answers must never be shown back (an SSRF read-out).
    internal: bool = False

    @property
    def connect_url(self) -> str:
        """The URL that reaches the pinned address (IPv6 in brackets)."""
        ip = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{self.scheme}://{ip}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        """The `Host` header value: the port is shown only when not the scheme default."""
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def _refuse(reason: str) -> PermanentDeliveryError:
    return PermanentDeliveryError(f"refused partner URL: {reason}")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def refusal_reason(
    ip: IPAddress, *, allow_loopback: bool, allow_networks: Sequence[IPNetwork] = ()
) -> str | None:
    """Why `ip` must not be contacted, or None when it is acceptable.

    `allow_networks` (internal subscribers) admits addresses inside those networks
    even when private; an address embedded in another form is never admitted that way.
    """
    if ip.is_unspecified or ip.is_multicast:
        return "unspecified address" if ip.is_unspecified else "multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return "scoped IPv6 address"
    if in_networks(ip, allow_networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "scoped IPv6 address"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # Loopback is never accepted in disguise, only as 127.0.0.0/8 or ::1 itself.
            inner = refusal_reason(embedded, allow_loopback=False)
            if inner is not None:
                return f"{inner} (embedded in IPv6)"
    if allow_loopback and ip.is_loopback:
        return None
    checks = (
        (ip.is_unspecified, "unspecified address"),
        (ip.is_loopback, "loopback address"),
        (ip.is_link_local, "link-local address"),
        (ip.is_multicast, "multicast address"),
        (ip.is_private, "private address"),
        (ip.is_reserved, "reserved address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "shared address space"),
        (not ip.is_global, "non-global address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def in_networks(ip: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    """Is `ip` inside one of `networks` (same IP version only)?"""
    return any(ip.version == net.version and ip in net for net in networks)


def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _literal_or_name(host: str) -> IPAddress | str:
    """An IP written in the URL, or a validated ASCII host name to resolve."""
    if ":" in host:
        ip = parse_ip(host)
        if ip is None or not isinstance(ip, ipaddress.IPv6Address):
            raise _refuse("malformed IPv6 literal")
        return ip
    try:
        name = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        raise _refuse("host name is not a valid IDNA name") from None
    labels = name.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        # Only the canonical dotted quad is accepted; other numeric forms are refused
        # rather than interpreted, because resolvers and parsers disagree on them.
        ip = parse_ip(name)
        if ip is None:
            raise _refuse("IP literal is not in canonical dotted-quad form")
        return ip
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise _refuse("malformed host name")
    return name


async def resolve_pinned(
    url: str,
    *,
    resolver: Resolver,
    allow_loopback: bool,
    allow_networks: Sequence[IPNetwork] = (),
) -> PinnedTarget:
    """Vet `url`, resolve its host once with `resolver`, and return the target to pin.

    `allow_networks` (internal subscribers' private networks) admits addresses in
    them besides public ones; `http` is then allowed only when every address the
    host resolves to is inside them (or is loopback with `allow_loopback`).
    """
    if _SUSPICIOUS.search(url):
        raise _refuse("URL contains whitespace, control or backslash characters")
    try:
        parts = urlsplit(url)
        port_given = parts.port
    except ValueError:
        raise _refuse("malformed URL or port") from None
    scheme = parts.scheme.lower()
    if scheme != "https" and not (scheme == "http" and (allow_loopback or allow_networks)):
        raise _refuse("scheme must be https")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _refuse("credentials in the URL are not allowed")
    if "%" in parts.netloc:
        raise _refuse("percent-encoding or zone ids in the host are not allowed")
    host = parts.hostname
    if not host:
        raise _refuse("URL has no host")
    port = port_given if port_given is not None else (443 if scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise _refuse("port out of range")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    target = _literal_or_name(host)
    if isinstance(target, str):
        try:
            answers = await resolver(target, port)
        except OSError:
            raise RetryableDeliveryError("partner host name did not resolve") from None
        if not answers:
            raise RetryableDeliveryError("partner host name did not resolve")
        name = target
        addresses: list[IPAddress] = []
        for answer in answers:
            ip = parse_ip(answer)
            if ip is None:
                raise _refuse("resolver returned an unparsable address")
            addresses.append(ip)
    else:
        name = str(target)
        addresses = [target]
    for ip in addresses:
        reason = refusal_reason(ip, allow_loopback=allow_loopback, allow_networks=allow_networks)
        if reason is not None:
            # Say what kind of address, not which one: internal layout stays private.
            raise _refuse(f"host resolves to a {reason}")
        if scheme == "http" and not allow_loopback and not in_networks(ip, allow_networks):
            raise _refuse("scheme must be https outside the allowed internal networks")
    pinned = addresses[0]
    return PinnedTarget(
        scheme=scheme,
        host=name,
        port=port,
        ip=str(pinned),
        path=path,
        internal=refusal_reason(pinned, allow_loopback=False) is not None,
    )


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Resolve with the OS resolver (production only; tests inject a fake)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    # dict.fromkeys: deduplicate while keeping the resolver's preference order.
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
