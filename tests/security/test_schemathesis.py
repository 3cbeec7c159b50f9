"""Schemathesis against the app's own OpenAPI, in process (RELIABILITY.md: contract and
robustness): every operation, every phase (examples, coverage, fuzzing, stateful links),
positive and negative data, a fixed seed, a bounded number of examples per operation.

What a run may do to the shared session database is scoped. The partner registry,
routing rules and redrive decide where every other test's messages go, so the run's key
lacks `partners:manage`: their write operations are still called (every phase, positive
and negative data) and must answer a documented, well-formed 403, but cannot add a
partner of country SE, disable `interpol-ncb` or add a catch-all rule. Their read
operations get an admin key. The run's key is not admin either, so that it owns what it
creates and cannot touch other tests' subscriptions; the subscriptions it creates are
deleted at the end (their pending deliveries die with them).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from fastapi import FastAPI
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from tests.conftest import MakeUser
from tests.security.support import LoopBridge

SEED = 20261128
MAX_EXAMPLES = 8
STATEFUL_MAX_STEPS = 12

# Read-only operations that need partners:manage: the admin key.
ADMIN_OPERATIONS: list[dict[str, Any]] = [
    {"include-path-regex": "^/v1/(partners|routing-rules|dead-letters)", "include-method": "GET"},
]
# The coverage phase walks every boundary of a body schema: about 800 cases for the
# message schema, 6 s. A reply to a request has the same body schema (MessageIn less the
# addressing): its boundaries are walked through POST /v1/messages; the reply keeps the
# examples, fuzzing and stateful phases.
LESS_COVERAGE: list[dict[str, Any]] = [
    {"include-path": "/v1/requests/{request_id}/reply", "phases": {"coverage": {"enabled": False}}},
]

CHECKS: dict[str, Any] = {
    "enabled": False,
    "not_a_server_error": {"enabled": True},
    "status_code_conformance": {"enabled": True},
    "content_type_conformance": {"enabled": True},
    "response_schema_conformance": {"enabled": True},
    "response_headers_conformance": {"enabled": True},
    "negative_data_rejection": {"enabled": True},
    "missing_required_header": {"enabled": True},
    "ignored_auth": {"enabled": True},
    "use_after_free": {"enabled": True},
    "ensure_resource_availability": {"enabled": True},
    "unsupported_method": {"enabled": True},
    "allow_header_conformance": {"enabled": True},
    # Not enabled: positive_data_acceptance. The schema cannot say everything the API
    # checks (ISO country and language codes, cross-field rules such as "a person needs a
    # name", partners that must exist, ids that must exist), so schema-valid bodies are
    # rightly refused with 404/409/422; the other checks still hold every such answer to
    # its documented status and shape.
}

# Inbound webhooks may be JWE (compact, a text body); the generated text goes as is.
schemathesis.serializer.alias("application/jose", "text/plain")


@dataclass
class RunSummary:
    operations: set[str] = field(default_factory=set)
    cases: int = 0
    by_phase: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    def record(self, event: events.EngineEvent) -> None:
        if isinstance(event, events.ScenarioFinished):
            self._scenario(event)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            self.errors.append(f"{getattr(event, 'label', '')}: {event.value!r}")
        elif isinstance(event, events.EngineFinished):
            self.elapsed = event.running_time

    def _scenario(self, event: events.ScenarioFinished) -> None:
        recorder = event.recorder
        phase = event.phase.value
        self.by_phase[phase] = self.by_phase.get(phase, 0) + len(recorder.cases)
        self.cases += len(recorder.cases)
        for node in recorder.cases.values():
            self.operations.add(node.value.operation.label)
        for case_id, checks in recorder.checks.items():
            for check in checks:
                if check.status != Status.FAILURE:
                    continue
                case = recorder.cases[case_id].value
                interaction = recorder.interactions.get(case_id)
                response = interaction.response if interaction is not None else None
                title = check.failure_info.failure.title if check.failure_info else "?"
                answer = (
                    f"{response.status_code} {response.content[:300]!r}"
                    if response is not None
                    else "no response"
                )
                self.failures.append(
                    f"[{phase}] {case.operation.label}: {check.name} ({title})\n"
                    f"    {case.as_curl_command()[:600]}\n    -> {answer}"
                )


async def test_schemathesis_finds_nothing(
    app: FastAPI,
    http: httpx.AsyncClient,
    make_user: MakeUser,
    record_property: Callable[[str, object], None],
) -> None:
    admin = await make_user("admin", name="schemathesis-admin")
    client = await make_user(
        "messages:write",
        "messages:read",
        "requests:manage",
        "audit:read",
        name="schemathesis",
    )
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "headers": {"Authorization": f"Bearer {client.key}"},
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"max-steps": STATEFUL_MAX_STEPS}},
            "checks": CHECKS,
            "operations": [
                *(
                    {**selector, "headers": {"Authorization": f"Bearer {admin.key}"}}
                    for selector in ADMIN_OPERATIONS
                ),
                *LESS_COVERAGE,
            ],
        }
    )
    bridge = LoopBridge(app, asyncio.get_running_loop())
    summary = RunSummary()

    def run() -> int:
        schema = schemathesis.openapi.from_asgi("/openapi.json", bridge, config=config)
        for event in from_schema(schema).execute():
            summary.record(event)
        return int(schema.statistic.operations.total)

    began = time.monotonic()
    try:
        total_operations = await asyncio.to_thread(run)
    finally:
        await _delete_subscriptions(http, client.headers)
    figures = {
        "operations": f"{len(summary.operations)}/{total_operations}",
        "cases": summary.cases,
        "by_phase": summary.by_phase,
        "failures": len(summary.failures),
        "seconds": round(time.monotonic() - began, 1),
    }
    print("schemathesis:", figures)
    for name, value in figures.items():
        record_property(f"schemathesis_{name}", value)
    assert not summary.errors, "\n".join(summary.errors)
    assert not summary.failures, "\n".join(summary.failures)
    assert len(summary.operations) == total_operations, summary.operations
    assert {"fuzzing", "coverage", "stateful"} <= summary.by_phase.keys(), summary.by_phase


async def _delete_subscriptions(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/subscriptions", params=params, headers=headers)).json()
        for item in page["items"]:
            response = await http.delete(f"/v1/subscriptions/{item['id']}", headers=headers)
            assert response.status_code in (204, 404), response.text
        cursor = page.get("next_cursor")
        if not cursor:
            return
