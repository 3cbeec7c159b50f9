"""Every request body in the OpenAPI document has an example, and every example is valid."""

import sys
from typing import Any

import pytest
from pydantic import BaseModel

from commcentre.app import create_app
from commcentre.config import Settings
from commcentre.models import metadata  # noqa: F401  (every table, for the models below)

SCHEMA: dict[str, Any] = create_app(Settings()).openapi()


def _bodies() -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for path, operations in SCHEMA["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media_type, body in content.items():
                found.append((method.upper(), path, media_type, body))
    return found


def _examples(body: dict[str, Any]) -> list[Any]:
    if "example" in body:
        return [body["example"]]
    if "examples" in body:
        return [e["value"] for e in body["examples"].values()]
    schema = body.get("schema", {})
    if "$ref" in schema:
        schema = SCHEMA["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return list(schema.get("examples", [])) + ([schema["example"]] if "example" in schema else [])


@pytest.mark.parametrize(("method", "path", "media_type", "body"), _bodies())
def test_every_request_body_has_an_example(
    method: str, path: str, media_type: str, body: dict[str, Any]
) -> None:
    assert _examples(body), f"{method} {path} ({media_type}) has no example for /docs"


def _models() -> dict[str, type[BaseModel]]:
    """Every pydantic model of the package by class name (the schema names)."""
    models: dict[str, type[BaseModel]] = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("commcentre."):
            for value in vars(module).values():
                if isinstance(value, type) and issubclass(value, BaseModel):
                    models.setdefault(value.__name__, value)
    return models


def test_every_model_example_validates() -> None:
    models = _models()
    checked = 0
    for _method, _path, media_type, body in _bodies():
        ref = body.get("schema", {}).get("$ref")
        if media_type != "application/json" or ref is None:
            continue
        model = models[ref.split("/")[-1]]
        for example in _examples(body):
            model.model_validate(example)
            checked += 1
    assert checked >= 10
