"""Cancel a request's work when its client goes away.

uvicorn keeps running a handler whose client disconnected; a route would go on holding LM
calls (and limiter slots) for an answer nobody reads. After the body is read, the next ASGI
message is ``http.disconnect`` - sent when the client closes the connection, or once the
response is complete - so a watcher beside the work tells the two apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

__all__ = ["ClientDisconnectedError", "unless_disconnected"]

T = TypeVar("T")


class ClientDisconnectedError(Exception):
    """The client closed the connection before the answer was ready."""


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; cancel it (and wait for it to unwind) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
        # Both awaited: a watcher or route that failed just now must not log "never retrieved".
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task.cancelled():
        raise ClientDisconnectedError("the client disconnected; the route was cancelled")
    return task.result()
