"""GET /metrics: the figures an operator needs, and nothing personal in a label."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from commcentre.auth.service import create_client
from commcentre.clock import utcnow
from commcentre.db import Database
from tests.conftest import ApiUser, wait_delivered
from tests.factories import EXAMPLE_MESSAGE

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


async def test_metrics_count_traffic_and_read_the_queue(
    http: httpx.AsyncClient, app: FastAPI, user: ApiUser
) -> None:
    response = await http.post("/v1/messages", json=EXAMPLE_MESSAGE, headers=user.headers)
    assert response.status_code == 202
    await wait_delivered(http, user.headers, response.json()["id"])
    scrape = await http.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    samples = _samples(scrape.text)
    accepted = {
        (labels["direction"], labels["subject_kind"]): value
        for labels, value in samples["commcentre_messages_accepted_total"]
    }
    for kind in ("person", "document", "vehicle", "substance"):
        assert accepted[("outbound", kind)] >= 1
    attempts = {
        (labels["destination"], labels["outcome"])
        for labels, _ in samples["commcentre_delivery_attempts_total"]
    }
    assert ("interpol-ncb", "delivered") in attempts
    assert "commcentre_delivery_attempt_seconds_bucket" in samples
    assert "commcentre_ingest_batch_size_bucket" in samples
    assert "commcentre_ingest_commit_seconds_count" in samples
    assert samples["commcentre_store_up"] == [({}, 1.0)]
    assert "commcentre_requests_overdue" in samples
    for name, rows in samples.items():
        for labels, _ in rows:
            for value in labels.values():
                assert not UUID.search(value), (name, labels)
                assert "VIRTANEN" not in value
                assert "XP1234567" not in value


async def test_queue_gauges_show_depth_and_age_per_destination(
    http: httpx.AsyncClient, admin: ApiUser, app: FastAPI
) -> None:
    partner = "metrics-stuck"
    created = await http.post(
        "/v1/partners",
        json={
            "id": partner,
            "name": "always failing",
            "adapter": "loopback",
            "config": {"fail_with": "retryable"},
        },
        headers=admin.headers,
    )
    assert created.status_code in (201, 409), created.text
    body = {**EXAMPLE_MESSAGE, "recipients": [partner], "channel": None}
    assert (await http.post("/v1/messages", json=body, headers=admin.headers)).status_code == 202
    samples = _samples((await http.get("/metrics")).text)
    depth = {
        labels["status"]: value
        for labels, value in samples.get("commcentre_queue_depth", [])
        if labels["destination"] == partner
    }
    assert sum(depth.values()) >= 1, samples.get("commcentre_queue_depth")
    ages = [
        v
        for labels, v in samples["commcentre_queue_oldest_due_age_seconds"]
        if labels["destination"] == partner
    ]
    assert len(ages) == 1
    assert ages[0] >= 0


def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, any process's /metrics shows the sum over all."""
    directory = tmp_path / "prom"
    directory.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": "/usr/bin:/bin"}
    count = textwrap.dedent(
        """
        from commcentre.metrics import Metrics
        Metrics().accepted("inbound", ["person"])
        """
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=60)
    read = textwrap.dedent(
        """
        from prometheus_client import generate_latest
        from commcentre.metrics import Metrics
        print(generate_latest(Metrics().collecting_registry()).decode())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", read],
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    samples = _samples(out)
    values = [
        v
        for labels, v in samples["commcentre_messages_accepted_total"]
        if labels == {"direction": "inbound", "subject_kind": "person"}
    ]
    assert values == [2.0]


async def test_prod_metrics_need_the_metrics_read_scope(
    prod: tuple[httpx.AsyncClient, ApiUser], db: Database
) -> None:
    """Prod: queue depths per partner and overdue legal deadlines are not for whoever
    reaches the API port; a scraper's key needs metrics:read (admin also has it)."""
    http, admin = prod
    anonymous = await http.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert "commcentre_" not in anonymous.text
    async with db.write_sessions() as session, session.begin():
        other = await create_client(
            session, name="reader", scopes=["messages:read"], actor="test", now=utcnow()
        )
        scraper = await create_client(
            session, name="prometheus", scopes=["metrics:read"], actor="test", now=utcnow()
        )
    forbidden = await http.get("/metrics", headers={"Authorization": f"Bearer {other.api_key}"})
    assert forbidden.status_code == 403
    for key in (scraper.api_key, admin.key):
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {key}"})
        assert scraped.status_code == 200
        assert "commcentre_store_up 1.0" in scraped.text


async def test_dev_metrics_stay_open(http: httpx.AsyncClient) -> None:
    """Dev keeps /metrics open on the API port (make run, local Prometheus)."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert "commcentre_store_up" in response.text
