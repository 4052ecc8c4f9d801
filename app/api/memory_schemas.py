"""Bodies of the route-memory API: rows to import, what was imported, the memory's state."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BadRowBody",
    "MemoryImport",
    "MemoryImported",
    "MemoryState",
    "MinedJoinBody",
    "MissingTableBody",
    "SimilarEntryBody",
]

MAX_IMPORT_ROWS = 10_000


class MemoryImport(BaseModel):
    """Rows to remember: ``{"question", "sql"}``, ``{"question", "tables"}``, or a query log's ``{"sql"}``."""

    model_config = ConfigDict(extra="forbid")

    # Any JSON value: a row that is not an object is reported as bad like any other, by its line.
    rows: list[Any] = Field(
        min_length=1,
        max_length=MAX_IMPORT_ROWS,
        description="each row is checked alone: a bad one is reported (by its 1-based line), the good "
        "ones are imported",
        examples=[
            [
                {"question": "How many orders did each customer place?", "tables": ["shop.orders"]},
                {"sql": "SELECT * FROM shop.orders o JOIN shop.customers c ON o.customer_id = c.id"},
            ]
        ],
    )


class BadRowBody(BaseModel):
    """A row not imported."""

    line: int = Field(description="the row's 1-based position in rows", examples=[3])
    reason: str = Field(description="why it was not imported", examples=["sql does not parse: ..."])


class MemoryImported(BaseModel):
    """What an import remembered."""

    source: str = Field(description="the source the rows were checked against", examples=["warehouse"])
    imported: int = Field(description="rows remembered", examples=[2])
    joins: int = Field(description="join conditions read from the rows' SQL", examples=[1])
    bad: list[BadRowBody] = Field(description="the rows not imported, with why")


class MinedJoinBody(BaseModel):
    """A join condition read from SQL, not declared by the warehouse."""

    left_table: str = Field(description="one table of the join (the first by name)", examples=["shop.orders"])
    left_column: str = Field(description="its column in the condition", examples=["customer_id"])
    right_table: str = Field(description="the other table", examples=["shop.customers"])
    right_column: str = Field(description="its column in the condition", examples=["id"])
    count: int = Field(description="how often the SQL imported and fed back used it", examples=[12])


class MissingTableBody(BaseModel):
    """A remembered table the current catalog no longer has (ignored at route time)."""

    table: str = Field(description="the table as it was remembered", examples=["shop.order_items"])
    entries: int = Field(description="remembered entries naming it", examples=[4])
    renamed_to: str | None = Field(
        description="the one current table of the same name in another schema, if there is one",
        examples=[None],
    )


class SimilarEntryBody(BaseModel):
    """A remembered question similar to the one asked about."""

    id: int = Field(description="the entry's id (to forget it)", examples=[17])
    similarity: float = Field(
        description="0 to 1: the cosine of the two questions' words, or with embeddings configured the "
        "higher of that and their rescaled embeddings cosine",
        examples=[0.82],
    )
    tables: list[str] = Field(description="the tables the entry lends a prior", examples=[["shop.orders"]])


class MemoryState(BaseModel):
    """What the route memory of a source holds."""

    source: str = Field(description="the source", examples=["warehouse"])
    entries: int = Field(description="remembered entries (questions and query-log SQL)", examples=[120])
    questions: int = Field(description="entries with a question (searched at route time)", examples=[100])
    joins: list[MinedJoinBody] = Field(description="mined joins, most seen first (at most 100)")
    missing_tables: list[MissingTableBody] = Field(
        description="remembered tables the current catalog snapshot lacks"
    )
    similar: list[SimilarEntryBody] = Field(
        description="with ?question=: the remembered entries a route of that question would use"
    )
