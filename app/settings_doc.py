"""The configuration reference (docs/configuration.md), rendered from the ``Settings`` model.

The settings' own descriptions, types, bounds and defaults are the one source of truth; this
module only lays them out, one Markdown table per group. Secret defaults are never printed.
Regenerate with ``python -m app.settings_doc`` (``tests/test_docs.py`` fails when the committed
page differs).
"""

from __future__ import annotations

import argparse
import json
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from app.settings import AuthSettings, ReliabilitySettings, Settings

__all__ = ["DEFAULT_OUT", "SettingsGroup", "main", "render_configuration", "settings_groups"]

DEFAULT_OUT: Final = Path("docs/configuration.md")
COMMAND: Final = "python -m app.settings_doc"


@dataclass(frozen=True, slots=True)
class SettingsGroup:
    """A titled set of settings, rendered as one table."""

    title: str
    about: str
    fields: tuple[str, ...]


# Settings declared on the model itself, grouped by subject. The two mixins (auth, reliability)
# are groups of their own. A field missing here makes the generator fail, so a new setting
# cannot go undocumented.
_OWN_GROUPS: Final = (
    SettingsGroup("Warehouses", "What is routed over.", ("sources", "demo_warehouse_path")),
    SettingsGroup(
        "The LM",
        "The judge's model and the limits of its backend (one limiter per backend, shared by every request).",
        (
            "llm_model",
            "llm_api_base",
            "llm_api_key",
            "llm_lean_chat",
            "llm_cache_hint",
            "llm_timeout",
            "llm_max_concurrency",
            "llm_rpm_limit",
            "llm_tpm_limit",
            "llm_max_tokens",
            "llm_temperature",
        ),
    ),
    SettingsGroup(
        "What a route costs",
        "Prices of the LM's tokens (stats.cost_usd, /metrics) and a per-route token budget.",
        (
            "llm_price_input",
            "llm_price_cached_input",
            "llm_price_output",
            "llm_price_model",
            "route_token_budget",
            "first_pass_above",
            "first_pass_chunk_tokens",
            "first_pass_keep",
        ),
    ),
    SettingsGroup(
        "Routing",
        "Chunks, votes, the shortlist, the caches and the request limits.",
        (
            "judge_format",
            "chunk_tokens",
            "votes",
            "seed",
            "relevance_threshold",
            "prior_weight",
            "judge_fnr",
            "judge_fpr",
            "expected_tables",
            "max_extra_votes",
            "extra_vote_token_share",
            "followup_max_turns",
            "followup_max_chars",
            "table_evidence",
            "shortlist_size",
            "route_cache_size",
            "verdict_cache_size",
            "max_body_bytes",
            "max_batch",
        ),
    ),
    SettingsGroup(
        "Route memory",
        "Past questions and query logs that lend tables a prior (see docs/memory.md).",
        (
            "memory_neighbours",
            "memory_min_similarity",
            "memory_dense_floor",
            "memory_weight",
            "memory_confident_similarity",
            "memory_shortlist_size",
            "memory_refresh_s",
            "memory_retention_days",
        ),
    ),
    SettingsGroup(
        "Embeddings for the shortlist",
        "Optional: dense similarity fused with BM25 into the shortlist.",
        ("embedding_model", "embedding_api_base", "embedding_api_key"),
    ),
    SettingsGroup(
        "The service's own store",
        "Catalog snapshots, the route log and feedback (see docs/store.md).",
        (
            "database_url",
            "migrate_on_start",
            "refresh_interval_s",
            "introspect_timeout_s",
            "route_log_queue_size",
            "route_log_batch_size",
            "route_log_spill_dir",
            "route_log_spill_max_mb",
            "route_log_retry_max_s",
            "store_timeout_s",
            "route_retention_days",
            "snapshot_keep",
            "cleanup_interval_s",
        ),
    ),
    SettingsGroup(
        "Scale-out",
        "What replicas share through Redis (see docs/deployment.md).",
        (
            "redis_url",
            "redis_key_prefix",
            "redis_lease_seconds",
            "replicas",
            "redis_route_ttl_seconds",
            "redis_route_lock_seconds",
            "redis_route_wait_seconds",
            "redis_route_max_bytes",
        ),
    ),
    SettingsGroup(
        "HTTP and observability",
        "Browsers, connections, metrics, logs and traces.",
        (
            "cors_origins",
            "keep_alive_s",
            "header_timeout_s",
            "body_timeout_s",
            "max_connections",
            "shutdown_timeout_s",
            "metrics_enabled",
            "log_format",
            "otel_enabled",
        ),
    ),
)
_MIXIN_GROUPS: Final = (
    (AuthSettings, "API keys, grants and limits"),
    (ReliabilitySettings, "Reliability"),
)
_BOUNDS: Final = (
    (annotated_types.Ge, "≥"),
    (annotated_types.Gt, ">"),
    (annotated_types.Le, "≤"),
    (annotated_types.Lt, "<"),
)


