"""The schema of a route's tables, for the frontend's SQL-writing prompt: columns, DDL, joins.

Built after the route (cached or not) from the route's own snapshot and the asking key's
grant, so the schema agrees with the answer's ``catalog_version`` and never names a table the
key may not see: a foreign key to a hidden table is left out of the columns, the DDL and the
joins, as it is left out of the LM's cards. A comment that reads as instructions to an LM
(``metadata_guard``) is withheld, and the column says so: the frontend puts these comments
into its own LM prompt.

The DDL is generated with sqlglot from the catalog model, in the source's dialect or the one
asked for; it is a faithful sketch of the table for a prompt (columns, types, NOT NULL,
primary and foreign keys), not a migration: defaults, indexes and checks are not in the
catalog.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from app.catalog.identifiers import parse_name
from app.catalog.model import Column, Table
from app.routing.preparation.cards import shown_comment
from app.routing.preparation.grants import TableGrant
from app.routing.preparation.metadata_guard import instruction_like

if TYPE_CHECKING:
    from sqlglot import exp

__all__ = [
    "DDL_DIALECTS",
    "ColumnDetail",
    "JoinDetail",
    "SchemaDetail",
    "SchemaPart",
    "SchemaRequest",
    "TableDetail",
    "ddl_dialect_of",
    "schema_detail",
]

# sqlglot's dialect names (its generic dialect, the empty name, left out), written out so that
# validating a request needs no sqlglot: importing it costs a lexical service ~0.4 s of start-up.
# tests/test_route_include.py holds the list equal to the installed sqlglot's.
DDL_DIALECTS: tuple[str, ...] = (
    "athena", "bigquery", "clickhouse", "databricks", "dax", "doris", "dremio", "drill", "druid",
    "duckdb", "dune", "exasol", "fabric", "hive", "materialize", "mysql", "oracle", "postgres",
    "presto", "prql", "redshift", "risingwave", "snowflake", "solr", "spark", "spark2", "sqlite",
    "starrocks", "tableau", "teradata", "trino", "tsql",
)  # fmt: skip
# SQLAlchemy dialect names that sqlglot spells differently.
_SQLGLOT_NAME = {"postgresql": "postgres", "mssql": "tsql", "mariadb": "mysql"}
# Written when the source's dialect is not one sqlglot knows.
GENERIC_DIALECT = "postgres"


class SchemaPart(StrEnum):
    """What a route's answer may carry about its tables."""

    COLUMNS = "columns"
    DDL = "ddl"
    JOINS = "joins"


@dataclass(frozen=True, slots=True)
class SchemaRequest:
    """The parts asked for, and the dialect of the DDL (None: the source's)."""

    parts: frozenset[SchemaPart]
    ddl_dialect: str | None = None


@dataclass(frozen=True, slots=True)
class ColumnDetail:
    """One column as the key may see it."""

    name: str
    type: str | None  # as the warehouse reports it; None when it reports none (SQLite view columns)
    nullable: bool
    primary_key: bool
    references: str | None  # "schema.table.column" of its foreign key; None: none (or a hidden table)
    comment: str | None
    comment_withheld: bool  # the comment reads as instructions to an LM and is left out


@dataclass(frozen=True, slots=True)
class TableDetail:
    """One returned table's schema: columns and/or DDL, as asked."""

    name: str
    comment: str | None
    comment_withheld: bool
    columns: tuple[ColumnDetail, ...] | None
    ddl: str | None


@dataclass(frozen=True, slots=True)
class JoinDetail:
    """A foreign-key join between two returned tables: ``from_table.from_columns`` reference ``to_table``."""

    from_table: str
    from_columns: tuple[str, ...]
    to_table: str
    to_columns: tuple[str, ...]
    condition: str  # the join condition in SQL, over the qualified names, in the DDL's dialect
    mined: bool = False  # read from SQL (feedback, imported query logs), not declared by the warehouse
    count: int | None = None  # how often the SQL used it (mined joins only)


