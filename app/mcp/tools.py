"""The MCP tools' logic: each one the REST operation it mirrors, for a principal, without a request.

They raise the same ``AppError``s as the REST API (the server turns them into tool errors) and
answer the same bodies, so an agent over MCP and a frontend over REST get the same answers and
see the same tables: grants, per-key limits and budgets apply to both alike.
"""

from __future__ import annotations

from app.api.auth import admit_routes
from app.api.followup import conversation_of
from app.api.route_api import answer, query_of, ready_catalog, resolve_source, schema_request
from app.api.route_log_api import submit_feedback
from app.api.route_log_schemas import FeedbackBody, FeedbackRequest
from app.api.schemas import RouteRequest, RouteResponse, SourceList, TableList
from app.api.sources_api import describe_tables, list_sources
from app.api.state import AppState
from app.auth.principal import Principal
from app.routing.service import OnRouteEvent

__all__ = ["describe", "feedback", "route", "sources"]


async def route(
    state: AppState, principal: Principal, body: RouteRequest, on_event: OnRouteEvent | None = None
) -> RouteResponse:
    """``POST /route``: counted against the key's rate and budgets like a REST route."""
    await admit_routes(state, principal)
    prepared = ready_catalog(state, body, principal)
    query = query_of(
        state, prepared, body, principal, await conversation_of(state, body, principal, prepared)
    )
    return await answer(state, query, principal, on_event, schema_request(body))


async def sources(state: AppState, principal: Principal) -> SourceList:
    """``GET /sources``."""
    return await list_sources(state, principal)


async def describe(state: AppState, principal: Principal, source: str | None, tables: list[str]) -> TableList:
    """The named tables of ``GET /sources/{name}/tables`` (``source`` may be left out when one is visible)."""
    name = resolve_source(state, source, principal).name
    return describe_tables(state, name, tables, principal)


async def feedback(
    state: AppState, principal: Principal, route_id: str, body: FeedbackRequest
) -> FeedbackBody:
    """``POST /routes/{route_id}/feedback``."""
    return await submit_feedback(route_id, body, state, principal)
