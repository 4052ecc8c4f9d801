"""Request and response bodies of the HTTP API (named, documented, with examples)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, computed_field, field_validator

from app.api.schema_detail_schemas import RouteSchemaDetail
from app.catalog.identifiers import parts_of
from app.catalog.read_errors import ReadErrorKind
from app.routing.schema_detail import DDL_DIALECTS, SchemaPart
from app.sources.registry import SourceStatus
from app.store.health import StoreState

EXAMPLE_QUESTION = "Which customers placed more than five orders last month?"

# C0 and C1 control characters and DEL, but tab, newline and carriage return (a question or SQL
# may be laid out with them). A NUL cannot be stored in PostgreSQL text: one in a question
# poisoned the route log's batch insert and one in a key's name answered 500.
CONTROL_CHARACTERS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL, escape ...) other than tab and newline")
    return value


# Every string of a request body is PlainText, so bad bytes stop at the edge with a 422 naming
# the field; the pattern tells clients (and the schema fuzzer) the same.
PlainText = Annotated[
    str,
    AfterValidator(_no_control_characters),
    Field(json_schema_extra={"pattern": f"^[^{CONTROL_CHARACTERS}]*$"}),
]


class JudgeKind(StrEnum):
    """What judged the tables: an LM, or the lexical (BM25) ranking when no LM is configured."""

    LM = "lm"
    LEXICAL = "lexical"


class TableKind(StrEnum):
    """A base table or a view."""

    TABLE = "table"
    VIEW = "view"


class HealthStatus(StrEnum):
    """The answer of a probe."""

    OK = "ok"
    READY = "ready"
    NOT_READY = "not ready"


class RouteRequest(BaseModel):
    """A question to route to the tables its SQL needs."""

    # Strict: JSON true is not the number 1, nor "10" the integer 10 (as the schema says).
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"question": EXAMPLE_QUESTION, "source": "demo", "top_k": 10}]},
    )

    question: PlainText = Field(
        min_length=1,
        max_length=4000,
        description="the user's question, in natural language",
        examples=[EXAMPLE_QUESTION],
    )
    source: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="name of the warehouse; may be left out when exactly one is configured",
        examples=["demo"],
    )
    schemas: list[PlainText] | None = Field(
        default=None,
        max_length=1000,
        description="only consider tables of these schemas, named as the catalog does or double-quoted as "
        'answers print them ("a.b"); default: every table of the source',
        examples=[["public"]],
    )
    top_k: int = Field(default=10, ge=1, le=500, description="at most this many tables", examples=[10])
    min_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="leave out tables scored below this; default: the service's relevance threshold",
        examples=[0.5],
    )
    deadline_ms: int | None = Field(
        default=None,
        ge=1,
        le=600_000,
        description="answer within this many milliseconds, with what finished by then (partial); "
        "capped by the service's TABLEROUTER_ROUTE_DEADLINE_MS, which is also the default",
        examples=[5000],
    )
    token_budget: int | None = Field(
        default=None,
        ge=1,
        le=100_000_000,
        description="LM tokens this route may spend (estimated before the calls): the tables judged are "
        "cut to fit, best lexical match first, and the answer says so in 'budget_cut'; capped by the "
        "service's TABLEROUTER_ROUTE_TOKEN_BUDGET",
        examples=[50000],
    )

    # Not strict: JSON has no enums, so a part comes as its string.
    include: list[Annotated[SchemaPart, Strict(False)]] = Field(
        default_factory=list,
        max_length=3,
        description="what the answer's 'schema_detail' carries about the returned tables, from the "
        "route's own snapshot and as the key may see it: 'columns' (name, type, nullable, primary key, "
        "referenced column, comment), 'ddl' (a CREATE TABLE each), 'joins' (the FK join conditions "
        "between them); default none, and no 'schema_detail'",
        examples=[["columns", "ddl", "joins"]],
    )
    ddl_dialect: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=40,
        description="the SQL dialect of the DDL and join conditions, one of sqlglot's: "
        + ", ".join(DDL_DIALECTS)
        + "; default: the source's own",
        examples=["snowflake"],
    )

    history: list[Annotated[PlainText, Field(max_length=4000)]] = Field(
        default_factory=list,
        max_length=50,
        description="a follow-up's earlier questions in this conversation, oldest first: the judge reads the "
        "question with them (the newest TABLEROUTER_FOLLOWUP_MAX_TURNS within "
        "TABLEROUTER_FOLLOWUP_MAX_CHARS characters)",
        examples=[["Which customers placed more than five orders last month?"]],
    )
    previous_route_id: PlainText | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the route (of the same key and source) this question follows up: its question is read "
        "as the last earlier one, and its tables get the highest prior; see 'follow_up' in the answer",
        examples=["3f2c0c8e5b8d4b0f9a1e2d3c4b5a6978"],
    )

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must not be blank")
        return value.strip()

    @field_validator("ddl_dialect")
    @classmethod
    def _known_dialect(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.lower() not in DDL_DIALECTS:
            raise ValueError(f"unknown ddl_dialect; one of: {', '.join(DDL_DIALECTS)}")
        return value.lower()


class TableParts(BaseModel):
    """A table's unambiguous display ``name`` and its parts ``schema`` and ``table``."""

    # "schema" would shadow BaseModel.schema: the field is schema_part, serialized as "schema".
    model_config = ConfigDict(serialize_by_alias=True)

    name: str = Field(
        description="unambiguous qualified name: schema.table (on SQLite, the table name), a part "
        'holding a dot, a double quote or a glob character double-quoted: "a.b".x',
        examples=["public.orders"],
    )

    @computed_field(  # type: ignore[prop-decorator]
        alias="schema", description="the schema part; null where the source has none", examples=["public"]
    )
    @property
    def schema_part(self) -> str | None:
        return parts_of(self.name)[0]

    @computed_field(  # type: ignore[prop-decorator]
        description="the table part, as the warehouse names it", examples=["orders"]
    )
    @property
    def table(self) -> str:
        return parts_of(self.name)[1]