@dataclass(frozen=True, slots=True)
class SchemaDetail:
    """The schema of a route's tables, in the answer's order; ``joins`` None when not asked."""

    tables: tuple[TableDetail, ...]
    joins: tuple[JoinDetail, ...] | None
    ddl_dialect: str | None  # the dialect the DDL is written in; None when no DDL was asked


def ddl_dialect_of(source_dialect: str) -> str:
    """sqlglot's name for a source's SQLAlchemy dialect (``postgresql`` → ``postgres``)."""
    name = _SQLGLOT_NAME.get(source_dialect, source_dialect)
    return name if name in DDL_DIALECTS else GENERIC_DIALECT


def _guarded(comment: str | None) -> tuple[str | None, bool]:
    if instruction_like(comment):
        return None, True
    return shown_comment(comment), False


def _columns(table: Table) -> tuple[ColumnDetail, ...]:
    pk = set(table.primary_key)
    target = {
        column: f"{fk.ref_table}.{ref}"
        for fk in table.foreign_keys
        for column, ref in zip(fk.columns, fk.ref_columns, strict=False)
    }
    details = []
    for column in table.columns:
        comment, withheld = _guarded(column.comment)
        details.append(
            ColumnDetail(
                column.name,
                None if _untyped(column) else column.type,
                column.nullable,
                column.name in pk,
                target.get(column.name),
                comment,
                withheld,
            )
        )
    return tuple(details)


def _table_ref(qualified: str, catalog: dict[str, Table]) -> exp.Table:
    from sqlglot import exp  # noqa: PLC0415  (lazy: a lexical start-up never pays for sqlglot)

    table = catalog.get(qualified)
    if table is not None:
        schema, name = table.schema, table.name
    else:  # a visible table outside the snapshot's dict cannot be: read the name's parts
        schema, name = parse_name(qualified)
    return exp.Table(this=exp.to_identifier(name), db=exp.to_identifier(schema) if schema else None)


def _condition(
    fk: tuple[str, tuple[str, ...], str, tuple[str, ...]], catalog: dict[str, Table], write: str
) -> str:
    from sqlglot import exp  # noqa: PLC0415  (lazy: a lexical start-up never pays for sqlglot)

    left, left_columns, right, right_columns = fk
    sides = (_table_ref(left, catalog), _table_ref(right, catalog))
    pairs = [
        exp.EQ(
            this=exp.column(a, table=sides[0].name, db=sides[0].db or None),
            expression=exp.column(b, table=sides[1].name, db=sides[1].db or None),
        )
        for a, b in zip(left_columns, right_columns, strict=False)
    ]
    return exp.and_(*pairs).sql(dialect=write)


def _untyped(column: Column) -> bool:
    # SQLAlchemy's NullType: SQLite declares no type for a view's computed columns.
    return column.type.lower() in ("nulltype", "")


# A type sqlglot cannot read is written as the warehouse names it when it looks like a type name.
_PLAIN_TYPE = re.compile(r"[\w .,()\[\]]+")


def _type(column: Column, read: str, write: str) -> exp.DataType | None:
    from sqlglot import exp  # noqa: PLC0415  (lazy: a lexical start-up never pays for sqlglot)
    from sqlglot.errors import SqlglotError  # noqa: PLC0415

    if _untyped(column):
        return None
    try:
        return exp.DataType.build(column.type, dialect=read)
    except (SqlglotError, ValueError):
        # A domain or an extension's type; anything else (quotes, semicolons) goes in as one quoted
        # name, so a type can never end the statement early or add text to the frontend's prompt.
        name = column.type
        if not _PLAIN_TYPE.fullmatch(name):
            name = exp.to_identifier(name, quoted=True).sql(dialect=write)
        return exp.DataType.build(name, udt=True)


