"""The `commcentre` command line."""

import asyncio
import getpass
import json
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from commcentre.config import Settings
from commcentre.delivery import cli as dead_letters_cli
from commcentre.partners import cli as partners_cli
from commcentre.routing import cli as routing_cli

T = TypeVar("T")

app = typer.Typer(
    help="commcentre: message gateway of a police Communications Centre.",
    no_args_is_help=True,
    # A traceback must never print local variables: they can hold key material.
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="Key-encryption keys and the keyring file.", no_args_is_help=True)
clients_app = typer.Typer(help="API clients and their keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(clients_app, name="clients")
app.add_typer(audit_app, name="audit")
app.add_typer(partners_cli.app, name="partners")
app.add_typer(routing_cli.app, name="routing-rules")
app.add_typer(dead_letters_cli.app, name="dead-letters")


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _run(factory: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(factory())  # type: ignore[arg-type]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


@contextmanager
def _keyring_errors() -> Iterator[None]:
    """A missing, unreadable or malformed keyring, or a refused operation: one line, exit 1.

    Crypto error messages name the file and the field, never key material.
    """
    from commcentre.crypto import CryptoError

    try:
        yield
    except CryptoError as exc:
        raise _fail(str(exc)) from None


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    worker: Annotated[
        bool, typer.Option(help="Run the dispatcher in this process (embedded shape).")
    ] = True,
) -> None:
    """Run the API (and, unless --no-worker, the dispatcher)."""
    import uvicorn

    from commcentre.app import create_app
    from commcentre.logs import configure_logging

    settings = Settings()
    if not worker:
        settings = settings.model_copy(update={"dispatcher_enabled": False})
    configure_logging(json=settings.environment == "prod")
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
        access_log=False,
        proxy_headers=False,
    )


@app.command()
def worker() -> None:
    """Run a dispatcher process: deliver due messages until SIGTERM."""
    from commcentre import loops
    from commcentre.delivery.worker import run_worker
    from commcentre.logs import configure_logging

    settings = Settings()
    configure_logging(json=settings.environment == "prod")
    loops.run(run_worker(settings))


@app.command("config-table")
def config_table(
    readme: Annotated[
        Path | None, typer.Option(help="Rewrite the table between the markers of this file.")
    ] = None,
) -> None:
    """Print the configuration table (every COMMCENTRE_* setting), or update the README's."""
    from commcentre.config import settings_table, with_settings_table

    if readme is None:
        typer.echo(settings_table())
        return
    try:
        text = readme.read_text()
        readme.write_text(with_settings_table(text))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot update {readme}: {exc}") from None
    typer.echo(f"{readme}: configuration table updated")


@app.command()
def demo() -> None:
    """Seed loopback partners and routing rules so that messages flow (idempotent)."""
    from commcentre.demo import seed

    async def run() -> tuple[list[str], list[str]]:
        async with (
            partners_cli.tools() as tools,
            tools.db.write_sessions() as session,
            session.begin(),
        ):
            seeded = await seed(
                session,
                registry=tools.registry,
                envelope=tools.envelope,
                destinations=tools.destinations,
                actor=_actor(),
            )
        return seeded.partners, seeded.rules

    partners, rules = _run(run)
    typer.echo(
        f"demo partners added: {', '.join(partners) or 'none (already there)'}\n"
        f"demo routing rules added: {', '.join(rules) or 'none (already there)'}"
    )


@app.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Export the OpenAPI document."""
    from commcentre.app import create_app

    text = json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Migrate the database to a revision (default: head)."""
    from commcentre.migrate import upgrade

    upgrade(Settings().database_url, revision)


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to a revision (`base` removes everything)."""
    from commcentre.migrate import downgrade

    downgrade(Settings().database_url, revision)


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    from alembic.runtime.migration import MigrationContext

    from commcentre.db import Database
    from commcentre.migrate import head_revision

    async def current() -> str | None:
        db = Database(Settings().database_url)
        try:
            async with db.read_engine.connect() as conn:
                # None as well for a database never migrated (no alembic_version table).
                return await conn.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_revision()
                )
        finally:
            await db.dispose()

    typer.echo(f"database: {_run(current) or 'empty'}\nhead:     {head_revision()}")


@keys_app.command("generate")
def keys_generate(
    dev: Annotated[
        bool, typer.Option(help="Mark as a development keyring (prod refuses it).")
    ] = False,
    if_missing: Annotated[bool, typer.Option(help="Do nothing when the keyring exists.")] = False,
) -> None:
    """Create a new keyring file (0600)."""
    from commcentre.crypto import FileKeyring

    path = Settings().keyring_path
    if path.exists():
        if if_missing:
            return
        raise _fail(f"{path} exists; a new keyring would make every stored message unreadable")
    with _keyring_errors():
        keyring = FileKeyring.generate(path, dev=dev)
    typer.echo(f"keyring written to {path} (KEK version {keyring.current_version})")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new KEK version and make it current; then run `keys rewrap`."""
    from commcentre.crypto import FileKeyring

    with _keyring_errors():
        version = FileKeyring.load(Settings().keyring_path).rotate()
    typer.echo(
        f"KEK version {version} is current; run `commcentre keys rewrap` to move old messages"
    )


