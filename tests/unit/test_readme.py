"""The README's configuration table lists every setting."""

from pathlib import Path

from commcentre.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented() -> None:
    text = README.read_text()
    missing = [name for name in Settings.model_fields if f"`COMMCENTRE_{name.upper()}`" not in text]
    assert missing == [], f"add these settings to the README's configuration table: {missing}"
