"""The route log over HTTP: read a route back, report which tables its SQL used, writer counters."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends

from app.api.auth import ADMIN_RESPONSES, KEY_RESPONSES, admin_only, authenticated
from app.api.problems import (
    BODY_ERRORS,
    NotFoundError,
    StoreUnavailableError,
    UnprocessableError,
    problem_responses,
)
from app.api.route_log_schemas import (
    FeedbackBody,
    FeedbackRequest,
    LoggedRoute,
    RouteLogStatsBody,
    StoreStats,
)
from app.api.state import AppState, get_state
from app.api.store_calls import store_call
from app.auth.principal import Principal
from app.catalog.identifiers import NameSyntaxError
from app.catalog.model import Catalog
from app.catalog.table_names import SQLNotParsedError, TableName, match_tables, split_name, tables_in_sql
from app.memory.entries import feedback_entry
from app.routing.preparation.grants import sees_table
from app.store.records import OUTCOME_KEYS, FeedbackRecord, RouteRecord

router = APIRouter(tags=["route log"], dependencies=[Depends(authenticated)], responses=KEY_RESPONSES)

# A route waits in the writer's queue for one batch; past this the store is in trouble.
PENDING_WAIT_S = 10.0


def _owned(record: RouteRecord | None, route_id: str, principal: Principal) -> RouteRecord:
    """``record`` if ``principal`` may read it; another key's route is as unknown as a missing one."""
    if record is None or not principal.owns(record.key_id):
        raise NotFoundError(f"unknown route {route_id!r}")
    return record


async def _logged(state: AppState, route_id: str, principal: Principal) -> RouteRecord:
    """The route from the store, waiting for its write if it is still queued; 404 if unknown."""
    writer = state.store.writer
    pending = writer.pending(route_id)
    if pending is not None:
        _owned(pending, route_id, principal)  # another key's route is not waited for either
    with store_call():
        if pending is not None:
            await asyncio.wait_for(writer.wait_written(route_id), PENDING_WAIT_S)
        record = await state.store.routes.get(route_id) if len(route_id) <= 64 else None
    return _owned(record, route_id, principal)


async def owned_route(state: AppState, route_id: str, principal: Principal) -> RouteRecord:
    """The key's own logged route (waiting for its write); 404 for another key's or an unknown one."""
    return await _logged(state, route_id, principal)


def _visible(catalog: Catalog, principal: Principal) -> Catalog:
    """The part of ``catalog`` the key sees: feedback naming a hidden table is told it is unknown."""
    patterns = principal.patterns(catalog.source)
    if patterns is None:
        return catalog
    tables = tuple(t for t in catalog.tables if sees_table(patterns, t))
    return Catalog(catalog.source, tables, catalog.version)


async def _snapshot(state: AppState, route: RouteRecord) -> Catalog:
    source = state.registry.get(route.source)
    prepared = source.prepared if source is not None else None
    if prepared is not None and prepared.version == route.catalog_version:
        return prepared.catalog
    with store_call():
        catalog = await state.store.snapshots.get(route.source, route.catalog_version)
    if catalog is None:
        raise UnprocessableError(
            f"catalog snapshot {route.catalog_version} of source {route.source!r} is not stored: "
            "the tables of this route cannot be checked"
        )
    return catalog


@router.get(
    "/routes/{route_id}",
    operation_id="getRoute",
    summary="Read a route back from the route log",
    response_model=LoggedRoute,
    responses=problem_responses(NotFoundError, StoreUnavailableError),
)
async def get_route(
    route_id: str,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(authenticated)],
) -> LoggedRoute:
    """The question, the snapshot it was routed over, the ranked answer, and any feedback.

    A key reads its own routes only (an admin key reads every route).
    """
    pending = state.store.writer.pending(route_id)
    record = _owned(pending, route_id, principal) if pending else await _logged(state, route_id, principal)
    with store_call():
        feedback = None if pending else await state.store.feedback.get(route_id)
    return _logged_route(record, feedback)


def _logged_route(record: RouteRecord, feedback: FeedbackRecord | None) -> LoggedRoute:
    """The body of a logged route: its outcome document's fields beside its columns, null when absent."""
    outcome: Mapping[str, object] = record.outcome or {}
    return LoggedRoute.model_validate(
        {
            **asdict(record),
            **{name: outcome.get(name) for name in OUTCOME_KEYS},
            "feedback": asdict(feedback) if feedback else None,
        }
    )


@router.post(
    "/routes/{route_id}/feedback",
    operation_id="submitFeedback",
    summary="Report the tables a route's final SQL really used",
    status_code=HTTPStatus.CREATED,
    response_model=FeedbackBody,
    responses=problem_responses(NotFoundError, UnprocessableError, StoreUnavailableError, *BODY_ERRORS),
)
async def submit_feedback(
    route_id: str,
    body: FeedbackRequest,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(authenticated)],
) -> FeedbackBody:
    """Store which tables were used (named, or read from the SQL); sent again, it replaces the last.

    A key gives feedback on its own routes only, naming tables it may see.
    """
    route = await _logged(state, route_id, principal)
    catalog = _visible(await _snapshot(state, route), principal)
    source = state.registry.get(route.source)
    try:
        names: list[TableName] = [split_name(n.strip()) for n in body.used_tables if n.strip()]
    except NameSyntaxError as exc:
        raise UnprocessableError(f"used_tables: {exc}") from exc
    if body.sql is not None:
        try:
            names += tables_in_sql(body.sql, source.dialect if source else None)
        except SQLNotParsedError as exc:
            raise UnprocessableError(f"sql does not parse: {exc}") from exc
    used, unknown = match_tables(catalog, names, source.default_schema if source else None)
    if unknown:
        raise UnprocessableError(
            f"tables not in catalog snapshot {catalog.version} of source {route.source!r}: "
            + ", ".join(unknown),
            unknown_tables=unknown,
        )
    if not used:
        raise UnprocessableError("the feedback names no table: give used_tables, or sql that reads tables")
    record = FeedbackRecord(route_id, datetime.now(UTC), sorted(used), body.sql)
    entry, joins = feedback_entry(route, catalog, record, source.dialect if source else None)
    with store_call():
        await state.store.feedback.save(record)
        await state.memory.remember(route.source, [entry], joins)
    return FeedbackBody.model_validate(asdict(record))


@router.get(
    "/stats",
    operation_id="getStats",
    summary="Counters of the service's own store",
    response_model=StoreStats,
    dependencies=[Depends(admin_only)],
    responses=ADMIN_RESPONSES,
)
async def get_stats(state: Annotated[AppState, Depends(get_state)]) -> StoreStats:
    """The route-log writer's counters: queued, written, failed, dropped."""
    return StoreStats(route_log=RouteLogStatsBody.model_validate(asdict(state.store.writer.stats())))
