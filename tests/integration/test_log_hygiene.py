"""No payload field, key or secret ever reaches a log line (ARCHITECTURE.md, rules of the house).

Canaries go through every path that logs: submission, a refused submission,
reading, listing by case_ref, lookups, a partner webhook (accepted, badly
signed, unparseable), forwarding, subscriber deliveries that fail and retry,
partner deliveries. Every log event (structlog's, before rendering) and every
stdlib log record of the run is then searched for them.
"""

import copy
import logging
import uuid
from typing import Any

import httpx
import orjson
import pytest
import structlog
from fastapi import FastAPI

from commcentre.partners.schemas import generate_signing_secret
from tests.conftest import ApiUser, MakeUser, wait_delivered
from tests.factories import EXAMPLE_MESSAGE
from tests.inbound_support import event, signed_headers

SURNAME = "KANARIALINTU"
DOCUMENT = "CAN4R1A77"
CASE_REF = "FI-CANARY-2026-7777"
BODY = "canary-body-should-never-be-logged"
JUSTIFICATION = "canary-justification-text"
BAD_DOB = "canary-not-a-date"
REQUEST_TEXT = "canary-request-free-text"
REQUEST_REF = "SE-CANARY-2026-0001"


def _content(**changes: Any) -> dict[str, Any]:
    content = copy.deepcopy(EXAMPLE_MESSAGE)
    content["case_ref"] = CASE_REF
    content["body"] = BODY
    content["subjects"][0]["surnames"] = [SURNAME]
    content["subjects"][1]["number"] = DOCUMENT
    content.update(changes)
    return content


