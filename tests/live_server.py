"""The real service on a real socket: uvicorn in a thread of its own, on a free port.

Generated clients, Node, a browser and streaming clients that hang up need a server they can
reach over TCP; the app runs with its lifespan on the thread's own event loop, so the test's
loop stays free for the LM simulator and async clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from app.main import create_app
from app.settings import Settings

START_TIMEOUT = 60.0


@contextmanager
def live_service(settings: Settings) -> Iterator[str]:
    """Serve a fresh app for ``settings`` on 127.0.0.1; yields its base URL."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        loop="asyncio",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="tablerouter-live", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