@keys_app.command("exchange-rotate")
def keys_exchange_rotate() -> None:
    """Add a new exchange key (for inbound JWEs) and make it current; older ones still decrypt."""
    from commcentre.crypto import FileKeyring

    with _keyring_errors():
        kid = FileKeyring.load(Settings().keyring_path).exchange_rotate()
    typer.echo(
        f"exchange key {kid} is current; give partners the new `commcentre keys public` output"
    )


@keys_app.command("public")
def keys_public() -> None:
    """Print our public exchange keys as a JWK Set, for partners (no private member)."""
    from commcentre.crypto import FileKeyring

    with _keyring_errors():
        jwks = FileKeyring.load(Settings().keyring_path).exchange_public_jwks()
    if not jwks["keys"]:
        raise _fail("the keyring has no exchange key; run `commcentre keys exchange-rotate`")
    typer.echo(json.dumps(jwks, indent=2))


@keys_app.command("audit-rotate")
def keys_audit_rotate() -> None:
    """Add a new audit key version (chain HMAC key + checkpoint Ed25519 key) and make it
    current; older versions stay to verify what they keyed. Also adds the first one to
    a keyring written before the audit chain was keyed."""
    from commcentre.crypto import FileKeyring

    with _keyring_errors():
        version = FileKeyring.load(Settings().keyring_path).audit_rotate()
    typer.echo(
        f"audit key version {version} is current; publish the new "
        "`commcentre keys audit-public-key` output to whoever checks the checkpoints"
    )


@keys_app.command("audit-public-key")
def keys_audit_public_key() -> None:
    """Print the audit checkpoint verifier keys (signed-note form), current last."""
    from commcentre.audit.checkpoint import verifier_key
    from commcentre.crypto import FileKeyring

    settings = Settings()
    with _keyring_errors():
        keys = FileKeyring.load(settings.keyring_path).audit_keys()
    if not keys:
        raise _fail("the keyring has no audit keys; run `commcentre keys audit-rotate`")
    for key in keys:
        typer.echo(verifier_key(settings.audit_origin, key))


@keys_app.command("status")
def keys_status() -> None:
    """KEK versions and how many sealed records (messages, partner configs, ...) each protects."""
    from commcentre.crypto import FileKeyring

    settings = Settings()
    with _keyring_errors():
        keyring = FileKeyring.load(settings.keyring_path)
    counts = _run(lambda: _sealed_counts(settings))
    messages = counts.pop("messages")
    typer.echo(f"keyring: {settings.keyring_path}{' (development)' if keyring.is_dev else ''}")
    for info in keyring.describe():
        marker = "*" if info.current else " "
        count = messages.get(info.version, 0)
        typer.echo(f"{marker} v{info.version}  created {info.created_at}  messages {count}")
        for label, per_version in counts.items():
            if per_version.get(info.version):
                typer.echo(f"        {label} {per_version[info.version]}")
    audit_keys = keyring.audit_keys()
    for key in audit_keys:
        marker = "*" if key is audit_keys[-1] else " "
        typer.echo(f"{marker} audit v{key.version}  created {key.created_at}")
    if not audit_keys:
        typer.echo("! no audit keys: run `commcentre keys audit-rotate`")
    known = {info.version for info in keyring.describe()}
    used = set(messages).union(*(set(v) for v in counts.values()))
    for version in sorted(used - known):
        others = "".join(
            f"  {label} {per_version.get(version, 0)}" for label, per_version in counts.items()
        )
        typer.echo(f"! v{version}  NOT IN KEYRING  messages {messages.get(version, 0)}{others}")


async def _sealed_counts(settings: Settings) -> dict[str, dict[int, int]]:
    from commcentre.db import Database
    from commcentre.sealed import count_by_key_version

    db = Database(settings.database_url)
    try:
        async with db.read_sessions() as session:
            return await count_by_key_version(session)
    finally:
        await db.dispose()


