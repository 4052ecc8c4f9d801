"""The route answer's ``schema_detail``: the chosen tables' columns, DDL and joins, on request."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.routing.schema_detail import ColumnDetail, JoinDetail, SchemaDetail, TableDetail


class RoutedColumn(BaseModel):
    """A column of a returned table, as the key may see it."""

    name: str = Field(description="column name", examples=["customer_id"])
    type: str | None = Field(
        description="SQL type as the warehouse reports it; null when it reports none (SQLite view columns)",
        examples=["INTEGER"],
    )
    nullable: bool = Field(description="whether NULL is allowed", examples=[False])
    primary_key: bool = Field(description="part of the table's primary key", examples=[False])
    references: str | None = Field(
        description="the column its foreign key references, schema.table.column; null when none, or "
        "when the referenced table is one the key may not see",
        examples=["customers.customer_id"],
    )
    comment: str | None = Field(
        description="the column's comment, on one line; null when none or withheld", examples=["the buyer"]
    )
    comment_withheld: bool = Field(
        description="the column has a comment that reads as instructions to an LM; it is left out",
        examples=[False],
    )


class RoutedTableSchema(BaseModel):
    """One returned table's schema."""

    name: str = Field(description="qualified name, as in 'tables'", examples=["orders"])
    comment: str | None = Field(
        description="the table's comment, on one line; null when none or withheld",
        examples=["one row per customer order"],
    )
    comment_withheld: bool = Field(
        description="the table has a comment that reads as instructions to an LM; it is left out",
        examples=[False],
    )
    columns: list[RoutedColumn] | None = Field(
        description="columns in table order; null unless 'columns' is in 'include'"
    )
    ddl: str | None = Field(
        description="a CREATE TABLE statement (columns, types, NOT NULL, primary and foreign keys) in "
        "'ddl_dialect'; null unless 'ddl' is in 'include'. A view is written as a table, after a "
        "'-- a view' line",
        examples=["CREATE TABLE orders (\n  order_id INTEGER NOT NULL PRIMARY KEY\n)"],
    )


class RouteJoin(BaseModel):
    """A join between two returned tables: a declared foreign key, or one mined from SQL."""

    from_table: str = Field(description="the referencing table", examples=["orders"])
    from_columns: list[str] = Field(description="its foreign-key columns", examples=[["customer_id"]])
    to_table: str = Field(description="the referenced table", examples=["customers"])
    to_columns: list[str] = Field(description="the referenced columns, pairwise", examples=[["customer_id"]])
    condition: str = Field(
        description="the join condition in SQL over the qualified names, in the request's 'ddl_dialect' "
        "when it names one, else in the source's dialect",
        examples=["orders.customer_id = customers.customer_id"],
    )
    mined: bool = Field(
        default=False,
        description="true: read from SQL (feedback, imported query logs), not declared by the warehouse",
        examples=[False],
    )
    count: int | None = Field(
        default=None, description="how often that SQL used the join (mined joins only)", examples=[None]
    )


class RouteSchemaDetail(BaseModel):
    """The schema of the returned tables, from the very snapshot the route ran over."""

    ddl_dialect: str | None = Field(
        description="the sqlglot dialect the DDL is written in; null unless 'ddl' is in 'include'",
        examples=["sqlite"],
    )
    tables: list[RoutedTableSchema] = Field(description="one per returned table, in the answer's order")
    joins: list[RouteJoin] | None = Field(
        description="every foreign key from one returned table to another (tables added via_fk "
        "included); null unless 'joins' is in 'include'"
    )


def _column(column: ColumnDetail) -> RoutedColumn:
    return RoutedColumn.model_validate(column, from_attributes=True)


def _table(table: TableDetail) -> RoutedTableSchema:
    return RoutedTableSchema(
        name=table.name,
        comment=table.comment,
        comment_withheld=table.comment_withheld,
        columns=None if table.columns is None else [_column(c) for c in table.columns],
        ddl=table.ddl,
    )


def _join(join: JoinDetail) -> RouteJoin:
    return RouteJoin(
        from_table=join.from_table,
        from_columns=list(join.from_columns),
        to_table=join.to_table,
        to_columns=list(join.to_columns),
        condition=join.condition,
        mined=join.mined,
        count=join.count,
    )


def schema_detail_body(detail: SchemaDetail) -> RouteSchemaDetail:
    """The HTTP body of a route's schema detail."""
    return RouteSchemaDetail(
        ddl_dialect=detail.ddl_dialect,
        tables=[_table(t) for t in detail.tables],
        joins=None if detail.joins is None else [_join(j) for j in detail.joins],
    )
