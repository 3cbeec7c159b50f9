"""/v1/routing-rules and the routing directory: CRUD, validation, versions, reloads."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from commcentre.db import Database
from commcentre.messages.schemas import MessageIn
from commcentre.routing import repository as routing_repository
from commcentre.routing.directory import RoutingDirectory
from commcentre.routing.rules import UnroutableMessage
from tests.conftest import ApiUser, MakeUser
from tests.factories import message
from tests.integration.partners_support import (
    Gateway,
    clean_up,
    create_partner,
    create_rule,
    gateway,
    partner_id,
)


@pytest.fixture(scope="module")
async def gateway_app(settings: Any) -> AsyncIterator[Gateway]:
    async with gateway(settings) as gw:
        yield gw


@pytest.fixture
async def gw(gateway_app: Gateway, admin: ApiUser) -> AsyncIterator[Gateway]:
    yield gateway_app
    await clean_up(gateway_app, admin)


@pytest.fixture
async def manager(make_user: MakeUser) -> ApiUser:
    return await make_user("partners:manage", name="routing-admin")


async def routing_version(db: Database) -> int:
    async with db.read_sessions() as session:
        return await routing_repository.current_version(session)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def counted_statements(db: Database) -> Iterator[list[str]]:
    """Every query the database's read engine runs meanwhile."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):  # not SQLite's own BEGIN
            statements.append(statement)

    engine = db.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def version_queries(statements: list[str]) -> int:
    return sum("routing_state" in s for s in statements)


def rule_loads(statements: list[str]) -> int:
    return sum("FROM routing_rules" in s for s in statements)


# CRUD


