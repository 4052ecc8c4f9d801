"""Scoring routes against gold tables.

For each question with at least one gold table in the schema (scored questions):

- ``recall@k``: the fraction of its gold tables in the top k; ``strict_recall@k``: 1 when all are.
- ``precision@threshold``: of the returned tables scored at or above the service's relevance
  threshold (what a default request, without ``min_score``, would return), the fraction that
  are gold; averaged over questions where that set is not empty (``selected_empty`` counts
  the others). ``recall@threshold`` is the recall of that same set.
- ``mrr``: the mean reciprocal rank of the first gold table (0 when none is in the ranking).

A failed route (non-200 or no answer) counts as an empty ranking. LM calls, tokens and wall
time are reported per question as mean, p50 and p95 over the routes that answered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["KS", "QuestionRow", "percentile", "score_rows"]

KS = (1, 3, 5, 10, 20)


@dataclass
class QuestionRow:
    """One question, its gold tables as the service names them, and what the route returned."""

    id: str
    db_id: str
    question: str
    gold: list[str]
    status: int
    ranked: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    via_fk: list[bool] = field(default_factory=list)
    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    extra_tokens: int = 0
    coverage: float | None = None
    cost_usd: float | None = None  # None: the LM's prices are unknown
    wall_ms: float = 0.0
    service_ms: float = 0.0
    partial: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as plain JSON values, with its gold tables missing from the top 10."""
        row = asdict(self)
        row["missed@10"] = sorted(set(self.gold) - set(self.ranked[:10]))
        return row


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _spread(name: str, values: Sequence[float]) -> dict[str, float]:
    return {
        f"{name}_mean": round(_mean(values), 3),
        f"{name}_p50": round(percentile(values, 50), 3),
        f"{name}_p95": round(percentile(values, 95), 3),
    }


def _ranking_metrics(scored: Sequence[QuestionRow], threshold: float) -> dict[str, float | int]:
    metrics: dict[str, float | int] = {}
    for k in KS:
        recalls = [len(set(r.gold) & set(r.ranked[:k])) / len(r.gold) for r in scored]
        strict = [float(set(r.gold) <= set(r.ranked[:k])) for r in scored]
        metrics[f"recall@{k}"] = round(_mean(recalls), 4)
        metrics[f"strict_recall@{k}"] = round(_mean(strict), 4)
    precisions, threshold_recalls, sizes = [], [], []
    for row in scored:
        selected = {n for n, s in zip(row.ranked, row.scores, strict=True) if s >= threshold}
        sizes.append(len(selected))
        threshold_recalls.append(len(selected & set(row.gold)) / len(row.gold))
        if selected:
            precisions.append(len(selected & set(row.gold)) / len(selected))
    metrics["precision@threshold"] = round(_mean(precisions), 4)
    metrics["recall@threshold"] = round(_mean(threshold_recalls), 4)
    metrics["selected_mean"] = round(_mean(sizes), 3)
    metrics["selected_empty"] = len(scored) - len(precisions)
    reciprocal = []
    for row in scored:
        ranks = [i for i, name in enumerate(row.ranked, start=1) if name in set(row.gold)]
        reciprocal.append(1 / ranks[0] if ranks else 0.0)
    metrics["mrr"] = round(_mean(reciprocal), 4)
    return metrics


def score_rows(rows: Sequence[QuestionRow], threshold: float) -> dict[str, float | int]:
    """The ``metrics`` object of a report."""
    scored = [r for r in rows if r.gold]
    answered = [r for r in rows if r.status == 200]
    metrics: dict[str, float | int] = {
        "questions": len(rows),
        "scored": len(scored),
        "no_gold": len(rows) - len(scored),
        "failed": len(rows) - len(answered),
        "partial": sum(r.partial for r in answered),
    }
    metrics.update(_ranking_metrics(scored, threshold))
    metrics.update(_spread("lm_calls", [r.lm_calls for r in answered]))
    metrics.update(_spread("tokens", [r.prompt_tokens + r.completion_tokens for r in answered]))
    metrics.update(_spread("prompt_tokens", [r.prompt_tokens for r in answered]))
    metrics.update(_spread("completion_tokens", [r.completion_tokens for r in answered]))
    metrics.update(_spread("cached_prompt_tokens", [r.cached_prompt_tokens for r in answered]))
    prompt = sum(r.prompt_tokens for r in answered)
    cached = sum(r.cached_prompt_tokens for r in answered)
    metrics["cached_prompt_share"] = round(cached / prompt, 4) if prompt else 0.0
    # What a route costs against its first round alone (tokens of the extra votes left out).
    tokens = sum(r.prompt_tokens + r.completion_tokens for r in answered)
    first = tokens - sum(r.extra_tokens for r in answered)
    metrics["tokens_vs_first_round"] = round(tokens / first, 4) if first else 0.0
    costs = [r.cost_usd for r in answered if r.cost_usd is not None]
    if costs:
        metrics["cost_usd_mean"] = round(_mean(costs), 6)
        metrics["cost_usd_p95"] = round(percentile(costs, 95), 6)
    metrics.update(_spread("wall_ms", [r.wall_ms for r in answered]))
    return metrics
