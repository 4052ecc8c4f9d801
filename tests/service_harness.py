"""Running the real service for tests: the app with its lifespan, spoken to over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from app.api.state import AppState
from app.main import create_app
from app.settings import Settings


@asynccontextmanager
async def service_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client bound to a fresh app for ``settings``, lifespan started and stopped."""
    async with service_app_client(settings) as (_, client):
        yield client


@asynccontextmanager
async def service_app_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Like ``service_client``, also yielding the app (its state: limiter, breaker ...)."""
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://tablerouter"
        ) as client,
    ):
        yield app, client


def app_state(app: FastAPI) -> AppState:
    """The typed state the app's lifespan built."""
    state: AppState = app.state.tablerouter
    return state


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[tuple[str, FastAPI]]:
    """The service under a real uvicorn server on a free loopback port; yields its URL and app."""
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                raise RuntimeError("the service did not start")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        await task