async def test_create_read_replace_delete(gw: Gateway, manager: ApiUser, db: Database) -> None:
    a = (await create_partner(gw, manager))["id"]
    b = (await create_partner(gw, manager))["id"]
    version = await routing_version(db)
    body = {
        "name": "urgent europol",
        "position": 10,
        "match": {"channels": ["europol"], "priorities": ["urgent", "high"], "types": []},
        "partners": [a],
    }
    response = await gw.http.post("/v1/routing-rules", json=body, headers=manager.headers)
    assert response.status_code == 201, response.text
    rule = response.json()
    gw.rules.append(rule["id"])
    assert response.headers["location"] == f"/v1/routing-rules/{rule['id']}"
    assert uuid.UUID(rule["id"]).version == 7
    assert rule["enabled"] is True
    assert rule["final"] is False
    assert rule["match"]["channels"] == ["europol"]
    assert rule["match"]["types"] == []
    assert await routing_version(db) == version + 1

    replaced = await gw.http.put(
        f"/v1/routing-rules/{rule['id']}",
        json={**body, "name": "renamed", "partners": [b, a], "final": True, "enabled": False},
        headers=manager.headers,
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["partners"] == [b, a]
    assert replaced.json()["final"] is True
    assert replaced.json()["created_at"] == rule["created_at"]
    assert await routing_version(db) == version + 2

    deleted = await gw.http.delete(f"/v1/routing-rules/{rule['id']}", headers=manager.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert await routing_version(db) == version + 3
    for method in ("PUT", "DELETE"):
        again = await gw.http.request(
            method, f"/v1/routing-rules/{rule['id']}", json=body, headers=manager.headers
        )
        assert again.status_code == 404


async def test_changes_are_audited_without_secrets(
    gw: Gateway, manager: ApiUser, make_user: MakeUser
) -> None:
    pid = (await create_partner(gw, manager))["id"]
    rule = await create_rule(gw, manager, name="audited", partners=[pid])
    await gw.http.put(
        f"/v1/routing-rules/{rule['id']}",
        json={"name": "audited 2", "position": 3, "match": {}, "partners": [pid]},
        headers=manager.headers,
    )
    await gw.http.delete(f"/v1/routing-rules/{rule['id']}", headers=manager.headers)
    auditor = await make_user("audit:read")
    entries = (
        await gw.http.get("/v1/audit", params={"subject_id": rule["id"]}, headers=auditor.headers)
    ).json()["items"]
    assert [(e["action"], e["event"]) for e in entries] == [
        ("alteration", "routing_rule.created"),
        ("alteration", "routing_rule.updated"),
        ("alteration", "routing_rule.deleted"),
    ]
    assert entries[1]["details"] == {"rule": rule["id"], "name": "audited 2", "partners": [pid]}
    assert all(e["actor"] == f"client:{manager.id}" for e in entries)


async def test_list_is_in_position_order_and_pages(gw: Gateway, manager: ApiUser) -> None:
    pid = (await create_partner(gw, manager))["id"]
    mine = [
        (await create_rule(gw, manager, name=f"r{p}", position=p, partners=[pid]))["id"]
        for p in (900_003, 900_001, 900_002, 900_001)
    ]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await gw.http.get("/v1/routing-rules", params=params, headers=manager.headers)
        assert response.status_code == 200, response.text
        seen.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            break
    keys = [(r["position"], r["id"]) for r in seen]
    assert keys == sorted(keys)
    ours = [r["id"] for r in seen if r["id"] in mine]
    assert ours == [*sorted(mine[1:4:2]), mine[2], mine[0]]
    bad = await gw.http.get("/v1/routing-rules", params={"cursor": "e30"}, headers=manager.headers)
    assert bad.status_code == 422


# Validation


async def test_unknown_partners_are_422_naming_them(gw: Gateway, manager: ApiUser) -> None:
    pid = (await create_partner(gw, manager))["id"]
    ghosts = [partner_id("ghost"), partner_id("ghost")]
    response = await gw.http.post(
        "/v1/routing-rules",
        json={"name": "r", "position": 1, "match": {}, "partners": [ghosts[0], pid, ghosts[1]]},
        headers=manager.headers,
    )
    assert response.status_code == 422
    problem = response.json()
    assert [e["loc"] for e in problem["errors"]] == [
        ["body", "partners", 0],
        ["body", "partners", 2],
    ]
    assert all(ghost in problem["detail"] for ghost in ghosts)


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"position": -1}, ["body", "position"]),
        ({"partners": []}, ["body", "partners"]),
        ({"partners": [f"p-{i:02d}" for i in range(51)]}, ["body", "partners"]),
        ({"partners": ["Bad_Id"]}, ["body", "partners", 0]),
        ({"partners": ["dup-id", "dup-id"]}, ["body", "partners"]),
        ({"match": {"colour": ["red"]}}, ["body", "match", "colour"]),
        ({"match": {"priorities": ["whenever"]}}, ["body", "match", "priorities", 0]),
        ({"match": {"countries": ["XX"]}}, ["body", "match", "countries", 0]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "x" * 101}, ["body", "name"]),
        ({"match": None}, ["body", "match"]),
        ({"extra": True}, ["body", "extra"]),
    ],
)
async def test_invalid_rules_are_422(
    gw: Gateway, manager: ApiUser, change: dict[str, Any], loc: list[Any]
) -> None:
    body = {"name": "r", "position": 1, "match": {}, "partners": ["some-partner"], **change}
    response = await gw.http.post("/v1/routing-rules", json=body, headers=manager.headers)
    assert response.status_code == 422
    assert loc in [e["loc"] for e in response.json()["errors"]]


async def test_scope_is_required(gw: Gateway, make_user: MakeUser) -> None:
    other = await make_user("messages:write", "messages:read")
    rule_path = f"/v1/routing-rules/{uuid.uuid4()}"
    for method, path in (
        ("GET", "/v1/routing-rules"),
        ("POST", "/v1/routing-rules"),
        ("PUT", rule_path),
        ("DELETE", rule_path),
    ):
        response = await gw.http.request(method, path, json={}, headers=other.headers)
        assert response.status_code == 403, (method, path)


