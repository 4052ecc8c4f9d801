"""POST /route/batch: many questions routed at once, each answer or error in its place."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import KEY_RESPONSES, admit, authenticated
from app.api.followup import conversation_of
from app.api.problems import (
    BODY_ERRORS,
    AppError,
    Problem,
    RateLimitedError,
    TokenBudgetError,
    UnprocessableError,
    error_body,
    problem_responses,
)
from app.api.route_api import answer, query_of, ready_catalog, schema_request
from app.api.schemas import EXAMPLE_QUESTION, RouteRequest, RouteResponse
from app.api.state import AppState, get_state
from app.auth.principal import Principal

router = APIRouter(tags=["routing"], dependencies=[Depends(authenticated)], responses=KEY_RESPONSES)
# The schema's bound; the service's own, usually lower, is TABLEROUTER_MAX_BATCH.
HARD_MAX_BATCH = 1000


class RouteBatchRequest(BaseModel):
    """Questions to route at once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"requests": [{"question": EXAMPLE_QUESTION}, {"question": "Top products by revenue"}]}
            ]
        },
    )

    requests: list[RouteRequest] = Field(
        min_length=1,
        max_length=HARD_MAX_BATCH,
        description="the routes to run, each as the body of POST /route; at most the service's "
        "TABLEROUTER_MAX_BATCH (default 32)",
    )


class RouteBatchItem(BaseModel):
    """One route of a batch: its answer, or the problem that stopped it."""

    result: RouteResponse | None = Field(description="the answer, as POST /route gives it; null on error")
    error: Problem | None = Field(description="why this route failed; null on success")


class RouteBatchResponse(BaseModel):
    """The answers of a batch, in the order of the requests."""

    results: list[RouteBatchItem] = Field(description="one item per request, in request order")


async def _one(state: AppState, body: RouteRequest, principal: Principal, instance: str) -> RouteBatchItem:
    try:
        prepared = ready_catalog(state, body, principal)
        conversation = await conversation_of(state, body, principal, prepared)
        query = query_of(state, prepared, body, principal, conversation)
        result = await answer(state, query, principal, schema=schema_request(body))
    except AppError as exc:
        return RouteBatchItem(result=None, error=Problem.model_validate(error_body(exc, instance)))
    return RouteBatchItem(result=result, error=None)


@router.post(
    "/route/batch",
    operation_id="routeBatch",
    summary="Route many questions at once",
    response_model=RouteBatchResponse,
    responses=problem_responses(UnprocessableError, RateLimitedError, TokenBudgetError, *BODY_ERRORS),
)
async def route_batch(
    body: RouteBatchRequest,
    request: Request,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(authenticated)],
) -> RouteBatchResponse:
    """Route every request concurrently, under the same shared LM limiter as single routes.

    A route that fails (unknown source, no snapshot, LM down ...) gets its own problem in
    `error`; the batch as a whole fails only when the body is invalid or too long, or when
    the key's limits do not cover it (each request counts as one route).
    """
    limit = state.settings.max_batch
    if len(body.requests) > limit:
        raise UnprocessableError(f"requests: at most {limit} per batch, got {len(body.requests)}")
    await admit(request, principal, len(body.requests))
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_one(state, r, principal, request.url.path)) for r in body.requests]
    return RouteBatchResponse(results=[t.result() for t in tasks])
