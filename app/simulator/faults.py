"""Fault injection of the LM simulator: which fault a call gets.

Each call draws one fault from the configured rates, by a hash of (seed, prompt, how many
times this prompt was seen before): the same prompts in the same order of repetition get the
same faults whatever the concurrency, and a retry or hedge of a failed prompt is a fresh draw.
``hang_on_tables`` hangs every prompt whose chunk holds one of the named tables (a poisoned
chunk, for deadline tests), whatever the rates; ``hang_once_on_tables`` hangs only the first call of
each such prompt, so a retry or hedge of it answers (a slow replica, for hedging tests that must
not depend on a random draw).

The kinds, and how the server answers them (``app.simulator.server``):

- ``rate_limit``: 429 with ``Retry-After`` (seconds, may be fractional) and ``retry-after-ms``;
- ``server_error``: 500, OpenAI's error shape;
- ``reset``: the TCP connection is aborted (RST) before any response byte;
- ``hang``: no answer for ``hang_s`` seconds, or until the client gives up;
- ``truncated``: the reply content cut in half mid-JSON, ``finish_reason: length``;
- ``malformed``: the reply content holds a verdict list that is not JSON;
- ``invented``: the verdicts name tables that are not in the chunk, besides the real ones.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Literal

from app.simulator.policy import unit_draw

__all__ = ["FaultKind", "FaultPicker", "FaultRates"]

FaultKind = Literal[
    "none", "rate_limit", "server_error", "reset", "hang", "truncated", "malformed", "invented"
]
RATE_FIELDS: tuple[FaultKind, ...] = (
    "rate_limit",
    "server_error",
    "reset",
    "hang",
    "truncated",
    "malformed",
    "invented",
)
# Occurrence counters kept per distinct prompt; old prompts are forgotten past this many.
MAX_PROMPTS = 100_000


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Chance per call of each fault (they add up to at most 1), and the faults' parameters."""

    rate_limit: float = 0.0
    server_error: float = 0.0
    reset: float = 0.0
    hang: float = 0.0
    truncated: float = 0.0
    malformed: float = 0.0
    invented: float = 0.0
    retry_after_s: float = 1.0
    hang_s: float = 600.0
    hang_on_tables: tuple[str, ...] = ()
    hang_once_on_tables: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        rates = [getattr(self, name) for name in RATE_FIELDS]
        if not all(0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must be in [0, 1] and add up to at most 1: {self}")
        if self.retry_after_s < 0 or self.hang_s < 0:
            raise ValueError("retry_after_s and hang_s must not be negative")

    @classmethod
    def from_mapping(cls, values: dict[str, object]) -> FaultRates:
        """Rates from a JSON object (``POST /faults``); unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(unknown)}")
        converted: dict[str, object] = {}
        for name, value in values.items():
            if name in ("hang_on_tables", "hang_once_on_tables"):
                if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                    raise ValueError(f"{name} must be a list of table names")
                converted[name] = tuple(value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                converted[name] = float(value)
            else:
                raise ValueError(f"{name} must be a number")
        return cls(**converted)  # type: ignore[arg-type]

    def kind_at(self, u: float) -> FaultKind:
        """The fault a uniform draw ``u`` in [0, 1) falls on."""
        edge = 0.0
        for name in RATE_FIELDS:
            edge += getattr(self, name)
            if u < edge:
                return name
        return "none"


class FaultPicker:
    """Draws each call's fault; counts how often each prompt was seen."""

    def __init__(self, rates: FaultRates, seed: int) -> None:
        self.rates = rates
        self.seed = seed
        self._seen: OrderedDict[bytes, int] = OrderedDict()
        self._hang_on = frozenset(t.casefold() for t in rates.hang_on_tables)
        self._hang_once_on = frozenset(t.casefold() for t in rates.hang_once_on_tables)

    def pick(self, prompt_text: str, table_names: tuple[str, ...]) -> FaultKind:
        """The fault of this call of ``prompt_text`` (whose chunk holds ``table_names``)."""
        if self._hang_on and any(name.casefold() in self._hang_on for name in table_names):
            return "hang"
        key = hashlib.blake2b(prompt_text.encode(), digest_size=16).digest()
        occurrence = self._seen.pop(key, 0)
        self._seen[key] = occurrence + 1
        if len(self._seen) > MAX_PROMPTS:
            self._seen.popitem(last=False)
        if occurrence == 0 and any(name.casefold() in self._hang_once_on for name in table_names):
            return "hang"
        if not any(getattr(self.rates, name) for name in RATE_FIELDS):
            return "none"
        return self.rates.kind_at(unit_draw(self.seed, "fault", key.hex(), str(occurrence)))
