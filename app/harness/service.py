"""Running the real service for tests: the app with its lifespan, spoken to over HTTP."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import SecretStr

from app.api.state import AppState
from app.main import create_app
from app.serving import serve_in_loop
from app.settings import Settings


@asynccontextmanager
async def service_client(
    settings: Settings, *, freeze_heap: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client bound to a fresh app for ``settings``, lifespan started and stopped.

    Unless ``settings`` names a store (``database_url``), the service gets a fresh SQLite store
    in a temporary directory: never ./tablerouter.db, and no snapshot left by another test.
    ``freeze_heap`` as ``tablerouter serve`` does (see ``create_app``), for a check of the event
    loop's pauses that must see what production sees.
    """
    async with service_app_client(settings, freeze_heap=freeze_heap) as (_, client):
        yield client


@contextmanager
def own_store(settings: Settings) -> Iterator[Settings]:
    """``settings`` with a throwaway SQLite store unless they name one."""
    with tempfile.TemporaryDirectory(prefix="tablerouter-store-") as tmp:
        if "database_url" not in settings.model_fields_set:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'store.db'}"
            settings = settings.model_copy(update={"database_url": SecretStr(url)})
        yield settings


@asynccontextmanager
async def service_app_client(
    settings: Settings, *, freeze_heap: bool = False
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Like ``service_client``, also yielding the app (its state: limiter, breaker ...)."""
    with own_store(settings) as own:
        app = create_app(own, freeze_heap=freeze_heap)
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
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
    with own_store(settings) as own:
        app = create_app(own)
        async with serve_in_loop(app, settings=own) as url:
            yield url, app