class RoutedTable(TableParts):
    """One table of the answer."""

    score: float = Field(
        ge=0,
        le=1,
        description="with an LM judge, the probability that the SQL needs this table (votes, the judge's "
        "error rates and the lexical prior; a via_fk table ranks just below the weaker table it joins); "
        "with the lexical judge, the lexical match scaled to the best one",
        examples=[0.95],
    )
    votes_for: int = Field(ge=0, description="chunks whose verdict was relevant", examples=[2])
    votes_total: int = Field(ge=0, description="chunks that judged this table", examples=[2])
    reason: str = Field(description="the judge's short reason", examples=["holds the orders to count"])
    via_fk: bool = Field(
        description="added because it lies on the FK join path between two chosen tables", examples=[False]
    )


class RouteStatsBody(BaseModel):
    """Counters of one route."""

    tables_considered: int = Field(description="tables in the catalog snapshot", examples=[62])
    chunks: int = Field(description="chunks sent to the LM", examples=[4])
    lm_calls: int = Field(description="LM calls made, retries included", examples=[4])
    failed_chunks: int = Field(description="chunks without a usable verdict", examples=[0])
    dropped_names: int = Field(description="names in LM replies that were not in the chunk", examples=[0])
    prompt_tokens: int = Field(description="prompt tokens over all calls", examples=[5200])
    completion_tokens: int = Field(description="completion tokens over all calls", examples=[900])
    elapsed_ms: float = Field(description="time spent routing, in milliseconds", examples=[412.5])
    shortlisted: int = Field(
        default=0, description="tables sent to the LM (the shortlist; 0 for the lexical judge)", examples=[62]
    )
    cache: str = Field(
        default="off", description="route cache: 'hit' (no LM call), 'miss' or 'off'", examples=["miss"]
    )
    cached_chunks: int = Field(default=0, description="chunks answered from the verdict cache", examples=[0])
    unfinished_chunks: int = Field(
        default=0, description="chunks still being judged at the deadline, then cancelled", examples=[0]
    )
    retries: int = Field(
        default=0, description="LM calls repeated after a 429, 5xx, reset, timeout or bad reply", examples=[1]
    )
    hedges: int = Field(
        default=0, description="second copies sent of calls slower than the usual latency", examples=[0]
    )
    deadline_ms: float | None = Field(
        default=None, description="the deadline this route ran under, in milliseconds", examples=[30000.0]
    )
    cached_prompt_tokens: int = Field(
        default=0,
        description="prompt tokens the LM provider served from its prefix cache (billed at the cached price)",
        examples=[4100],
    )
    first_pass_chunks: int = Field(
        default=0,
        description="chunks of compact cards (names and column names) judged first, on a large shortlist "
        "(TABLEROUTER_FIRST_PASS_ABOVE); 0: no first pass",
        examples=[0],
    )
    first_pass_kept: int = Field(
        default=0, description="tables the first pass sent on to full cards and the usual votes", examples=[0]
    )
    token_budget: int | None = Field(
        default=None, description="the token budget this route ran under; null: none", examples=[None]
    )
    estimated_tokens: int = Field(
        default=0,
        description="the tokens the route's plan was estimated to spend before its calls",
        examples=[0],
    )
    memory_matches: int = Field(
        default=0,
        description="similar past questions the route memory found (they lend a prior)",
        examples=[0],
    )
    memory_similarity: float = Field(
        default=0.0, description="the similarity (0 to 1) of the closest past question", examples=[0.0]
    )
    memory_tables: int = Field(
        default=0, description="tables the route memory lent a prior (their reason says so)", examples=[0]
    )
    memory_shortlist: int = Field(
        default=0,
        description="tables the LM judged because the memory was confident "
        "(TABLEROUTER_MEMORY_SHORTLIST_SIZE); 0: the shortlist was not narrowed",
        examples=[0],
    )
    cost_usd: float | None = Field(
        default=None,
        description="what this route's LM calls cost in US dollars at the configured prices; "
        "null when the LM's prices are unknown or no LM is configured",
        examples=[0.0012],
    )
    extra_rounds: int = Field(
        default=0,
        description="rounds of extra votes for tables whose votes disagreed or whose score was near the "
        "decision (TABLEROUTER_MAX_EXTRA_VOTES); 0: every table was settled by its first votes",
        examples=[1],
    )
    extra_chunks: int = Field(default=0, description="chunks of those rounds (in 'chunks')", examples=[1])
    extra_lm_calls: int = Field(
        default=0, description="LM calls of those rounds (also counted in 'lm_calls')", examples=[1]
    )
    extra_votes: int = Field(default=0, description="table verdicts those rounds asked for", examples=[6])
    extra_tokens: int = Field(
        default=0,
        description="prompt and completion tokens of those rounds (also in 'prompt_tokens' and "
        "'completion_tokens')",
        examples=[900],
    )


