"""The `commcentre` command line, end to end: keys, clients, audit, OpenAPI, migrations.

The CLI runs `asyncio.run` itself, so these tests are plain sync functions and
drive the API inside their own `asyncio.run`. Each test gets its own keyring and
its own database: a fresh SQLite file, or with COMMCENTRE_TEST_DATABASE_URL a
fresh database on that PostgreSQL server (created and dropped here). The
suite's shared database cannot serve: it holds messages sealed under other
tests' keyrings, which `keys rewrap` cannot unwrap and `keys status` would
count, and tampering with its audit chain would break the tests that follow.
"""

import asyncio
import base64
import hashlib
import json
import re
import stat
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from typer.testing import CliRunner, Result

from commcentre.app import create_app
from commcentre.cli import app as cli_app
from commcentre.config import Settings
from commcentre.crypto import FileKeyring
from commcentre.db import Database
from commcentre.messages.schemas import MessageIn
from commcentre.migrate import head_revision
from tests.conftest import register_test_partners
from tests.databases import fresh_database
from tests.factories import EXAMPLE_MESSAGE, message

T = TypeVar("T")

KEY_LINE = re.compile(r"^api key \(shown once\): (\S+)$", re.MULTILINE)
CLIENT_LINE = re.compile(r"^client ([0-9a-f-]{36})$", re.MULTILINE)
STATUS_LINE = re.compile(r"^([* ]) v(\d+)  created .+  messages (\d+)$", re.MULTILINE)


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's own."""
    with fresh_database(tmp_path, "cli") as url:
        yield url