async def test_create_is_idempotent(gw: Gateway, manager: ApiUser) -> None:
    pid = (await create_partner(gw, manager))["id"]
    body = {"name": "once", "position": 7, "match": {}, "partners": [pid]}
    headers = {**manager.headers, "Idempotency-Key": str(uuid.uuid4())}
    first = await gw.http.post("/v1/routing-rules", json=body, headers=headers)
    gw.rules.append(first.json()["id"])
    second = await gw.http.post("/v1/routing-rules", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    other = await gw.http.post("/v1/routing-rules", json={**body, "position": 8}, headers=headers)
    assert other.status_code == 422


# The routing directory


async def test_the_apps_directory_sees_its_own_changes_at_once(
    gw: Gateway, manager: ApiUser
) -> None:
    pid = (await create_partner(gw, manager))["id"]
    before = await gw.directory.snapshot()
    rule = await create_rule(
        gw, manager, name="urgent hits", partners=[pid], match={"types": ["hit"]}
    )
    after = await gw.directory.snapshot()
    assert after.version > before.version
    assert rule["id"] in {str(r.id) for r in after.rules}
    decision = after.route(MessageIn.model_validate(message(type="hit", recipients=[pid])))
    assert decision.reasons[pid] == ("rule urgent hits", "recipient")


async def test_directory_caches_within_the_interval_and_reloads_on_a_version_change(
    gw: Gateway, manager: ApiUser, db: Database
) -> None:
    clock = FakeClock()
    directory = RoutingDirectory(db, check_interval=1.0, clock=clock)
    with counted_statements(db) as statements:
        first = await directory.snapshot()
        assert rule_loads(statements) == 1
        for _ in range(50):
            assert await directory.snapshot() is first
        # One load (version, rules, partners) and nothing else.
        assert [version_queries(statements), rule_loads(statements)] == [1, 1]
        assert sum("FROM partners" in s for s in statements) == 1

    pid = (await create_partner(gw, manager))["id"]  # another "process" changes things
    with counted_statements(db) as statements:
        assert await directory.snapshot() is first  # within check_interval: cached
        assert statements == []
        clock.now += 1.0
        reloaded = await directory.snapshot()
        assert reloaded is not first
        assert reloaded.version > first.version
        assert pid in reloaded.partners
        assert rule_loads(statements) == 1

    with counted_statements(db) as statements:
        clock.now += 5.0
        assert await directory.snapshot() is reloaded  # version unchanged: no reload
        assert version_queries(statements) == 1
        assert rule_loads(statements) == 0
        assert await directory.snapshot() is reloaded
        assert version_queries(statements) == 1


async def test_invalidate_forces_a_reload(gw: Gateway, manager: ApiUser, db: Database) -> None:
    directory = RoutingDirectory(db, check_interval=3600, clock=FakeClock())
    first = await directory.snapshot()
    pid = (await create_partner(gw, manager))["id"]
    assert await directory.snapshot() is first
    directory.invalidate()
    second = await directory.snapshot()
    assert second.version > first.version
    assert pid in second.partners


async def test_concurrent_callers_share_one_reload(db: Database) -> None:
    directory = RoutingDirectory(db, check_interval=1.0, clock=FakeClock())
    with counted_statements(db) as statements:
        snapshots = await asyncio.gather(*(directory.snapshot() for _ in range(25)))
    assert all(s is snapshots[0] for s in snapshots)
    assert rule_loads(statements) == 1


async def test_routing_follows_partner_changes(gw: Gateway, manager: ApiUser, db: Database) -> None:
    pid = (await create_partner(gw, manager, country="AQ"))["id"]
    content = MessageIn.model_validate(message(recipients=["AQ"], channel="sirene"))
    decision = (await gw.directory.snapshot()).route(content)
    assert decision.reasons[pid] == ("country AQ",)

    await gw.http.patch(
        f"/v1/partners/{pid}", json={"channels": ["europol"]}, headers=manager.headers
    )
    with pytest.raises(UnroutableMessage, match="no enabled partner serves AQ on channel sirene"):
        (await gw.directory.snapshot()).route(content)

    await gw.http.patch(
        f"/v1/partners/{pid}", json={"channels": [], "enabled": False}, headers=manager.headers
    )
    with pytest.raises(UnroutableMessage, match="AQ"):
        (await gw.directory.snapshot()).route(content)
