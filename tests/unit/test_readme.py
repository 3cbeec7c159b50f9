"""The README's configuration table is the one generated from Settings."""

from pathlib import Path

from commcentre.config import Settings, settings_table, with_settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_configuration_table_is_generated_from_settings() -> None:
    text = README.read_text()
    assert with_settings_table(text) == text, (
        "the README's configuration table is stale: run `make docs`"
    )


def test_every_setting_is_in_the_table_with_its_description() -> None:
    table = settings_table()
    for name, field in Settings.model_fields.items():
        assert f"`COMMCENTRE_{name.upper()}`" in table
        assert field.description, f"{name} needs a description for operators"
