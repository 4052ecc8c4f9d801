"""Service settings: one pydantic-settings model, env prefix ``TABLEROUTER_``, also read from ``.env``.

The env names (``TABLEROUTER_SOURCES``, ``TABLEROUTER_LLM_MODEL`` ...) are a contract with
scripts outside the project; rename nothing without a deprecation path.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_SOURCE = "demo"
MIN_ADMIN_KEY_CHARS = 32


class SourceConfig(BaseModel):
    """One named warehouse: an SQLAlchemy async URL and the schemas to introspect."""

    # A misspelt key ("schema" for "schemas") must not be dropped silently: start-up refuses it.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: SecretStr = Field(
        description="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db, duckdb:///path/file.duckdb, "
        "snowflake://... (any installed dialect; docs/sources.md); dbt:// for a dbt-only source"
    )
    schemas: list[str] | None = Field(
        default=None,
        description="Schemas to introspect; default: every non-system schema (PostgreSQL: all but "
        "pg_* and information_schema; MySQL/MariaDB: the URL's database; SQLite: main)",
    )
    exclude_schemas: list[str] = Field(
        default_factory=list, description="Schemas left out of the introspected ones"
    )
    introspection: Literal["bulk", "generic"] = Field(
        default="bulk",
        description="bulk: the engine's own catalog in a few queries (PostgreSQL, MySQL/MariaDB, "
        "DuckDB); generic: SQLAlchemy's Inspector (get_multi_*), for an engine that speaks one of "
        "those protocols without all of its catalog. Dialects without a bulk reader are always "
        "read the generic way",
    )
    dbt_manifest: str | None = Field(
        default=None,
        description="a dbt project's manifest.json (path or http(s) URL): descriptions, tags, "
        "relationships tests and exposures enrich the matching tables; re-read on every refresh",
    )
    dbt_catalog: str | None = Field(
        default=None,
        description="a dbt project's catalog.json (path or http(s) URL): the tables of a dbt:// source, "
        "and row counts where the adapter records them",
    )


class ReliabilitySettings(BaseModel):
    """Deadlines, retries, hedging, the circuit breaker and back-pressure of the LM fan-out."""

    route_deadline_ms: Annotated[int, Field(ge=100, le=600_000)] = Field(
        default=30_000, description="a route's deadline; a request's deadline_ms is capped by it"
    )
    retry_max_attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        default=3, description="attempts per chunk for transient failures (429, 5xx, resets, timeouts)"
    )
    retry_backoff_ms: Annotated[float, Field(gt=0)] = Field(
        default=100.0, description="base of the full-jitter exponential backoff"
    )
    retry_backoff_max_ms: Annotated[float, Field(gt=0)] = Field(
        default=5_000.0, description="cap of the full-jitter exponential backoff"
    )
    retry_budget_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.1, description="retries allowed as a share of LM calls over the window"
    )
    retry_budget_min: Annotated[int, Field(ge=0)] = Field(
        default=10, description="retries allowed per window whatever the traffic"
    )
    retry_budget_window_s: Annotated[float, Field(gt=0)] = Field(
        default=10.0,
        description="the budget's sliding window; at least 2 x LLM_TIMEOUT in use, so a timed-out "
        "call's retry is judged against the calls of its time",
    )
    hedging: bool = Field(default=False, description="send a slow chunk once more after ~p95 latency")
    hedge_quantile: Annotated[float, Field(gt=0, lt=1)] = Field(
        default=0.95,
        description="when to hedge: a call still running past this quantile of recent call latencies",
    )
    hedge_budget_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.05, description="hedges allowed as a share of LM calls over the retry window"
    )
    breaker_failures: Annotated[int, Field(ge=1)] = Field(
        default=20, description="backend failures in a row that open the circuit breaker"
    )
    breaker_cooldown_s: Annotated[float, Field(gt=0)] = Field(
        default=5.0, description="how long the breaker stays open before a probe"
    )
    route_queue_limit: Annotated[int, Field(ge=1)] = Field(
        default=256, description="routes in the LM stage at once; past it, 429 with Retry-After"
    )


class AuthSettings(BaseModel):
    """API keys, what they may see, and how much they may spend (app.auth)."""

    auth: bool = Field(
        default=True,
        description="require an API key (Authorization: Bearer) on every endpoint but the probes and "
        "the docs (on/off); off serves everyone with everything visible: local development only",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="a static admin key for bootstrap (create the stored keys with it), at least 32 "
        "characters; it has no limits",
    )

    @field_validator("admin_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        # A short or empty admin key would be guessable; an empty one is "no admin key".
        if key is not None and not key.get_secret_value():
            return None
        if key is not None and len(key.get_secret_value()) < MIN_ADMIN_KEY_CHARS:
            raise ValueError(f"TABLEROUTER_ADMIN_KEY needs at least {MIN_ADMIN_KEY_CHARS} characters")
        return key

    metrics_auth: bool = Field(
        default=False,
        description="GET /metrics needs an admin key too (Prometheus: authorization: {credentials: <key>})",
    )
    key_cache_s: Annotated[float, Field(ge=0, le=300)] = Field(
        default=10.0,
        description="seconds a looked-up key is trusted before the store is asked again; while the store "
        "is down, a key verified before is trusted until it answers (docs/store.md)",
    )
    key_rate_limit: Annotated[int, Field(ge=0)] = Field(
        default=120, description="routes per minute per key (a batch counts each route); 0: unlimited"
    )
    key_daily_tokens: Annotated[int, Field(ge=0)] = Field(
        default=5_000_000, description="LM tokens (prompt + completion) per key per UTC day; 0: unlimited"
    )
    key_daily_usd: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0.0,
        description="dollars of LM tokens (at the configured LM prices) per key per UTC day; 0: no dollar "
        "budget. Routes whose LM has no known price count no dollars",
    )


class Settings(BaseSettings, ReliabilitySettings, AuthSettings):
    """Everything the service reads from its environment."""

    # hide_input_in_errors: a validation error must never echo a value (a source's URL holds a
    # password), whoever prints it - our one-line report, uvicorn or alembic's traceback.
    model_config = SettingsConfigDict(
        env_prefix="TABLEROUTER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    sources: dict[Annotated[str, Field(min_length=1, max_length=200)], SourceConfig] = Field(
        default_factory=dict,
        description="JSON object of named warehouses; empty means the bundled demo warehouse. "
        'E.g. {"sales": {"url": "postgresql+asyncpg://user:pw@host/db", "schemas": ["public"]}}; '
        "MySQL/MariaDB as mysql+asyncmy://..., SQLite as sqlite+aiosqlite:///path.db",
    )
    llm_model: str | None = Field(
        default=None,
        description="DSPy/LiteLLM model string: openai/gpt-4o-mini, ollama_chat/qwen2.5, hosted_vllm/...; "
        "unset: the lexical (BM25) judge, no LM at all",
    )
    llm_api_base: str | None = Field(
        default=None,
        description="base URL of the LM endpoint, e.g. http://localhost:8001/v1; unset: the provider's",
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="the LM provider's key (secret: masked in logs, errors and answers)"
    )
    llm_lean_chat: bool = Field(
        default=True,
        description="call openai/ and hosted_vllm/ models through the lean chat-completions LM; "
        "false: through DSPy's own engines",
    )
    llm_cache_hint: Literal["auto", "off", "prompt_cache_key", "cache_control"] = Field(
        default="auto",
        description="prompt-cache hint per chunk: OpenAI's prompt_cache_key, Anthropic's cache_control "
        "breakpoint after the cards; auto picks by the model (OpenAI's own API, anthropic/ models)",
    )
    llm_timeout: Annotated[float, Field(gt=0)] = Field(
        default=30.0, description="seconds one LM call may take (never more than the route's time left)"
    )
    llm_max_concurrency: Annotated[int, Field(ge=1, le=4096)] = Field(
        default=64,
        description="LM calls in flight for the backend, across all requests; with REDIS_URL, for all "
        "replicas together, else per worker process",
    )
    llm_max_tokens: Annotated[int, Field(ge=16)] = Field(
        default=1024, description="most tokens the judge may generate in one LM call"
    )
    llm_temperature: float = Field(default=0.0, description="sampling temperature of the judge")
    judge_format: Literal["short", "verdicts"] = Field(
        default="short",
        description="the judge's reply: 'short' names only the needed tables, the cards before the question "
        "(a stable prompt prefix for the provider's cache); 'verdicts', a verdict for every table after "
        "the question, is the format before it, kept for cost comparisons only",
    )
    # With short replies a call's output grows with the tables it names, not with the chunk, so
    # fewer, larger chunks cut what every call repeats (instructions, question, markers: ~350
    # tokens). Measured with bench/cost.py (Spider union, hosted-small, 6 warm routes): 2,000 ->
    # $0.0081 and p50 2.47 s a route, 2,500 -> $0.0080 and 2.34 s, 3,000 -> $0.0077 and 2.68 s
    # (fewer calls, but each waits for a longer reply).
    chunk_tokens: Annotated[int, Field(ge=200)] = Field(
        default=2500, description="estimated token budget of table cards per chunk"
    )
    votes: Annotated[int, Field(ge=1, le=9)] = Field(
        default=2, description="chunks each table appears in, each time with other neighbours"
    )
    seed: int = Field(default=0, description="seed of the chunk shuffle (routes are reproducible)")
    database_url: SecretStr = Field(
        default=SecretStr("sqlite+aiosqlite:///./tablerouter.db"),
        description="the service's own store: postgresql+asyncpg://... or sqlite+aiosqlite:///path.db; "
        "default: SQLite at ./tablerouter.db",
    )
    migrate_on_start: bool = Field(default=True, description="run the store's migrations at start-up")
    refresh_interval_s: float = Field(
        default=300.0,
        ge=0,
        description="seconds between background catalog refreshes of every source; 0: only on request",
    )
    introspect_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="seconds one introspection of a source may take, connecting included; a refresh "
        "that takes longer fails and keeps the old snapshot",
    )
    route_log_queue_size: int = Field(
        default=10_000,
        ge=1,
        description="routes waiting to be written to the route log; beyond it a route is not logged "
        "(counted as dropped in GET /stats)",
    )
    route_log_batch_size: Annotated[int, Field(ge=1, le=5000)] = Field(
        default=500, description="most routes written in one insert transaction"
    )
    # Store outages (app.store.health, app.store.route_log_writer): degrade, never deny.
    route_log_spill_dir: str = Field(
        default="./tablerouter-spill",
        description="folder where routes go while the store is down and the route-log queue is full; "
        "replayed into the store when it answers again; empty: no spill, such routes are dropped",
    )
    route_log_spill_max_mb: Annotated[int, Field(ge=1)] = Field(
        default=1024, description="most megabytes of routes one process spills before dropping (counted)"
    )
    route_log_retry_max_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=5.0, description="longest wait between two tries of a route-log write while the store is down"
    )
    store_timeout_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=2.0,
        description="seconds a key look-up or a store probe may take before the store counts as down "
        "(keys verified before are then served from the cache: docs/store.md)",
    )
    route_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="days a route without feedback is kept (routes with feedback are kept); 0: forever",
    )
    snapshot_keep: int = Field(
        default=10, ge=1, description="newest catalog snapshots kept per source (plus any a kept route used)"
    )
    cleanup_interval_s: float = Field(
        default=3600.0, ge=0, description="seconds between retention clean-ups; 0: never"
    )
    demo_warehouse_path: str = Field(
        default="./tablerouter-demo.db",
        description="where the SQLite demo warehouse is built when SOURCES is empty",
    )
    max_body_bytes: Annotated[int, Field(ge=1024)] = Field(
        default=64 * 1024, description="largest request body in bytes; a larger one is answered 413"
    )
    # Chosen with tablerouter eval (oracle fnr 0.1 / fpr 0.05, union; docs/evaluation.md): 0.4 against
    # 0.2 took Spider dev's strict recall@10 from 0.9855 to 1.0 (BIRD dev: 0.9993 to 0.9980).
    prior_weight: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.4,
        description="how much the shortlist's lexical score counts in a table's probability: the best "
        "lexical match starts with e^(15 x weight) times the odds of a table without one; 0: not at all",
    )
    table_evidence: bool = Field(
        default=True,
        description="copies, backups and empty tables (by name and row count) get a card hint and a lower "
        "score, and a live table ranks above its copy; off: judged like any table",
    )
    # Recall-first (docs/evaluation.md): at 0.05 the default answer held every gold table for 98.0 %
    # of Spider dev and 97.8 % of BIRD dev questions, with 4.22 and 2.75 tables (1.51 and 1.94 gold).
    relevance_threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.05,
        description="default min_score of a route: tables scored below it (a probability of relevance "
        "with an LM judge) are left out; recall-first, since a missing table breaks the SQL",
    )
    judge_fnr: Annotated[float, Field(gt=0, lt=0.5)] = Field(
        default=0.1,
        description="how often the judge is taken to miss a needed table (scores are probabilities)",
    )
    judge_fpr: Annotated[float, Field(gt=0, lt=0.5)] | None = Field(
        default=None,
        description="how often the judge is taken to pick an unneeded table; unset: estimated per route "
        "from how often a table's first two votes disagree, shrunk toward 0.05",
    )
    expected_tables: Annotated[float, Field(gt=0, le=100)] = Field(
        default=3.0, description="tables a question is taken to need before any vote (the prior's base rate)"
    )
    max_extra_votes: Annotated[int, Field(ge=0)] = Field(
        default=400,
        description="table verdicts a route may ask for beyond its first round, for tables whose votes "
        "disagree or whose score is near the decision; 0: no extra votes",
    )
    extra_vote_token_share: Annotated[float, Field(ge=0, le=10)] = Field(
        default=0.3,
        description="the extra votes' tokens, at most this share of the first round's (estimated) tokens",
    )
    followup_max_turns: Annotated[int, Field(ge=0, le=50)] = Field(
        default=6,
        description="earlier questions of a follow-up (history, previous_route_id) the judge reads, newest "
        "first; 0: follow-ups are read alone",
    )
    followup_max_chars: Annotated[int, Field(ge=100, le=100_000)] = Field(
        default=2000,
        description="characters of a follow-up's earlier questions the judge reads, newest first",
    )
    max_batch: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=32, description="most requests in one POST /route/batch"
    )
    # Performance at warehouse scale (app.routing.retrieval.shortlist, app.routing.caching.route_cache).
    shortlist_size: Annotated[int, Field(ge=1)] = Field(
        default=3000,
        description="tables the LM judges per route: the best M by the shortlist; a catalog (or "
        "schemas scope) of at most M tables is judged whole",
    )
    first_pass_above: Annotated[int, Field(ge=0)] = Field(
        default=1500,
        description="a shortlist of more tables than this is judged first on compact cards (name and column "
        "names) in large chunks, and only the tables that pass get full cards; 0: never",
    )
    first_pass_chunk_tokens: Annotated[int, Field(ge=500)] = Field(
        default=8000, description="the size of a first pass's chunks, in estimated tokens"
    )
    first_pass_keep: Annotated[int, Field(ge=0)] = Field(
        default=20,
        description="the best tables by lexical prior that get full cards whatever the first pass said",
    )
    memory_neighbours: Annotated[int, Field(ge=0, le=50)] = Field(
        default=5,
        description="similar past questions of the route memory whose tables get a prior and a place in "
        "the shortlist; 0: the memory is not used at route time",
    )
    memory_min_similarity: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.3,
        description="the least similarity (cosine of words, or rescaled embeddings cosine) of a past "
        "question the memory lends",
    )
    memory_dense_floor: Annotated[float, Field(ge=0, lt=1)] = Field(
        default=0.2,
        description="with embeddings configured: the cosine the embeddings model typically gives unrelated "
        "questions; a past question's dense cosine c counts as similarity (c - floor) / (1 - floor), and an "
        "entry's similarity is the higher of that and its cosine of words (docs/memory.md)",
    )
    memory_weight: Annotated[float, Field(ge=0, le=2)] = Field(
        default=1.0,
        description="how much a remembered table's similarity adds to its shortlist (lexical) score",
    )
    memory_confident_similarity: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.3,
        description="from this similarity of the closest past question the LM judges only the "
        "memory_shortlist_size best tables (stats.memory_shortlist says so); 1: never",
    )
    memory_shortlist_size: Annotated[int, Field(ge=1)] = Field(
        default=20,
        description="tables the LM judges when the route memory is confident: the best by shortlist "
        "score with the memory's prior added (docs/memory.md has the recall and tokens it was set by)",
    )
    memory_refresh_s: Annotated[float, Field(ge=0)] = Field(
        default=30.0,
        description="seconds between loads of what other replicas remembered; 0: only this replica's writes",
    )
    memory_retention_days: Annotated[float, Field(ge=0)] = Field(
        default=0.0, description="days a route-memory entry is kept; 0: until forgotten"
    )
    route_token_budget: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="LM tokens (prompt + completion, estimated before the calls) one route may spend; the "
        "shortlist is cut to fit and the answer says so (budget_cut); a request's token_budget is capped "
        "by it; 0: no cap",
    )
    embedding_model: str | None = Field(
        default=None,
        description="an OpenAI-compatible embedding model (DSPy/LiteLLM string), e.g. "
        "openai/text-embedding-3-small, fused with BM25 into the shortlist; unset: lexical shortlist",
    )
    embedding_api_base: str | None = Field(
        default=None,
        description="base URL of the /embeddings endpoint (the simulator serves one); "
        "unset: https://api.openai.com/v1",
    )
    embedding_api_key: SecretStr | None = Field(
        default=None, description="the embeddings provider key (secret)"
    )
    route_cache_size: Annotated[int, Field(ge=0)] = Field(
        default=1024, description="whole routes kept (LRU); 0 turns the route cache and single-flight off"
    )
    verdict_cache_size: Annotated[int, Field(ge=0)] = Field(
        default=65536, description="per-chunk LM verdicts kept (LRU); 0 turns it off"
    )
    # What a route costs (app.llm.prices): dollars per million tokens; unset: LiteLLM's cost map.
    llm_price_input: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="dollars per million uncached prompt tokens (overrides the cost map)"
    )
    llm_price_cached_input: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="dollars per million cached prompt tokens; unset: the input price"
    )
    llm_price_output: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="dollars per million completion tokens"
    )
    llm_price_model: str | None = Field(
        default=None, description="look prices up as this model (a proxy or self-hosted name for a known one)"
    )
    llm_rpm_limit: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="requests per minute to the LM (with REDIS_URL, all replicas together); 0: no limit",
    )
    llm_tpm_limit: Annotated[int, Field(ge=0)] = Field(
        default=0,
        description="tokens per minute to the LM, a call booking its chunk's estimated prompt tokens "
        "(with REDIS_URL, all replicas together); 0: no limit",
    )
    # Scale-out: with a Redis URL the LM limits above and the per-key limits hold for all
    # replicas together, and the route cache is shared by them (app.redis_link and its users).
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis shared by the replicas: the LM limits and the per-key limits then hold for "
        "all replicas together, and the route cache is shared; unset: per process",
    )
    redis_key_prefix: str = Field(
        default="tablerouter", description="prefix of every Redis key (one per deployment sharing a Redis)"
    )
    redis_lease_seconds: Annotated[float, Field(ge=0.5, le=600)] = Field(
        default=10.0,
        description="life of an LM slot lease unless renewed: how long a dead replica's slots stay taken",
    )
    replicas: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=1,
        description="replicas the LM limits and the per-key limits are divided by while Redis is "
        "unreachable (each then allows its share)",
    )
    redis_route_ttl_seconds: Annotated[float, Field(gt=0)] = Field(
        default=3600.0, description="how long a route answer stays in the shared cache (Redis)"
    )
    redis_route_lock_seconds: Annotated[float, Field(ge=0.5, le=60)] = Field(
        default=3.0,
        description="lock of a route being computed, renewed while it runs: how long a dead replica's "
        "lock holds the others",
    )
    redis_route_wait_seconds: Annotated[float, Field(ge=0)] = Field(
        default=10.0,
        description="longest wait for another replica's identical route (at most half the route's "
        "deadline) before computing it here",
    )
    redis_route_max_bytes: Annotated[int, Field(ge=256)] = Field(
        default=64 * 1024, description="compressed answers larger than this are not shared"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="JSON list of origins whose browser pages may call the API, e.g. "
        '["https://bi.example.com"]; empty: CORS off',
    )
    metrics_enabled: bool = Field(default=True, description="serve Prometheus metrics at GET /metrics")
    log_format: Literal["text", "json"] = Field(
        default="text", description="json: one JSON object per line, with the route id (the image's default)"
    )
    otel_enabled: bool = Field(
        default=False,
        description="OpenTelemetry traces of the HTTP API (needs the otel extra); the exporter reads "
        "OTEL_EXPORTER_OTLP_ENDPOINT and friends",
    )
    # Above the idle timeout of the load balancers in front (AWS ALB and nginx: 60 s): a server
    # that closes an idle connection first races the balancer reusing it, and the client gets a 502.
    keep_alive_s: Annotated[int, Field(gt=0, le=3600)] = Field(
        default=75,
        description="seconds tablerouter serve keeps an idle client connection open; keep it above the "
        "idle timeout of the load balancer in front (60 s for AWS ALB and nginx), or it may reuse a "
        "connection the server is closing and answer 502",
    )
    # Slowloris: uvicorn waits for ever for a request head that never completes (app.connections).
    header_timeout_s: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = Field(
        default=10.0,
        description="seconds a client has to send a request's head (request line and headers), from "
        "connecting or from the first byte of its next request; then 408 and the connection is closed",
    )
    body_timeout_s: Annotated[float, Field(gt=0, le=600, allow_inf_nan=False)] = Field(
        default=30.0,
        description="seconds a request's whole body has to arrive once the service starts reading it; "
        "then 408 problem+json and the connection is closed",
    )
    max_connections: Annotated[int, Field(ge=0)] = Field(
        default=1000,
        description="open connections (and running requests) per process of tablerouter serve beyond "
        "which a request is answered 503 (uvicorn's limit_concurrency); 0: no cap",
    )
    # Below Kubernetes' default 30 s grace period, so the pod is not killed mid-answer.
    shutdown_timeout_s: Annotated[float, Field(gt=0, lt=30, allow_inf_nan=False)] = Field(
        default=20.0,
        description="seconds tablerouter serve gives requests in flight when it stops (SIGTERM); routes "
        "in flight answer before it with what finished (partial), then the server exits",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings read from the environment, built once on first use (never at import)."""
    return Settings()


def settings_error_line(exc: ValidationError) -> str:
    """What is wrong with the settings, on one line, naming the settings but never their values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        setting = f"TABLEROUTER_{loc[0].upper()}" if loc else "settings"
        if loc[:1] == ["sources"] and len(loc) >= 2:
            said = _source_problem(error["type"], loc[2:], error["msg"])
            problems.append(f"{setting}: source {loc[1]!r} {said}")
            continue
        what = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{'.'.join([setting, *loc[1:]])}: {what}")
    return f"invalid settings ({exc.title}): " + "; ".join(problems)


def _source_problem(kind: str, rest: list[str], msg: str) -> str:
    """One source's problem in words: its misspelt key, its shape or a field's message."""
    if kind == "extra_forbidden" and rest:
        return f"has an unknown key {rest[0]!r}"
    if kind == "model_type" and not rest:
        return 'must be an object such as {"url": "...", "schemas": ["public"]}, not a plain string'
    return f"{'.'.join(rest)}: {msg}" if rest else msg
