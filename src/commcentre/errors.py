"""Errors: every expected failure is a CommCentreError rendered as RFC 9457 problem+json.

CommCentreError
 ├── BadRequest            400
 ├── Unauthorized          401
 ├── Forbidden             403
 ├── NotFound              404
 ├── Conflict              409
 ├── PayloadTooLarge       413
 ├── UnsupportedMediaType  415
 ├── UnprocessableContent  422
 └── ServiceUnavailable    503
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://commcentre.dev/problems/"

log = structlog.get_logger(__name__)


class FieldError(BaseModel):
    """One rejected field."""

    loc: list[str | int] = Field(description="Path to the field, e.g. ['body', 'subjects', 0].")
    msg: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "type": PROBLEM_BASE + "not-found",
                "title": "Not Found",
                "status": 404,
                "detail": "message 0193... does not exist",
            }
        }
    )

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


class CommCentreError(Exception):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal Server Error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}
        self.extra = extra or {}

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body = Problem(
            type=PROBLEM_BASE + self.slug,
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            errors=self.errors,
        ).model_dump(exclude_none=True)
        body.update(self.extra)
        return body


class BadRequest(CommCentreError):
    status, slug, title = 400, "bad-request", "Bad Request"


class Unauthorized(CommCentreError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(CommCentreError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(CommCentreError):
    status, slug, title = 404, "not-found", "Not Found"


class Conflict(CommCentreError):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(CommCentreError):
    status, slug, title = 413, "payload-too-large", "Content Too Large"


class UnprocessableContent(CommCentreError):
    status, slug, title = 422, "validation", "Unprocessable Content"


class ServiceUnavailable(CommCentreError):
    status, slug, title = 503, "unavailable", "Service Unavailable"


def field_errors(
    exc: ValidationError | RequestValidationError, prefix: Sequence[str | int] = ()
) -> list[FieldError]:
    """Pydantic errors as a field list; never echoes the rejected input."""
    out: list[FieldError] = []
    for err in exc.errors():
        loc = [*prefix, *(p for p in err.get("loc", ()) if isinstance(p, str | int))]
        out.append(
            FieldError(
                loc=loc, msg=str(err.get("msg", "invalid")), type=str(err.get("type", "invalid"))
            )
        )
    return out


def validation_problem(
    exc: ValidationError, prefix: Sequence[str | int] = ("body",)
) -> UnprocessableContent:
    errs = field_errors(exc, prefix)
    first = ".".join(str(p) for p in errs[0].loc) if errs else "body"
    return UnprocessableContent(
        f"invalid input at {first}: {errs[0].msg if errs else ''}", errors=errs
    )


def problem_response(error: CommCentreError, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        error.problem(instance=request.url.path if request is not None else None),
        status_code=error.status,
        headers=error.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


def problem_responses(*errors: type[CommCentreError]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry of a route for the errors it can answer."""
    out: dict[int | str, dict[str, Any]] = {}
    documented: tuple[type[CommCentreError], ...] = (Unauthorized, *errors)
    for err in documented:
        out[err.status] = {
            "description": err.title,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    return out


def install_error_handlers(app: FastAPI) -> None:
    async def on_commcentre_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CommCentreError)
        return problem_response(exc, request)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errs = field_errors(exc)
        first = ".".join(str(p) for p in errs[0].loc) if errs else "request"
        return problem_response(
            UnprocessableContent(
                f"invalid input at {first}: {errs[0].msg if errs else ''}", errors=errs
            ),
            request,
        )

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI answers 400 for a body that is not UTF-8; it is malformed JSON like
            # any other, and malformed JSON is 422 everywhere (POST /v1/messages too).
            return problem_response(
                UnprocessableContent(
                    "invalid input at body: the body is not valid UTF-8 JSON",
                    errors=[FieldError(loc=["body"], msg="JSON decode error", type="json_invalid")],
                ),
                request,
            )
        detail = str(exc.detail) if exc.detail else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route on the path.
            headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
        known = _BY_STATUS.get(exc.status_code)
        if known is not None:
            return problem_response(known(detail, headers=headers), request)
        body = {
            "type": "about:blank",
            "title": _reason(exc.status_code),
            "status": exc.status_code,
            "detail": detail,
            "instance": request.url.path,
        }
        return JSONResponse(
            {k: v for k, v in body.items() if v is not None},
            status_code=exc.status_code,
            headers=headers,
            media_type=PROBLEM_CONTENT_TYPE,
        )

    async def on_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
        # The client went away mid-body: nobody reads this answer, nothing was stored.
        return problem_response(BadRequest("the client disconnected before sending the body"))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Log the type and place only: the exception text may carry payload data.
        log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path)
        return problem_response(CommCentreError("an internal error occurred"), request)

    app.add_exception_handler(CommCentreError, on_commcentre_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(ClientDisconnect, on_client_disconnect)
    app.add_exception_handler(Exception, on_unexpected)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on the request's path (the `Allow` of a 405)."""
    routes: Sequence[Any] = request.app.routes
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # FastAPI before 0.165 lists its routes flat
        pass
    else:
        routes = list(iter_route_contexts(routes))
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class UnsupportedMediaType(CommCentreError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported Media Type"


_BY_STATUS: dict[int, type[CommCentreError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        UnprocessableContent,
        ServiceUnavailable,
    )
}
