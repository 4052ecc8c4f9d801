"""Row counts the engine already keeps, read in one query: evidence of empty tables.

PostgreSQL: 0 when the table's file is empty (``pg_relation_size``: never written, or truncated),
else ``pg_class.reltuples`` (-1 until first analysed: not known then), raised to
``pg_stat_user_tables.n_live_tup`` when that has seen rows since; MySQL/MariaDB:
``information_schema.TABLES.TABLE_ROWS`` (exact for MyISAM, an estimate for InnoDB, whose 0 is
taken as not known); DuckDB: ``duckdb_tables().estimated_size``, the count it keeps anyway.
None scans a table. Other engines through SQLAlchemy report nothing here (counting would scan).
Views have no row count. When no table is known to hold a row (a schema-only warehouse, a demo)
the counts say nothing about which table is the live one, and are dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from app.catalog.model import Table

__all__ = ["informative", "with_row_counts"]

_POSTGRESQL = sa.text(
    "SELECT n.nspname, c.relname, CASE WHEN c.relkind = 'p' THEN NULL"  # a partitioned parent has no storage
    " WHEN pg_relation_size(c.oid) = 0 THEN 0"
    " WHEN c.reltuples >= 0 THEN GREATEST(c.reltuples::bigint, COALESCE(s.n_live_tup, 0))"
    " WHEN s.n_live_tup > 0 THEN s.n_live_tup END"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
    " WHERE n.nspname = ANY(:schemas) AND c.relkind IN ('r', 'p')"
)
# InnoDB's TABLE_ROWS is a sampled estimate that reads 0 for a small table until its statistics
# are recalculated: a 0 counts only from engines that keep exact counts.
_MYSQL = sa.text(
    "SELECT TABLE_SCHEMA, TABLE_NAME,"
    " CASE WHEN TABLE_ROWS > 0 OR ENGINE IN ('MyISAM', 'Aria', 'MEMORY') THEN TABLE_ROWS END"
    " FROM information_schema.TABLES"
    " WHERE TABLE_SCHEMA IN :schemas AND TABLE_TYPE <> 'VIEW'"
).bindparams(sa.bindparam("schemas", expanding=True))


_DUCKDB = sa.text(
    "SELECT schema_name, table_name, estimated_size FROM duckdb_tables()"
    " WHERE database_name = current_database() AND schema_name IN :schemas"
).bindparams(sa.bindparam("schemas", expanding=True))


def informative(tables: Sequence[Table]) -> list[Table]:
    """``tables``, without their row counts when none of them is known to hold a row."""
    if any(t.row_count for t in tables):
        return list(tables)
    return [dataclasses.replace(t, row_count=None) if t.row_count is not None else t for t in tables]


def with_row_counts(conn: Connection, tables: Sequence[Table]) -> list[Table]:
    """``tables`` with ``row_count`` set where the engine keeps one (sync: run it in a thread)."""
    query = {"postgresql": _POSTGRESQL, "mysql": _MYSQL, "mariadb": _MYSQL, "duckdb": _DUCKDB}.get(
        conn.dialect.name
    )
    schemas = sorted({t.schema for t in tables if t.schema is not None})
    if query is None or not schemas:
        return list(tables)
    counts = {(s, n): None if c is None else int(c) for s, n, c in conn.execute(query, {"schemas": schemas})}
    if not any(counts.values()):
        return list(tables)
    return [
        dataclasses.replace(t, row_count=counts[t.schema, t.name]) if (t.schema, t.name) in counts else t
        for t in tables
    ]
