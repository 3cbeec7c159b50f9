"""`partners` and `routing` CLI sub-apps against the test database and keyring."""

import json
import uuid

import pytest
from typer.testing import CliRunner

from commcentre.config import Settings
from commcentre.partners.cli import app as partners_cli
from commcentre.routing.cli import app as routing_cli


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMCENTRE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COMMCENTRE_KEYRING_PATH", str(settings.keyring_path))
    if not settings.keyring_path.exists():
        from commcentre.crypto import FileKeyring

        FileKeyring.generate(settings.keyring_path, dev=True)


@pytest.mark.usefixtures("cli_env")
def test_partner_and_rule_lifecycle_from_the_cli() -> None:
    runner = CliRunner()
    pid = f"cli-{uuid.uuid4().hex[:10]}"
    created = runner.invoke(
        partners_cli,
        [
            "create",
            "--id",
            pid,
            "--name",
            "CLI bureau",
            "--adapter",
            "webhook",
            "--config-json",
            '{"url": "https://cli.example/hook"}',
            "--channel",
            "bilateral",
        ],
    )
    assert created.exit_code == 0, created.output
    assert "inbound secret (shown once): whsec_" in created.output
    assert "outbound secret (shown once): whsec_" in created.output
    secret = created.output.split("inbound secret (shown once): ")[1].split()[0]
    outbound = created.output.split("outbound secret (shown once): ")[1].split()[0]
    assert secret != outbound

    shown = runner.invoke(partners_cli, ["show", pid])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["config"]["url"] == "https://cli.example/hook"
    assert secret not in shown.output
    assert outbound not in shown.output
    assert pid in runner.invoke(partners_cli, ["list"]).output

    bad = runner.invoke(
        partners_cli,
        ["create", "--id", "cli-bad", "--name", "x", "--adapter", "nope", "--config-json", "{}"],
    )
    assert bad.exit_code == 1
    assert "known adapters" in bad.output

    rule = runner.invoke(
        routing_cli,
        ["create", "--name", "cli rule", "--partner", pid, "--match-json", '{"types": ["ack"]}'],
    )
    assert rule.exit_code == 0, rule.output
    rule_id = rule.output.split("routing rule ")[1].split()[0]
    assert rule_id in runner.invoke(routing_cli, ["list"]).output
    unknown = runner.invoke(routing_cli, ["create", "--name", "x", "--partner", "cli-ghost-1"])
    assert unknown.exit_code == 1
    assert "unknown partners: cli-ghost-1" in unknown.output
    assert runner.invoke(routing_cli, ["delete", rule_id]).exit_code == 0
    assert runner.invoke(routing_cli, ["delete", rule_id]).exit_code == 1

    disabled = runner.invoke(partners_cli, ["disable", pid, "--reason", "maintenance"])
    assert "disabled" in disabled.output
    assert (
        "was already disabled"
        in runner.invoke(partners_cli, ["disable", pid, "--reason", "x"]).output
    )
    assert "enabled" in runner.invoke(partners_cli, ["enable", pid]).output
    assert runner.invoke(partners_cli, ["disable", pid, "--reason", "test over"]).exit_code == 0


@pytest.mark.usefixtures("cli_env")
def test_each_direction_rotates_from_the_cli() -> None:
    """An operator rotates one direction (a new secret printed once, the old kept until
    --finish) without touching the other: e.g. to give a partner registered before the
    split its first outbound secret."""
    runner = CliRunner()
    pid = f"cli-{uuid.uuid4().hex[:10]}"
    created = runner.invoke(
        partners_cli,
        ["create", "--id", pid, "--name", "CLI rotation", "--adapter", "loopback"],
    )
    assert created.exit_code == 0, created.output
    before = json.loads(runner.invoke(partners_cli, ["show", pid]).output)

    rotated = runner.invoke(partners_cli, ["rotate-secret", pid, "--direction", "outbound"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.split("outbound secret (shown once): ")[1].split()[0]
    shown = runner.invoke(partners_cli, ["show", pid]).output
    assert new not in shown
    during = json.loads(shown)
    assert during["outbound_secrets"]["count"] == 2
    assert during["outbound_secrets"]["hints"][0] == new[:10]
    assert during["inbound_secrets"] == before["inbound_secrets"]

    finished = runner.invoke(
        partners_cli, ["rotate-secret", pid, "--direction", "outbound", "--finish"]
    )
    assert finished.exit_code == 0, finished.output
    assert "whsec_" not in finished.output
    after = json.loads(runner.invoke(partners_cli, ["show", pid]).output)
    assert after["outbound_secrets"] == {"count": 1, "hints": [new[:10]]}
    assert after["inbound_secrets"] == before["inbound_secrets"]

    wrong = runner.invoke(partners_cli, ["rotate-secret", pid, "--direction", "both"])
    assert wrong.exit_code == 1
    assert runner.invoke(partners_cli, ["disable", pid, "--reason", "test over"]).exit_code == 0
