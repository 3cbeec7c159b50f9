"""`commcentre partners ...`: the partner registry from the command line.

Changes go through the same service as the API (validated, sealed, audited
with actor `cli:<user>`, routing version bumped); running servers pick them up
within a second.
"""

import asyncio
import getpass
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
from pydantic import ValidationError

from commcentre.adapters.base import AdapterContext
from commcentre.adapters.netguard import system_resolver
from commcentre.adapters.registry import AdapterRegistry, load_adapters
from commcentre.config import Settings
from commcentre.crypto import CryptoError, Envelope, FileKeyring
from commcentre.db import Database
from commcentre.destinations import DestinationRules
from commcentre.errors import CommCentreError, field_errors

T = TypeVar("T")

app = typer.Typer(help="Partners: who commcentre delivers to and receives from.")


def actor() -> str:
    return f"cli:{getpass.getuser()}"


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine; expected failures become a message and exit code 1."""

    async def main() -> T:
        return await factory()

    try:
        return asyncio.run(main())
    except CommCentreError as exc:
        lines = [exc.detail or exc.title]
        lines += [f"  {'.'.join(map(str, e.loc))}: {e.msg}" for e in exc.errors or []]
        raise fail("\n".join(lines)) from None
    except ValidationError as exc:
        errors = [f"  {'.'.join(map(str, e.loc))}: {e.msg}" for e in field_errors(exc)]
        raise fail("invalid input\n" + "\n".join(errors)) from None
    except CryptoError as exc:
        raise fail(f"keyring: {exc}") from None


@dataclass(frozen=True, slots=True)
class Tools:
    """What partner commands work with, built from Settings()."""

    db: Database
    envelope: Envelope
    registry: AdapterRegistry
    destinations: DestinationRules


@asynccontextmanager
async def database() -> AsyncIterator[Database]:
    """The database, with the keyring's audit keys: partner and routing changes are audited."""
    from commcentre.bootstrap import open_cli_database

    db = open_cli_database(Settings())
    try:
        yield db
    finally:
        await db.dispose()


@asynccontextmanager
async def tools() -> AsyncIterator[Tools]:
    """The database, the keyring's envelope and the installed adapters."""
    settings = Settings()
    envelope = Envelope(FileKeyring.load(settings.keyring_path))
    # Adapters are only asked to validate configs here; they never send anything.
    async with httpx.AsyncClient() as http, database() as db:
        registry = load_adapters(AdapterContext(http=http, resolver=system_resolver))
        destinations = DestinationRules.from_settings(settings, system_resolver)
        yield Tools(db, envelope, registry, destinations)


def _dump(model: Any) -> str:
    return json.dumps(model.model_dump(mode="json"), indent=2, sort_keys=True)


@app.command("list")
def list_partners() -> None:
    """List partners (no secrets)."""
    from commcentre.partners import service

    async def rows() -> list[str]:
        async with database() as db, db.read_sessions() as session:
            partners = await service.list_partners(session, after=None, limit=100_000)
            lines = []
            for p in partners:
                state = "enabled" if p.enabled else f"disabled ({p.disabled_reason or '-'})"
                channels = ",".join(p.channels) or "*"
                lines.append(
                    f"{p.id:<32} {p.adapter:<10} {p.country or '--'}  {channels:<30} {state}"
                )
            return lines

    for line in run(rows):
        typer.echo(line)


@app.command("show")
def show(partner_id: str) -> None:
    """Show a partner as the API does: config masked, signing secrets as hints."""
    from commcentre.partners import service

    async def read() -> str:
        async with tools() as t, t.db.read_sessions() as session:
            partner = await service.get_partner(session, partner_id)
            return _dump(service.partner_out(partner, envelope=t.envelope, registry=t.registry))

    typer.echo(run(read))


