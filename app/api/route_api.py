"""POST /route: the question in, the ranked tables out."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.api.disconnect import ClientDisconnectedError, unless_disconnected
from app.api.problems import (
    BadRequestError,
    NotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    TooManyRoutesError,
    UnprocessableError,
    UnsupportedMediaTypeError,
    problem_responses,
)
from app.api.schemas import RoutedTable, RouteRequest, RouteResponse, RouteStatsBody
from app.api.state import AppState, get_state
from app.catalog.registry import SourceState
from app.llm.reliability import RouteQueueFullError
from app.routing.deadline import Deadline
from app.routing.prepared import UnknownSchemaError

router = APIRouter(tags=["routing"])
log = logging.getLogger(__name__)
# nginx's "client closed request": logged, never seen by the client that left.
CLIENT_CLOSED_REQUEST = 499


def resolve_source(state: AppState, name: str | None) -> SourceState:
    """The source a request names, or the only one; 404/422/503 problems otherwise."""
    sources = state.registry.sources
    if name is None:
        if len(sources) != 1:
            names = ", ".join(sorted(sources))
            raise UnprocessableError(
                f"'source' is required when {len(sources)} sources are configured: {names}"
            )
        name = next(iter(sources))
    source = sources.get(name)
    if source is None:
        raise NotFoundError(f"unknown source {name!r}; configured: {', '.join(sorted(sources))}")
    return source


@router.post(
    "/route",
    operation_id="route",
    summary="Route a question to the tables its SQL needs",
    response_model=RouteResponse,
    responses=problem_responses(
        BadRequestError,
        NotFoundError,
        PayloadTooLargeError,
        UnsupportedMediaTypeError,
        UnprocessableError,
        TooManyRoutesError,
        NotReadyError,
    ),
)
async def route(
    body: RouteRequest, request: Request, state: Annotated[AppState, Depends(get_state)]
) -> RouteResponse | Response:
    """Ask the judge about every chunk of the source's catalog at once and merge the votes.

    The route answers within its deadline, with what finished by then; if the LM cannot
    judge, it answers with the lexical judge (``degraded``). A client that disconnects
    cancels its route's LM calls.
    """
    settings = state.settings
    deadline_ms = min(body.deadline_ms or settings.route_deadline_ms, settings.route_deadline_ms)
    deadline = Deadline.after(deadline_ms / 1000)
    source = resolve_source(state, body.source)
    prepared = source.prepared
    if prepared is None:
        raise NotReadyError(
            f"source {source.name!r} has no catalog snapshot yet: {source.last_error or 'loading'}"
        )
    min_score = settings.relevance_threshold if body.min_score is None else body.min_score
    work = state.router.route(prepared, body.question, body.top_k, min_score, body.schemas, deadline=deadline)
    try:
        result = await unless_disconnected(request, work)
    except UnknownSchemaError as exc:
        raise UnprocessableError(f"source {source.name!r}: {exc}") from exc
    except RouteQueueFullError as exc:
        raise TooManyRoutesError(str(exc), retry_after=exc.retry_after_s) from exc
    except ClientDisconnectedError:
        log.info("client disconnected from /route; its LM calls were cancelled")
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return RouteResponse(
        route_id=result.route_id,
        source=result.source,
        catalog_version=result.catalog_version,
        judge=result.judge,
        tables=[RoutedTable.model_validate(t, from_attributes=True) for t in result.tables],
        partial=result.partial,
        unjudged=result.unjudged,
        degraded=result.degraded,
        degraded_reason=result.degraded_reason,
        stats=RouteStatsBody.model_validate(result.stats, from_attributes=True),
    )
