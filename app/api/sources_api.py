"""Browsing and refreshing the configured warehouses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.problems import NotFoundError, NotReadyError, problem_responses
from app.api.schemas import (
    ColumnInfo,
    ForeignKeyInfo,
    SourceList,
    SourceSummary,
    TableInfo,
    TableKind,
    TableList,
)
from app.api.state import AppState, get_state
from app.catalog.model import Table
from app.catalog.registry import SourceState
from app.routing.cards import TableCard

router = APIRouter(prefix="/sources", tags=["sources"])


def _summary(source: SourceState) -> SourceSummary:
    prepared = source.prepared
    return SourceSummary(
        name=source.name,
        dialect=source.dialect,
        schemas=source.config.schemas,
        catalog_version=prepared.version if prepared else None,
        tables=len(prepared.catalog.tables) if prepared else 0,
        last_refresh=source.last_refresh,
        last_error=source.last_error,
        catalog_stale=source.stale,
        catalog_age_s=source.age_s(),
    )


def _source(state: AppState, name: str) -> SourceState:
    source = state.registry.get(name)
    if source is None:
        raise NotFoundError(f"unknown source {name!r}")
    return source


def _table_info(table: Table, card: TableCard) -> TableInfo:
    return TableInfo(
        name=table.qualified_name,
        kind=TableKind(table.kind),
        comment=table.comment,
        columns=[
            ColumnInfo(name=c.name, type=c.type, nullable=c.nullable, comment=c.comment)
            for c in table.columns
        ],
        primary_key=list(table.primary_key),
        foreign_keys=[
            ForeignKeyInfo(columns=list(fk.columns), ref_table=fk.ref_table, ref_columns=list(fk.ref_columns))
            for fk in table.foreign_keys
        ],
        untrusted_metadata=[*card.quarantined, *(["name"] if card.distrusted else [])],
    )


@router.get(
    "", operation_id="listSources", summary="List the configured warehouses", response_model=SourceList
)
async def list_sources(state: Annotated[AppState, Depends(get_state)]) -> SourceList:
    """Every configured source with its current snapshot."""
    return SourceList(sources=[_summary(s) for s in state.registry.sources.values()])


@router.get(
    "/{name}",
    operation_id="getSource",
    summary="Show a warehouse's current snapshot and refresh status",
    response_model=SourceSummary,
    responses=problem_responses(NotFoundError),
)
async def get_source(name: str, state: Annotated[AppState, Depends(get_state)]) -> SourceSummary:
    """The source's snapshot version, table count, last refresh and last error."""
    return _summary(_source(state, name))


@router.get(
    "/{name}/tables",
    operation_id="listTables",
    summary="List the tables of a warehouse's current snapshot",
    response_model=TableList,
    responses=problem_responses(NotFoundError, NotReadyError),
)
async def list_tables(
    name: str,
    state: Annotated[AppState, Depends(get_state)],
    offset: Annotated[int, Query(ge=0, description="tables to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="tables to return")] = 100,
) -> TableList:
    """A page of the source's tables, in name order."""
    source = _source(state, name)
    if source.prepared is None:
        raise NotReadyError(f"source {name!r} has no catalog snapshot yet")
    catalog = source.prepared.catalog
    page = zip(
        catalog.tables[offset : offset + limit], source.prepared.cards[offset : offset + limit], strict=True
    )
    return TableList(
        source=name,
        catalog_version=catalog.version,
        total=len(catalog.tables),
        tables=[_table_info(t, c) for t, c in page],
    )


@router.post(
    "/{name}/refresh",
    operation_id="refreshSource",
    summary="Introspect a warehouse again now",
    response_model=SourceSummary,
    responses=problem_responses(NotFoundError),
)
async def refresh_source(name: str, state: Annotated[AppState, Depends(get_state)]) -> SourceSummary:
    """Introspect the source and swap in the new snapshot; on failure the old one keeps serving."""
    source = await state.registry.refresh(_source(state, name).name)
    return _summary(source)