@app.command("create")
def create(
    partner_id: Annotated[str, typer.Option("--id", help="Slug, e.g. se-bureau.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    adapter: Annotated[str, typer.Option(help="An installed adapter, e.g. webhook.")],
    config_json: Annotated[str, typer.Option(help="Adapter config as a JSON object.")] = "{}",
    country: Annotated[str | None, typer.Option(help="ISO 3166-1 country.")] = None,
    channel: Annotated[list[str] | None, typer.Option(help="Repeat per channel.")] = None,
    inbound_secret: Annotated[
        list[str] | None,
        typer.Option(
            help="whsec_ secret that verifies the partner's pushes; repeat for several. "
            "None: one is generated."
        ),
    ] = None,
    outbound_secret: Annotated[
        list[str] | None,
        typer.Option(
            help="whsec_ secret that signs our deliveries; repeat for several. "
            "None: one is generated."
        ),
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(help="Deprecated name of --inbound-secret.", hidden=True),
    ] = None,
    public_jwk_file: Annotated[
        Path | None, typer.Option(help="File with the partner's public JWK (JSON).")
    ] = None,
    disabled: Annotated[bool, typer.Option(help="Register it disabled.")] = False,
) -> None:
    """Register a partner; generated signing secrets are printed once."""
    from commcentre.clock import utcnow
    from commcentre.partners import service
    from commcentre.partners.schemas import PartnerCreate

    try:
        config = json.loads(config_json)
        jwk = json.loads(public_jwk_file.read_text()) if public_jwk_file else None
    except (OSError, json.JSONDecodeError) as exc:
        raise fail(f"cannot read JSON: {exc}") from None

    async def register() -> service.CreatedPartner:
        body = PartnerCreate.model_validate(
            {
                "id": partner_id,
                "name": name,
                "adapter": adapter,
                "config": config,
                "country": country,
                "channels": channel or [],
                "inbound_secrets": inbound_secret or [],
                "outbound_secrets": outbound_secret or [],
                "signing_secrets": secret or [],
                "public_jwk": jwk,
                "enabled": not disabled,
            }
        )
        async with tools() as t, t.db.write_sessions() as session, session.begin():
            return await service.create_partner(
                session,
                body,
                registry=t.registry,
                envelope=t.envelope,
                destinations=t.destinations,
                actor=actor(),
                now=utcnow(),
            )

    created = run(register)
    typer.echo(_dump(created.partner))
    if created.generated_inbound_secret is not None:
        typer.echo(f"inbound secret (shown once): {created.generated_inbound_secret}")
    if created.generated_outbound_secret is not None:
        typer.echo(f"outbound secret (shown once): {created.generated_outbound_secret}")


@app.command("rotate-secret")
def rotate_secret(
    partner_id: str,
    direction: Annotated[
        str, typer.Option(help="inbound (verifies its pushes) or outbound (signs ours).")
    ],
    finish: Annotated[
        bool, typer.Option(help="End the rotation: keep only the newest secret.")
    ] = False,
) -> None:
    """Rotate one direction's signing secret: a new one is printed once and the old ones
    kept until `--finish`."""
    from commcentre.clock import utcnow
    from commcentre.partners import service

    if direction not in ("inbound", "outbound"):
        raise fail("--direction must be inbound or outbound")
    chosen: service.Direction = "inbound" if direction == "inbound" else "outbound"

    async def apply() -> str | None:
        async with tools() as t, t.db.write_sessions() as session, session.begin():
            return await service.rotate_secret(
                session,
                partner_id,
                direction=chosen,
                finish=finish,
                envelope=t.envelope,
                actor=actor(),
                now=utcnow(),
            )

    generated = run(apply)
    if generated is None:
        typer.echo(f"partner {partner_id}: only the newest {direction} secret is kept")
    else:
        typer.echo(f"{direction} secret (shown once): {generated}")


@app.command("disable")
def disable(
    partner_id: str,
    reason: Annotated[str, typer.Option(help="Why (shown in the partner's disabled_reason).")],
) -> None:
    """Stop routing and delivering to a partner."""
    from commcentre.clock import utcnow
    from commcentre.partners import service

    async def apply() -> bool:
        async with database() as db, db.write_sessions() as session, session.begin():
            return await service.disable_partner(
                session, partner_id, reason=reason, now=utcnow(), actor=actor()
            )

    changed = run(apply)
    typer.echo(f"partner {partner_id} {'disabled' if changed else 'was already disabled'}")


@app.command("enable")
def enable(partner_id: str) -> None:
    """Route and deliver to a partner again."""
    from commcentre.clock import utcnow
    from commcentre.partners import service

    async def apply() -> bool:
        async with database() as db, db.write_sessions() as session, session.begin():
            return await service.enable_partner(session, partner_id, actor=actor(), now=utcnow())

    changed = run(apply)
    typer.echo(f"partner {partner_id} {'enabled' if changed else 'was already enabled'}")
