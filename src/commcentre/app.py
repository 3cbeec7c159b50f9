"""create_app(settings) -> FastAPI: everything is built in the lifespan and passed in."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import structlog
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import DBAPIError

from commcentre import __version__
from commcentre.adapters.base import Resolver
from commcentre.adapters.netguard import system_resolver
from commcentre.audit.export import CheckpointAnchor
from commcentre.audit.router import router as audit_router
from commcentre.auth.deps import Authenticator
from commcentre.auth.service import ensure_bootstrap_admin
from commcentre.bootstrap import (
    build_adapters,
    build_dispatcher,
    build_housekeeper,
    build_http_client,
    build_vault,
    open_database,
    open_keyring,
)
from commcentre.clock import Clock, utcnow
from commcentre.config import Settings
from commcentre.crypto import AuditKeyProvider, KeyProvider
from commcentre.db import Database
from commcentre.delivery.retry import RetryPolicy
from commcentre.delivery.router import router as deliveries_router
from commcentre.destinations import DestinationRules
from commcentre.docs_ui import install_docs
from commcentre.errors import PROBLEM_CONTENT_TYPE, Problem, install_error_handlers
from commcentre.health import router as health_router
from commcentre.idempotency.service import IdempotentRunner
from commcentre.inbound.router import router as inbound_router
from commcentre.messages.identifiers import LookupRequest
from commcentre.messages.ingest import IngestWriter
from commcentre.messages.router import router as messages_router
from commcentre.messages.schemas import MessageIn
from commcentre.messages.service import MessageVault
from commcentre.metrics import Metrics
from commcentre.metrics.router import router as metrics_router
from commcentre.middleware import BodySizeLimit, RequestContext
from commcentre.partners.router import router as partners_router
from commcentre.requests.router import router as requests_router
from commcentre.routing.directory import RoutingDirectory
from commcentre.routing.router import router as routing_router
from commcentre.runtime import Runtime
from commcentre.secret_scan import weak_secret_holders
from commcentre.subscriptions.router import router as subscriptions_router

log = structlog.get_logger(__name__)

DESCRIPTION = """\
Message gateway of a police Communications Centre: police systems submit exchange
messages about persons, documents, vehicles and substances; commcentre validates,
encrypts and durably stores them, and audits every consultation.

