"""The route memory over HTTP, for admin keys: import rows, read what it holds, forget an entry."""

from __future__ import annotations

import asyncio
from collections import Counter
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from app.api.auth import ADMIN_RESPONSES, admin_only
from app.api.memory_schemas import (
    BadRowBody,
    MemoryImport,
    MemoryImported,
    MemoryState,
    MinedJoinBody,
    MissingTableBody,
    SimilarEntryBody,
)
from app.api.problems import (
    BODY_ERRORS,
    NotFoundError,
    NotReadyError,
    SourceEmptyError,
    StoreUnavailableError,
    problem_responses,
)
from app.api.source_problems import unroutable
from app.api.state import AppState, get_state
from app.api.store_calls import store_call
from app.auth.principal import Principal
from app.catalog.model import Catalog
from app.memory.entries import check_rows
from app.sources.registry import SourceState

router = APIRouter(
    prefix="/sources", tags=["route memory"], dependencies=[Depends(admin_only)], responses=ADMIN_RESPONSES
)
MAX_JOINS_SHOWN = 100


def _ready(state: AppState, name: str, principal: Principal) -> tuple[SourceState, Catalog]:
    source = state.registry.get(name)
    if source is None:
        raise NotFoundError(f"unknown source {name!r}")
    problem = unroutable(source, principal)
    if problem is not None or source.prepared is None:
        raise problem or NotFoundError(f"unknown source {name!r}")
    return source, source.prepared.catalog


@router.post(
    "/{name}/memory",
    operation_id="importMemory",
    summary="Remember questions with their SQL or tables, or a query log's SQL",
    status_code=HTTPStatus.OK,
    response_model=MemoryImported,
    responses=problem_responses(
        NotFoundError, NotReadyError, SourceEmptyError, StoreUnavailableError, *BODY_ERRORS
    ),
)
async def import_memory(
    name: str,
    body: MemoryImport,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(admin_only)],
) -> MemoryImported:
    """Check each row against the source's current catalog; remember the good ones, report the bad.

    SQL is read in the source's dialect; a table the catalog lacks, or SQL that does not parse,
    makes its row bad (never guessed). Join conditions of the SQL become mined joins.
    """
    source, catalog = _ready(state, name, principal)
    rows = list(enumerate(body.rows, start=1))
    # sqlglot parsing is CPU work: off the event loop.
    checked = await asyncio.to_thread(check_rows, rows, catalog, source.dialect, source.default_schema)
    with store_call():
        imported = await state.memory.remember(source.name, checked.entries, checked.joins)
    return MemoryImported(
        source=source.name,
        imported=imported,
        joins=len(checked.joins),
        bad=[BadRowBody(line=b.line, reason=b.reason) for b in checked.bad],
    )


@router.get(
    "/{name}/memory",
    operation_id="getMemory",
    summary="What the route memory of a source holds",
    response_model=MemoryState,
    responses=problem_responses(NotFoundError, NotReadyError, SourceEmptyError),
)
async def get_memory(
    name: str,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(admin_only)],
    question: Annotated[str | None, Query(max_length=4000)] = None,
) -> MemoryState:
    """Entries, mined joins, and the remembered tables the current catalog lacks (renamed ones named)."""
    source, catalog = _ready(state, name, principal)
    index = state.memory.index(source.name)
    named: Counter[str] = Counter()
    if index is not None:
        for tables in index.entry_tables():
            named.update(tables)
    present = {t.qualified_name for t in catalog.tables}
    by_table: dict[str, list[str]] = {}
    for t in catalog.tables:
        by_table.setdefault(t.name.casefold(), []).append(t.qualified_name)
    missing = []
    for table, count in sorted(named.items()):
        if table in present:
            continue
        candidates = by_table.get(table.rsplit(".", 1)[-1].casefold(), [])
        renamed = candidates[0] if len(candidates) == 1 else None
        missing.append(MissingTableBody(table=table, entries=count, renamed_to=renamed))
    joins = state.memory.joins(source.name).rows[:MAX_JOINS_SHOWN]
    match = await state.memory.search(source.name, question) if question else None
    return MemoryState(
        source=source.name,
        entries=index.entries if index else 0,
        questions=len(index) if index else 0,
        joins=[MinedJoinBody.model_validate(j, from_attributes=True) for j in joins],
        missing_tables=missing,
        similar=[
            SimilarEntryBody(id=h.entry_id, similarity=h.similarity, tables=list(h.tables))
            for h in (match.hits if match else ())
        ],
    )


@router.delete(
    "/{name}/memory/{entry_id}",
    operation_id="forgetMemory",
    summary="Forget one remembered entry",
    status_code=HTTPStatus.NO_CONTENT,
    responses=problem_responses(NotFoundError, StoreUnavailableError),
)
async def forget_memory(
    name: str,
    entry_id: int,
    state: Annotated[AppState, Depends(get_state)],
    principal: Annotated[Principal, Depends(admin_only)],
) -> Response:
    """Delete the entry here and in the store; every replica drops it at its next refresh."""
    if state.registry.get(name) is None:
        raise NotFoundError(f"unknown source {name!r}")
    with store_call():
        found = await state.memory.forget(name, entry_id)
    if not found:
        raise NotFoundError(f"no remembered entry {entry_id} in source {name!r}")
    return Response(status_code=HTTPStatus.NO_CONTENT)