@keys_app.command("retire")
def keys_retire(version: int) -> None:
    """Delete an old KEK; refused while any sealed record still uses it."""
    from commcentre.crypto import FileKeyring
    from commcentre.sealed import users_of

    settings = Settings()
    with _keyring_errors():
        keyring = FileKeyring.load(settings.keyring_path)
    users = users_of(_run(lambda: _sealed_counts(settings)), version)
    if users:
        raise _fail(
            f"KEK version {version} still protects {users} records; run `keys rewrap` first"
        )
    with _keyring_errors():
        keyring.retire(version)
    typer.echo(f"KEK version {version} retired: its key material is deleted from the keyring")


@keys_app.command("rewrap")
def keys_rewrap(
    batch_size: Annotated[int, typer.Option(min=1, max=10_000)] = 500,
) -> None:
    """Rewrap every sealed record's data key under the current KEK (resumable)."""
    from commcentre.audit.service import AuditAction, AuditRecord, append
    from commcentre.clock import utcnow
    from commcentre.crypto import CryptoError, Envelope, FileKeyring
    from commcentre.db import Database
    from commcentre.sealed import MESSAGES, SEALED_TABLES, SealedTable, rewrap_batch

    settings = Settings()
    with _keyring_errors():
        keyring = FileKeyring.load(settings.keyring_path)
    envelope = Envelope(keyring)
    total = 0

    async def rewrap_table(db: Database, sealed: SealedTable) -> int:
        done = 0
        while True:
            # One version per batch, for the rows and the audit entry alike (the
            # keyring follows a rotation made meanwhile by another process).
            target = keyring.current_version
            async with db.write_sessions() as session, session.begin():
                batch = await rewrap_batch(
                    session, envelope, sealed, target_version=target, limit=batch_size
                )
                if batch.rewrapped:
                    now = utcnow()
                    await append(
                        session,
                        [
                            AuditRecord(
                                action=AuditAction.ALTERATION,
                                event="keys.rewrapped",
                                actor=_actor(),
                                subject_type="keyring",
                                details={sealed.audit_key: batch.rewrapped, "to_version": target},
                                occurred_at=now,
                            )
                        ],
                        now=now,
                    )
            done += batch.rewrapped
            if sealed is MESSAGES and batch.examined:
                typer.echo(f"rewrapped {done} so far")
            if batch.examined < batch_size:
                return done

    async def rewrap() -> None:
        nonlocal total
        from commcentre.bootstrap import open_cli_database

        db = open_cli_database(settings)
        try:
            total = await rewrap_table(db, MESSAGES)
            for sealed in SEALED_TABLES:
                if sealed is not MESSAGES:
                    typer.echo(f"rewrapped {await rewrap_table(db, sealed)} {sealed.label}")
        finally:
            await db.dispose()

    try:
        _run(rewrap)
    except CryptoError as exc:
        # A data key that cannot be unwrapped stops the run; committed batches stay done.
        raise _fail(f"{exc}; {total} messages were rewrapped before this") from None
    typer.echo(f"done: {total} messages now under KEK version {keyring.current_version}")


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="Who uses the key, e.g. the calling system.")],
    scope: Annotated[list[str], typer.Option(help="Repeat for each scope, e.g. messages:write.")],
) -> None:
    """Create an API client and print its key (shown only this once)."""
    from commcentre.auth.service import create_client
    from commcentre.clock import utcnow
    from commcentre.errors import CommCentreError

    settings = Settings()

    async def create() -> tuple[uuid.UUID, str]:
        from commcentre.bootstrap import open_cli_database

        db = open_cli_database(settings)
        try:
            async with db.write_sessions() as session, session.begin():
                issued = await create_client(
                    session, name=name, scopes=scope, actor=_actor(), now=utcnow()
                )
                return issued.client.id, issued.api_key
        finally:
            await db.dispose()

    try:
        client_id, key = _run(create)
    except CommCentreError as exc:
        raise _fail(exc.detail or exc.title) from None
    typer.echo(f"client {client_id}\napi key (shown once): {key}")


@clients_app.command("list")
def clients_list() -> None:
    """List API clients (never their keys)."""
    from commcentre.auth import repository
    from commcentre.db import Database

    settings = Settings()

    async def rows() -> list[str]:
        db = Database(settings.database_url)
        try:
            async with db.read_sessions() as session:
                return [
                    f"{c.id}  {c.name:<24} {','.join(c.scopes):<40} {c.key_hint}…  "
                    f"{'revoked ' + c.revoked_at.isoformat() if c.revoked_at else 'active'}"
                    for c in await repository.list_clients(session)
                ]
        finally:
            await db.dispose()

    for line in _run(rows):
        typer.echo(line)


