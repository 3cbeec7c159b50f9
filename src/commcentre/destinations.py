"""Where partners and subscribers may be reached, checked when they are registered.

The dispatcher vets and pins the address at every delivery (netguard); this
refuses at registration what it would refuse, so a hostile or unusable URL gets
a 422 naming the field instead of a 201 and dead letters later. One policy for
both kinds of destination, each with its own operator allow-list:

- public addresses, over https;
- addresses inside `partner_networks` (partners) or `subscriber_networks`
  (subscription callbacks), which may also use http;
- loopback only in dev, for partners registered with `allow_loopback`
  (`make run`'s demo); in prod that flag is refused and ignored.

In prod a host name is resolved at registration too (the resolver is injected;
tests fake it). A name that does not resolve yet is accepted: it is resolved
and pinned again at every delivery, since its DNS answer may change anyway.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from commcentre.adapters.base import PermanentDeliveryError, Resolver, RetryableDeliveryError
from commcentre.adapters.netguard import IPNetwork, resolve_pinned
from commcentre.config import Settings
from commcentre.errors import FieldError, UnprocessableContent

# A registration waits at most this long for DNS; a slower answer is left to delivery time.
RESOLVE_TIMEOUT_SECONDS = 5.0


async def _no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError("names are resolved at delivery time")


@dataclass(frozen=True, slots=True)
class DestinationRules:
    """What a partner URL or subscription callback may point at (from Settings).

    `prod` also tells the registration services to refuse weak signing secrets.
    """

    prod: bool
    partner_networks: tuple[IPNetwork, ...] = ()
    subscriber_networks: tuple[IPNetwork, ...] = ()
    # Resolves host names at registration; None leaves them to delivery time (dev).
    resolver: Resolver | None = None

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver) -> "DestinationRules":
        prod = settings.environment == "prod"
        return cls(
            prod=prod,
            partner_networks=tuple(settings.partner_networks),
            subscriber_networks=tuple(settings.subscriber_networks),
            resolver=resolver if prod else None,
        )

    def loopback(self, requested: bool) -> bool:
        """A partner's `allow_loopback` as it takes effect: never in prod."""
        return requested and not self.prod

    def check_allow_loopback(self, requested: bool | None) -> None:
        """422 for `allow_loopback: true` in prod, where no per-partner escape hatch exists."""
        if requested and self.prod:
            reason = (
                "allow_loopback is not allowed in prod; list the partner's network in "
                "COMMCENTRE_PARTNER_NETWORKS instead"
            )
            raise _refused(["body", "allow_loopback"], reason)

    async def check_partner_url(
        self, url: str, *, allow_loopback: bool, loc: Sequence[str | int]
    ) -> None:
        """422 at `loc` for a partner URL the dispatcher would refuse."""
        hint = "http only to COMMCENTRE_PARTNER_NETWORKS" + ("" if self.prod else " or loopback")
        await self._check(
            url,
            allow_loopback=self.loopback(allow_loopback),
            networks=self.partner_networks,
            hint=hint,
            loc=loc,
        )

    async def check_subscriber_url(self, url: str, *, loc: Sequence[str | int]) -> None:
        """422 at `loc` for a subscription callback the dispatcher would refuse."""
        await self._check(
            url,
            allow_loopback=False,
            networks=self.subscriber_networks,
            hint="http only to configured subscriber networks",
            loc=loc,
        )

    async def _check(
        self,
        url: str,
        *,
        allow_loopback: bool,
        networks: Sequence[IPNetwork],
        hint: str,
        loc: Sequence[str | int],
    ) -> None:
        resolver = self.resolver or _no_dns
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                await resolve_pinned(
                    url, resolver=resolver, allow_loopback=allow_loopback, allow_networks=networks
                )
        except (RetryableDeliveryError, TimeoutError):
            return  # the name does not resolve now: it is resolved and pinned at delivery
        except PermanentDeliveryError as exc:
            reason = exc.detail.removeprefix("refused partner URL: ")
            if reason == "scheme must be https":
                reason = f"scheme must be https ({hint})"
            raise _refused(loc, reason) from None


def _refused(loc: Sequence[str | int], reason: str) -> UnprocessableContent:
    where = ".".join(map(str, loc))
    return UnprocessableContent(
        f"invalid input at {where}: {reason}",
        errors=[FieldError(loc=list(loc), msg=reason, type="url_refused")],
    )
