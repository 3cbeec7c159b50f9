"""Liveness and readiness."""

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from commcentre.db import STORE_ERRORS
from commcentre.migrate import head_revision
from commcentre.runtime import RuntimeDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    database: Literal["ok", "unreachable"]
    migrations: Literal["at_head", "behind", "unknown"]
    revision: str | None
    head: str | None


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: database reachable and migrations at head",
    responses={503: {"model": Readiness, "description": "Not ready"}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    head = head_revision()
    revision: str | None = None
    database: Literal["ok", "unreachable"] = "ok"
    try:
        async with runtime.db.read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            try:
                revision = (
                    await conn.execute(text("SELECT version_num FROM alembic_version"))
                ).scalar_one_or_none()
            except DBAPIError:
                revision = None
    except STORE_ERRORS:
        database = "unreachable"
    migrations: Literal["at_head", "behind", "unknown"]
    if database != "ok":
        migrations = "unknown"
    else:
        migrations = "at_head" if revision is not None and revision == head else "behind"
    ready = database == "ok" and migrations == "at_head"
    body = Readiness(
        status="ready" if ready else "not_ready",
        database=database,
        migrations=migrations,
        revision=revision,
        head=head,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
