"""Service settings: one pydantic-settings model, env prefix ``TABLEROUTER_``, also read from ``.env``.

The env names (``TABLEROUTER_SOURCES``, ``TABLEROUTER_LLM_MODEL`` ...) are a contract with
scripts outside the project; rename nothing without a deprecation path.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_SOURCE = "demo"


class SourceConfig(BaseModel):
    """One named warehouse: an SQLAlchemy async URL and the schemas to introspect."""

    url: SecretStr = Field(description="SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db")
    schemas: list[str] | None = Field(
        default=None, description="Schemas to introspect; default: the connection's default schema"
    )


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="TABLEROUTER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    sources: dict[str, SourceConfig] = Field(
        default_factory=dict,
        description="JSON object of named warehouses; empty means the bundled demo warehouse",
    )
    llm_model: str | None = Field(default=None, description="DSPy/LiteLLM model string; unset: lexical judge")
    llm_api_base: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout: Annotated[float, Field(gt=0)] = 30.0
    llm_max_concurrency: Annotated[int, Field(ge=1, le=4096)] = 64
    llm_max_tokens: Annotated[int, Field(ge=16)] = 1024
    llm_temperature: float = 0.0
    chunk_tokens: Annotated[int, Field(ge=200)] = 2000
    votes: Annotated[int, Field(ge=1, le=9)] = 2
    seed: int = 0
    database_url: str = "sqlite+aiosqlite:///./tablerouter.db"
    demo_warehouse_path: str = "./tablerouter-demo.db"
    max_body_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    relevance_threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    llm_rpm_limit: Annotated[int, Field(ge=0)] = 0
    llm_tpm_limit: Annotated[int, Field(ge=0)] = 0
    # Scale-out: with a Redis URL the LM limits above hold for all replicas together.
    redis_url: SecretStr | None = None
    redis_key_prefix: str = "tablerouter"
    redis_lease_seconds: Annotated[float, Field(ge=0.5, le=600)] = 10.0
    replicas: Annotated[int, Field(ge=1, le=1024)] = 1
    metrics_enabled: bool = True
    log_format: Literal["text", "json"] = "text"
    otel_enabled: bool = False


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings read from the environment, built once on first use (never at import)."""
    return Settings()
