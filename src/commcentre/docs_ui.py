"""The API docs pages, /docs (Swagger UI) and /redoc, served with no internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and ReDoc's fonts from
Google): on the Communications Centre's isolated networks they stay blank. Here
both pages load the files that the `fastapi-standalone-docs` package ships
(Swagger UI, ReDoc, their licences), served by the app itself. A
Content-Security-Policy on each page forbids any other origin, so a script,
style, image, font or fetch from outside is refused by the browser rather than
tried (tests/integration/test_docs_browser.py runs the pages in Chromium).

Like /openapi.json, the pages and their files need no API key: they describe the
public contract and hold no data.
"""

import base64
import hashlib
import os
import re
from importlib import metadata, resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

DOCS_URL = "/docs"
REDOC_URL = "/redoc"

_PACKAGE = "fastapi-standalone-docs"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class _StaticAssets(StaticFiles):
    """StaticFiles whose answers may be kept a year: their URLs name the package version."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _csp(*, script_hashes: list[str], inline_styles: bool) -> str:
    """A policy that admits this origin only.

    Swagger UI's start is one inline script, admitted by its hash; ReDoc builds its
    styles at run time (styled-components), hence 'unsafe-inline' for its styles,
    and runs its search index in a worker made from a blob: URL. Both draw icons as
    data: images.
    """
    scripts = " ".join(["'self'", *(f"'{digest}'" for digest in script_hashes)])
    styles = "'self' 'unsafe-inline'" if inline_styles else "'self'"
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _page(html: HTMLResponse, *, inline_styles: bool) -> HTMLResponse:
    """The page with a CSP that admits exactly its own inline scripts (by sha256)."""
    body = bytes(html.body).decode()
    hashes = [
        "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        for script in _INLINE_SCRIPT.findall(body)
    ]
    return HTMLResponse(
        body,
        headers={
            "Content-Security-Policy": _csp(script_hashes=hashes, inline_styles=inline_styles),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their files to an app created with docs_url=redoc_url=None."""
    static = resources.files("fastapi_standalone_docs") / "static"
    # StaticFiles wants a directory on disk; the package is installed as files.
    root = Path(str(static))
    version = metadata.version(_PACKAGE)
    openapi_url = app.openapi_url or "/openapi.json"

    def swagger_ui(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "")
        html = get_swagger_ui_html(
            openapi_url=root_path + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root_path}{DOCS_URL}/swagger-ui-bundle.js?v={version}",
            swagger_css_url=f"{root_path}{DOCS_URL}/swagger-ui.css?v={version}",
            swagger_favicon_url=f"{root_path}{DOCS_URL}/fastapi/favicon.png?v={version}",
            oauth2_redirect_url=None,
            # The badge of Swagger's online validator would send the contract's URL
            # to swagger.io; the CSP would refuse it anyway.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _page(html, inline_styles=False)

    def redoc(request: Request) -> HTMLResponse:
        root_path = request.scope.get("root_path", "")
        html = get_redoc_html(
            openapi_url=root_path + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root_path}{REDOC_URL}/redoc.standalone.js?v={version}",
            redoc_favicon_url=f"{root_path}{DOCS_URL}/fastapi/favicon.png?v={version}",
            with_google_fonts=False,
        )
        return _page(html, inline_styles=True)

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    # A mount at /docs answers /docs/... only, never /docs itself. ReDoc's footer logo
    # is fetched from window.location.pathname + "/logo-mini.svg" (the package patches
    # it so, off the CDN): /redoc/logo-mini.svg.
    app.mount(f"{DOCS_URL}/fastapi", _StaticAssets(directory=root / "fastapi"), name="docs-icon")
    app.mount(DOCS_URL, _StaticAssets(directory=root / "swagger"), name="docs-swagger-ui")
    app.mount(REDOC_URL, _StaticAssets(directory=root / "redoc"), name="docs-redoc")
