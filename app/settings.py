"""Service settings: one pydantic-settings model, env prefix ``TABLEROUTER_``, also read from ``.env``.

The env names (``TABLEROUTER_SOURCES``, ``TABLEROUTER_LLM_MODEL`` ...) are a contract with
scripts outside the project; rename nothing without a deprecation path.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_SOURCE = "demo"
MIN_ADMIN_KEY_CHARS = 32


class SourceConfig(BaseModel):
    """One named warehouse: an SQLAlchemy async URL and the schemas to introspect."""

    url: SecretStr = Field(description="SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db")
    schemas: list[str] | None = Field(
        default=None, description="Schemas to introspect; default: the connection's default schema"
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
    retry_backoff_max_ms: Annotated[float, Field(gt=0)] = 5_000.0
    retry_budget_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.1, description="retries allowed as a share of LM calls over the window"
    )
    retry_budget_min: Annotated[int, Field(ge=0)] = Field(
        default=10, description="retries allowed per window whatever the traffic"
    )
    retry_budget_window_s: Annotated[float, Field(gt=0)] = Field(
        default=10.0, description="the budget's sliding window; at least 2 x LLM_TIMEOUT in use"
    )
    hedging: bool = Field(default=False, description="send a slow chunk once more after ~p95 latency")
    hedge_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.95
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
        description="require an API key (Authorization: Bearer) on every endpoint but the probes; "
        "off only for local development",
    )
    admin_key: SecretStr | None = Field(
        default=None, description="a static admin key for bootstrap (create the stored keys with it)"
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

    metrics_auth: bool = Field(default=False, description="GET /metrics needs an admin key too")
    key_cache_s: Annotated[float, Field(ge=0, le=300)] = Field(
        default=10.0, description="seconds a looked-up key is trusted before the store is asked again"
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

    model_config = SettingsConfigDict(
        env_prefix="TABLEROUTER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    sources: dict[Annotated[str, Field(min_length=1, max_length=200)], SourceConfig] = Field(
        default_factory=dict,
        description="JSON object of named warehouses; empty means the bundled demo warehouse",
    )
    llm_model: str | None = Field(default=None, description="DSPy/LiteLLM model string; unset: lexical judge")
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    llm_lean_chat: bool = Field(
        default=True,
        description="call openai/ and hosted_vllm/ models through the lean chat-completions LM; "
        "false: through DSPy's own engines",
    )
    llm_timeout: Annotated[float, Field(gt=0)] = 30.0
    llm_max_concurrency: Annotated[int, Field(ge=1, le=4096)] = 64
    llm_max_tokens: Annotated[int, Field(ge=16)] = 1024
    llm_temperature: float = 0.0
    chunk_tokens: Annotated[int, Field(ge=200)] = 2000
    votes: Annotated[int, Field(ge=1, le=9)] = 2
    seed: int = 0
    database_url: SecretStr = Field(
        default=SecretStr("sqlite+aiosqlite:///./tablerouter.db"),
        description="the service's own store: postgresql+asyncpg://... or sqlite+aiosqlite:///path.db",
    )
    migrate_on_start: bool = Field(default=True, description="run the store's migrations at start-up")
    refresh_interval_s: float = Field(
        default=300.0, ge=0, description="seconds between catalog refreshes of every source; 0: never"
    )
    introspect_timeout_s: float = Field(
        default=300.0, gt=0, description="seconds one introspection of a source may take, connecting included"
    )
    route_log_queue_size: int = Field(
        default=10_000, ge=1, description="routes waiting to be written to the route log; more are dropped"
    )
    route_log_batch_size: Annotated[int, Field(ge=1, le=5000)] = 500
    route_retention_days: float = Field(
        default=30.0, ge=0, description="days a route without feedback is kept; 0: forever"
    )
    snapshot_keep: int = Field(
        default=10, ge=1, description="newest catalog snapshots kept per source (plus any a kept route used)"
    )
    cleanup_interval_s: float = Field(
        default=3600.0, ge=0, description="seconds between retention clean-ups; 0: never"
    )
    demo_warehouse_path: str = "./tablerouter-demo.db"
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    prior_weight: Annotated[float, Field(ge=0, le=1)] = 0.2
    relevance_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    max_batch: Annotated[int, Field(ge=1, le=1000)] = 32
    # Performance at warehouse scale (app.routing.retrieval.shortlist, app.routing.caching.route_cache).
    shortlist_size: Annotated[int, Field(ge=1)] = 3000
    embedding_model: str | None = Field(
        default=None, description="DSPy/LiteLLM embedding model, e.g. openai/text-embedding-3-small"
    )
    embedding_api_base: str | None = None
    embedding_api_key: SecretStr | None = None
    route_cache_size: Annotated[int, Field(ge=0)] = 1024
    verdict_cache_size: Annotated[int, Field(ge=0)] = 65536
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
    llm_rpm_limit: Annotated[int, Field(ge=0)] = 0
    llm_tpm_limit: Annotated[int, Field(ge=0)] = 0
    # Scale-out: with a Redis URL the LM limits above and the per-key limits hold for all
    # replicas together, and the route cache is shared by them (app.cluster).
    redis_url: SecretStr | None = None
    redis_key_prefix: str = "tablerouter"
    redis_lease_seconds: Annotated[float, Field(ge=0.5, le=600)] = 10.0
    replicas: Annotated[int, Field(ge=1, le=1024)] = 1
    redis_route_ttl_seconds: Annotated[float, Field(gt=0)] = Field(
        default=3600.0, description="how long a route answer stays in the shared cache"
    )
    redis_route_lock_seconds: Annotated[float, Field(ge=0.5, le=60)] = Field(
        default=3.0, description="a route computation's lock; a dead replica's lock expires after it"
    )
    redis_route_wait_seconds: Annotated[float, Field(ge=0)] = Field(
        default=10.0, description="longest wait for another replica's identical route (and half the deadline)"
    )
    redis_route_max_bytes: Annotated[int, Field(ge=256)] = Field(
        default=64 * 1024, description="compressed answers larger than this are not shared"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="JSON list of origins whose browser pages may call the API; empty: CORS off",
    )
    metrics_enabled: bool = True
    log_format: Literal["text", "json"] = "text"
    otel_enabled: bool = False
    # Above the idle timeout of the load balancers in front (AWS ALB and nginx: 60 s): a server
    # that closes an idle connection first races the balancer reusing it, and the client gets a 502.
    keep_alive_s: Annotated[int, Field(gt=0, le=3600)] = Field(
        default=75, description="seconds `tablerouter serve` keeps an idle client connection open"
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings read from the environment, built once on first use (never at import)."""
    return Settings()