async def test_canaries_never_reach_the_logs(
    http: httpx.AsyncClient,
    app: FastAPI,
    admin: ApiUser,
    make_user: MakeUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What a running process emits: structlog's events, and stdlib records from WARNING up
    # (the stdlib logging of libraries is not configured below its default level).
    caplog.set_level(logging.WARNING)
    partner_secret = generate_signing_secret()
    subscription_secret = generate_signing_secret()
    user = await make_user("messages:read", "messages:write")
    partner_id = f"canary-{uuid.uuid4().hex[:8]}"
    why = {"X-Justification": JUSTIFICATION}
    with structlog.testing.capture_logs() as events:
        created = await http.post(
            "/v1/partners",
            json={
                "id": partner_id,
                "name": "canary partner",
                "adapter": "loopback",
                "allow_loopback": True,
                "signing_secrets": [partner_secret],
            },
            headers=admin.headers,
        )
        assert created.status_code == 201, created.text
        subscribed = await http.post(
            "/v1/subscriptions",
            json={
                "name": "canary subscriber (down)",
                # Nothing listens there: deliveries fail and retry, and log it.
                "url": "http://127.0.0.1:9/hooks",
                "filter": {"case_ref": CASE_REF},
                "signing_secrets": [subscription_secret],
            },
            headers=user.headers,
        )
        assert subscribed.status_code == 201, subscribed.text

        submitted = await http.post("/v1/messages", json=_content(), headers=user.headers)
        assert submitted.status_code == 202, submitted.text
        message_id = submitted.json()["id"]
        refused = _content()
        refused["subjects"][0]["date_of_birth"] = BAD_DOB
        assert (
            await http.post("/v1/messages", json=refused, headers=user.headers)
        ).status_code == 422
        read = await http.get(f"/v1/messages/{message_id}", headers={**user.headers, **why})
        assert read.status_code == 200
        listed = await http.get("/v1/messages", params={"case_ref": CASE_REF}, headers=user.headers)
        assert listed.status_code == 200
        lookup = await http.post(
            "/v1/lookups",
            json={"queries": [{"kind": "document", "number": DOCUMENT}]},
            headers={**user.headers, **why},
        )
        assert lookup.status_code == 200

        inbound = orjson.dumps(event(_content(recipients=["FI"], handling_codes=["H0"])))
        received = await http.post(
            f"/v1/inbound/{partner_id}",
            content=inbound,
            headers=signed_headers(inbound, partner_secret),
        )
        assert received.status_code == 202, received.text
        forged = await http.post(
            f"/v1/inbound/{partner_id}",
            content=inbound,
            headers=signed_headers(inbound, generate_signing_secret()),
        )
        assert forged.status_code == 401
        broken = orjson.dumps(
            event(_content(recipients=["FI"], handling_codes=["H0"]), priority=BAD_DOB)
        )
        unparsed = await http.post(
            f"/v1/inbound/{partner_id}",
            content=broken,
            headers=signed_headers(broken, partner_secret),
        )
        assert unparsed.status_code == 422
        forwarded = await http.post(
            f"/v1/messages/{received.json()['id']}/forward",
            json={"partners": ["se-bureau"]},
            headers={**user.headers, **why},
        )
        assert forwarded.status_code == 202, forwarded.text

        # A supplementary-information request: its free text is sealed, never logged.
        manager = await make_user("requests:manage", "messages:read")
        opened = await http.post(
            "/v1/requests",
            json={
                "reference": REQUEST_REF,
                "form": "M",
                "requesting_state": "SE",
                "legal_basis": "DIR_2023_977",
                "subject": REQUEST_TEXT,
                "note": REQUEST_TEXT,
            },
            headers=manager.headers,
        )
        assert opened.status_code == 201, opened.text
        request_id = opened.json()["id"]
        moved = await http.post(
            f"/v1/requests/{request_id}/transitions",
            json={"to": "assigned", "note": REQUEST_TEXT},
            headers=manager.headers,
        )
        assert moved.status_code == 200, moved.text
        answered = await http.post(
            f"/v1/requests/{request_id}/reply",
            json={"body": BODY, "note": REQUEST_TEXT},
            headers=manager.headers,
        )
        assert answered.status_code == 202, answered.text
        consulted = await http.get(f"/v1/requests/{request_id}", headers={**manager.headers, **why})
        assert consulted.status_code == 200, consulted.text

        dispatcher = app.state.runtime.dispatcher
        await dispatcher.drain(within=2)  # the subscriber stays down: not everything drains

    canaries = [
        SURNAME,
        DOCUMENT,
        CASE_REF,
        BODY,
        JUSTIFICATION,
        BAD_DOB,
        REQUEST_TEXT,
        partner_secret,
        partner_secret.removeprefix("whsec_"),
        subscription_secret.removeprefix("whsec_"),
        user.key,
        admin.key,
    ]
    logged = [repr(event) for event in events] + [
        f"{record.getMessage()} {record.args!r}" for record in caplog.records
    ]
    assert any("request_finished" in line for line in logged), "the logs were not captured"
    leaks = {c: [line for line in logged if c in line][:3] for c in canaries}
    assert not {c: lines for c, lines in leaks.items() if lines}, leaks


async def test_request_id_is_echoed_and_bound_to_the_request_logs(
    http: httpx.AsyncClient, user: ApiUser
) -> None:
    merge = [structlog.contextvars.merge_contextvars]
    with structlog.testing.capture_logs(processors=merge) as events:
        given = await http.get("/v1/messages", headers={**user.headers, "X-Request-ID": "abc-123"})
        generated = await http.get("/v1/messages", headers=user.headers)
        refused = await http.get(
            "/v1/messages", headers={**user.headers, "X-Request-ID": "a b\x7f"}
        )
    assert given.headers["x-request-id"] == "abc-123"
    assert len(generated.headers["x-request-id"]) == 32
    assert refused.headers["x-request-id"] not in ("a b\x7f", "")
    finished = [e for e in events if e["event"] == "request_finished"]
    assert {e["request_id"] for e in finished} >= {"abc-123", generated.headers["x-request-id"]}
    ours = next(e for e in finished if e["request_id"] == "abc-123")
    assert ours["route"] == "/v1/messages"
    assert ours["status"] == 200


async def test_the_request_id_follows_a_message_into_the_dispatcher(
    http: httpx.AsyncClient, user: ApiUser
) -> None:
    with structlog.testing.capture_logs() as events:
        submitted = await http.post(
            "/v1/messages",
            json=EXAMPLE_MESSAGE,
            headers={**user.headers, "X-Request-ID": "border-4411-trace"},
        )
        assert submitted.status_code == 202
        message_id = submitted.json()["id"]
        await wait_delivered(http, user.headers, message_id)
    attempts = [
        e for e in events if e["event"] == "delivery_attempted" and e["message_id"] == message_id
    ]
    assert {e["destination"] for e in attempts} == {"interpol-ncb", "se-bureau"}
    assert {e["request_id"] for e in attempts} == {"border-4411-trace"}
    assert {e["outcome"] for e in attempts} == {"delivered"}
