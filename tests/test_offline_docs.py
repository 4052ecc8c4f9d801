"""/docs and /redoc render in a headless browser that may reach no host but the service.

Debian's chromium, driven by Playwright (never Playwright's own browser downloads); every
request to another host is aborted and recorded, and the test fails if the pages asked.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Route, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
RENDER_TIMEOUT_MS = 60_000
ROUTE_SUMMARY = "Route a question to the tables its SQL needs"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="chromium is not installed (.ci/run installs Debian's package)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def _load_offline(browser: Browser, service: str, path: str, ready: str) -> list[str]:
    """Open ``path`` with every other host blocked; returns the URLs that were blocked."""
    allowed = urlsplit(service).netloc
    blocked: list[str] = []

    def gate(route: Route) -> None:
        if urlsplit(route.request.url).netloc == allowed:
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context = browser.new_context()
    try:
        context.route("**/*", gate)
        page = context.new_page()
        page.goto(f"{service}{path}")
        page.wait_for_selector(ready, timeout=RENDER_TIMEOUT_MS)
    finally:
        context.close()
    return blocked


@pytest.mark.browser
def test_swagger_ui_renders_the_route_operation_offline(browser: Browser, demo_service: str) -> None:
    # Swagger UI names each operation's block after its tag and operationId.
    blocked = _load_offline(browser, demo_service, "/docs", "#operations-routing-route")
    assert blocked == []


@pytest.mark.browser
def test_redoc_renders_offline(browser: Browser, demo_service: str) -> None:
    # ReDoc titles each operation with its summary.
    blocked = _load_offline(browser, demo_service, "/redoc", f'h2:has-text("{ROUTE_SUMMARY}")')
    assert blocked == []


def test_docs_assets_come_from_the_service(demo_service: str) -> None:
    html = httpx.get(f"{demo_service}/docs").text
    assert "/static/docs/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    redoc = httpx.get(f"{demo_service}/redoc").text
    assert "/static/docs/redoc.standalone.js" in redoc
    assert "fonts.googleapis" not in redoc
    assert httpx.get(f"{demo_service}/static/docs/swagger-ui.css").status_code == 200