@clients_app.command("revoke")
def clients_revoke(client_id: uuid.UUID) -> None:
    """Revoke a client's key (running servers stop accepting it within seconds)."""
    from commcentre.auth.service import revoke_client
    from commcentre.clock import utcnow
    from commcentre.errors import CommCentreError

    settings = Settings()

    async def revoke() -> None:
        from commcentre.bootstrap import open_cli_database

        db = open_cli_database(settings)
        try:
            async with db.write_sessions() as session, session.begin():
                await revoke_client(session, client_id, actor=_actor(), now=utcnow())
        finally:
            await db.dispose()

    try:
        _run(revoke)
    except CommCentreError as exc:
        raise _fail(exc.detail or exc.title) from None
    typer.echo(f"client {client_id} revoked")


@clients_app.command("generate-key")
def clients_generate_key() -> None:
    """Print a fresh random API key (for COMMCENTRE_BOOTSTRAP_ADMIN_KEY)."""
    from commcentre.auth.keys import generate_api_key

    typer.echo(generate_api_key())


CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="Checkpoint file to verify against (default: COMMCENTRE_AUDIT_CHECKPOINT_PATH).",
    ),
]


@audit_app.command("verify")
def audit_verify(checkpoint: CheckpointOption = None) -> None:
    """Recompute the keyed audit chain and check it against the last exported checkpoint;
    print the report as JSON, exit 1 and name the first broken entry when it fails."""
    from commcentre.audit.checkpoint import CheckpointError
    from commcentre.audit.export import last_checkpoint
    from commcentre.audit.schemas import AuditVerificationOut
    from commcentre.audit.service import ChainVerification, verify_chain
    from commcentre.bootstrap import open_cli_database

    settings = Settings()
    path = checkpoint or settings.audit_checkpoint_path

    async def verify() -> ChainVerification:
        note = None
        if path is not None:
            try:
                note = await last_checkpoint(path)
            except (OSError, CheckpointError) as exc:
                raise _fail(f"cannot read checkpoint file {path}: {exc}") from None
            if note is None and checkpoint is not None:
                raise _fail(f"no checkpoint in {path} (missing or empty)")
        db = open_cli_database(settings)
        try:
            async with db.read_sessions() as session:
                return await verify_chain(session, checkpoint=note, origin=settings.audit_origin)
        finally:
            await db.dispose()

    with _keyring_errors():
        result = _run(verify)
    typer.echo(AuditVerificationOut.from_verification(result).model_dump_json())
    if not result.ok:
        raise typer.Exit(code=1)


@audit_app.command("checkpoint")
def audit_checkpoint(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Append the checkpoint to this file (keep it outside the database's reach) "
            "instead of printing it.",
        ),
    ] = None,
) -> None:
    """Verify the audit chain and sign a checkpoint of it (C2SP tlog-checkpoint).

    With --output, the file's last checkpoint must still hold (the log is never
    signed in a state inconsistent with an earlier checkpoint); exit 1 otherwise.
    """
    from commcentre.audit.checkpoint import CheckpointError, append_to_file
    from commcentre.audit.export import last_checkpoint
    from commcentre.audit.service import AuditChainBrokenError, SignedCheckpoint, make_checkpoint
    from commcentre.bootstrap import open_cli_database
    from commcentre.clock import utcnow

    settings = Settings()

    async def sign() -> SignedCheckpoint:
        try:
            previous = None if output is None else await last_checkpoint(output)
        except (OSError, CheckpointError) as exc:
            raise _fail(f"cannot read checkpoint file {output}: {exc}") from None
        db = open_cli_database(settings)
        try:
            async with db.read_sessions() as session:
                return await make_checkpoint(
                    session, origin=settings.audit_origin, now=utcnow(), previous=previous
                )
        finally:
            await db.dispose()

    try:
        with _keyring_errors():
            signed = _run(sign)
    except AuditChainBrokenError as exc:
        found = exc.verification
        raise _fail(
            f"audit chain does not verify (seq {found.first_broken_seq}: {found.reason}); "
            "no checkpoint signed"
        ) from None
    if output is None:
        typer.echo(signed.note, nl=False)
        return
    try:
        append_to_file(output, signed.note)
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror}") from None
    typer.echo(f"checkpoint of {signed.checkpoint.tree_size} entries appended to {output}")


def main() -> None:
    app()