def settings_groups() -> list[SettingsGroup]:
    """Every settings group in page order; raises when a setting belongs to none or to two."""
    groups = list(_OWN_GROUPS)
    for mixin, title in _MIXIN_GROUPS:
        about = (mixin.__doc__ or "").strip().splitlines()[0]
        groups.append(SettingsGroup(title, about, tuple(mixin.model_fields)))
    placed = [name for group in groups for name in group.fields]
    unplaced = sorted(set(Settings.model_fields) - set(placed))
    doubled = sorted({name for name in placed if placed.count(name) > 1})
    unknown = sorted(set(placed) - set(Settings.model_fields))
    if unplaced or doubled or unknown:
        raise ValueError(
            f"settings groups out of date: unplaced {unplaced}, doubled {doubled}, unknown {unknown}"
        )
    return groups


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, types.UnionType):
        name = " or ".join(_type_name(arg) for arg in args if arg is not type(None))
    elif origin is Literal:
        name = "one of " + ", ".join(str(arg) for arg in args)
    elif origin is dict:
        name = f"JSON object of {_type_name(args[1])}"
    elif origin is list:
        name = f"JSON list of {_type_name(args[0])}"
    elif annotation is SecretStr:
        name = "secret str"
    else:
        name = getattr(annotation, "__name__", str(annotation))
    return name


def _bounds(field: FieldInfo) -> str:
    found = [
        f"{sign} {getattr(item, kind.__name__.lower())}"
        for item in field.metadata
        for kind, sign in _BOUNDS
        if isinstance(item, kind)
    ]
    return f" ({', '.join(found)})" if found else ""


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(arg) for arg in get_args(annotation))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if _is_secret(field.annotation) and isinstance(value, SecretStr):
        return "(secret, not shown)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict | list):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _nested_models(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _nested_models(arg)


def _table(rows: Sequence[tuple[str, FieldInfo]], name_header: str) -> list[str]:
    lines = [f"| {name_header} | type | default | description |", "| --- | --- | --- | --- |"]
    for name, field in rows:
        if not field.description:
            raise ValueError(f"setting {name} has no description: add one in app/settings.py")
        kind = _type_name(field.annotation) + _bounds(field)
        lines.append(f"| `{name}` | {_cell(kind)} | {_cell(_default(field))} | {_cell(field.description)} |")
    return lines


def render_configuration() -> str:
    """The whole of docs/configuration.md."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    lines = [
        "# Configuration",
        "",
        f"<!-- Generated from app/settings.py by `{COMMAND}`; do not edit by hand. -->",
        "",
        f"Settings come from the environment (prefix `{prefix}`) or a `.env` file in the working",
        "directory. These names are a contract: scripts outside the project use them. Values that",
        "are not plain text (`SOURCES`, `CORS_ORIGINS`) are JSON. `.env.example` is a commented",
        "example of the few settings a deployment usually sets; secrets (`secret str`) are masked",
        "in logs, errors and answers, and their defaults are not shown here.",
    ]
    for group in settings_groups():
        lines += ["", f"## {group.title}", "", group.about, ""]
        fields = [(name, Settings.model_fields[name]) for name in group.fields]
        lines += _table([(prefix + name.upper(), field) for name, field in fields], "environment variable")
        for name, field in fields:
            for model in _nested_models(field.annotation):
                doc = (model.__doc__ or "").strip().splitlines()[0]
                lines += ["", f"Each value of `{prefix}{name.upper()}` (`{model.__name__}`): {doc}", ""]
                lines += _table(list(model.model_fields.items()), "key")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the configuration page (default docs/configuration.md, relative to the working directory)."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the page")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_configuration(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