class FollowUpBody(BaseModel):
    """How a follow-up was read: its earlier turns, and what it kept of the previous route."""

    context_turns: int = Field(
        description="earlier questions the judge read with this one (history and the previous route's)",
        examples=[1],
    )
    previous_route_id: str | None = Field(
        description="the route this one follows up; null when only 'history' was given",
        examples=["3f2c0c8e5b8d4b0f9a1e2d3c4b5a6978"],
    )
    kept_from_previous: list[str] = Field(
        description="tables of the previous route this answer keeps, in this answer's order",
        examples=[["public.customers", "public.orders"]],
    )


class RouteResponse(BaseModel):
    """The tables a question's SQL needs, best first."""

    route_id: str = Field(
        description="identifier of this route", examples=["3f2c0c8e5b8d4b0f9a1e2d3c4b5a6978"]
    )
    source: str = Field(description="the warehouse routed over", examples=["demo"])
    catalog_version: str = Field(
        description="version (content hash) of the catalog snapshot used", examples=["9b1d2c3e4f5a6b7c"]
    )
    judge: str = Field(
        description="'lexical' (BM25, no LM) or the LM model that judged", examples=["openai/gpt-4o-mini"]
    )
    judge_kind: JudgeKind = Field(description="whether an LM or the lexical ranking judged", examples=["lm"])
    catalog_stale: bool = Field(
        description="the snapshot is not confirmed by the latest refresh (warehouse unreachable, or "
        "a stored snapshot not yet refreshed since start-up)",
        examples=[False],
    )
    catalog_age_s: float | None = Field(
        description="seconds since the warehouse was last seen to match the snapshot", examples=[42.0]
    )
    tables: list[RoutedTable] = Field(description="ranked tables, best first")
    partial: bool = Field(
        default=False,
        description="true when some tables got no verdict: their chunks did not answer before the "
        "deadline or failed; they are listed in 'unjudged'; or when the deadline stopped the extra votes "
        "with tables 'unsettled'",
        examples=[False],
    )
    unjudged: list[str] = Field(
        default_factory=list,
        description="tables no answered chunk judged, best lexical (BM25) match first; they rank "
        "below every table in 'tables'",
        examples=[["public.order_archive"]],
    )
    unsettled: list[str] = Field(
        default_factory=list,
        description="tables whose votes still disagreed (or whose score stayed near the decision) when the "
        "extra votes stopped: at the deadline (then 'partial' is true) or at the route's extra-vote budget",
        examples=[[]],
    )
    coverage: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="the estimated probability that every table the SQL needs is in 'tables' (from each "
        "left-out table's score); null for the lexical judge, whose scores are not probabilities",
        examples=[0.97],
    )
    budget_cut: bool = Field(
        default=False,
        description="true when a token budget (the route's, or what the key's daily budget had left "
        "once its other routes in flight held theirs) kept some tables of the scope from the LM; the "
        "best of them by lexical match are listed in 'budget_unjudged', the budget in 'budget_cut_reason'",
        examples=[False],
    )
    budget_unjudged: list[str] = Field(
        default_factory=list,
        description="up to 100 tables the token budget kept from the LM, best lexical (BM25) match first",
        examples=[[]],
    )
    budget_cut_reason: str | None = Field(
        default=None,
        description="which budget cut the route when 'budget_cut' is true: the route's token budget, or "
        "the key's daily token or dollar budget; null otherwise",
        examples=[None],
    )
    degraded: bool = Field(
        default=False,
        description="true when the LM could not judge (its circuit breaker is open, or no chunk "
        "answered) and the lexical judge answered instead",
        examples=[False],
    )
    degraded_reason: str | None = Field(
        default=None,
        description="why the route is degraded",
        examples=["the LM backend's circuit breaker is open"],
    )
    stats: RouteStatsBody = Field(description="counters of this route")
    schema_detail: RouteSchemaDetail | None = Field(
        default=None,
        # Absent, not null, without 'include': the answer stays as it was for every client.
        exclude_if=lambda value: value is None,
        description="the returned tables' columns, DDL and joins, as 'include' asked; absent without it",
    )
    follow_up: FollowUpBody | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="how a follow-up (history or previous_route_id) was read; absent for a question alone",
    )


