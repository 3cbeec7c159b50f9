"""/docs and /redoc load nothing from outside the app (in-process; the browser test renders them).

Threat: the Communications Centre's networks are isolated. A docs page that pulls its
scripts or fonts from a CDN is blank there, and where a network does reach out, each
visit tells a third party that an operator is reading the gateway's contract.
"""

import base64
import hashlib
import re
from urllib.parse import urlsplit

import httpx
import pytest

PAGES = ["/docs", "/redoc"]
ASSET_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".svg": ("image/svg+xml",),
}
_REFERENCE = re.compile(r"""(?:src|href|spec-url)=["']([^"']+)["']|url: ["']([^"']+)["']""")


def references(html: str) -> list[str]:
    return [a or b for a, b in _REFERENCE.findall(html)]


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


@pytest.mark.parametrize("page", PAGES)
async def test_docs_page_names_no_other_origin(http: httpx.AsyncClient, page: str) -> None:
    """No absolute or protocol-relative URL in the page (CDN, Google Fonts), no API key needed."""
    response = await http.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http:" not in html
    assert "https:" not in html
    urls = references(html)
    assert "/openapi.json" in urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme, url
        assert not parts.netloc, url  # //host/... too


@pytest.mark.parametrize("page", PAGES)
async def test_docs_page_policy_admits_this_origin_only(http: httpx.AsyncClient, page: str) -> None:
    """The page's Content-Security-Policy lets the browser load from this origin only."""
    response = await http.get(page)
    policy = csp_directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    for name, sources in policy.items():
        for source in sources:
            # 'self', 'none', 'unsafe-inline', a 'sha256-...' of the page's own script,
            # or a scheme that names no host (data:, blob:).
            assert source.startswith("'") or source in ("data:", "blob:"), (name, source)
    assert "'unsafe-eval'" not in policy["script-src"]
    assert "'unsafe-inline'" not in policy["script-src"]
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_swagger_ui_inline_script_is_admitted_by_its_hash(http: httpx.AsyncClient) -> None:
    """The hash in script-src is the one of the script the page carries, so it runs."""
    response = await http.get("/docs")
    scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    policy = csp_directives(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'", f"'sha256-{digest}'"]


@pytest.mark.parametrize("page", PAGES)
async def test_docs_assets_are_served_without_a_key(http: httpx.AsyncClient, page: str) -> None:
    """Every script, style and icon the page names is served here: right type, long cache."""
    html = (await http.get(page)).text
    assets = [url for url in references(html) if url != "/openapi.json"]
    assert len(assets) >= 2, assets  # the UI's script, and its favicon
    for url in assets:
        response = await http.get(url)
        assert response.status_code == 200, url
        suffix = "." + urlsplit(url).path.rsplit(".", 1)[-1]
        content_type = response.headers["content-type"].split(";")[0]
        assert content_type in ASSET_TYPES[suffix], (url, content_type)
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.content) > 100, url
        again = await http.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304, url


async def test_redoc_footer_logo_is_served_here(http: httpx.AsyncClient) -> None:
    """ReDoc draws its footer logo from <page>/logo-mini.svg, not from its CDN."""
    response = await http.get("/redoc/logo-mini.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")


async def test_docs_licences_are_served(http: httpx.AsyncClient) -> None:
    """Swagger UI (Apache-2.0) and ReDoc (MIT) are served with their licence texts."""
    swagger = await http.get("/docs/LICENSE")
    assert swagger.status_code == 200
    assert "Apache License" in swagger.text
    redoc = await http.get("/redoc/redoc.standalone.js.LICENSE.txt")
    assert redoc.status_code == 200


async def test_unknown_docs_asset_is_404(http: httpx.AsyncClient) -> None:
    """A path outside the packaged files answers 404, never a file elsewhere on disk."""
    for url in (
        "/docs/missing.js",
        "/redoc/%2e%2e/%2e%2e/app.py",
        "/docs/fastapi/..%2f..%2fapp.py",
    ):
        response = await http.get(url)
        assert response.status_code == 404, url
