"""/docs (Swagger UI) and /redoc with their JavaScript and CSS served from the package.

Warehouses often sit on networks without internet: FastAPI's default pages fetch their
assets (and Google fonts) from CDNs and render blank there. The assets come from the
``fastapi-offline`` distribution, which ships Swagger UI and ReDoc builds.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

STATIC_URL = "/static/docs"
# The browser itself refuses any other origin, so a page that still points at a CDN (ReDoc's
# "by Redocly" logo does) costs no outbound request and no timeout on a closed network.
DOCS_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' blob:",  # FastAPI's pages start the UI inline
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",  # ReDoc searches in a worker
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
    ]
)


def install_offline_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from local assets (create the app with docs_url=redoc_url=None)."""
    app.mount(STATIC_URL, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-static")

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "")
        return f"{root}{app.openapi_url}", f"{root}{STATIC_URL}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi_url, static = urls(request)
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi_url, static = urls(request)
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{static}/redoc.standalone.js",
            redoc_favicon_url=f"{static}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page
