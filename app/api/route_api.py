"""POST /route: the question in, the ranked tables out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.problems import (
    LMUnavailableError,
    NotFoundError,
    NotReadyError,
    UnprocessableError,
    problem_responses,
)
from app.api.schemas import RoutedTable, RouteRequest, RouteResponse, RouteStatsBody
from app.api.state import AppState, get_state
from app.catalog.registry import SourceState
from app.observability.route_metrics import observed_route
from app.routing.prepared import UnknownSchemaError
from app.routing.service import AllChunksFailedError

router = APIRouter(tags=["routing"])


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
    responses=problem_responses(NotFoundError, UnprocessableError, LMUnavailableError, NotReadyError),
)
async def route(body: RouteRequest, state: Annotated[AppState, Depends(get_state)]) -> RouteResponse:
    """Ask the judge about every chunk of the source's catalog at once and merge the votes."""
    source = resolve_source(state, body.source)
    prepared = source.prepared
    if prepared is None:
        raise NotReadyError(
            f"source {source.name!r} has no catalog snapshot yet: {source.last_error or 'loading'}"
        )
    min_score = state.settings.relevance_threshold if body.min_score is None else body.min_score
    with observed_route() as observed:
        try:
            result = await state.router.route(prepared, body.question, body.top_k, min_score, body.schemas)
        except UnknownSchemaError as exc:
            raise UnprocessableError(f"source {source.name!r}: {exc}") from exc
        except AllChunksFailedError as exc:
            observed.outcome = "lm_unavailable"
            raise LMUnavailableError(f"the LM backend failed on every chunk: {exc}") from exc
        observed.outcome = "partial" if result.stats.failed_chunks else "ok"
    return RouteResponse(
        route_id=result.route_id,
        source=result.source,
        catalog_version=result.catalog_version,
        judge=result.judge,
        tables=[RoutedTable.model_validate(t, from_attributes=True) for t in result.tables],
        stats=RouteStatsBody.model_validate(result.stats, from_attributes=True),
    )
