"""A failed LM attempt as the retry loop sees it, and the backoff before the next one.

Apart from ``app/llm/failures.py`` (which classifies DSPy's exceptions) so the reliability layer
the service always builds does not import DSPy: a lexical deployment never loads it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Failure", "backoff_s"]


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, as the retry loop and the breaker see it."""

    reason: str
    retryable: bool
    backend_fault: bool
    retry_after: float | None = None
    parse: bool = False


def backoff_s(retry: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number ``retry`` (0 for the first)."""
    return rng.uniform(0.0, min(cap_s, base_s * 2.0**retry))
