"""Browsing and refreshing the configured warehouses.

A key sees only the sources it is granted, and of each only the tables its patterns match:
the others are not listed, not counted and not named (a foreign key to a hidden table is left
out). Refreshing is for admin keys.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.auth import ADMIN_RESPONSES, KEY_RESPONSES, admin_only, authenticated
from app.api.problems import (
    NotFoundError,
    NotReadyError,
    SourceReadError,
    UnprocessableError,
    problem_responses,
)
from app.api.schemas import (
    ColumnInfo,
    ForeignKeyInfo,
    SourceList,
    SourceSummary,
    TableInfo,
    TableKind,
    TableList,
)
from app.api.source_problems import REFRESH_FAILED, unroutable
from app.api.state import AppState, get_state
from app.auth.principal import Principal
from app.catalog.copies import TableEvidence
from app.catalog.model import Catalog, Table
from app.catalog.table_names import match_tables, split_name
from app.routing.preparation.cards import TableCard
from app.routing.preparation.grants import sees_table
from app.sources.registry import SourceState, SourceStatus

router = APIRouter(
    prefix="/sources", tags=["sources"], dependencies=[Depends(authenticated)], responses=KEY_RESPONSES
)
EMPTY_NOTE = "no table in the source's schemas: check its schemas and exclude_schemas settings"


def _visible_tables(source: SourceState, principal: Principal) -> tuple[Table, ...]:
    if source.prepared is None:
        return ()
    tables = source.prepared.catalog.tables
    patterns = principal.patterns(source.name)
    return tables if patterns is None else tuple(t for t in tables if sees_table(patterns, t))


def _summary(source: SourceState, principal: Principal) -> SourceSummary:
    prepared = source.prepared
    tables = _visible_tables(source, principal)
    schemas = source.config.schemas
    excluded = source.config.exclude_schemas
    error = source.last_error
    if principal.patterns(source.name) is not None:
        # A restricted key learns nothing of hidden tables: not their schemas, not their errors.
        if schemas is not None:
            schemas = sorted({t.schema for t in tables if t.schema is not None})
        excluded = []
        error = REFRESH_FAILED if error is not None else None
    status = source.status
    return SourceSummary(
        name=source.name,
        dialect=source.dialect,
        introspection=source.config.introspection,
        schemas=schemas,
        exclude_schemas=excluded,
        status=status,
        catalog_version=prepared.version if prepared else source.empty_version,
        tables=len(tables),
        last_refresh=source.last_refresh,
        last_error=error,
        error_kind=source.error_kind,
        retry_in_s=source.retry_in_s(),
        note=EMPTY_NOTE if status is SourceStatus.EMPTY else None,
        catalog_stale=source.stale,
        catalog_age_s=source.age_s(),
    )


def _source(state: AppState, name: str, principal: Principal) -> SourceState:
    source = state.registry.get(name)
    if source is None or not principal.sees_source(name):
        raise NotFoundError(f"unknown source {name!r}")
    return source


def _table_info(
    table: Table, card: TableCard, visible: frozenset[str] | None, found: TableEvidence | None
) -> TableInfo:
    evidence = None if found is None else found.visible_to(visible).reason()
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
            if visible is None or fk.ref_table in visible
        ],
        untrusted_metadata=[*card.quarantined, *(["name"] if card.distrusted else [])],
        row_count=table.row_count,
        evidence=evidence,
    )


@router.get(
    "", operation_id="listSources", summary="List the configured warehouses", response_model=SourceList
)
async def list_sources(
    state: Annotated[AppState, Depends(get_state)], principal: Annotated[Principal, Depends(authenticated)]
) -> SourceList:
    """Every source the key may see, with its current snapshot."""
    sources = [s for s in state.registry.sources.values() if principal.sees_source(s.name)]
    return SourceList(sources=[_summary(s, principal) for s in sources], store=state.store.health.state)


@router.get(
    "/{name}",
    operation_id="getSource",
    summary="Show a warehouse's current snapshot and refresh status",
    response_model=SourceSummary,
    responses=problem_responses(NotFoundError),
)
async def get_source(
    name: str,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(authenticated)],
) -> SourceSummary:
    """The source's snapshot version, table count, last refresh and last error."""
    return _summary(_source(state, name, principal), principal)


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
    principal: Annotated[Principal, Depends(authenticated)],
    offset: Annotated[int, Query(ge=0, description="tables to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="tables to return")] = 100,
) -> TableList:
    """A page of the tables the key may see, in name order."""
    source = _source(state, name, principal)
    if source.status is SourceStatus.EMPTY:
        return TableList(source=name, catalog_version=source.empty_version or "", total=0, tables=[])
    problem = unroutable(source, principal)
    if problem is not None:
        raise problem
    assert source.prepared is not None  # a ready source has a snapshot
    catalog = source.prepared.catalog
    restricted = principal.patterns(name) is not None
    pairs = list(zip(catalog.tables, source.prepared.cards, strict=True))
    if restricted:
        shown = {t.qualified_name for t in _visible_tables(source, principal)}
        pairs = [(t, c) for t, c in pairs if t.qualified_name in shown]
    visible = frozenset(t.qualified_name for t, _ in pairs) if restricted else None
    return TableList(
        source=name,
        catalog_version=source.prepared.version,
        total=len(pairs),
        tables=[
            _table_info(t, c, visible, source.prepared.evidence.get(t.qualified_name))
            for t, c in pairs[offset : offset + limit]
        ],
    )


@router.post(
    "/{name}/refresh",
    operation_id="refreshSource",
    summary="Introspect a warehouse again now",
    response_model=SourceSummary,
    responses={**problem_responses(NotFoundError, SourceReadError), **ADMIN_RESPONSES},
)
async def refresh_source(
    name: str,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(admin_only)],
) -> SourceSummary:
    """Introspect the source and swap in the new snapshot; on failure the old one keeps serving.

    A refresh that cannot read the warehouse answers 502 with the error and its `error_kind`.
    Needs an admin key.
    """
    source = await state.registry.refresh(_source(state, name, principal).name)
    if source.last_error is not None:
        raise SourceReadError(
            source.last_error,
            error_kind=source.error_kind.value if source.error_kind else None,
            source=_summary(source, principal).model_dump(mode="json"),
        )
    return _summary(source, principal)


def describe_tables(state: AppState, source_name: str, names: list[str], principal: Principal) -> TableList:
    """The named tables of a source the key sees (columns, keys, comments), in the order asked.

    What ``GET /sources/{name}/tables`` says of each; a name the key may not see is as unknown as
    a missing one (422, listing them). The MCP server's ``describe_tables`` tool.
    """
    source = _source(state, source_name, principal)
    problem = unroutable(source, principal)
    if problem is not None:
        raise problem
    assert source.prepared is not None  # a ready source has a snapshot
    visible = Catalog(source_name, _visible_tables(source, principal), source.prepared.version)
    wanted, unknown = match_tables(visible, [split_name(n.strip()) for n in names], source.default_schema)
    if unknown:
        raise UnprocessableError(
            f"tables not in source {source_name!r}: {', '.join(unknown)}", unknown_tables=unknown
        )
    cards = dict(
        zip((t.qualified_name for t in source.prepared.catalog.tables), source.prepared.cards, strict=True)
    )
    restricted = principal.patterns(source_name) is not None
    shown = frozenset(t.qualified_name for t in visible.tables) if restricted else None
    by_name = visible.by_name()
    return TableList(
        source=source_name,
        catalog_version=source.prepared.version,
        total=len(wanted),
        tables=[_table_info(by_name[n], cards[n], shown, source.prepared.evidence.get(n)) for n in wanted],
    )
