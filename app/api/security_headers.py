"""Security headers on every response, and CORS only for the origins configured.

Every response (JSON answers, problem+json errors, 404s, CORS preflights, the docs pages)
gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, ``X-Frame-Options:
DENY`` and a ``Content-Security-Policy``: for the JSON API one that allows nothing at all
(``default-src 'none'``), while /docs and /redoc set their own, which lets their local
scripts run (``app.api.offline_docs``). Responses say ``Cache-Control: no-store``: route
answers, sources and errors must not sit in shared caches; the docs' static assets may.

CORS is off unless ``TABLEROUTER_CORS_ORIGINS`` lists origins: a browser page on another
origin then may call the API (simple and preflighted requests), and every other origin is
refused by the browser as before.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.offline_docs import STATIC_URL

__all__ = ["API_CSP", "SecurityHeadersMiddleware", "install_cors", "secure_headers"]

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
# What a browser page on an allowed origin may send and read (auth headers included).
CORS_HEADERS = ["accept", "content-type", "authorization", "last-event-id"]
CORS_EXPOSED = ["retry-after", "www-authenticate"]
CORS_MAX_AGE_S = 600


def secure_headers(headers: MutableHeaders, path: str) -> None:
    """Add the security headers a response lacks (a page's own CSP or caching stays)."""
    for name, value in _ALWAYS.items():
        headers.setdefault(name, value)
    headers.setdefault("Content-Security-Policy", API_CSP)
    if not path.startswith(STATIC_URL + "/"):
        headers.setdefault("Cache-Control", "no-store")


class SecurityHeadersMiddleware:
    """Pure ASGI middleware: ``secure_headers`` on every HTTP response start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                secure_headers(MutableHeaders(scope=message), path)
            await send(message)

        await self.app(scope, receive, send_secured)


def install_cors(app: FastAPI, origins: list[str]) -> None:
    """Let browser pages on ``origins`` call the API; nothing when the list is empty."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=CORS_HEADERS,
        expose_headers=CORS_EXPOSED,
        allow_credentials=False,
        max_age=CORS_MAX_AGE_S,
    )
