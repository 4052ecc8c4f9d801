"""Introspect a warehouse into a ``Catalog`` with a fixed number of catalog queries per schema.

PostgreSQL reads ``pg_catalog`` in four queries (``app.catalog.pg_catalog``: several times
faster than SQLAlchemy's ``Inspector.get_multi_*`` on 10,000 tables, and the Python objects are
built off the event loop), all in one snapshot, so DDL during a refresh cannot tear the
catalog. Other dialects with native bulk reflection go through ``Inspector.get_multi_*``.
MySQL/MariaDB do not: SQLAlchemy's MySQL dialect falls back to one ``SHOW CREATE TABLE`` per
table, so they read ``information_schema`` directly (three queries per schema). SQLite uses the
Inspector as well; its per-table PRAGMAs run in-process, not over a network.

Without configured schemas every non-system schema is read: on PostgreSQL all but ``pg_*`` and
``information_schema``, on MySQL/MariaDB the URL's database, on SQLite ``main``; ``exclude``
drops schemas from either list.

Exceptions:

    IntrospectionError   a schema does not exist, the source is unreachable, or a catalog query
                         failed; ``kind`` (``ReadErrorKind``) says which, without any secret
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine.reflection import Inspector, ObjectKind, ObjectScope
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.catalog.model import Catalog, Column, ForeignKey, Table, qualify
from app.catalog.pg_catalog import read_postgresql_schemas
from app.catalog.read_errors import ReadErrorKind, kind_of
from app.catalog.row_counts import with_row_counts

__all__ = ["IntrospectionError", "introspect", "read_with_inspector"]

logger = logging.getLogger(__name__)


class IntrospectionError(Exception):
    """The catalog could not be read; the message never contains the URL or a password."""

    def __init__(self, message: str, kind: ReadErrorKind = ReadErrorKind.FAILED) -> None:
        super().__init__(message)
        self.kind = kind


# PostgreSQL's own schemas: pg_catalog, pg_toast, pg_temp_N ... and the SQL-standard views.
_PG_USER_SCHEMAS = sa.text(
    "SELECT nspname FROM pg_namespace"
    " WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY nspname"
)


# Tables, columns, keys and row counts are separate queries, and a live warehouse runs DDL
# during a refresh: read apart, keys can name a table the tables query never saw. One
# REPEATABLE READ transaction gives every query the snapshot of the first. PostgreSQL's
# explicit queries on pg_catalog honour it ("queries that explicitly examine the system
# catalogs don't see rows representing concurrently created database objects": the manual's
# MVCC caveats); only its internal lookups (format_type, pg_relation_size) see the newest
# catalog, and they answer '???' or NULL, never an error, for an object dropped since.
_ONE_SNAPSHOT: dict[str, Any] = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}


async def introspect(
    engine: AsyncEngine,
    source: str,
    schemas: Sequence[str] | None = None,
    *,
    exclude: Sequence[str] = (),
    timeout_s: float | None = None,
    bulk: bool = True,
) -> Catalog:
    """Read the tables and views of ``schemas`` (default: every non-system one) into a Catalog.

    ``timeout_s`` bounds the whole read, connecting included: a warehouse that accepts the
    connection and never answers must not hold the service's start-up or a refresh forever.
    ``bulk=False`` reads PostgreSQL and MySQL through the Inspector too (the generic path).
    """
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execution_options(**_ONE_SNAPSHOT)
            if conn.dialect.name == "postgresql" and bulk:
                tables = await _read_postgresql(conn, source, schemas, exclude)
            else:
                tables = await conn.run_sync(_read_catalog, source, schemas, exclude, bulk)
            tables = await conn.run_sync(with_row_counts, tables)
    except TimeoutError as exc:  # ours, or a driver's own connect timeout
        after = f" after {timeout_s:g} s" if timeout_s is not None else ""
        raise IntrospectionError(
            f"reading the catalog of source {source!r} timed out{after}", ReadErrorKind.TIMED_OUT
        ) from exc
    except (OSError, DBAPIError) as exc:
        # str(exc) may name host, user or statement; the kind and the class name are enough to act on.
        kind = kind_of(exc)
        cause = type(getattr(exc, "orig", None) or exc).__name__
        raise IntrospectionError(f"cannot read catalog of source {source!r}: {kind} ({cause})", kind) from exc
    # Sorting and hashing 10,000 tables takes a while: not on the event loop.
    return await asyncio.to_thread(_catalog, source, tables)


def _catalog(source: str, tables: list[Table]) -> Catalog:
    return Catalog(source=source, tables=tuple(sorted(tables, key=lambda t: t.qualified_name)))


def _missing_schema(source: str, schema: str) -> IntrospectionError:
    return IntrospectionError(
        f"schema {schema!r} does not exist in source {source!r}", ReadErrorKind.SCHEMA_MISSING
    )


def _in_scope(schemas: Sequence[str], exclude: Sequence[str]) -> list[str]:
    return [s for s in dict.fromkeys(schemas) if s not in set(exclude)]


async def _read_postgresql(
    conn: AsyncConnection, source: str, schemas: Sequence[str] | None, exclude: Sequence[str]
) -> list[Table]:
    if schemas is None:
        wanted = _in_scope((await conn.scalars(_PG_USER_SCHEMAS)).all(), exclude)
    else:
        wanted = _in_scope(schemas, exclude)
        found = await conn.execute(
            sa.text("SELECT nspname FROM pg_namespace WHERE nspname = ANY(:schemas)"), {"schemas": wanted}
        )
        existing = {row[0] for row in found}
        for schema in wanted:
            if schema not in existing:
                raise _missing_schema(source, schema)
    started = time.perf_counter()
    tables = await read_postgresql_schemas(conn, source, wanted)
    elapsed_ms = (time.perf_counter() - started) * 1000
    logger.info(
        "introspected %s schemas %s: %d tables in %.0f ms", source, ", ".join(wanted), len(tables), elapsed_ms
    )
    return tables


def _read_catalog(
    conn: Connection,
    source: str,
    schemas: Sequence[str] | None,
    exclude: Sequence[str] = (),
    bulk: bool = True,
) -> list[Table]:
    """Every table of ``schemas`` through SQLAlchemy's Inspector (``get_multi_*``), any dialect.

    MySQL/MariaDB are read in bulk from ``information_schema`` unless ``bulk`` is False.
    """
    inspector = sa.inspect(conn)
    # MySQL/MariaDB: the URL's database; SQLite: main. Other databases on the server are not
    # this source's (a MariaDB account often sees several).
    default = inspector.default_schema_name
    if schemas is None:
        if default is None:
            raise IntrospectionError(
                f"source {source!r} has no default schema; name the schemas", ReadErrorKind.SCHEMA_MISSING
            )
        schemas = [default]
    wanted = _in_scope(schemas, exclude)
    for schema in wanted:
        # has_schema, not get_schema_names: some dialects list schemas under their database's
        # name ("file.main" in DuckDB's).
        if not inspector.has_schema(schema):
            raise _missing_schema(source, schema)
    tables: list[Table] = []
    for schema in wanted:
        # SQLite's main schema is implicit: report bare table names.
        shown = None if conn.dialect.name == "sqlite" and schema == default else schema
        started = time.perf_counter()
        if bulk and conn.dialect.name in ("mysql", "mariadb"):
            found = _read_mysql_schema(conn, schema, shown)
        else:
            found = _read_schema(inspector, schema, shown)
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info("introspected %s schema %s: %d tables in %.0f ms", source, schema, len(found), elapsed_ms)
        tables.extend(found)
    return tables


read_with_inspector = _read_catalog


def _read_schema(inspector: Inspector, schema: str, shown: str | None) -> list[Table]:
    """Bulk reflection; temporary tables are per session and never part of a catalog."""
    multi: dict[str, Any] = {"schema": schema, "kind": ObjectKind.ANY, "scope": ObjectScope.DEFAULT}
    columns = inspector.get_multi_columns(**multi)
    pks = inspector.get_multi_pk_constraint(**multi)
    fks = inspector.get_multi_foreign_keys(**multi)
    # SQLite has no comments; its dialect raises rather than returning none.
    comments = inspector.get_multi_table_comment(**multi) if inspector.dialect.supports_comments else {}
    views = set(inspector.get_view_names(schema=schema))
    with contextlib.suppress(NotImplementedError):  # only PostgreSQL and Oracle have them
        views.update(inspector.get_materialized_view_names(schema=schema))
    dialect = inspector.dialect
    tables = []
    for key, cols in columns.items():
        name = key[1]
        foreign_keys = tuple(
            ForeignKey(
                columns=tuple(fk["constrained_columns"]),
                ref_table=_ref_name(fk["referred_schema"], schema, shown, fk["referred_table"]),
                ref_columns=tuple(fk["referred_columns"]),
            )
            for fk in fks.get(key, [])
        )
        tables.append(
            Table(
                schema=shown,
                name=name,
                kind="view" if name in views else "table",
                comment=comments[key]["text"] if key in comments else None,
                columns=tuple(
                    Column(c["name"], _type_name(c["type"], dialect), c["nullable"], c.get("comment"))
                    for c in cols
                ),
                primary_key=tuple(pks[key]["constrained_columns"]) if key in pks else (),
                foreign_keys=foreign_keys,
            )
        )
    return tables


def _ref_name(ref_schema: str | None, schema: str, shown: str | None, ref_table: str) -> str:
    if ref_schema is None or ref_schema == schema:
        return qualify(shown, ref_table)
    return qualify(ref_schema, ref_table)


def _type_name(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> str:
    try:
        return str(type_.compile(dialect=dialect)).lower()
    except Exception:  # NullType and dialect-foreign types do not compile
        return type(type_).__name__.lower()


_MYSQL_TABLES = sa.text(
    "SELECT TABLE_NAME, TABLE_TYPE, TABLE_COMMENT FROM information_schema.TABLES"
    " WHERE TABLE_SCHEMA = :schema AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW')"
)
_MYSQL_COLUMNS = sa.text(
    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_COMMENT"
    " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :schema"
    " ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
_MYSQL_KEYS = sa.text(
    "SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME,"
    " REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME"
    " FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = :schema"
    " AND (CONSTRAINT_NAME = 'PRIMARY' OR REFERENCED_TABLE_NAME IS NOT NULL)"
    " ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION"
)


def _read_mysql_schema(conn: Connection, schema: str, shown: str | None) -> list[Table]:
    """Three ``information_schema`` queries instead of SQLAlchemy's per-table SHOW CREATE TABLE.

    No transaction makes them one snapshot (MariaDB builds ``information_schema`` when it is
    queried), so DDL between them shows: what the tables query did not return is left out. A
    table without columns was dropped after it (neither engine has such tables; a view with none
    is one whose tables are gone, and stays as the engine reports it); a foreign key to a table
    of this schema that it did not return points to one made after it.
    """
    params = {"schema": schema}
    kinds: dict[str, tuple[str, str | None]] = {}
    for name, table_type, comment in conn.execute(_MYSQL_TABLES, params):
        is_view = table_type == "VIEW"
        # MySQL reports the word "VIEW" as the comment of every view; views cannot have comments.
        kinds[name] = ("view" if is_view else "table", None if is_view else comment or None)
    columns: dict[str, list[Column]] = defaultdict(list)
    for table, name, type_, nullable, comment in conn.execute(_MYSQL_COLUMNS, params):
        columns[table].append(Column(name, type_.lower(), nullable == "YES", comment or None))
    pks: dict[str, list[str]] = defaultdict(list)
    fks: dict[tuple[str, str], list[tuple[str, str, str, str]]] = defaultdict(list)
    for table, constraint, column, ref_schema, ref_table, ref_column in conn.execute(_MYSQL_KEYS, params):
        if ref_table is None:
            pks[table].append(column)
        else:
            fks[table, constraint].append((column, ref_schema, ref_table, ref_column))
    by_table: dict[str, list[ForeignKey]] = defaultdict(list)
    for (table, _), parts in fks.items():
        if parts[0][1] == schema and parts[0][2] not in kinds:
            continue
        ref = _ref_name(parts[0][1], schema, shown, parts[0][2])
        by_table[table].append(ForeignKey(tuple(p[0] for p in parts), ref, tuple(p[3] for p in parts)))
    return [
        Table(
            schema=shown,
            name=name,
            kind=kind,
            comment=comment,
            columns=tuple(columns[name]),
            primary_key=tuple(pks[name]),
            foreign_keys=tuple(by_table[name]),
        )
        for name, (kind, comment) in kinds.items()
        if columns[name] or kind == "view"
    ]
