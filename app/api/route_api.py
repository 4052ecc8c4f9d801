"""POST /route: the question in, the ranked tables out."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.answering import RouteAnswer
from app.api.auth import KEY_RESPONSES, admit, authenticated, budget_refusal
from app.api.disconnect import ClientDisconnectedError, unless_disconnected
from app.api.followup import conversation_of, follow_up_body
from app.api.problems import (
    BODY_ERRORS,
    NotFoundError,
    NotReadyError,
    RateLimitedError,
    SourceEmptyError,
    TokenBudgetError,
    TooManyRoutesError,
    UnprocessableError,
    problem_responses,
)
from app.api.route_events import EVENT_STREAM, event_stream, event_stream_openapi, wants_event_stream
from app.api.schema_detail_schemas import schema_detail_body
from app.api.schemas import JudgeKind, RoutedTable, RouteRequest, RouteResponse, RouteStatsBody
from app.api.source_problems import unroutable
from app.api.state import AppState, get_state
from app.auth.principal import Principal
from app.llm.reliability import RouteQueueFullError
from app.observability.route_metrics import count_rejected_route
from app.routing.conversation import Conversation
from app.routing.deadline import Deadline
from app.routing.preparation.prepared import PreparedCatalog, UnknownSchemaError
from app.routing.query import RouteQuery
from app.routing.result import LEXICAL_JUDGE
from app.routing.schema_detail import SchemaRequest, schema_detail
from app.routing.service import OnRouteEvent
from app.routing.token_hold import BudgetExhaustedError
from app.sources.registry import SourceState

router = APIRouter(tags=["routing"], dependencies=[Depends(authenticated)], responses=KEY_RESPONSES)
# Every error a route can answer besides the body's: the key's limits, the LM queue, the source.
ROUTE_ERRORS = (
    NotFoundError,
    UnprocessableError,
    SourceEmptyError,
    RateLimitedError,
    TokenBudgetError,
    TooManyRoutesError,
)
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
    """The catalog snapshot a route runs over; 404/422 problems, 409 for an empty source, 503 otherwise."""
    source = resolve_source(state, body.source, principal)
    problem = unroutable(source, principal)
    if problem is not None:
        raise problem
    assert source.prepared is not None  # a ready source has a snapshot
    return source.prepared


def query_of(
    state: AppState,
    prepared: PreparedCatalog,
    body: RouteRequest,
    principal: Principal,
    conversation: Conversation | None = None,
) -> RouteQuery:
    """The request as a route query over what ``principal`` sees of ``prepared``; 422 for an unknown schema.

    ``min_score`` defaults to the service's relevance threshold; ``deadline_ms`` is capped by
    ROUTE_DEADLINE_MS.
    """
    settings = state.settings
    cap = settings.route_deadline_ms
    try:
        return RouteQuery.build(
            prepared,
            body.question,
            top_k=body.top_k,
            min_score=settings.relevance_threshold if body.min_score is None else body.min_score,
            deadline=Deadline.after(min(body.deadline_ms or cap, cap) / 1000),
            schemas=body.schemas,
            patterns=principal.patterns(prepared.catalog.source),
            token_budget=_token_budget(settings.route_token_budget, body.token_budget),
            conversation=conversation,
        )
    except UnknownSchemaError as exc:
        count_rejected_route()
        raise UnprocessableError(f"source {prepared.catalog.source!r}: {exc}") from exc


def _token_budget(cap: int, asked: int | None) -> int | None:
    """The request's budget capped by the service's (0: no cap); None: no budget at all."""
    if asked is None:
        return cap or None
    return min(asked, cap) if cap else asked


def schema_request(body: RouteRequest) -> SchemaRequest | None:
    """What the request's ``include`` asks about the returned tables; None: nothing."""
    return SchemaRequest(frozenset(body.include), body.ddl_dialect) if body.include else None


def route_response(
    answer: RouteAnswer, query: RouteQuery, schema: SchemaRequest | None = None, source_dialect: str = ""
) -> RouteResponse:
    """The HTTP body of an answered route; with ``schema``, the tables' schema from the query's snapshot.

    The schema is built here, after the route cache: a cached route serves any ``include``,
    and the snapshot is the one the route ran over (the cache key holds its version).
    """
    result = answer.result
    detail = None
    if schema is not None:
        built = schema_detail(
            query.prepared.catalog.by_name(),
            [t.name for t in result.tables],
            query.scope.grant,
            schema,
            source_dialect,
            mined=result.mined_joins,
        )
        detail = schema_detail_body(built)
    return RouteResponse(
        route_id=result.route_id,
        source=result.source,
        catalog_version=result.catalog_version,
        judge=result.judge,
        judge_kind=JudgeKind.LEXICAL if result.judge == LEXICAL_JUDGE else JudgeKind.LM,
        catalog_stale=answer.catalog_stale,
        catalog_age_s=answer.catalog_age_s,
        tables=[RoutedTable.model_validate(t, from_attributes=True) for t in result.tables],
        partial=result.partial,
        unjudged=result.unjudged,
        unsettled=result.unsettled,
        coverage=result.coverage,
        degraded=result.degraded,
        degraded_reason=result.degraded_reason,
        budget_cut=result.budget_cut,
        budget_unjudged=result.budget_unjudged,
        budget_cut_reason=result.budget_cut_reason,
        stats=RouteStatsBody.model_validate(result.stats, from_attributes=True),
        schema_detail=detail,
        follow_up=follow_up_body(query, result),
    )


async def answer(
    state: AppState,
    query: RouteQuery,
    principal: Principal,
    on_event: OnRouteEvent | None = None,
    schema: SchemaRequest | None = None,
) -> RouteResponse:
    """Answer one route query (with the schema ``schema`` asks for); 429 problem when the LM queue is full."""
    try:
        answered = await state.answering.answer(query, principal, on_event)
    except RouteQueueFullError as exc:
        raise TooManyRoutesError(str(exc), retry_after=exc.retry_after_s) from exc
    except BudgetExhaustedError as exc:
        raise budget_refusal(exc, state.settings.route_deadline_ms) from exc
    source = state.registry.sources.get(query.source)
    return route_response(answered, query, schema, "" if source is None else source.dialect)


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
    query = query_of(
        state, prepared, body, principal, await conversation_of(state, body, principal, prepared)
    )
    schema = schema_request(body)
    if wants_event_stream(request):
        return event_stream(request, lambda on_event: answer(state, query, principal, on_event, schema))
    try:
        return await unless_disconnected(request, answer(state, query, principal, schema=schema))
    except ClientDisconnectedError:
        log.info("client disconnected from /route; its LM calls were cancelled")
        return Response(status_code=CLIENT_CLOSED_REQUEST)
