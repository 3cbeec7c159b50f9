"""`commcentre routing ...`: routing rules from the command line.

Same service as the API: partners are checked, the routing version is bumped
(running servers reload within a second) and every change is audited with
actor `cli:<user>`.
"""

import json
import uuid
from typing import Annotated

import typer

from commcentre.partners.cli import actor, database, fail, run

app = typer.Typer(help="Routing rules: which partners receive which messages.")


@app.command("list")
def list_rules() -> None:
    """List rules in evaluation order."""
    from commcentre.routing import service

    async def rows() -> list[str]:
        async with database() as db, db.read_sessions() as session:
            rules = await service.list_rules(session, after=None, limit=100_000)
            return [
                f"{r.id}  {r.position:>7}  {'on ' if r.enabled else 'off'}  "
                f"{'final' if r.final else '     '}  {r.name:<30} -> {','.join(r.partners)}  "
                f"{json.dumps(r.match, sort_keys=True)}"
                for r in rules
            ]

    for line in run(rows):
        typer.echo(line)


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="What the rule is for.")],
    partner: Annotated[list[str], typer.Option(help="Partner id; repeat for several.")],
    match_json: Annotated[
        str, typer.Option(help='Conditions as JSON, e.g. {"channels": ["europol"]}.')
    ] = "{}",
    position: Annotated[int, typer.Option(min=0, help="Evaluation order, lowest first.")] = 100,
    final: Annotated[bool, typer.Option(help="Stop evaluating after this rule matches.")] = False,
    disabled: Annotated[bool, typer.Option(help="Create it disabled.")] = False,
) -> None:
    """Create a rule (an empty match sends every message to its partners)."""
    from commcentre.clock import utcnow
    from commcentre.routing import service
    from commcentre.routing.schemas import RoutingRuleIn

    try:
        match = json.loads(match_json)
    except json.JSONDecodeError as exc:
        raise fail(f"--match-json is not JSON: {exc}") from None

    async def apply() -> uuid.UUID:
        body = RoutingRuleIn.model_validate(
            {
                "name": name,
                "position": position,
                "enabled": not disabled,
                "match": match,
                "partners": partner,
                "final": final,
            }
        )
        async with database() as db, db.write_sessions() as session, session.begin():
            rule = await service.create_rule(session, body, actor=actor(), now=utcnow())
            return rule.id

    rule_id = run(apply)
    if not match:
        typer.echo("note: the rule has no conditions: it matches every message", err=True)
    typer.echo(f"routing rule {rule_id} created")


@app.command("delete")
def delete(rule_id: uuid.UUID) -> None:
    """Delete a rule."""
    from commcentre.clock import utcnow
    from commcentre.routing import service

    async def apply() -> None:
        async with database() as db, db.write_sessions() as session, session.begin():
            await service.delete_rule(session, rule_id, actor=actor(), now=utcnow())

    run(apply)
    typer.echo(f"routing rule {rule_id} deleted")
