"""Tables and join conditions of an SQL text, read with sqlglot in the source's dialect.

A join condition is an equality between two columns of different tables (``a.x = b.y`` in an
``ON`` or a ``WHERE``), each column's table resolved through the query's aliases. A column
written without its table is resolved only when its query reads one table alone; otherwise it
is left out, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.catalog.table_names import SQLNotParsedError, TableName, parse_sql

__all__ = ["ColumnRef", "ReadSQL", "read_sql"]


@dataclass(frozen=True, slots=True)
class ColumnRef:
    """A column of a table as the SQL wrote it."""

    table: TableName
    column: str


@dataclass(frozen=True, slots=True)
class ReadSQL:
    """What one SQL text uses: its tables (first-seen order) and its join conditions."""

    tables: tuple[TableName, ...]
    joins: tuple[tuple[ColumnRef, ColumnRef], ...]


def read_sql(sql: str, dialect: str | None) -> ReadSQL:
    """The tables and join conditions of ``sql``; raises SQLNotParsedError when it does not parse."""
    from sqlglot import exp  # noqa: PLC0415  (see parse_sql)

    trees = parse_sql(sql, dialect)
    tables: dict[TableName, None] = {}
    joins: dict[tuple[ColumnRef, ColumnRef], None] = {}
    for tree in trees:
        if isinstance(tree, exp.Command):  # sqlglot's catch-all for a statement it cannot read
            raise SQLNotParsedError(f"not a statement sqlglot can read: {str(tree.this)[:40]!r}")
        ctes = {cte.alias_or_name.casefold() for cte in tree.find_all(exp.CTE)}
        for select in tree.find_all(exp.Select):
            aliases = _select_tables(select, ctes, tables)
            only = next(iter(aliases.values())) if len(aliases) == 1 else None
            for equality in select.find_all(exp.EQ):
                if equality.find_ancestor(exp.Select) is not select:
                    continue
                left, right = equality.left, equality.right
                if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
                    continue
                a = _resolve(left.table, left.name, aliases, only)
                b = _resolve(right.table, right.name, aliases, only)
                if a is None or b is None or a.table == b.table:
                    continue
                joins[(a, b) if (a.table, a.column) <= (b.table, b.column) else (b, a)] = None
    return ReadSQL(tuple(tables), tuple(joins))


def _select_tables(select: Any, ctes: set[str], tables: dict[TableName, None]) -> dict[str, TableName]:
    """Add the tables under ``select`` to ``tables``; return its own FROM/JOIN tables by alias."""
    from sqlglot import exp  # noqa: PLC0415

    aliases: dict[str, TableName] = {}
    for table in select.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or not table.name:
            continue  # a table function
        if not table.db and table.name.casefold() in ctes:
            continue
        name: TableName = (table.db or None, table.name)
        tables[name] = None
        # Only this SELECT's own tables resolve its columns (a subquery's are its own).
        if table.find_ancestor(exp.Select) is select:
            aliases[table.alias_or_name.casefold()] = name
    return aliases


def _resolve(
    qualifier: str, column: str, aliases: dict[str, TableName], only: TableName | None
) -> ColumnRef | None:
    if not column:
        return None
    if qualifier:
        table = aliases.get(qualifier.casefold())
        return None if table is None else ColumnRef(table, column)
    return None if only is None else ColumnRef(only, column)
