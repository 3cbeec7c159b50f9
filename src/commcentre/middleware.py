"""ASGI middleware: the request body cap, and the request id of the logs."""

import re
import time
import uuid

import structlog
from fastapi import HTTPException
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from commcentre.errors import PayloadTooLarge, problem_response

log = structlog.get_logger(__name__)


class BodySizeLimit:
    """Refuses bodies over `max_bytes` with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"the request body exceeds {self.max_bytes} bytes")
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await problem_response(too_large)(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing unchanged
                    # and is rendered as problem+json by the error handlers.
                    raise HTTPException(413, too_large.detail)
            return message

        await self.app(scope, limited_receive, send)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def current_request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


class RequestContext:
    """A request id for every request, bound to every log line it causes.

    Taken from `X-Request-ID` when the caller sends a well-formed one (so that a
    police system's own id follows its request), else generated; echoed in the
    response. One `request_finished` line per request: method, route, status and
    duration, never the query string (it can carry a case reference).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                text = value.decode("latin-1")
                request_id = text if _REQUEST_ID.match(text) else None
                break
        request_id = request_id or uuid.uuid4().hex
        status = 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = scope.get("route")
                log.info(
                    "request_finished",
                    method=scope.get("method"),
                    route=getattr(route, "path", None) or "unmatched",
                    status=status,
                    duration_ms=round((time.perf_counter() - began) * 1000, 1),
                )
