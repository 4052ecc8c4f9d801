"""``POST /route`` as server-sent events: progress while chunks are judged, then the answer.

Events, in order::

    event: progress   RouteProgressEvent   at the start and after every judged chunk
    event: partial    RoutePartialEvent    the ranking so far (about 20 per route at most)
    event: result     RouteResponse        exactly the JSON answer of the plain request
    event: error      Problem              instead of ``result`` when the route fails

Errors found before routing starts (unknown source, bad schemas, no snapshot) are plain
problem+json responses with their status, not events. A client that disconnects cancels the
route, and so its LM calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.api.problems import PROBLEM_REF, AppError, error_body, internal_error_body
from app.api.schemas import RoutedTable, RouteResponse
from app.routing.plan import RoutePlanned
from app.routing.progress import RouteProgress
from app.routing.service import OnRouteEvent, RouteEvent

log = logging.getLogger(__name__)
EVENT_STREAM = "text/event-stream"
# An idle stream still sends a comment now and then so proxies do not cut it.
KEEPALIVE_SECONDS = 15.0
MAX_PARTIALS = 20

RunRoute = Callable[[OnRouteEvent], Awaitable[RouteResponse]]


class RouteProgressEvent(BaseModel):
    """Data of a ``progress`` event: how many chunks are judged."""

    chunks_done: int = Field(ge=0, description="chunks judged so far (failed ones too)", examples=[3])
    chunks_total: int = Field(ge=0, description="chunks the route asks the LM about", examples=[8])
    failed_chunks: int = Field(ge=0, description="chunks without a usable verdict so far", examples=[0])


class RoutePartialEvent(BaseModel):
    """Data of a ``partial`` event: the ranking the verdicts so far give."""

    chunks_done: int = Field(ge=0, description="chunks judged so far (failed ones too)", examples=[3])
    chunks_total: int = Field(ge=0, description="chunks the route asks the LM about", examples=[8])
    tables: list[RoutedTable] = Field(description="ranked tables so far, best first, as in the answer")


def wants_event_stream(request: Request) -> bool:
    """Whether the client's ``Accept`` asks for server-sent events."""
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip().lower() for p in part.split(";"))
        if media == EVENT_STREAM and not any(p.replace(" ", "") in ("q=0", "q=0.0") for p in params):
            return True
    return False


def _event(name: str, data: BaseModel | dict[str, Any]) -> str:
    # One line of JSON per event: SSE data lines cannot hold a raw newline.
    body = data.model_dump_json() if isinstance(data, BaseModel) else json.dumps(data, separators=(",", ":"))
    return f"event: {name}\ndata: {body}\n\n"


async def _events(request: Request, run: RunRoute) -> AsyncIterator[str]:
    events: asyncio.Queue[RouteEvent | None] = asyncio.Queue()

    async def route() -> RouteResponse:
        try:
            return await run(events.put_nowait)
        finally:
            events.put_nowait(None)

    task = asyncio.create_task(route())
    # Made from the route's own plan, its first event: the totals are the route's.
    progress: RouteProgress | None = None
    every = 1
    try:
        while True:
            try:
                event = await asyncio.wait_for(events.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if event is None:
                break
            if isinstance(event, RoutePlanned) and progress is not None:
                progress.replan(event)
                yield _event("progress", _progress(progress))
                continue
            if isinstance(event, RoutePlanned):
                progress = RouteProgress(event)
                every = max(1, progress.total // MAX_PARTIALS)
                yield _event("progress", _progress(progress))
                continue
            if progress is None:
                continue
            progress.add(event)
            yield _event("progress", _progress(progress))
            if progress.done % every == 0 and progress.done < progress.total:
                yield _event("partial", _partial(progress))
        try:
            yield _event("result", await task)
        except AppError as exc:
            yield _event("error", error_body(exc, request.url.path))
        except Exception:
            # The status line is long sent: the failure can only travel as an event.
            log.exception("unhandled error while streaming %s", request.url.path)
            yield _event("error", internal_error_body(request.url.path))
    finally:
        # Reached on a disconnect too (the stream is cancelled): stop the route's LM calls.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, AppError):
            await task


def _progress(progress: RouteProgress) -> RouteProgressEvent:
    return RouteProgressEvent(
        chunks_done=progress.done, chunks_total=progress.total, failed_chunks=progress.failed
    )


def _partial(progress: RouteProgress) -> RoutePartialEvent:
    tables = [RoutedTable.model_validate(t, from_attributes=True) for t in progress.ranking()]
    return RoutePartialEvent(chunks_done=progress.done, chunks_total=progress.total, tables=tables)


def event_stream(request: Request, run: RunRoute) -> StreamingResponse:
    """The route as server-sent events; ``run`` routes, telling its plan and each chunk's outcome."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(request, run), media_type=EVENT_STREAM, headers=headers)


def event_stream_openapi() -> dict[str, Any]:
    """The ``text/event-stream`` content of the route's 200 response."""
    return {
        "schema": {
            "type": "string",
            "description": (
                "server-sent events: `progress` (RouteProgressEvent) at the start and after each "
                "judged chunk, `partial` (RoutePartialEvent) now and then, then `result` "
                "(RouteResponse, the same body as the JSON answer) or `error` (Problem)"
            ),
            "x-sse-events": {
                "progress": {"$ref": "#/components/schemas/RouteProgressEvent"},
                "partial": {"$ref": "#/components/schemas/RoutePartialEvent"},
                "result": {"$ref": "#/components/schemas/RouteResponse"},
                "error": {"$ref": PROBLEM_REF},
            },
        },
        "example": (
            'event: progress\ndata: {"chunks_done":0,"chunks_total":8,"failed_chunks":0}\n\n'
            "event: result\ndata: {...}\n\n"
        ),
    }
