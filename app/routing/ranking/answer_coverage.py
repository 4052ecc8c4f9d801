"""How sure a route is that its answer holds every table the SQL needs (``coverage``).

With each table's probability of relevance taken as independent, the chance that no needed
table is missing is the product of ``1 - p`` over the tables left out of the answer: the
judged ones below the cut, and the ones no vote reached (their prior alone).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["answer_coverage"]


def _log_not_needed(log_odds: float) -> float:
    """``log(1 - p)`` for ``p = sigmoid(log_odds)``, without overflow."""
    if log_odds > 0:
        return -log_odds - math.log1p(math.exp(-log_odds))
    return -math.log1p(math.exp(log_odds))


def answer_coverage(log_odds: Mapping[str, float], answer: Iterable[str]) -> float:
    """The probability that every needed table of ``log_odds`` (every table considered) is in ``answer``."""
    chosen = set(answer)
    total = sum(_log_not_needed(lo) for name, lo in log_odds.items() if name not in chosen)
    return round(math.exp(total), 4)
