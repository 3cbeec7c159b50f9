"""The app's routes, enumerated from the app itself, and the one table of who may call them.

A route that is neither in ROUTES nor in EXEMPT fails the suite: adding an endpoint means
saying here which scope it needs and whether its objects belong to one client.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI


@dataclass(frozen=True)
class Rule:
    scope: str
    owned: str | None = None
    """What the path's id names when a client sees only its own (else None: a shared
    registry or the bureau's shared case work, visible to every holder of the scope)."""


ROUTES: dict[tuple[str, str], Rule] = {
    ("POST", "/v1/messages"): Rule("messages:write"),
    ("GET", "/v1/messages"): Rule("messages:read"),
    ("GET", "/v1/messages/{message_id}"): Rule("messages:read", owned="message"),
    ("GET", "/v1/messages/{message_id}/deliveries"): Rule("messages:read", owned="message"),
    ("POST", "/v1/messages/{message_id}/forward"): Rule("messages:write", owned="message"),
    ("POST", "/v1/lookups"): Rule("messages:read"),
    ("GET", "/v1/partners"): Rule("partners:manage"),
    ("POST", "/v1/partners"): Rule("partners:manage"),
    ("GET", "/v1/partners/{partner_id}"): Rule("partners:manage"),
    ("PATCH", "/v1/partners/{partner_id}"): Rule("partners:manage"),
    ("GET", "/v1/routing-rules"): Rule("partners:manage"),
    ("POST", "/v1/routing-rules"): Rule("partners:manage"),
    ("PUT", "/v1/routing-rules/{rule_id}"): Rule("partners:manage"),
    ("DELETE", "/v1/routing-rules/{rule_id}"): Rule("partners:manage"),
    ("GET", "/v1/dead-letters"): Rule("partners:manage"),
    ("POST", "/v1/dead-letters/redrive"): Rule("partners:manage"),
    ("GET", "/v1/subscriptions"): Rule("messages:read"),
    ("POST", "/v1/subscriptions"): Rule("messages:read"),
    ("GET", "/v1/subscriptions/{subscription_id}"): Rule("messages:read", owned="subscription"),
    ("PATCH", "/v1/subscriptions/{subscription_id}"): Rule("messages:read", owned="subscription"),
    ("DELETE", "/v1/subscriptions/{subscription_id}"): Rule("messages:read", owned="subscription"),
    ("POST", "/v1/requests"): Rule("requests:manage"),
    ("GET", "/v1/requests"): Rule("requests:manage"),
    ("GET", "/v1/requests/{request_id}"): Rule("requests:manage"),
    ("GET", "/v1/requests/{request_id}/deliveries"): Rule("requests:manage"),
    ("POST", "/v1/requests/{request_id}/transitions"): Rule("requests:manage"),
    ("POST", "/v1/requests/{request_id}/eaw"): Rule("requests:manage"),
    ("POST", "/v1/requests/{request_id}/reply"): Rule("requests:manage"),
    ("POST", "/v1/requests/{request_id}/delay-notice"): Rule("requests:manage"),
    ("GET", "/v1/audit"): Rule("audit:read"),
    ("GET", "/v1/audit/verify"): Rule("audit:read"),
}

EXEMPT: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness probe for the orchestrator; answers a constant",
    ("GET", "/readyz"): "readiness probe; says only whether the database is reachable and current",
    ("GET", "/metrics"): (
        "Prometheus scrape: counters without ids or payloads in labels "
        "(tests/integration/test_log_hygiene.py, test_metrics.py); open in dev only, "
        "prod needs metrics:read (test_metrics.py)"
    ),
    ("POST", "/v1/inbound/{partner_id}"): (
        "partners authenticate with Standard Webhooks signatures, not API keys "
        "(tests/integration/test_inbound.py: forged, replayed, stale, wrong secret)"
    ),
    ("GET", "/openapi.json"): "the public contract (API.md)",
    # Their scripts and styles are static mounts under /docs/ and /redoc/ (commcentre.docs_ui),
    # packaged files with no data, served without a key like the pages.
    ("GET", "/docs"): "Swagger UI over the public contract",
    ("GET", "/redoc"): "ReDoc over the public contract",
}

SCOPES = ("messages:write", "messages:read", "requests:manage", "partners:manage", "audit:read")


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves (HEAD aside: it follows GET)."""
    routes: Sequence[Any] = app.routes
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # FastAPI before 0.165 lists its routes flat
        pass
    else:
        routes = list(iter_route_contexts(routes))
    for route in routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                yield method, route.path


def fill(path: str, **values: str) -> str:
    """The path with each `{name}` replaced by values[name]."""
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, path
    return path
