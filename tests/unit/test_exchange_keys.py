"""Our exchange keys (inbound JWEs): in the keyring file, rotated, published without secrets."""

import json
from pathlib import Path

import pytest
from joserfc import jwe, jwk
from typer.testing import CliRunner

from commcentre.cli import app as cli_app
from commcentre.crypto import FileKeyring, KeyringError
from commcentre.crypto.keyring import ExchangeKeyProvider
from commcentre.inbound.decryption import decrypt

REGISTRY = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "A256GCM"])


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "keyring.json"


def seal_to(public: dict[str, object], plaintext: bytes) -> bytes:
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": public["kid"]}
    token = jwe.encrypt_compact(header, plaintext, jwk.import_key(dict(public)), registry=REGISTRY)
    return token.encode()


def test_a_new_keyring_has_one_exchange_key_persisted(path: Path) -> None:
    keyring = FileKeyring.generate(path, dev=True)
    assert isinstance(keyring, ExchangeKeyProvider)
    (public,) = keyring.exchange_public_jwks()["keys"]
    assert public["kty"] == "EC"
    assert public["crv"] == "P-256"
    assert public["use"] == "enc"
    assert public["alg"] == "ECDH-ES+A256KW"
    assert "d" not in public
    stored = json.loads(path.read_text())["exchange_keys"]
    assert [entry["jwk"]["kid"] for entry in stored] == [public["kid"]]
    assert "d" in stored[0]["jwk"]  # the private key lives in the (0600) keyring file
    reloaded = FileKeyring.load(path)
    assert reloaded.exchange_public_jwks() == keyring.exchange_public_jwks()
    assert decrypt(seal_to(public, b'{"a": 1}'), reloaded) == b'{"a": 1}'


def test_an_older_keyring_without_exchange_keys_loads(path: Path) -> None:
    FileKeyring.generate(path, dev=True)
    doc = json.loads(path.read_text())
    del doc["exchange_keys"]
    path.write_text(json.dumps(doc))
    keyring = FileKeyring.load(path)
    assert keyring.exchange_public_jwks() == {"keys": []}
    assert keyring.exchange_key("anything") is None
    kid = keyring.exchange_rotate()
    assert [key["kid"] for key in FileKeyring.load(path).exchange_public_jwks()["keys"]] == [kid]


def test_exchange_rotate_keeps_older_keys_for_decryption(path: Path) -> None:
    keyring = FileKeyring.generate(path, dev=True)
    (old,) = keyring.exchange_public_jwks()["keys"]
    token = seal_to(old, b"{}")
    kid = keyring.exchange_rotate()
    assert kid != old["kid"]
    reloaded = FileKeyring.load(path)
    kids = [key["kid"] for key in reloaded.exchange_public_jwks()["keys"]]
    assert kids == [kid, old["kid"]]  # current first
    assert decrypt(token, reloaded) == b"{}"


def test_a_running_keyring_finds_a_key_another_process_added(path: Path) -> None:
    running = FileKeyring.generate(path, dev=True, reload_interval=3600)
    kid = FileKeyring.load(path).exchange_rotate()
    assert running.exchange_key(kid) is not None


@pytest.mark.parametrize(
    ("entry", "what"),
    [
        ("nope", "exchange_keys[0]"),
        ({"jwk": {"kty": "EC", "crv": "P-256"}, "created_at": "2026-01-01T00:00:00+00:00"}, "kid"),
        (
            {"jwk": {"kty": "oct", "k": "AAAA", "kid": "x"}, "created_at": "2026-01-01T00:00:00Z"},
            "EC P-256 private key",
        ),
    ],
)
def test_a_malformed_exchange_key_is_refused_without_its_value(
    path: Path, entry: object, what: str
) -> None:
    FileKeyring.generate(path, dev=True)
    doc = json.loads(path.read_text())
    doc["exchange_keys"] = [entry]
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyringError, match="malformed") as caught:
        FileKeyring.load(path)
    assert what in str(caught.value)
    assert "AAAA" not in str(caught.value)


def test_cli_prints_public_keys_only_and_rotates(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMCENTRE_KEYRING_PATH", str(path))
    runner = CliRunner()
    assert runner.invoke(cli_app, ["keys", "generate", "--dev"]).exit_code == 0
    first = runner.invoke(cli_app, ["keys", "public"])
    assert first.exit_code == 0, first.output
    jwks = json.loads(first.stdout)
    assert len(jwks["keys"]) == 1
    private = json.loads(path.read_text())["exchange_keys"][0]["jwk"]["d"]
    assert private not in first.stdout
    assert all("d" not in key for key in jwks["keys"])
    rotated = runner.invoke(cli_app, ["keys", "exchange-rotate"])
    assert rotated.exit_code == 0, rotated.output
    second = json.loads(runner.invoke(cli_app, ["keys", "public"]).stdout)
    assert second["keys"][1] == jwks["keys"][0]
    assert second["keys"][0]["kid"] in rotated.stdout
    assert all("d" not in key for key in second["keys"])


def test_cli_public_without_exchange_keys_says_what_to_do(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FileKeyring.generate(path, dev=True)
    doc = json.loads(path.read_text())
    doc["exchange_keys"] = []
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("COMMCENTRE_KEYRING_PATH", str(path))
    result = CliRunner().invoke(cli_app, ["keys", "public"])
    assert result.exit_code == 1
    assert "exchange-rotate" in result.output
