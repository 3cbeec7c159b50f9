"""Mass assignment and oversized input (RELIABILITY.md): server-owned fields in any write
body, bodies past the cap, lists and strings past the schema's maximum, bad paging.
Only 413 and 422 come back; never 5xx, never a silent accept.

The write operations and list operations come from the app's OpenAPI; one without a
body here fails the suite.
"""

import base64
import json
import uuid
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from tests.conftest import ApiUser, MakeUser
from tests.factories import message
from tests.security.routes import EXEMPT, SCOPES, fill

JUSTIFY = {"X-Justification": "input limits under test"}
NOWHERE = str(uuid.uuid4())  # ids that name nothing: a body that passed would change nothing
PATH_VALUES = {
    "message_id": NOWHERE,
    "subscription_id": NOWHERE,
    "rule_id": NOWHERE,
    "request_id": NOWHERE,
    "partner_id": "sec-no-such-partner",
}

# A valid body for every write operation. Creates are harmless if a bug let one through:
# a disabled partner of no country or channel, a disabled rule, a disabled subscription.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/messages"): message(),
    ("POST", "/v1/messages/{message_id}/forward"): {"partners": ["se-bureau"]},
    ("POST", "/v1/lookups"): {"queries": [{"kind": "document", "number": "XP1234567"}]},
    ("POST", "/v1/partners"): {
        "id": "sec-mass-assignment",
        "name": "never created",
        "adapter": "loopback",
        "enabled": False,
    },
    ("PATCH", "/v1/partners/{partner_id}"): {"name": "renamed"},
    ("POST", "/v1/routing-rules"): {
        "name": "never created",
        "position": 999_999,
        "enabled": False,
        "match": {"types": ["ack"]},
        "partners": ["sec-no-such-partner"],
    },
    ("PUT", "/v1/routing-rules/{rule_id}"): {
        "name": "never replaced",
        "position": 999_999,
        "enabled": False,
        "match": {"types": ["ack"]},
        "partners": ["sec-no-such-partner"],
    },
    ("POST", "/v1/dead-letters/redrive"): {"ids": [NOWHERE], "dry_run": True},
    ("POST", "/v1/subscriptions"): {
        "name": "never created",
        "url": "https://127.0.0.1:9/never",
        "enabled": False,
    },
    ("PATCH", "/v1/subscriptions/{subscription_id}"): {"enabled": False},
    ("POST", "/v1/requests"): {
        "reference": "SEC-MASS-1",
        "form": "G",
        "requesting_state": "SE",
        "legal_basis": "SIS_2018_1862",
    },
    ("POST", "/v1/requests/{request_id}/transitions"): {"to": "assigned"},
    ("POST", "/v1/requests/{request_id}/eaw"): {"extension": True},
    ("POST", "/v1/requests/{request_id}/reply"): {"body": "Nothing found."},
    ("POST", "/v1/requests/{request_id}/delay-notice"): {
        "reason": "The registry needs a prosecutor's authorisation.",
        "expected_at": "2099-01-01T12:00:00Z",
    },
}

# Fields a client must never set, whatever the resource (the response models add theirs).
SERVER_OWNED = {
    "id": str(uuid.uuid4()),
    "status": "delivered",
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
    "direction": "inbound",
    "client_id": str(uuid.uuid4()),
    "submitted_by": str(uuid.uuid4()),
    "owner": str(uuid.uuid4()),
    "seq": 1,
    "source_partner": "interpol-ncb",
    "source_partner_id": "interpol-ncb",
    "deliveries": [],
    "key_version": 1,
    "version": 1,
    "attempts": 0,
    "dead_since": "2026-01-01T00:00:00Z",
    "due_at": "2026-01-01T00:00:00Z",
    "history": [],
    "signing_secret_count": 0,
    "generated_signing_secret": "whsec_x",
}


