"""Table names as a client writes them, matched to a catalog's tables; and the tables of an SQL text.

A name matches case-insensitively, part by part; it is written as answers print it (``schema.table``,
a part with a dot double-quoted: ``"a.b".x``). A qualified name must name the schema; an
unqualified one is looked up in the source's default schema, then among unqualified tables
(SQLite), then by table name alone when exactly one schema of the catalog has it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from app.catalog.identifiers import display_name, parse_name
from app.catalog.model import Catalog

__all__ = [
    "SQLNotParsedError",
    "TableName",
    "match_tables",
    "parse_sql",
    "split_name",
    "sqlglot_dialect",
    "tables_in_sql",
]

TableName = tuple[str | None, str]  # (schema or None, table)

# SQLAlchemy dialect names that sqlglot spells differently.
_SQLGLOT_DIALECTS = {"postgresql": "postgres", "mariadb": "mysql", "mssql": "tsql"}


class SQLNotParsedError(ValueError):
    """The SQL text does not parse in the source's dialect."""


def sqlglot_dialect(dialect: str | None) -> str | None:
    """sqlglot's name for a SQLAlchemy dialect (None: sqlglot's own generic one)."""
    from sqlglot.dialects.dialect import Dialect  # noqa: PLC0415  (see parse_sql)

    name = _SQLGLOT_DIALECTS.get(dialect or "", dialect)
    return name if name and Dialect.get(name) is not None else None


def parse_sql(sql: str, dialect: str | None) -> list[Any]:
    """sqlglot's trees of the statements of ``sql``; SQLNotParsedError (with line and column) if not."""
    # sqlglot takes ~0.4 s to import (measured) and only SQL from feedback or the route memory
    # needs it: never at start-up.
    import sqlglot  # noqa: PLC0415

    try:
        trees = sqlglot.parse(sql, read=sqlglot_dialect(dialect))
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first else ""
        raise SQLNotParsedError(f"{first.get('description', 'syntax error')}{where}") from exc
    except sqlglot.errors.SqlglotError as exc:
        raise SQLNotParsedError(str(exc).splitlines()[0]) from exc
    return [tree for tree in trees if tree is not None]


def tables_in_sql(sql: str, dialect: str | None) -> list[TableName]:
    """The tables ``sql`` reads or writes (CTE names left out), first-seen order, as written."""
    from sqlglot import exp  # noqa: PLC0415  (see parse_sql)

    found: dict[tuple[str | None, str], None] = {}
    for tree in parse_sql(sql, dialect):
        ctes = {cte.alias_or_name.casefold() for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            # Table functions (generate_series, unnest ...) are Table nodes without an identifier.
            if not isinstance(table.this, exp.Identifier) or not table.name:
                continue
            if not table.db and table.name.casefold() in ctes:
                continue
            found[(table.db or None, table.name)] = None
    return list(found)


def split_name(name: str) -> TableName:
    """``schema.table`` → (schema, table); ``table`` → (None, table); ``"a.b".x`` → (a.b, x).

    The display syntax of ``app.catalog.identifiers`` (NameSyntaxError when it does not parse).
    """
    return parse_name(name)


def match_tables(
    catalog: Catalog, names: Iterable[TableName], default_schema: str | None
) -> tuple[list[str], list[str]]:
    """The catalog's qualified names for ``names``, and the names that match no table (as written)."""
    by_name = {t.qualified_name.casefold(): t.qualified_name for t in catalog.tables}
    by_table: dict[str, list[str]] = defaultdict(list)
    for t in catalog.tables:
        by_table[t.name.casefold()].append(t.qualified_name)
    default = (default_schema or "").casefold()
    matched: dict[str, None] = {}
    unknown: list[str] = []
    for schema, table in names:
        folded = table.casefold()
        if schema is not None:
            tries = [display_name(schema, table).casefold()]
            if schema.casefold() == default:
                tries.append(display_name(None, table).casefold())
        else:
            bare = display_name(None, table).casefold()
            tries = [display_name(default, table).casefold(), bare] if default else [bare]
        hit = next((by_name[k] for k in tries if k in by_name), None)
        if hit is None and schema is None and len(by_table.get(folded, ())) == 1:
            hit = by_table[folded][0]
        if hit is None:
            unknown.append(display_name(schema, table))
        else:
            matched[hit] = None
    return list(matched), unknown
