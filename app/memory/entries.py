"""Rows to remember, checked against a source's catalog: good rows become entries, bad ones are reported.

A row is ``{"question", "sql"}``, ``{"question", "tables"}`` or, from a query log, ``{"sql"}``
alone. SQL is read in the source's dialect; a table the catalog does not have (or the
importing key may not see) makes the row bad, never guessed. Join conditions between known
columns of the SQL's tables are kept as mined joins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.catalog.model import Catalog
from app.catalog.table_names import SQLNotParsedError, TableName, match_tables, split_name
from app.memory.sql_reading import ColumnRef, read_sql
from app.store.records import FeedbackRecord, RouteRecord
from app.store.route_memory import NewEntry

__all__ = ["BadRow", "Checked", "MinedJoinKey", "check_rows", "feedback_entry", "joins_of"]

MAX_QUESTION_CHARS = 4000
# As the API refuses them in every string (line breaks and tabs are text).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
MAX_TABLES = 200

MinedJoinKey = tuple[str, str, str, str]  # left table, left column, right table, right column


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row not imported: its line (1-based) and why."""

    line: int
    reason: str


@dataclass
class Checked:
    """The entries and mined joins of the good rows, and the bad rows."""

    entries: list[NewEntry] = field(default_factory=list)
    joins: list[MinedJoinKey] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)


def joins_of(
    catalog: Catalog, pairs: Iterable[tuple[ColumnRef, ColumnRef]], default_schema: str | None
) -> list[MinedJoinKey]:
    """The join conditions whose tables and columns the catalog has, in its spelling (others left out)."""
    tables = catalog.by_name()
    found: list[MinedJoinKey] = []
    for a, b in pairs:
        ends = []
        for ref in (a, b):
            matched, _ = match_tables(catalog, [ref.table], default_schema)
            table = tables.get(matched[0]) if matched else None
            column = None
            if table is not None:
                folded = ref.column.casefold()
                column = next((c.name for c in table.columns if c.name.casefold() == folded), None)
            if table is None or column is None:
                break
            ends.append((table.qualified_name, column))
        if len(ends) == 2 and ends[0][0] != ends[1][0]:
            (lt, lc), (rt, rc) = sorted(ends)
            found.append((lt, lc, rt, rc))
    return found


def _row_tables(
    row: Mapping[str, Any], catalog: Catalog, dialect: str | None, default_schema: str | None
) -> tuple[list[str], list[MinedJoinKey]]:
    """The row's tables (catalog names) and mined joins; ValueError says why the row is bad."""
    names: list[TableName] = []
    joins: list[MinedJoinKey] = []
    tables, sql = row.get("tables"), row.get("sql")
    if tables is not None:
        if not isinstance(tables, list) or not all(
            isinstance(t, str) and t.strip() and not _CONTROL.search(t) for t in tables
        ):
            raise ValueError("tables must be a list of table names")
        names += [split_name(t.strip()) for t in tables]
    if sql is not None:
        if not isinstance(sql, str) or not sql.strip() or _CONTROL.search(sql):
            raise ValueError("sql must be non-empty text without control characters")
        try:
            read = read_sql(sql, dialect)
        except SQLNotParsedError as exc:
            raise ValueError(f"sql does not parse: {exc}") from exc
        names += read.tables
        joins = joins_of(catalog, read.joins, default_schema)
    if tables is None and sql is None:
        raise ValueError("a row needs tables or sql")
    used, unknown = match_tables(catalog, names, default_schema)
    if unknown:
        raise ValueError(f"tables not in the source's catalog: {', '.join(unknown)}")
    if not used:
        raise ValueError("the row names no table")
    if len(used) > MAX_TABLES:
        raise ValueError(f"more than {MAX_TABLES} tables")
    return used, joins


def feedback_entry(
    route: RouteRecord, catalog: Catalog, feedback: FeedbackRecord, dialect: str | None
) -> tuple[NewEntry, list[MinedJoinKey]]:
    """The memory entry of feedback on ``route`` (replacing any earlier one), and its SQL's joins."""
    entry = NewEntry(route.question, tuple(feedback.used_tables), "feedback", catalog.version, route.route_id)
    if feedback.sql is None:
        return entry, []
    try:
        read = read_sql(feedback.sql, dialect)
    except SQLNotParsedError:
        return entry, []  # the caller has refused SQL that does not parse already
    return entry, joins_of(catalog, read.joins, None)


def check_rows(
    rows: Iterable[tuple[int, Any]],
    catalog: Catalog,
    dialect: str | None,
    default_schema: str | None,
    origin: str = "import",
) -> Checked:
    """Entries for the good ``(line, row)`` pairs, and a ``BadRow`` for each other one."""
    checked = Checked()
    for line, row in rows:
        try:
            if not isinstance(row, Mapping):
                raise ValueError("a row must be a JSON object")
            question = row.get("question")
            if question is not None and (not isinstance(question, str) or not question.strip()):
                raise ValueError("question must be a non-empty string")
            if question is not None and (len(question) > MAX_QUESTION_CHARS or _CONTROL.search(question)):
                raise ValueError(f"question: text without control characters, {MAX_QUESTION_CHARS} at most")
            used, joins = _row_tables(row, catalog, dialect, default_schema)
        except ValueError as exc:
            checked.bad.append(BadRow(line, str(exc)))
            continue
        kind = origin if question is not None else "log"
        checked.entries.append(NewEntry(question, tuple(sorted(used)), kind, catalog.version))
        checked.joins.extend(joins)
    return checked
