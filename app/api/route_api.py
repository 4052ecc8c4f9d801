"""POST /route: the question in, the ranked tables out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.api.auth import KEY_RESPONSES, admit, authenticated
from app.api.disconnect import ClientDisconnectedError, unless_disconnected
from app.api.problems import (
    BODY_ERRORS,
    NotFoundError,
    NotReadyError,
    RateLimitedError,
    TokenBudgetError,
    TooManyRoutesError,
    UnprocessableError,
    problem_responses,
)
from app.api.route_events import EVENT_STREAM, event_stream, event_stream_openapi, wants_event_stream
from app.api.route_log_api import route_record
from app.api.schemas import JudgeKind, RoutedTable, RouteRequest, RouteResponse, RouteStatsBody
from app.api.state import AppState, get_state
from app.auth.principal import Principal
from app.llm.reliability import RouteQueueFullError
from app.observability.route_metrics import observed_route
from app.routing.deadline import Deadline
from app.routing.judging.judge import ChunkOutcome
from app.routing.preparation.prepared import PreparedCatalog, UnknownSchemaError
from app.routing.progress import RouteProgress
from app.routing.service import LEXICAL_JUDGE
from app.sources.registry import SourceState

router = APIRouter(tags=["routing"], dependencies=[Depends(authenticated)], responses=KEY_RESPONSES)
# Every error a route can answer besides the body's: the key's limits, the LM queue, the source.
ROUTE_ERRORS = (NotFoundError, UnprocessableError, RateLimitedError, TokenBudgetError, TooManyRoutesError)
log = logging.getLogger(__name__)
# nginx's "client closed request": logged, never seen by the client that left.
CLIENT_CLOSED_REQUEST = 499


def resolve_source(state: AppState, name: str | None, principal: Principal) -> SourceState:
    """The source a request names, or the only one the key sees; 404/422 problems otherwise.

    Sources the key is not granted do not exist for it: not named in errors, not counted.
    """
    sources = {n: s for n, s in state.registry.sources.items() if principal.sees_source(n)}
    if name is None:
        if len(sources) != 1:
            names = ", ".join(sorted(sources)) or "none"
            raise UnprocessableError(f"'source' is required when {len(sources)} sources are visible: {names}")
        name = next(iter(sources))
    source = sources.get(name)
    if source is None:
        raise NotFoundError(f"unknown source {name!r}; visible: {', '.join(sorted(sources)) or 'none'}")
    return source


def ready_catalog(state: AppState, body: RouteRequest, principal: Principal) -> PreparedCatalog:
    """The catalog snapshot a route runs over; 404/422/503 problems otherwise."""
    source = resolve_source(state, body.source, principal)
    if source.prepared is None:
        # The refresh error may name any table of the source: only an admin key reads it.
        why = source.last_error or "loading"
        if source.last_error and not principal.admin:
            why = "the last refresh failed"
        raise NotReadyError(f"source {source.name!r} has no catalog snapshot yet: {why}")
    return source.prepared


def min_score_of(state: AppState, body: RouteRequest) -> float:
    """The request's ``min_score``, or the service's relevance threshold."""
    return state.settings.relevance_threshold if body.min_score is None else body.min_score


def deadline_of(state: AppState, body: RouteRequest) -> Deadline:
    """The route's deadline: the request's ``deadline_ms``, capped by ROUTE_DEADLINE_MS."""
    cap = state.settings.route_deadline_ms
    return Deadline.after(min(body.deadline_ms or cap, cap) / 1000)


async def answer(
    state: AppState,
    prepared: PreparedCatalog,
    body: RouteRequest,
    principal: Principal,
    on_chunk: Callable[[ChunkOutcome], None] | None = None,
) -> RouteResponse:
    """Route one request over what ``principal`` sees of ``prepared``; 422/429 problems when it cannot."""
    min_score = min_score_of(state, body)
    with observed_route() as observed:
        try:
            result = await state.router.route(
                prepared,
                body.question,
                body.top_k,
                min_score,
                body.schemas,
                on_chunk=on_chunk,
                deadline=deadline_of(state, body),
                patterns=principal.patterns(prepared.catalog.source),
            )
        except UnknownSchemaError as exc:
            raise UnprocessableError(f"source {prepared.catalog.source!r}: {exc}") from exc
        except RouteQueueFullError as exc:
            observed.outcome = "queue_full"
            raise TooManyRoutesError(str(exc), retry_after=exc.retry_after_s) from exc
        observed.outcome = "degraded" if result.degraded else "partial" if result.partial else "ok"
    await state.limits.spend(principal, result.stats.prompt_tokens + result.stats.completion_tokens)
    state.store.writer.record(route_record(result, body, min_score, principal.key_id))
    source = state.registry.sources[prepared.catalog.source]
    return RouteResponse(
        route_id=result.route_id,
        source=result.source,
        catalog_version=result.catalog_version,
        judge=result.judge,
        judge_kind=JudgeKind.LEXICAL if result.judge == LEXICAL_JUDGE else JudgeKind.LM,
        catalog_stale=source.stale,
        catalog_age_s=source.age_s(),
        tables=[RoutedTable.model_validate(t, from_attributes=True) for t in result.tables],
        partial=result.partial,
        unjudged=result.unjudged,
        degraded=result.degraded,
        degraded_reason=result.degraded_reason,
        stats=RouteStatsBody.model_validate(result.stats, from_attributes=True),
    )


def _streamed(
    request: Request, state: AppState, prepared: PreparedCatalog, body: RouteRequest, principal: Principal
) -> Response:
    try:
        progress = RouteProgress(
            prepared,
            body.question,
            body.top_k,
            min_score_of(state, body),
            body.schemas,
            judged=state.router.judge is not None,
            prior_weight=state.router.prior_weight,
            shortlist_size=state.router.shortlist_size,
            patterns=principal.patterns(prepared.catalog.source),
        )
    except UnknownSchemaError as exc:
        raise UnprocessableError(f"source {prepared.catalog.source!r}: {exc}") from exc
    return event_stream(
        request, progress, lambda on_chunk: answer(state, prepared, body, principal, on_chunk)
    )


@router.post(
    "/route",
    operation_id="route",
    summary="Route a question to the tables its SQL needs",
    response_model=RouteResponse,
    responses={
        HTTPStatus.OK.value: {
            "description": "the ranked tables; with `Accept: text/event-stream`, progress events then them",
            "content": {EVENT_STREAM: event_stream_openapi()},
        },
        **problem_responses(*ROUTE_ERRORS, NotReadyError, *BODY_ERRORS),
    },
)
async def route(
    body: RouteRequest,
    request: Request,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(authenticated)],
) -> RouteResponse | Response:
    """Ask the judge about every chunk of the source's catalog at once and merge the votes.

    With `Accept: text/event-stream` the answer comes as server-sent events: `progress` after
    each judged chunk, `partial` rankings, then `result` (this body) or `error` (a problem).
    Closing the stream cancels the route. The route answers within its deadline with what
    finished by then (`partial`); if the LM cannot judge, the lexical judge answers
    (`degraded`). A client that disconnects cancels its route's LM calls.
    """
    await admit(request, principal)
    prepared = ready_catalog(state, body, principal)
    if wants_event_stream(request):
        return _streamed(request, state, prepared, body, principal)
    try:
        return await unless_disconnected(request, answer(state, prepared, body, principal))
    except ClientDisconnectedError:
        log.info("client disconnected from /route; its LM calls were cancelled")
        return Response(status_code=CLIENT_CLOSED_REQUEST)
