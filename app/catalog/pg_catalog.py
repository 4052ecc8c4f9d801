"""PostgreSQL introspection in three ``pg_catalog`` queries, whatever the number of tables.

SQLAlchemy's ``Inspector.get_multi_*`` reads PostgreSQL in bulk too, but builds a SQLAlchemy
type object per column and runs a dozen queries through its reflection layer; on 10,000
tables that layer, not the server, takes most of the time (see ``bench/introspection.py``).
Here the server formats each type (``format_type``), names the key columns itself, and the
rows are awaited on the event loop while the Python objects are built in a worker thread.
Repeated strings (type names, common column names) are interned: a 10,000-table catalog
holds one ``"bigint"``, not 30,000.

Type names are spelled as SQLAlchemy's PostgreSQL compiler spells them (``varchar(20)``,
``numeric(10, 2)``, ``timestamp without time zone``), so both readers give the same catalog.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app.catalog.model import Column, ForeignKey, Table, qualify

__all__ = ["pg_type_name", "read_postgresql_schemas"]

logger = logging.getLogger(__name__)

# Tables, partitioned tables, foreign tables, views, materialized views; temporary ones are
# per session and never part of a catalog.
_RELATIONS = text(
    "SELECT c.oid, n.nspname, c.relname, c.relkind::text, d.description"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_description d"
    "   ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0"
    " WHERE n.nspname = ANY(:schemas) AND c.relkind IN ('r', 'p', 'f', 'v', 'm')"
    " AND c.relpersistence <> 't'"
)
_COLUMNS = text(
    "SELECT a.attrelid, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
    " d.description"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_description d"
    "   ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum"
    " WHERE n.nspname = ANY(:schemas) AND c.relkind IN ('r', 'p', 'f', 'v', 'm')"
    " AND c.relpersistence <> 't' AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY a.attrelid, a.attnum"
)
# Key columns come as attribute numbers, named from the columns already read: resolving them
# in SQL (unnest + join per constraint) took longer than reading every column.
_KEYS = text(
    "SELECT k.conrelid, k.contype::text, k.conname, k.conkey, k.confrelid, rn.nspname, r.relname, k.confkey"
    " FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_class r ON r.oid = k.confrelid LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace"
    " WHERE n.nspname = ANY(:schemas) AND k.contype IN ('p', 'f')"
    " ORDER BY k.conrelid, k.conname"
)
# Columns of tables outside the schemas read that foreign keys point to.
_OTHER_COLUMNS = text(
    "SELECT attrelid, attnum, attname FROM pg_attribute WHERE attrelid = ANY(:oids) AND attnum > 0"
)

_SPELLINGS = (
    (re.compile(r"^character varying"), "varchar"),
    (re.compile(r"^character(?=\(|$)"), "char"),
    (re.compile(r"^(numeric|decimal)\((\d+),(\d+)\)"), r"\1(\2, \3)"),
)


@lru_cache(maxsize=4096)  # a warehouse has few distinct types and 80,000 columns
def pg_type_name(formatted: str) -> str:
    """``format_type`` output spelled the way SQLAlchemy's compiler spells the type, lower case."""
    name = formatted.lower()
    for pattern, spelling in _SPELLINGS:
        name = pattern.sub(spelling, name)
    return sys.intern(name)


ColumnNames = dict[tuple[int, int], str]


def _named(names: ColumnNames, oid: int, numbers: Sequence[int]) -> tuple[str, ...] | None:
    """The names of a key's columns, or None when they were not read."""
    try:
        return tuple(names[oid, n] for n in numbers)
    except KeyError:
        return None


def _keys(
    rows: Sequence[Any], names: ColumnNames, shown: dict[str, str | None], read: set[int]
) -> tuple[dict[int, tuple[str, ...]], dict[int, list[ForeignKey]]]:
    """Primary and foreign keys by table; a key on or to a table of the schemas that the tables
    query did not return, or over columns the columns query did not, is left out.

    ``introspect`` reads in one snapshot, where that never happens; a caller that reads apart
    (each query its own snapshot) gets a catalog without dangling keys rather than a KeyError.
    """
    primary: dict[int, tuple[str, ...]] = {}
    foreign: dict[int, list[ForeignKey]] = defaultdict(list)
    for oid, kind, _name, numbers, ref_oid, ref_schema, ref_table, ref_numbers in rows:
        columns = _named(names, oid, numbers)
        if oid not in read or columns is None:
            continue
        if kind == "p":
            primary[oid] = columns
        elif ref_table is not None and (ref_schema not in shown or ref_oid in read):
            ref_columns = _named(names, ref_oid, ref_numbers)
            if ref_columns is not None:
                ref = qualify(shown.get(ref_schema, ref_schema), ref_table)
                foreign[oid].append(ForeignKey(columns, ref, ref_columns))
    return primary, foreign


def _assemble(
    relations: Sequence[Any],
    columns: Sequence[Any],
    keys: Sequence[Any],
    other_names: ColumnNames,
    shown: dict[str, str | None],
) -> list[Table]:
    """Tables from the rows of the catalog queries (CPU-bound: runs in a worker thread)."""
    by_table: dict[int, list[Column]] = defaultdict(list)
    names: ColumnNames = dict(other_names)
    for oid, number, name, type_, not_null, comment in columns:
        name = sys.intern(name)  # noqa: PLW2901
        names[oid, number] = name
        by_table[oid].append(Column(name, pg_type_name(type_), not not_null, comment))
    primary, foreign = _keys(keys, names, shown, {row[0] for row in relations})
    return [
        Table(
            schema=shown[schema],
            name=name,
            kind="view" if kind in ("v", "m") else "table",
            comment=comment,
            columns=tuple(by_table[oid]),
            primary_key=primary.get(oid, ()),
            foreign_keys=tuple(foreign.get(oid, ())),
        )
        for oid, schema, name, kind, comment in relations
    ]


async def read_postgresql_schemas(conn: AsyncConnection, source: str, schemas: Sequence[str]) -> list[Table]:
    """Every table and view of ``schemas`` (which must exist), in three catalog queries (four when
    a foreign key points outside them)."""
    params = {"schemas": list(schemas)}
    shown: dict[str, str | None] = {s: s for s in schemas}
    started = time.perf_counter()
    relations = (await conn.execute(_RELATIONS, params)).all()
    logger.info("introspecting %s: %d tables and views in %s", source, len(relations), ", ".join(schemas))
    columns = (await conn.execute(_COLUMNS, params)).all()
    logger.info("introspecting %s: %d columns read", source, len(columns))
    keys = (await conn.execute(_KEYS, params)).all()
    read = {row[0] for row in relations}
    outside = sorted({row[4] for row in keys if row[1] == "f" and row[4] not in read})
    other: ColumnNames = {}
    if outside:
        other = {(o, n): name for o, n, name in await conn.execute(_OTHER_COLUMNS, {"oids": outside})}
    read_ms = (time.perf_counter() - started) * 1000
    logger.info("introspecting %s: %d keys read; catalog queries took %.0f ms", source, len(keys), read_ms)
    return await asyncio.to_thread(_assemble, relations, columns, keys, other, shown)
