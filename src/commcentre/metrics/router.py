"""GET /metrics: Prometheus text format.

Open in dev. In prod it needs an API key with `metrics:read` (or `admin`): the
gauges show which partners are failing and how many requests are overdue, which
is operational intelligence about the bureau, and the API port may face a wider
network than the monitoring one.
"""

from collections import defaultdict

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from commcentre.auth.deps import authorize
from commcentre.auth.scopes import Scope
from commcentre.db import STORE_ERRORS
from commcentre.errors import Forbidden, problem_responses
from commcentre.metrics import repository
from commcentre.runtime import RuntimeDep

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "Counters and histograms of this process (of all processes on the host when "
        "PROMETHEUS_MULTIPROC_DIR is set), and gauges read from the store at scrape time: "
        "queue depth and age of the oldest due delivery per destination, dead letters, "
        "open and overdue supplementary-information requests. "
        "No personal data and no message or subscription ids in labels. "
        "Open in dev; with `COMMCENTRE_ENVIRONMENT=prod` it needs a bearer API key with "
        "the scope `metrics:read` (or `admin`)."
    ),
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Metrics"},
        **problem_responses(Forbidden),
    },
)
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    if runtime.settings.environment == "prod":
        await authorize(request, Scope.METRICS_READ)
    body = generate_latest(runtime.metrics.collecting_registry())
    body += generate_latest(await _store_gauges(runtime))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def _store_gauges(runtime: RuntimeDep) -> CollectorRegistry:
    registry = CollectorRegistry()
    up = Gauge("commcentre_store_up", "1 when the store answered this scrape.", registry=registry)
    depth = Gauge(
        "commcentre_queue_depth",
        "Deliveries not yet settled, by destination and status.",
        ["destination", "status"],
        registry=registry,
    )
    age = Gauge(
        "commcentre_queue_oldest_due_age_seconds",
        "How long the oldest due delivery has been waiting, by destination (0 when none).",
        ["destination"],
        registry=registry,
    )
    dead = Gauge(
        "commcentre_dead_letters",
        "Dead-lettered deliveries waiting for a redrive, by destination.",
        ["destination"],
        registry=registry,
    )
    open_requests = Gauge(
        "commcentre_requests_open",
        "Supplementary-information requests not closed or rejected, by state.",
        ["status"],
        registry=registry,
    )
    overdue_requests = Gauge(
        "commcentre_requests_overdue",
        "Open requests past their legal time limit.",
        registry=registry,
    )
    now = runtime.clock()
    try:
        async with runtime.db.read_sessions() as session:
            rows = await repository.queue(session, now=now)
            requests = await repository.requests_by_status(session, now=now)
    except STORE_ERRORS:
        up.set(0)
        return registry
    up.set(1)
    for status, (count, _) in requests.items():
        open_requests.labels(status).set(count)
    # answered requests wait for closing only: their limit was met or explained
    overdue_requests.set(sum(late for s, (_, late) in requests.items() if s != "answered"))
    oldest: dict[str, float] = defaultdict(float)
    for row in rows:
        if row.status == "dead":
            dead.labels(row.destination).set(row.count)
            continue
        depth.labels(row.destination, row.status).set(row.count)
        if row.oldest_due is not None:
            waited = max((now - row.oldest_due).total_seconds(), 0.0)
            oldest[row.destination] = max(oldest[row.destination], waited)
        else:
            oldest.setdefault(row.destination, 0.0)
    for destination, seconds in oldest.items():
        age.labels(destination).set(seconds)
    return registry
