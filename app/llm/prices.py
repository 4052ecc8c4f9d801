"""What LM tokens cost: prompt, cached prompt and completion prices per million tokens.

Prices come from the settings when any is given (``TABLEROUTER_LLM_PRICE_INPUT`` /
``_CACHED_INPUT`` / ``_OUTPUT``, dollars per million tokens), else from LiteLLM's model cost map
(bundled with LiteLLM, read locally) for the configured model - or for
``TABLEROUTER_LLM_PRICE_MODEL``, when a proxy or a self-hosted name serves a known model. An
unknown model has no prices: routes then say ``cost_usd: null`` rather than a made-up figure.

The map is LiteLLM's bundled JSON file, read without importing LiteLLM: the import alone takes
seconds (6 s on a 2-core machine), and DSPy's calls to an OpenAI-compatible server do not need it,
so a service would otherwise start that much later only to learn its prices. LiteLLM serves a
row under other names too (a row's ``alias_of`` names the row it stands for; a row's
``aliases`` lists more names for it): ``_names`` follows both, and a test holds every name's
prices equal to ``litellm.model_cost``'s.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from app.settings import Settings

__all__ = ["Prices", "prices_for"]

log = logging.getLogger(__name__)
PER_MILLION = 1_000_000


@dataclass(frozen=True, slots=True)
class Prices:
    """Dollars per million tokens."""

    input: float
    cached_input: float
    output: float

    def cost(self, prompt_tokens: int, cached_prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for one call's (or route's) tokens; cached prompt tokens are part of the prompt's."""
        cached = min(cached_prompt_tokens, prompt_tokens)
        dollars = (
            (prompt_tokens - cached) * self.input
            + cached * self.cached_input
            + completion_tokens * self.output
        )
        return dollars / PER_MILLION


COST_MAP_FILE = "model_prices_and_context_window_backup.json"


def _names(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every name LiteLLM serves a row under: its own, its ``aliases``, and rows ``alias_of`` it."""
    entries = {name: row for name, row in rows.items() if isinstance(row, dict) and "alias_of" not in row}
    for row in list(entries.values()):
        for alias in row.get("aliases") or ():
            entries.setdefault(alias, row)  # a canonical row keeps its own name
    for name, row in rows.items():
        if isinstance(row, dict) and row.get("alias_of") in entries:
            entries.setdefault(name, entries[row["alias_of"]])
    return entries


@cache
def _cost_map() -> dict[str, dict[str, Any]]:
    """LiteLLM's bundled price list by model name; empty without LiteLLM (never the network)."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("LiteLLM's price list %s cannot be read: LM prices unknown", COST_MAP_FILE)
        return {}
    return _names(rows) if isinstance(rows, dict) else {}


def _from_cost_map(model: str) -> Prices | None:
    cost_map = _cost_map()
    # "openai/gpt-4o-mini" is listed as "gpt-4o-mini"; other providers keep their prefix.
    entry = cost_map.get(model) or cost_map.get(model.split("/", 1)[-1])
    if not entry or entry.get("input_cost_per_token") is None:
        return None
    per_token_in = float(entry["input_cost_per_token"])
    per_token_out = float(entry.get("output_cost_per_token") or 0.0)
    # A model without a cached price bills cached tokens as any other (no discount known).
    per_token_cached = float(entry.get("cache_read_input_token_cost") or per_token_in)
    return Prices(per_token_in * PER_MILLION, per_token_cached * PER_MILLION, per_token_out * PER_MILLION)


def prices_for(settings: Settings) -> Prices | None:
    """The prices of the configured LM, or None without an LM or when they are unknown."""
    given = (settings.llm_price_input, settings.llm_price_cached_input, settings.llm_price_output)
    if any(p is not None for p in given):
        price_in = settings.llm_price_input or 0.0
        cached = settings.llm_price_cached_input
        return Prices(price_in, price_in if cached is None else cached, settings.llm_price_output or 0.0)
    model = settings.llm_price_model or settings.llm_model
    if not model:
        return None
    prices = _from_cost_map(model)
    if prices is None:
        log.info("no price known for LM %r: routes report cost_usd null (set TABLEROUTER_LLM_PRICE_*)", model)
    return prices