Authenticate with `Authorization: Bearer <api-key>`. Errors are RFC 9457
`application/problem+json`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = utcnow,
    keys: KeyProvider | None = None,
    resolver: Resolver | None = None,
    retry_policy: RetryPolicy | None = None,
) -> FastAPI:
    """The API application; nothing is read from the environment at import time."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        provider = keys if keys is not None else open_keyring(settings)
        if not isinstance(provider, AuditKeyProvider):
            raise RuntimeError("the key provider has no audit keys (AuditKeyProvider)")
        db = open_database(settings, provider)
        metrics = Metrics()
        vault = build_vault(settings, provider)
        http = build_http_client(settings)
        adapters = build_adapters(settings, http, resolver or system_resolver)
        destinations = DestinationRules.from_settings(settings, resolver or system_resolver)
        dispatcher = (
            build_dispatcher(
                settings, db, vault, adapters, clock=clock, policy=retry_policy, metrics=metrics
            )
            if settings.dispatcher_enabled
            else None
        )
        ingest = IngestWriter(
            settings.database_url,
            clock=clock,
            batch_max=settings.ingest_batch_max,
            batch_wait=settings.ingest_batch_wait_ms / 1000,
            idempotency_ttl=timedelta(hours=settings.idempotency_ttl_hours),
            on_committed=(lambda _count: dispatcher.wake()) if dispatcher else None,
            metrics=metrics,
            database=db,
        )
        housekeeper = (
            build_housekeeper(settings, db, clock=clock, vault=vault, wake=dispatcher.wake)
            if dispatcher is not None
            else None
        )
        authenticator = Authenticator(db, ttl=settings.auth_cache_seconds)
        if settings.bootstrap_admin_key is not None:
            await _bootstrap(db, settings.bootstrap_admin_key.get_secret_value(), clock)
        if settings.environment == "prod":
            await _warn_weak_secrets(db, vault)
            if settings.audit_checkpoint_path is None:
                # Without checkpoints outside the database, deleting the newest audit
                # entries together with the head row cannot be detected.
                log.warning("audit_checkpoints_disabled", setting="AUDIT_CHECKPOINT_PATH")
        await ingest.start()
        if dispatcher is not None:
            await dispatcher.start()
        if housekeeper is not None:
            await housekeeper.start()
        app.state.runtime = Runtime(
            settings=settings,
            db=db,
            keys=provider,
            vault=vault,
            ingest=ingest,
            authenticator=authenticator,
            idempotent=IdempotentRunner(
                db.write_sessions, ttl=timedelta(hours=settings.idempotency_ttl_hours)
            ),
            adapters=adapters,
            routing=RoutingDirectory(db),
            dispatcher=dispatcher,
            clock=clock,
            metrics=metrics,
            housekeeper=housekeeper,
            destinations=destinations,
        )
        app.state.db = db
        app.state.audit_anchor = CheckpointAnchor(
            settings.audit_checkpoint_path, settings.audit_origin
        )
        app.state.authenticator = authenticator
        try:
            yield
        finally:
            await ingest.stop()
            if housekeeper is not None:
                await housekeeper.stop()
            if dispatcher is not None:
                await dispatcher.stop()
            await http.aclose()
            await db.dispose()

    app = FastAPI(
        title="commcentre",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # install_docs serves both pages without a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(messages_router)
    app.include_router(partners_router)
    app.include_router(deliveries_router)
    app.include_router(routing_router)
    app.include_router(subscriptions_router)
    app.include_router(requests_router)
    app.include_router(audit_router)
    app.include_router(inbound_router)
    app.include_router(health_router)
    app.include_router(metrics_router)
    install_docs(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext)  # outermost: every line of a request carries its id
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


async def _bootstrap(db: Database, api_key: str, clock: Clock) -> None:
    try:
        async with db.write_sessions() as session, session.begin():
            created = await ensure_bootstrap_admin(session, api_key, now=clock())
    except DBAPIError as exc:
        raise RuntimeError("the database is not ready (run `commcentre db upgrade`)") from exc
    if created:
        log.info("bootstrap_admin_created")


async def _warn_weak_secrets(db: Database, vault: MessageVault) -> None:
    try:
        async for holder in weak_secret_holders(db, vault.envelope):
            log.warning("weak_signing_secret_stored", holder=holder, action="rotate it")
    except DBAPIError:
        # Not migrated yet: /readyz says so; the next start scans.
        log.warning("weak_signing_secret_scan_skipped")


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with the models of routes that read their body themselves."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (MessageIn, Problem, LookupRequest):
        model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in model_schema.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components.setdefault(model.__name__, model_schema)
    _document_validation_problems(schema)
    _add_links(schema)
    app.openapi_schema = schema
    return schema


def _document_validation_problems(schema: dict[str, Any]) -> None:
    """FastAPI documents every 422 as its own `HTTPValidationError` JSON; the error
    handlers answer problem+json (errors.py), so the schema says that."""
    problem = {"$ref": "#/components/schemas/Problem"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422")
            if response is not None and PROBLEM_CONTENT_TYPE not in response.get("content", {}):
                response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": problem}}


# OpenAPI links: how the id a response names feeds the next call (clients and stateful
# tests follow them). (method, path, status) -> [(link name, method, path, parameter, value)]
_LINKS: dict[tuple[str, str, str], list[tuple[str, str, str, str, str]]] = {
    ("post", "/v1/messages", "202"): [
        ("ReadMessage", "get", "/v1/messages/{message_id}", "message_id", "$response.body#/id"),
        (
            "ReadDeliveries",
            "get",
            "/v1/messages/{message_id}/deliveries",
            "message_id",
            "$response.body#/id",
        ),
    ],
    ("post", "/v1/partners", "201"): [
        ("ReadPartner", "get", "/v1/partners/{partner_id}", "partner_id", "$response.body#/id"),
        ("UpdatePartner", "patch", "/v1/partners/{partner_id}", "partner_id", "$response.body#/id"),
    ],
    ("post", "/v1/routing-rules", "201"): [
        ("ReplaceRule", "put", "/v1/routing-rules/{rule_id}", "rule_id", "$response.body#/id"),
        ("DeleteRule", "delete", "/v1/routing-rules/{rule_id}", "rule_id", "$response.body#/id"),
    ],
    ("post", "/v1/subscriptions", "201"): [
        (
            f"{verb.title()}Subscription",
            verb,
            "/v1/subscriptions/{subscription_id}",
            "subscription_id",
            "$response.body#/id",
        )
        for verb in ("get", "patch", "delete")
    ],
    ("post", "/v1/requests", "201"): [
        (name, verb, f"/v1/requests/{{request_id}}{tail}", "request_id", "$response.body#/id")
        for name, verb, tail in (
            ("ReadRequest", "get", ""),
            ("TransitionRequest", "post", "/transitions"),
            ("RecordEaw", "post", "/eaw"),
            ("ReplyToRequest", "post", "/reply"),
        )
    ],
    ("post", "/v1/requests/{request_id}/transitions", "200"): [
        ("ReadRequest", "get", "/v1/requests/{request_id}", "request_id", "$response.body#/id"),
        (
            "TransitionAgain",
            "post",
            "/v1/requests/{request_id}/transitions",
            "request_id",
            "$response.body#/id",
        ),
    ],
}


def _add_links(schema: dict[str, Any]) -> None:
    paths = schema.get("paths", {})
    for (method, path, status), links in _LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        for name, target_method, target_path, parameter, value in links:
            target = paths.get(target_path, {}).get(target_method)
            if target is None or "operationId" not in target:
                continue
            response.setdefault("links", {})[name] = {
                "operationId": target["operationId"],
                "parameters": {parameter: value},
            }
