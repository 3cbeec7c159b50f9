"""`commcentre dead-letters ...`: list and redrive dead letters from the command line.

The same service as GET /v1/dead-letters and POST /v1/dead-letters/redrive:
the same checks (a disabled partner's dead letters are refused), and a real
redrive is audited with actor `cli:<user>`.
"""

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from commcentre.clock import utcnow
from commcentre.config import Settings
from commcentre.db import Database
from commcentre.delivery import service
from commcentre.delivery.schemas import DeadLetterRedrive
from commcentre.partners.cli import actor, fail, run

app = typer.Typer(help="Dead letters: deliveries that were given up on.", no_args_is_help=True)

PartnerOption = Annotated[str | None, typer.Option(help="Only this partner's.")]
SubscriptionOption = Annotated[
    str | None, typer.Option(help="Only this subscription's (internal subscriber).")
]
SinceOption = Annotated[
    datetime | None, typer.Option(help="Dead since at or after (ISO 8601, UTC if no offset).")
]
UntilOption = Annotated[datetime | None, typer.Option(help="Dead since before (ISO 8601).")]


def _subscription(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise fail(f"{value!r} is not a subscription id") from None


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=utcnow().tzinfo)


@app.command("list")
def list_dead_letters(
    partner: PartnerOption = None,
    subscription: SubscriptionOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
) -> None:
    """Print dead letters as JSON lines, oldest first (no payload: ids and the last error)."""
    settings = Settings()
    subscription_id = _subscription(subscription)

    async def fetch() -> list[dict[str, Any]]:
        db = Database(settings.database_url)
        try:
            async with db.read_sessions() as session:
                items = await service.list_dead_letters(
                    session,
                    partner_id=partner,
                    subscription_id=subscription_id,
                    since=_aware(since),
                    until=_aware(until),
                    after=None,
                    limit=limit,
                )
        finally:
            await db.dispose()
        return [item.model_dump(mode="json") for item in items]

    for item in run(fetch):
        typer.echo(json.dumps(item, sort_keys=True))


@app.command("redrive")
def redrive_dead_letters(
    ids: Annotated[list[str] | None, typer.Argument(help="Delivery ids to redrive.")] = None,
    partner: PartnerOption = None,
    subscription: SubscriptionOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would be redriven; change nothing.")] = (
        False
    ),
) -> None:
    """Put dead letters back in the queue with a fresh set of attempts (by ids or filters)."""
    settings = Settings()
    try:
        request = DeadLetterRedrive(
            ids=[uuid.UUID(i) for i in ids] if ids else None,
            partner=partner,
            subscription=_subscription(subscription),
            since=_aware(since),
            until=_aware(until),
            dry_run=dry_run,
        )
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            problems = "; ".join(e["msg"] for e in exc.errors(include_url=False))
            raise fail(f"invalid selection: {problems}") from None
        raise fail("ids must be delivery ids (UUIDs)") from None

    async def redrive() -> dict[str, Any]:
        from commcentre.bootstrap import open_cli_database

        db = open_cli_database(settings)
        try:
            async with db.write_sessions() as session, session.begin():
                result = await service.redrive(session, request, actor=actor(), now=utcnow())
        finally:
            await db.dispose()
        return result.model_dump(mode="json")

    typer.echo(json.dumps(run(redrive), sort_keys=True))