class SourceSummary(BaseModel):
    """A configured warehouse."""

    name: str = Field(description="the source's configured name", examples=["demo"])
    dialect: str = Field(description="SQL dialect of the warehouse", examples=["postgresql"])
    introspection: Literal["bulk", "generic"] = Field(
        description="how the catalog is read: bulk (the engine's own catalog queries) or generic "
        "(SQLAlchemy's Inspector); docs/sources.md",
        examples=["bulk"],
    )
    schemas: list[str] | None = Field(
        description="the configured schemas; null: every non-system one", examples=[["public"]]
    )
    exclude_schemas: list[str] = Field(
        default_factory=list, description="schemas left out of the introspected ones", examples=[[]]
    )
    status: SourceStatus = Field(
        description="ready: a snapshot serves (maybe stale); loading: the first read is running; "
        "failed: no snapshot and the last read failed (retried in the background); empty: no table "
        "in the source's schemas",
        examples=["ready"],
    )
    catalog_version: str | None = Field(
        description="current snapshot version; null before the first", examples=["9b1d2c3e4f5a6b7c"]
    )
    tables: int = Field(description="tables in the current snapshot", examples=[62])
    last_refresh: datetime | None = Field(
        description="when the warehouse was last seen to match the snapshot (possibly before a restart)",
        examples=["2025-01-31T12:00:00Z"],
    )
    last_error: str | None = Field(description="error of the last refresh, if it failed", examples=[None])
    error_kind: ReadErrorKind | None = Field(
        default=None, description="why the last refresh failed, if it did", examples=[None]
    )
    retry_in_s: float | None = Field(
        default=None, description="seconds until a failed source is tried again", examples=[None]
    )
    note: str | None = Field(default=None, description="what needs attention, if anything", examples=[None])
    catalog_stale: bool = Field(
        description="the snapshot is not confirmed by the latest refresh attempt", examples=[False]
    )
    catalog_age_s: float | None = Field(
        description="seconds since the warehouse was last seen to match the snapshot", examples=[42.0]
    )


