"""The committed OpenAPI document matches the app; every route documents its errors."""

import json
from pathlib import Path

from commcentre.app import create_app
from commcentre.config import Settings

OPENAPI = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_app(settings: Settings) -> None:
    live = create_app(settings).openapi()
    committed = json.loads(OPENAPI.read_text())
    assert live == committed, "openapi/openapi.json is stale: run `make openapi` and commit it"


def test_every_authenticated_route_documents_its_errors(settings: Settings) -> None:
    schema = create_app(settings).openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path in {"/healthz", "/readyz", "/metrics"}:  # unauthenticated by design
                continue
            responses = operation["responses"]
            assert "401" in responses, (method, path)
            assert "422" in responses, (method, path)
            assert responses["401"]["content"].keys() == {"application/problem+json"}
