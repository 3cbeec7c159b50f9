"""App factories the benchmarks serve with uvicorn (`--factory bench.apps:<name>`).

- `ceiling_app`: the most our ingest path could do in one process: read the raw
  body, validate it with the same `MessageIn.model_validate_json` as
  POST /v1/messages, answer 202. No auth, no database, no crypto.
- `commcentre_app`: the real application, configured from COMMCENTRE_*
  environment variables and logging JSON lines like `commcentre serve` in prod.
"""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from commcentre.app import create_app
from commcentre.config import Settings
from commcentre.logs import configure_logging
from commcentre.messages.schemas import MessageIn

ACCEPTED = {"status": "accepted"}


def ceiling_app() -> FastAPI:
    """A bare FastAPI app: POST /v1/messages validates and answers 202; GET /healthz."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/v1/messages")
    async def submit(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            MessageIn.model_validate_json(raw)
        except ValidationError:
            return JSONResponse({"status": "invalid"}, status_code=422)
        return JSONResponse(ACCEPTED, status_code=202)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def commcentre_app() -> FastAPI:
    """The real app, settings from the environment (COMMCENTRE_DATABASE_URL, ...).

    Logs as production does (JSON lines, one `request_finished` per request), whatever
    the environment: the benchmark's keyring is a dev one, its log format need not be.
    """
    configure_logging(json=True)
    return create_app(Settings())