def _schema(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _write_operations(schema: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation and (method.upper(), path) not in EXEMPT
    }


def _body_schema(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    content = schema["paths"][path][method.lower()]["requestBody"]["content"]
    return _resolve(schema, content["application/json"]["schema"])


def _response_fields(schema: dict[str, Any], method: str, path: str) -> set[str]:
    fields: set[str] = set()
    for status, response in schema["paths"][path][method.lower()]["responses"].items():
        if not status.startswith("2"):
            continue
        for media in response.get("content", {}).values():
            fields |= set(_resolve(schema, media.get("schema", {})).get("properties", {}))
    return fields


@pytest.fixture(scope="module")
async def writer(make_user: MakeUser) -> ApiUser:
    # Every scope, not admin: partners:manage is needed for the registry's bodies.
    return await make_user(*SCOPES, name="input-limits")


def test_every_write_operation_has_a_body(app: FastAPI) -> None:
    writes = _write_operations(_schema(app))
    assert writes == BODIES.keys(), (
        f"no body in BODIES for {writes - BODIES.keys()}; stale: {BODIES.keys() - writes}"
    )


async def _send(
    http: httpx.AsyncClient, user: ApiUser, method: str, path: str, body: Any
) -> httpx.Response:
    headers = {**user.headers, **JUSTIFY}
    url = fill(path, **PATH_VALUES)
    if isinstance(body, bytes):
        headers["content-type"] = "application/json"
        return await http.request(method, url, content=body, headers=headers)
    return await http.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path"), sorted(BODIES))
async def test_server_owned_fields_are_refused(
    app: FastAPI, http: httpx.AsyncClient, writer: ApiUser, method: str, path: str
) -> None:
    schema = _schema(app)
    accepted = set(_body_schema(schema, method, path).get("properties", {}))
    owned = (SERVER_OWNED.keys() | _response_fields(schema, method, path)) - accepted
    assert owned
    for name in sorted(owned):
        value = SERVER_OWNED.get(name, "forged")
        response = await _send(http, writer, method, path, {**BODIES[(method, path)], name: value})
        assert response.status_code == 422, f"{name}: {response.status_code} {response.text}"
        errors = response.json()["errors"]
        # Refused for that field alone: the rest of the body is valid.
        assert [(e["loc"], e["type"]) for e in errors] == [(["body", name], "extra_forbidden")], (
            name,
            errors,
        )


@pytest.mark.parametrize(("method", "path"), sorted(BODIES))
async def test_bodies_over_the_cap_are_413(
    app: FastAPI, http: httpx.AsyncClient, writer: ApiUser, method: str, path: str
) -> None:
    cap = app.state.runtime.settings.max_body_bytes
    padding = b" " * (cap + 1)
    body = orjson.dumps(BODIES[(method, path)])
    response = await _send(http, writer, method, path, body[:-1] + padding + body[-1:])
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")

    async def chunks() -> Any:
        yield body[:-1]
        for _ in range(cap // 65536 + 1):
            yield b" " * 65536
        yield body[-1:]

    # Streamed, with no Content-Length to trust.
    headers = {**writer.headers, **JUSTIFY, "content-type": "application/json"}
    streamed = await http.request(
        method, fill(path, **PATH_VALUES), content=chunks(), headers=headers
    )
    assert streamed.status_code == 413, streamed.text


def _too_long(schema: dict[str, Any], field: dict[str, Any], example: Any) -> Any:
    """A value one past the field's maximum, or None when the schema sets none."""
    field = _resolve(schema, field)
    for option in field.get("anyOf", [field]):
        option = _resolve(schema, option)
        if "maxItems" in option:
            item = example[0] if isinstance(example, list) and example else "x"
            return [item] * (option["maxItems"] + 1)
        if "maxLength" in option:
            return "x" * (option["maxLength"] + 1)
    return None


@pytest.mark.parametrize(("method", "path"), sorted(BODIES))
async def test_lists_and_strings_past_the_maximum_are_422(
    app: FastAPI, http: httpx.AsyncClient, writer: ApiUser, method: str, path: str
) -> None:
    schema = _schema(app)
    base = BODIES[(method, path)]
    tried = 0
    for name, field in _body_schema(schema, method, path).get("properties", {}).items():
        value = _too_long(schema, field, base.get(name))
        if value is None:
            continue
        tried += 1
        response = await _send(http, writer, method, path, {**base, name: value})
        assert response.status_code == 422, f"{name}: {response.status_code} {response.text}"
        assert any(e["loc"][:2] == ["body", name] for e in response.json()["errors"]), name
    if method != "POST" or path.endswith("/eaw"):
        return
    assert tried, f"{method} {path}: no bounded field to overflow"


def _list_operations(schema: dict[str, Any]) -> list[str]:
    return sorted(
        path
        for path, operations in schema["paths"].items()
        if any(p["name"] == "limit" for p in operations.get("get", {}).get("parameters", []))
    )


def _forged(kind: Any, position: Any) -> str:
    raw = json.dumps({"k": kind, "p": position}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_bad_paging_is_422(
    app: FastAPI, http: httpx.AsyncClient, make_user: MakeUser
) -> None:
    # Admin: it sees every list's items, so each list hands out a real cursor to forge.
    writer = await make_user("admin", name="input-limits-admin")
    lists = _list_operations(_schema(app))
    assert len(lists) >= 7, lists
    bad_limits = ["0", "501", "-1", "abc", "1.5", "", "9" * 30]
    failures: list[tuple[str, str, int, str]] = []
    for path in lists:
        for limit in bad_limits:
            response = await http.get(path, params={"limit": limit}, headers=writer.headers)
            assert response.status_code == 422, (path, limit, response.text)
        # A real cursor of this list, then forgeries of it.
        first = await http.get(path, params={"limit": 1}, headers=writer.headers)
        assert first.status_code == 200, (path, first.text)
        real = first.json().get("next_cursor")
        forged = ["garbage", "%%%", "x" * 512, _forged("other:list", [1]), _forged(None, None)]
        if real:
            decoded = orjson.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
            kind, position = decoded["k"], decoded["p"]
            forged += [
                _forged(kind, []),
                _forged(kind, [*position, *position]),
                _forged(kind, ["not a position!" for _ in position]),
                _forged(kind, [10**30 for _ in position]),
                _forged(kind, [-1 for _ in position]),
                _forged(kind, [{"a": 1} for _ in position]),
                _forged(kind, [None for _ in position]),
                _forged(kind, [True for _ in position]),
            ]
        for cursor in forged:
            response = await http.get(
                path, params={"cursor": cursor, "limit": 1}, headers=writer.headers
            )
            if response.status_code != 422:
                failures.append((path, cursor, response.status_code, response.text[:200]))
    assert not failures, failures