class SourceList(BaseModel):
    """Every configured warehouse."""

    sources: list[SourceSummary] = Field(description="the sources, in configuration order")
    store: StoreState = Field(
        description="the service's own store: ok, or degraded (down or not migrated yet: routes are "
        "still answered, keys verified before keep working; docs/store.md)",
        examples=["ok"],
    )


class ColumnInfo(BaseModel):
    """A column of a table."""

    name: str = Field(description="column name", examples=["customer_id"])
    type: str = Field(description="SQL type as the warehouse reports it", examples=["integer"])
    nullable: bool = Field(description="whether NULL is allowed", examples=[False])
    comment: str | None = Field(default=None, description="the column's comment", examples=["the buyer"])


class ForeignKeyInfo(BaseModel):
    """A foreign key of a table."""

    columns: list[str] = Field(description="the referencing columns", examples=[["customer_id"]])
    ref_table: str = Field(
        description="qualified name of the referenced table", examples=["public.customers"]
    )
    ref_columns: list[str] = Field(description="the referenced columns", examples=[["id"]])


class TableInfo(TableParts):
    """A table of the catalog snapshot."""

    kind: TableKind = Field(description="base table or view", examples=["table"])
    comment: str | None = Field(
        default=None, description="the table's comment", examples=["one row per order"]
    )
    columns: list[ColumnInfo] = Field(description="columns in table order")
    primary_key: list[str] = Field(description="primary key columns; empty if none", examples=[["id"]])
    foreign_keys: list[ForeignKeyInfo] = Field(description="foreign keys to other tables")
    untrusted_metadata: list[str] = Field(
        default_factory=list,
        description="metadata that reads as instructions to the LM: a comment listed here is left "
        "out of the LM's prompt; 'name' means the LM's verdict on the table is ignored",
        examples=[["comment", "column note comment"]],
    )
    row_count: int | None = Field(
        default=None,
        description="rows as the engine counts them without a scan (null: not known); 0 marks an empty table",
        examples=[1200],
    )
    evidence: str | None = Field(
        default=None,
        description="why the table is probably not the one a query reads (a copy, a backup, empty); "
        "it ranks lower and its card says so",
        examples=["looks like a copy of public.orders"],
    )


class TableList(BaseModel):
    """A page of tables of one source's current snapshot."""

    source: str = Field(description="the source's name", examples=["demo"])
    catalog_version: str = Field(description="version of the snapshot listed", examples=["9b1d2c3e4f5a6b7c"])
    total: int = Field(description="tables in the snapshot", examples=[62])
    tables: list[TableInfo] = Field(description="this page of tables, in name order")


class Health(BaseModel):
    """Liveness or readiness."""

    status: HealthStatus = Field(description="the probe's answer", examples=["ok"])
    sources: dict[str, bool] = Field(
        default_factory=dict,
        description="per source: whether a snapshot is loaded; empty when API keys are required "
        "(the probe is open to all, source names are not: GET /sources lists them)",
        examples=[{"demo": True}],
    )
    store: StoreState | None = Field(
        default=None,
        description="readiness only: the service's own store; degraded: down or not migrated yet, "
        "routes are still answered (docs/store.md)",
        examples=["ok"],
    )
