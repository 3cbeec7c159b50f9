"""Factories for domain objects used across tests."""

import copy
from typing import Any

EXAMPLE_MESSAGE: dict[str, Any] = {
    "type": "request",
    "channel": "interpol",
    "recipients": ["SE"],
    "priority": "urgent",
    "legal_basis": "DIR_2023_977",
    "handling_codes": ["H2"],
    "source_reliability": "B",
    "info_accuracy": 2,
    "case_ref": "FI-NBI-2026-004411",
    "subjects": [
        {
            "kind": "person",
            "surnames": ["VIRTANEN"],
            "forenames": ["MATTI"],
            "date_of_birth": "1984-07",
            "nationalities": ["FI"],
            "role": "suspect",
        },
        {
            "kind": "document",
            "number": "XP1234567",
            "type": "passport",
            "issuing_country": "FI",
            "status": "stolen",
        },
        {
            "kind": "vehicle",
            "vin": "WVWZZZ1KZAW000001",
            "plate": "ABC-123",
            "registration_country": "FI",
            "status": "stolen",
        },
        {
            "kind": "substance",
            "name": "amphetamine",
            "form": "powder",
            "quantity": "12.5",
            "unit": "kg",
            "purity_pct": 35,
        },
    ],
    "body": "Suspect crossed at Tornio on 2026-11-27; vehicle reported stolen.",
}


def message(**overrides: Any) -> dict[str, Any]:
    """The API.md example message, with top-level fields replaced."""
    body = copy.deepcopy(EXAMPLE_MESSAGE)
    body.update(overrides)
    return body


def document_message(number: str, country: str = "FI", **overrides: Any) -> dict[str, Any]:
    return message(
        subjects=[
            {
                "kind": "document",
                "number": number,
                "type": "passport",
                "issuing_country": country,
                "status": "stolen",
            }
        ],
        **overrides,
    )