def _ddl(table: Table, catalog: dict[str, Table], read: str, write: str) -> str:
    from sqlglot import exp  # noqa: PLC0415  (lazy: a lexical start-up never pays for sqlglot)

    columns: list[exp.Expression] = []
    for column in table.columns:
        constraints = [] if column.nullable else [exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())]
        columns.append(
            exp.ColumnDef(
                this=exp.to_identifier(column.name), kind=_type(column, read, write), constraints=constraints
            )
        )
    if table.primary_key:
        columns.append(exp.PrimaryKey(expressions=[exp.to_identifier(c) for c in table.primary_key]))
    for fk in table.foreign_keys:
        referenced = exp.Reference(
            this=_table_ref(fk.ref_table, catalog), expressions=[exp.to_identifier(c) for c in fk.ref_columns]
        )
        columns.append(
            exp.ForeignKey(expressions=[exp.to_identifier(c) for c in fk.columns], reference=referenced)
        )
    # A view's query is not in the catalog: it is written as a table with its columns, and says so.
    create = exp.Create(
        this=exp.Schema(this=_table_ref(table.qualified_name, catalog), expressions=columns), kind="TABLE"
    )
    sql = create.sql(dialect=write, pretty=True)
    return f"-- a view\n{sql}" if table.kind == "view" else sql


def _joins(tables: Sequence[Table], catalog: dict[str, Table], write: str) -> tuple[JoinDetail, ...]:
    """Every foreign key from one returned table to another (a via_fk table is returned too)."""
    returned = {t.qualified_name for t in tables}
    joins = []
    for table in tables:
        for fk in table.foreign_keys:
            if fk.ref_table in returned:
                ends = (table.qualified_name, fk.columns, fk.ref_table, fk.ref_columns)
                joins.append(JoinDetail(*ends, _condition(ends, catalog, write)))
    return tuple(joins)


def _mined(
    mined: Iterable[tuple[str, str, str, str, int]],
    declared: Sequence[JoinDetail],
    catalog: dict[str, Table],
    write: str,
) -> list[JoinDetail]:
    """The mined joins no declared foreign key already gives."""
    known = {frozenset({(j.from_table, j.from_columns), (j.to_table, j.to_columns)}) for j in declared}
    joins = []
    for left, left_column, right, right_column, count in mined:
        if left not in catalog or right not in catalog:
            continue
        if frozenset({(left, (left_column,)), (right, (right_column,))}) in known:
            continue
        ends = (left, (left_column,), right, (right_column,))
        joins.append(JoinDetail(*ends, _condition(ends, catalog, write), mined=True, count=count))
    return joins


def schema_detail(
    catalog: dict[str, Table],
    names: Iterable[str],
    grant: TableGrant | None,
    request: SchemaRequest,
    source_dialect: str,
    *,
    mined: Iterable[tuple[str, str, str, str, int]] = (),
) -> SchemaDetail:
    """The schema of ``names`` (the route's tables, every one visible to the key) over ``catalog``.

    ``catalog`` is the route's snapshot by qualified name; ``grant`` the key's view of it
    (None: every table), whose hidden tables no FK, DDL or join may name. ``mined`` are joins read
    from SQL between the returned tables; they follow the declared ones, labelled mined.
    """
    shown = [catalog[n] if grant is None else grant.table(catalog[n]) for n in names if n in catalog]
    wants_ddl = SchemaPart.DDL in request.parts
    read = ddl_dialect_of(source_dialect)
    write = request.ddl_dialect or read
    details = []
    for table in shown:
        comment, withheld = _guarded(table.comment)
        details.append(
            TableDetail(
                table.qualified_name,
                comment,
                withheld,
                _columns(table) if SchemaPart.COLUMNS in request.parts else None,
                _ddl(table, catalog, read, write) if wants_ddl else None,
            )
        )
    joins = None
    if SchemaPart.JOINS in request.parts:
        declared = _joins(shown, catalog, write)
        joins = (*declared, *_mined(mined, declared, catalog, write))
    return SchemaDetail(tuple(details), joins, write if wants_ddl else None)
