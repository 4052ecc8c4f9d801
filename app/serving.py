"""Serving an ASGI app with uvicorn: the server options a service's settings give, and serving
on this event loop (the simulator, the eval harness and tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn
from starlette.types import ASGIApp

from app.connections import ServingConfig, protocol_class
from app.settings import Settings

__all__ = ["serve_in_loop", "server_options"]


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's connection options for ``settings`` (``ServingConfig`` keywords).

    uvicorn's own options where it has them: the idle keep-alive, the cap on connections and
    running requests (503 beyond it), the graceful-shutdown timeout; the request-head timeout
    it lacks comes from ``app.connections``.
    """
    return {
        "header_timeout_s": settings.header_timeout_s,
        "timeout_keep_alive": settings.keep_alive_s,
        "limit_concurrency": settings.max_connections or None,
        "timeout_graceful_shutdown": settings.shutdown_timeout_s,
    }


@contextlib.asynccontextmanager
async def serve_in_loop(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    lifespan: Literal["on", "off"] = "on",
    settings: Settings | None = None,
) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0: a free port) until the block ends; yields its base URL.

    With ``settings``, the connection options ``tablerouter serve`` takes from them.
    """
    options: dict[str, Any] = {"timeout_graceful_shutdown": 5}
    if settings is not None:
        options = {**server_options(settings), "http": protocol_class("auto")}
    config = ServingConfig(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan=lifespan, **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                raise RuntimeError(f"the server did not start on {host}:{port} (see the log above)")
            await asyncio.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        await task
