"""Running the real service for tests: the app with its lifespan, spoken to over HTTP."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.settings import Settings


@asynccontextmanager
async def service_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client bound to a fresh app for ``settings``, lifespan started and stopped.

    Unless ``settings`` names a store (``database_url``), the service gets a fresh SQLite store
    in a temporary directory: never ./tablerouter.db, and no snapshot left by another test.
    """
    with tempfile.TemporaryDirectory(prefix="tablerouter-store-") as tmp:
        if "database_url" not in settings.model_fields_set:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'store.db'}"
            settings = settings.model_copy(update={"database_url": url})
        app = create_app(settings)
        async with (
            LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://tablerouter"
            ) as client,
        ):
            yield client
