"""``/mcp`` as an ASGI app that starts the MCP server on its first request.

The official SDK is heavy to import (``bench/mcp_import.py``: ``app.main`` plus the MCP server
took 1.55x the time of ``app.main`` alone, on a busy 2-core machine), more than the Redis client
a lexical service no longer imports, so a service that nobody reaches over MCP never imports it.
The SDK's session manager is an anyio task group that must be entered and left by one task: a
task of its own runs it from the first request until the app's lifespan ends.

With API keys on, a request without a valid Bearer key is refused here, before the SDK reads
it: 401 problem+json with ``WWW-Authenticate``, as on every REST operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.auth import principal_of
from app.api.problems import PROBLEM_JSON, AppError, error_body
from app.api.state import AppState

__all__ = ["MCP_PATH", "MCPMount"]

MCP_PATH = "/mcp"
log = logging.getLogger(__name__)


class MCPMount:
    """The ASGI app at ``/mcp``; ``aclose`` (in the app's lifespan) stops the server it started."""

    def __init__(self, state_of: Callable[[], AppState]) -> None:
        self._state_of = state_of
        self._lock = asyncio.Lock()
        self._app: ASGIApp | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = await self._refusal(scope)
        if refused is not None:
            await refused(scope, receive, send)
            return
        app = await self._started()
        await app(scope, receive, send)

    async def _refusal(self, scope: Scope) -> ASGIApp | None:
        """A 401 (or 503) problem response when the request carries no valid key; None: go on."""
        request = Request(scope)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            await principal_of(self._state_of(), token.strip() if scheme.lower() == "bearer" else None)
        except AppError as exc:
            return JSONResponse(
                error_body(exc, MCP_PATH),
                status_code=exc.status.value,
                media_type=PROBLEM_JSON,
                headers=exc.headers,
            )
        return None

    async def _started(self) -> ASGIApp:
        async with self._lock:
            if self._app is None:
                ready: asyncio.Future[ASGIApp] = asyncio.get_running_loop().create_future()
                self._runner = asyncio.create_task(self._run(ready), name="tablerouter-mcp")
                self._app = await ready
            return self._app

    async def _run(self, ready: asyncio.Future[ASGIApp]) -> None:
        try:
            from app.mcp.server import http_app, mcp_server  # the SDK: on the first MCP request

            server = mcp_server(self._state_of)
            app = http_app(server, MCP_PATH)
            async with server.session_manager.run():
                ready.set_result(app)
                await self._stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    async def aclose(self) -> None:
        """Stop the MCP server, if a request started it."""
        self._stop.set()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner
