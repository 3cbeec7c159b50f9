"""/docs and /redoc render every operation in headless Chromium, with no network.

Threat: the Communications Centre's networks are isolated; a docs page that loads its
scripts or fonts from a CDN stays blank there (issue 13). The real server runs
(`commcentre serve`), and Chromium resolves no host name (tests/browser.py): anything
the pages fetched from outside would fail. The pages must still list each operation of
the app's OpenAPI document, request nothing but this origin, and trip no rule of their
Content-Security-Policy.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from commcentre.crypto import FileKeyring
from tests.browser import Browser, Page, require_chromium
from tests.databases import fresh_database
from tests.faults.processes import Api, Children, commcentre_env, start_api

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RENDER_SECONDS = 15.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """`commcentre serve` on a free port of 127.0.0.1, with its own database and dev keyring."""
    workdir = tmp_path_factory.mktemp("docs-server")
    keyring = workdir / "keyring.json"
    FileKeyring.generate(keyring, dev=True)
    with fresh_database(workdir, "docs") as url:
        children = Children(workdir)
        try:
            yield start_api(children, commcentre_env(database_url=url, keyring_path=keyring))
        finally:
            children.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    require_chromium()
    chromium = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="module")
def openapi(api: Api) -> dict[str, Any]:
    with httpx.Client(base_url=api.base_url, trust_env=False, timeout=30) as client:
        document: dict[str, Any] = client.get("/openapi.json").raise_for_status().json()
    return document


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(METHOD, path, operationId) of every operation the document describes."""
    return [
        (method.upper(), path, operation["operationId"])
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    ]


def assert_stayed_home(page: Page, base_url: str) -> None:
    """Nothing requested from another origin, no CSP refusal, no script error."""
    origin = urlsplit(base_url)
    for url in page.requests:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob"):  # made by the page itself, no fetch
            continue
        assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url
    assert page.csp_violations() == []
    assert page.console_errors == []


def assert_screenshot(page: Page, path: Path) -> None:
    """A PNG of the rendered page; a blank page compresses to a few kilobytes."""
    data = page.screenshot(path)
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 30_000, f"{path} is {len(data)} bytes: is the page blank?"


def test_swagger_ui_lists_every_operation(
    api: Api, browser: Browser, openapi: dict[str, Any], tmp_path: Path
) -> None:
    """Swagger UI shows one block per operation, e.g. POST /v1/messages, fetching only here."""
    expected = operations(openapi)
    page = browser.open(f"{api.base_url}/docs")
    page.wait_for(
        f"document.querySelectorAll('.opblock').length >= {len(expected)}",
        timeout=RENDER_SECONDS,
    )
    shown = page.evaluate(
        """Array.from(document.querySelectorAll('.opblock')).map((block) => [
             block.querySelector('.opblock-summary-method').textContent,
             block.querySelector('.opblock-summary-path').dataset.path,
           ])"""
    )
    assert sorted(map(tuple, shown)) == sorted((method, path) for method, path, _ in expected)
    assert ["POST", "/v1/messages"] in shown
    assert page.evaluate("document.title") == "commcentre - Swagger UI"
    assert_stayed_home(page, api.base_url)
    assert_screenshot(page, tmp_path / "docs.png")


def test_redoc_lists_every_operation(
    api: Api, browser: Browser, openapi: dict[str, Any], tmp_path: Path
) -> None:
    """ReDoc's menu has one entry per operation id, fetching only here (no Google Fonts)."""
    expected = operations(openapi)
    page = browser.open(f"{api.base_url}/redoc")
    selector = "li[data-item-id*='/operation/']"
    page.wait_for(
        f'document.querySelectorAll("{selector}").length >= {len(expected)}',
        timeout=RENDER_SECONDS,
    )
    shown = page.evaluate(
        f"""Array.from(document.querySelectorAll("{selector}"))
             .map((item) => item.dataset.itemId.split('/operation/')[1])"""
    )
    assert sorted(shown) == sorted(operation_id for _, _, operation_id in expected)
    assert page.evaluate("document.body.innerText").count("Submit an outbound message") >= 1
    assert_stayed_home(page, api.base_url)
    assert_screenshot(page, tmp_path / "redoc.png")


def test_docs_policy_refuses_a_cdn(api: Api, browser: Browser) -> None:
    """The pages' CSP itself refuses a fetch from a CDN: the browser never tries it."""
    page = browser.open(f"{api.base_url}/docs")
    page.wait_for("document.querySelectorAll('.opblock').length > 0", timeout=RENDER_SECONDS)
    outcome = page.evaluate(
        """fetch('https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css')
             .then(() => 'fetched', (error) => 'refused')""",
        await_promise=True,
    )
    assert outcome == "refused"
    assert page.csp_violations() == [
        "connect-src https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"
    ]
