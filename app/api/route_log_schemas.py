"""Bodies of the route-log API: a logged route, feedback on it, the writer's counters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import PlainText, RoutedTable, RouteStatsBody

TableNameField = Field(min_length=1, max_length=500)
# What a logged route's outcome fields say for a route logged before the route log kept them.
BEFORE = "null for a route logged before the route log kept it"


class FeedbackRequest(BaseModel):
    """The tables the final SQL of a route really used: named, or read from the SQL, or both."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"used_tables": ["public.orders"], "sql": "SELECT c.name FROM customers c JOIN orders o ON …"}
            ]
        },
    )

    used_tables: list[PlainText] = Field(
        default_factory=list,
        max_length=1000,
        description="tables the SQL used, as schema.table or table (matched case-insensitively)",
        examples=[["public.orders", "customers"]],
    )
    sql: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=100_000,
        description="the final SQL; its tables are read with sqlglot in the source's dialect",
        examples=["SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.customer_id"],
    )


class FeedbackBody(BaseModel):
    """Feedback as stored: the tables resolved to the snapshot's qualified names."""

    route_id: str = Field(
        description="the route the feedback is on", examples=["3f2c0c8e5b8d4b0f9a1e2d3c4b5a6978"]
    )
    used_tables: list[str] = Field(
        description="the tables the final SQL used, qualified as in the snapshot",
        examples=[["public.customers", "public.orders"]],
    )
    sql: str | None = Field(
        default=None, description="the final SQL, when it was given", examples=["SELECT 1 FROM public.orders"]
    )
    created_at: datetime = Field(description="when the feedback arrived", examples=["2025-01-31T12:00:00Z"])


class LoggedRoute(BaseModel):
    """A route as the route log keeps it."""

    route_id: str = Field(
        description="identifier of the route", examples=["3f2c0c8e5b8d4b0f9a1e2d3c4b5a6978"]
    )
    created_at: datetime = Field(description="when the route was answered", examples=["2025-01-31T12:00:00Z"])
    source: str = Field(description="the warehouse routed over", examples=["demo"])
    catalog_version: str = Field(
        description="version of the catalog snapshot used", examples=["9b1d2c3e4f5a6b7c"]
    )
    judge: str = Field(description="'lexical' or the LM model that judged", examples=["openai/gpt-4o-mini"])
    program_version: str | None = Field(
        description="version of the judge's DSPy program; null for the lexical judge", examples=["judge-v1"]
    )
    question: str = Field(description="the question routed", examples=["Which customers ordered most?"])
    top_k: int = Field(description="the request's top_k", examples=[10])
    min_score: float = Field(description="the score cut the route used", examples=[0.5])
    schemas: list[str] | None = Field(description="the request's schema filter, if any", examples=[None])
    tables: list[RoutedTable] = Field(description="the ranked answer, best first")
    stats: RouteStatsBody = Field(description="the route's counters, as in its response")
    coverage: float | None = Field(
        ge=0,
        le=1,
        description="as in its response: the estimated probability that every table the SQL needs is in "
        "'tables'; null for the lexical judge, and for a route logged before the log kept it",
        examples=[0.93],
    )
    partial: bool | None = Field(
        description="as in its response: some tables got no verdict ('unjudged'), or the deadline stopped "
        f"the extra votes; {BEFORE}",
        examples=[False],
    )
    unjudged: list[str] | None = Field(
        description=f"as in its response: tables no answered chunk judged; {BEFORE}", examples=[[]]
    )
    unsettled: list[str] | None = Field(
        description=f"as in its response: tables whose votes still disagreed; {BEFORE}",
        examples=[["public.order_archive"]],
    )
    degraded: bool | None = Field(
        description=f"as in its response: the lexical judge answered because the LM could not; {BEFORE}",
        examples=[False],
    )
    degraded_reason: str | None = Field(description="why the route is degraded", examples=[None])
    budget_cut: bool | None = Field(
        description=f"as in its response: a token budget kept some tables from the LM; {BEFORE}",
        examples=[False],
    )
    budget_unjudged: list[str] | None = Field(
        description=f"as in its response: tables the token budget kept from the LM; {BEFORE}", examples=[[]]
    )
    budget_cut_reason: str | None = Field(description="which budget cut the route", examples=[None])
    catalog_stale: bool | None = Field(
        description=f"as in its response: the snapshot was not confirmed by the latest refresh; {BEFORE}",
        examples=[False],
    )
    catalog_age_s: float | None = Field(
        description="as in its response: seconds since the warehouse was last seen to match the snapshot",
        examples=[42.0],
    )
    feedback: FeedbackBody | None = Field(description="feedback on the route, if any")


class RouteLogStatsBody(BaseModel):
    """Counters of the route-log writer since start-up."""

    queued: int = Field(description="routes waiting to be written, or being written", examples=[0])
    written: int = Field(description="routes written", examples=[1200])
    failed: int = Field(
        description="routes the store refused one by one (each logged; the rest of their batch written)",
        examples=[0],
    )
    dropped: int = Field(
        description="routes not logged: the queue was full and the spill file too (or is off)", examples=[0]
    )
    batches: int = Field(description="insert transactions", examples=[31])
    spilled: int = Field(
        description="routes put in the local spill file while the store could not take them", examples=[0]
    )
    replayed: int = Field(description="spilled routes read back and written to the store", examples=[0])
    retries: int = Field(description="writes tried again while the store was down", examples=[0])


class StoreStats(BaseModel):
    """Counters of the service's own store."""

    route_log: RouteLogStatsBody = Field(description="the route-log writer's counters")