@dataclass(frozen=True)
class Cli:
    """Runs `commcentre ...` against this test's database and keyring."""

    database_url: str
    keyring_path: Path
    runner: CliRunner

    @property
    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            keyring_path=self.keyring_path,
            ingest_batch_wait_ms=0.5,
        )

    def run(self, *args: str) -> Result:
        return self.runner.invoke(cli_app, list(args))

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.stdout

    def fails(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 1, (args, result.output, result.exception)
        # A clean refusal, not a crash.
        assert result.exception is None or isinstance(result.exception, SystemExit)
        return result

    def create_client(self, name: str, *scopes: str) -> tuple[uuid.UUID, str]:
        out = self.ok("clients", "create", "--name", name, *(f"--scope={s}" for s in scopes))
        client, key = CLIENT_LINE.search(out), KEY_LINE.search(out)
        assert client is not None, out
        assert key is not None, out
        return uuid.UUID(client.group(1)), key.group(1)

    def status(self) -> dict[int, tuple[bool, int]]:
        """`keys status` as {version: (is_current, messages)}."""
        out = self.ok("keys", "status")
        assert "NOT IN KEYRING" not in out, out
        return {int(v): (mark == "*", int(n)) for mark, v, n in STATUS_LINE.findall(out)}


@pytest.fixture
def cli(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    keyring_path = tmp_path / "keys" / "keyring.json"
    monkeypatch.setenv("COMMCENTRE_DATABASE_URL", database)
    monkeypatch.setenv("COMMCENTRE_KEYRING_PATH", str(keyring_path))
    return Cli(database, keyring_path, CliRunner())


Api = Callable[[httpx.AsyncClient], Awaitable[T]]


ADMIN_KEY = "ck_" + "cli-test-admin-key".ljust(43, "x")


async def _with_api(settings: Settings, use: Api[T]) -> T:
    # A bootstrap admin registers the loopback partners the example message routes to.
    app = create_app(settings.model_copy(update={"bootstrap_admin_key": SecretStr(ADMIN_KEY)}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://commcentre.test") as h:
            await register_test_partners(h, bearer(ADMIN_KEY))
            return await use(h)


def with_fresh_app(cli: Cli, use: Api[T]) -> T:
    """Start a new server process (as far as the keyring and caches go) and use it."""
    return asyncio.run(_with_api(cli.settings, use))


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


def sent_as_stored(body: dict[str, Any]) -> dict[str, Any]:
    """What GET returns as `content` for a POSTed body (defaults filled in)."""
    return MessageIn.model_validate(body).model_dump(mode="json")


async def post_messages(
    http: httpx.AsyncClient, key: str, bodies: list[dict[str, Any]]
) -> dict[uuid.UUID, dict[str, Any]]:
    sent: dict[uuid.UUID, dict[str, Any]] = {}
    for body in bodies:
        response = await http.post("/v1/messages", json=body, headers=bearer(key))
        assert response.status_code == 202, response.text
        sent[uuid.UUID(response.json()["id"])] = body
    return sent


async def read_back(http: httpx.AsyncClient, key: str, sent: dict[uuid.UUID, Any]) -> None:
    """GET every message and compare its decrypted content to what was sent."""
    headers = bearer(key, **{"X-Justification": "key rotation rehearsal read-back"})
    for message_id, body in sent.items():
        response = await http.get(f"/v1/messages/{message_id}", headers=headers)
        assert response.status_code == 200, (message_id, response.text)
        assert response.json()["content"] == sent_as_stored(body), message_id


async def post_and_read_back(http: httpx.AsyncClient, key: str) -> None:
    await read_back(http, key, await post_messages(http, key, [message()]))


def sealed_rows(cli: Cli) -> dict[uuid.UUID, tuple[int, bytes, bytes]]:
    """{id: (key_version, wrapped_key, ciphertext)} straight from the table."""

    async def rows() -> dict[uuid.UUID, tuple[int, bytes, bytes]]:
        db = Database(cli.database_url)
        try:
            async with db.read_engine.connect() as conn:
                result = await conn.execute(
                    text("SELECT id, key_version, wrapped_key, ciphertext FROM messages")
                )
                return {
                    uuid.UUID(str(r.id)): (r.key_version, bytes(r.wrapped_key), bytes(r.ciphertext))
                    for r in result
                }
        finally:
            await db.dispose()

    return asyncio.run(rows())


def rehearsal_messages(first: int, count: int) -> list[dict[str, Any]]:
    return [
        message(
            case_ref=f"FI-NBI-2026-{i:06d}",
            priority=("urgent", "normal")[i % 2],
            body=f"Rehearsal message {i}: vehicle seen at the Tornio crossing, lane {i % 4}.",
        )
        for i in range(first, first + count)
    ]


# -- keys -----------------------------------------------------------------------------------


def test_keys_generate_refuses_to_overwrite_and_status_counts(cli: Cli) -> None:
    out = cli.ok("keys", "generate")
    assert f"keyring written to {cli.keyring_path}" in out
    assert "KEK version 1" in out
    assert stat.S_IMODE(cli.keyring_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.keyring_path.parent.stat().st_mode) == 0o700
    original = cli.keyring_path.read_bytes()
    assert not FileKeyring.load(cli.keyring_path).is_dev

    refused = cli.fails("keys", "generate")
    assert str(cli.keyring_path) in refused.stderr
    assert "exists" in refused.stderr
    assert "unreadable" in refused.stderr
    assert refused.stdout == ""
    assert cli.keyring_path.read_bytes() == original

    assert cli.ok("keys", "generate", "--if-missing") == ""
    assert cli.keyring_path.read_bytes() == original

    assert cli.status() == {1: (True, 0)}
    _, key = cli.create_client("status-check", "messages:write")

    async def two_messages(http: httpx.AsyncClient) -> None:
        await post_messages(http, key, rehearsal_messages(0, 2))

    with_fresh_app(cli, two_messages)
    out = cli.ok("keys", "status")
    assert f"keyring: {cli.keyring_path}\n" in out
    assert cli.status() == {1: (True, 2)}


def test_keys_commands_report_a_bad_keyring_cleanly(cli: Cli) -> None:
    for command in (["keys", "status"], ["keys", "rotate"], ["keys", "rewrap"]):
        assert "not found" in cli.fails(*command).stderr
    cli.ok("keys", "generate")
    secret = json.loads(cli.keyring_path.read_text())["blind_index_key"]
    cli.keyring_path.chmod(0o644)
    refused = cli.fails("keys", "rotate")
    assert "chmod 600" in refused.stderr
    assert secret not in refused.output


# -- clients --------------------------------------------------------------------------------


def test_clients_create_list_revoke(cli: Cli) -> None:
    cli.ok("keys", "generate")
    client_id, key = cli.create_client("border-system", "messages:write", "messages:read")

    async def submit_and_read(http: httpx.AsyncClient) -> None:
        sent = await post_messages(http, key, [message()])
        await read_back(http, key, sent)

    with_fresh_app(cli, submit_and_read)

    unknown = cli.fails("clients", "create", "--name", "y", "--scope", "messages:everything")
    assert "unknown scope" in unknown.stderr
    assert "messages:write" in unknown.stderr  # names the known ones
    assert KEY_LINE.search(unknown.output) is None

    listed = cli.ok("clients", "list")
    (line,) = [row for row in listed.splitlines() if str(client_id) in row]
    assert "border-system" in line
    assert "messages:read,messages:write" in line
    assert line.endswith("active")
    assert key not in listed
    assert "messages:everything" not in listed  # the refused client was not created

    assert f"client {client_id} revoked" in cli.ok("clients", "revoke", str(client_id))
    (line,) = [row for row in cli.ok("clients", "list").splitlines() if str(client_id) in row]
    assert "revoked 20" in line
    # Revoking twice is harmless; an unknown client is a clear error.
    cli.ok("clients", "revoke", str(client_id))
    missing = uuid.uuid4()
    assert f"client {missing} does not exist" in cli.fails("clients", "revoke", str(missing)).stderr

    async def refused(http: httpx.AsyncClient) -> int:
        response = await http.post("/v1/messages", json=message(), headers=bearer(key))
        return response.status_code

    assert with_fresh_app(cli, refused) == 401


# -- key rotation ---------------------------------------------------------------------------


def test_key_rotation_rehearsal(cli: Cli) -> None:
    cli.ok("keys", "generate")
    _, admin_key = cli.create_client("ops", "admin")
    _, key = cli.create_client("border-system", "messages:write", "messages:read")

    async def ingest(http: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> dict[uuid.UUID, Any]:
        return await post_messages(http, key, bodies)

    sent = with_fresh_app(cli, lambda http: ingest(http, rehearsal_messages(0, 12)))
    assert "KEK version 2 is current" in cli.ok("keys", "rotate")
    # A server started after the rotation seals under version 2.
    sent |= with_fresh_app(cli, lambda http: ingest(http, rehearsal_messages(12, 8)))
    assert "KEK version 3 is current" in cli.ok("keys", "rotate")
    assert len(sent) == 20
    assert cli.status() == {1: (False, 12), 2: (False, 8), 3: (True, 0)}
    before = sealed_rows(cli)
    assert sorted(v for v, _, _ in before.values()) == [1] * 12 + [2] * 8

    out = cli.ok("keys", "rewrap", "--batch-size", "7")
    assert out.splitlines() == [
        "rewrapped 7 so far",
        "rewrapped 14 so far",
        "rewrapped 20 so far",
        "rewrapped 2 partner configs",  # the two loopback partners, sealed under v1
        "rewrapped 0 subscription secrets",
        "rewrapped 0 request texts",
        "rewrapped 0 request notes",
        "done: 20 messages now under KEK version 3",
    ]
    assert cli.status() == {1: (False, 0), 2: (False, 0), 3: (True, 20)}
    after = sealed_rows(cli)
    assert after.keys() == before.keys() == sent.keys()
    for message_id, (version, wrapped, ciphertext) in after.items():
        assert version == 3
        assert ciphertext == before[message_id][2], "rewrap must never re-encrypt a payload"
        assert wrapped != before[message_id][1]
    # Nothing left to do: a second run changes nothing.
    assert cli.ok("keys", "rewrap").splitlines() == [
        "rewrapped 0 partner configs",
        "rewrapped 0 subscription secrets",
        "rewrapped 0 request texts",
        "rewrapped 0 request notes",
        "done: 0 messages now under KEK version 3",
    ]
    assert sealed_rows(cli) == after

    async def read_all_and_audit(http: httpx.AsyncClient) -> list[dict[str, Any]]:
        await read_back(http, key, sent)
        response = await http.get(
            "/v1/audit", params={"event": "keys.rewrapped"}, headers=bearer(admin_key)
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    entries = with_fresh_app(cli, read_all_and_audit)
    assert [e["details"] for e in entries] == [
        {"messages": 7, "to_version": 3},
        {"messages": 7, "to_version": 3},
        {"messages": 6, "to_version": 3},
        {"partners": 2, "to_version": 3},
    ]
    assert {(e["action"], e["subject_type"]) for e in entries} == {("alteration", "keyring")}
    assert all(e["actor"].startswith("cli:") for e in entries)

    # Version 1 protects nothing any more, so its key can go for good.
    assert cli.status()[1] == (False, 0)
    assert "still protects" in cli.fails("keys", "retire", "3").output
    assert "retired" in cli.ok("keys", "retire", "1")
    assert cli.status() == {2: (False, 0), 3: (True, 20)}
    with_fresh_app(cli, lambda http: read_back(http, key, sent))
    assert json.loads(cli.ok("audit", "verify"))["ok"] is True


def test_running_server_follows_rotation_and_rewrap(cli: Cli) -> None:
    """A server started before `keys rotate` + `keys rewrap` reads and writes after them."""
    cli.ok("keys", "generate")
    _, key = cli.create_client("border-system", "messages:write", "messages:read")

    async def scenario(http: httpx.AsyncClient) -> None:
        sent = await post_messages(http, key, rehearsal_messages(0, 3))
        # Other processes (the operator's shell), while this server keeps running.
        await asyncio.to_thread(cli.ok, "keys", "rotate")
        await asyncio.to_thread(cli.ok, "keys", "rewrap")
        # The payloads are now wrapped under a version this server never loaded.
        await read_back(http, key, sent)
        newer = await post_messages(http, key, rehearsal_messages(3, 1))
        await read_back(http, key, newer)

    with_fresh_app(cli, scenario)
    assert cli.status() == {1: (False, 0), 2: (True, 4)}


# -- audit ----------------------------------------------------------------------------------


def test_audit_verify_detects_a_tampered_entry(cli: Cli) -> None:
    cli.ok("keys", "generate")
    _, key = cli.create_client("border-system", "messages:write", "messages:read")
    with_fresh_app(cli, lambda http: post_and_read_back(http, key))

    intact = json.loads(cli.ok("audit", "verify"))
    assert intact["ok"] is True
    assert intact["entries_checked"] == intact["head_seq"] >= 3
    assert intact["first_broken_seq"] is None

    async def tamper() -> tuple[int, str | None]:
        engine = create_async_engine(cli.database_url)
        try:
            async with engine.begin() as conn:
                seq, justification = (
                    await conn.execute(
                        text(
                            "SELECT seq, justification FROM audit_entries "
                            "WHERE event = 'message.read' ORDER BY seq DESC LIMIT 1"
                        )
                    )
                ).one()
                await conn.execute(
                    text("UPDATE audit_entries SET justification = 'x' WHERE seq = :seq"),
                    {"seq": seq},
                )
            return seq, justification
        finally:
            await engine.dispose()

    seq, justification = asyncio.run(tamper())
    assert justification == "key rotation rehearsal read-back"  # the consultation

    result = cli.fails("audit", "verify")
    broken = json.loads(result.stdout)
    assert broken["ok"] is False
    assert broken["first_broken_seq"] == seq
    assert broken["reason"] == "hash mismatch"
    assert broken["entries_checked"] == seq - 1


def _truncate_audit(cli: Cli, *, keep: int) -> None:
    """Delete the entries after `keep` and move the head back onto entry `keep`."""

    async def truncate() -> None:
        engine = create_async_engine(cli.database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DELETE FROM audit_entries WHERE seq > :k"), {"k": keep})
                await conn.execute(
                    text(
                        "UPDATE audit_head SET seq = :k, "
                        "hash = (SELECT hash FROM audit_entries WHERE seq = :k)"
                    ),
                    {"k": keep},
                )
        finally:
            await engine.dispose()

    asyncio.run(truncate())


def test_audit_checkpoint_exports_and_verify_catches_a_truncation(cli: Cli, tmp_path: Path) -> None:
    """`audit checkpoint` signs the log outside the database; `audit verify --checkpoint`
    then finds the tail an attacker cut off with the head moved back, which the chain
    alone cannot show, and refuses a checkpoint that was edited."""
    cli.ok("keys", "generate")
    for name in ("one", "two", "three"):
        cli.create_client(name, "messages:read")
    printed = cli.ok("audit", "checkpoint")
    lines = printed.split("\n")
    assert lines[0] == Settings().audit_origin
    assert (lines[1], lines[4]) == ("3", "")
    assert lines[5].startswith(f"\u2014 {lines[0]} ")

    anchors = tmp_path / "anchors.txt"
    out = cli.ok("audit", "checkpoint", "--output", str(anchors))
    assert out == f"checkpoint of 3 entries appended to {anchors}\n"
    assert stat.S_IMODE(anchors.stat().st_mode) == 0o600
    cli.create_client("four", "messages:read")
    cli.ok("audit", "checkpoint", "--output", str(anchors))
    assert anchors.read_text().count("\u2014 ") == 2

    report = json.loads(cli.ok("audit", "verify", "--checkpoint", str(anchors)))
    assert (report["ok"], report["checkpoint_tree_size"], report["entries_checked"]) == (
        True,
        4,
        4,
    )

    _truncate_audit(cli, keep=2)
    assert json.loads(cli.ok("audit", "verify"))["ok"] is True  # no checkpoint: blind to it
    broken = json.loads(cli.fails("audit", "verify", "--checkpoint", str(anchors)).stdout)
    assert (broken["first_broken_seq"], broken["reason"]) == (3, "truncated")
    # The anchor is never re-signed over the truncated log.
    refused = cli.fails("audit", "checkpoint", "--output", str(anchors))
    assert "seq 3: truncated" in refused.stderr
    assert anchors.read_text().count("\u2014 ") == 2

    edited = tmp_path / "edited.txt"
    edited.write_text(anchors.read_text().replace("\n4\n", "\n2\n"))
    forged = json.loads(cli.fails("audit", "verify", "--checkpoint", str(edited)).stdout)
    assert forged["reason"] == "checkpoint invalid"
    missing = cli.fails("audit", "verify", "--checkpoint", str(tmp_path / "none.txt"))
    assert "no checkpoint in" in missing.stderr


def test_audit_keys_rotate_and_publish_their_public_halves(cli: Cli) -> None:
    cli.ok("keys", "generate")
    cli.create_client("before", "messages:read")
    [first] = cli.ok("keys", "audit-public-key").splitlines()
    name, key_id, encoded = first.split("+", 2)
    assert name == Settings().audit_origin
    raw = base64.b64decode(encoded)
    assert raw[0] == 1
    assert len(raw) == 33
    assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == key_id

    assert "audit key version 2 is current" in cli.ok("keys", "audit-rotate")
    status = cli.ok("keys", "status")
    assert re.findall(r"^([* ]) audit v(\d+)  created ", status, re.MULTILINE) == [
        (" ", "1"),
        ("*", "2"),
    ]
    cli.create_client("after", "messages:read")
    keys = cli.ok("keys", "audit-public-key").splitlines()
    assert keys[0] == first
    assert len(keys) == 2
    report = json.loads(cli.ok("audit", "verify"))
    assert (report["ok"], report["entries_checked"], report["unkeyed_entries"]) == (True, 2, 0)


def test_a_keyring_without_audit_keys_gets_them_from_audit_rotate(cli: Cli) -> None:
    """An installation upgraded from before the keyed chain: prod refuses its keyring
    until `keys audit-rotate` has added the audit keys."""
    cli.ok("keys", "generate")
    doc = json.loads(cli.keyring_path.read_text())
    del doc["audit_keys"], doc["audit_unkeyed_prefix"]
    cli.keyring_path.write_text(json.dumps(doc))
    assert "no audit keys" in cli.fails("keys", "audit-public-key").stderr
    cli.ok("keys", "audit-rotate")
    assert FileKeyring.load(cli.keyring_path).audit_unkeyed_prefix()
    assert len(cli.ok("keys", "audit-public-key").splitlines()) == 1


# -- openapi and migrations -----------------------------------------------------------------


def test_openapi_export_matches_the_app(cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert cli.ok("openapi", "--output", str(target)) == ""
    exported = json.loads(target.read_text())
    assert exported == create_app(cli.settings).openapi()
    assert json.loads(cli.ok("openapi")) == exported
    assert not cli.keyring_path.exists()  # exporting the schema needs no keys


def test_db_current_upgrade_and_downgrade(cli: Cli, tmp_path: Path) -> None:
    head = head_revision()
    assert head is not None
    assert cli.ok("db", "current").splitlines() == [f"database: {head}", f"head:     {head}"]
    cli.ok("db", "downgrade", "base")
    assert cli.ok("db", "current").splitlines()[0] == "database: empty"
    cli.ok("db", "upgrade")
    assert cli.ok("db", "current").splitlines()[0] == f"database: {head}"


def test_db_current_on_a_never_migrated_database(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'blank.db'}"
    monkeypatch.setenv("COMMCENTRE_DATABASE_URL", url)
    assert cli.ok("db", "current").splitlines()[0] == "database: empty"
    cli.ok("db", "upgrade")
    assert cli.ok("db", "current").splitlines()[0] == f"database: {head_revision()}"


def test_dead_letters_list_and_redrive(cli: Cli) -> None:
    cli.ok("keys", "generate")

    async def one_dead_letter(http: httpx.AsyncClient) -> str:
        created = await http.post(
            "/v1/partners",
            json={
                "id": "cli-refuses",
                "name": "refuses everything",
                "adapter": "loopback",
                "config": {"fail_with": "permanent"},
            },
            headers=bearer(ADMIN_KEY),
        )
        assert created.status_code == 201, created.text
        body = {**EXAMPLE_MESSAGE, "recipients": ["cli-refuses"], "channel": None}
        response = await http.post("/v1/messages", json=body, headers=bearer(ADMIN_KEY))
        assert response.status_code == 202, response.text
        delivery_id = str(response.json()["deliveries"][0]["id"])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            dead = await http.get("/v1/dead-letters", headers=bearer(ADMIN_KEY))
            if any(d["id"] == delivery_id for d in dead.json()["items"]):
                return delivery_id
            await asyncio.sleep(0.01)
        raise AssertionError("no dead letter")

    delivery_id = with_fresh_app(cli, one_dead_letter)
    listed = [json.loads(line) for line in cli.ok("dead-letters", "list").splitlines()]
    assert [d["id"] for d in listed] == [delivery_id]
    assert listed[0]["partner"] == "cli-refuses"
    assert "permanent" in listed[0]["last_error"]
    assert cli.ok("dead-letters", "list", "--partner", "someone-else") == ""

    dry = json.loads(cli.ok("dead-letters", "redrive", "--partner", "cli-refuses", "--dry-run"))
    assert dry == {
        "dry_run": True,
        "ids": [delivery_id],
        "redriven": 1,
        "skipped": [],
        "expired": 0,
    }
    assert [json.loads(x)["id"] for x in cli.ok("dead-letters", "list").splitlines()] == [
        delivery_id
    ]
    done = json.loads(cli.ok("dead-letters", "redrive", delivery_id))
    assert done["redriven"] == 1
    assert cli.ok("dead-letters", "list") == ""

    assert "ids must be delivery ids" in cli.fails("dead-letters", "redrive", "nope").stderr
    assert "invalid selection" in cli.fails("dead-letters", "redrive").stderr
    assert (
        "not a subscription id" in cli.fails("dead-letters", "list", "--subscription", "x").stderr
    )
