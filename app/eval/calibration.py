"""What the eval's scores mean: a reliability table, recall by gold count, and the default answer.

- The reliability table bins every returned table's score and gives, per bin, the mean score
  (predicted) and the share of those tables that are gold (observed). A route returns its top
  k tables only, so the low bins see just the best of the unlikely tables.
- Recall by gold count: strict recall@5 and @10 over the questions with 1, 2-3 and 4+ gold
  tables; multi-table questions are where a missed table hides.
- The default answer: what a request without ``min_score`` and ``top_k`` gets - the tables
  scored at or above the threshold among the first ``top_k`` - and how often it holds every
  gold table, at what size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.eval.metrics import QuestionRow

__all__ = [
    "BINS",
    "GOLD_GROUPS",
    "SWEEP",
    "by_gold_count",
    "default_answer",
    "reliability",
    "threshold_sweep",
]

BINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.97, 1.0001)
GOLD_GROUPS = (("1", 1, 1), ("2-3", 2, 3), ("4+", 4, 10_000))
# Thresholds the report tries for the default answer: how the default was chosen.
SWEEP = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)


def reliability(rows: Sequence[QuestionRow]) -> list[dict[str, Any]]:
    """Per score bin: how many tables, their mean score, and the share that is gold."""
    counts = [[0, 0.0, 0] for _ in BINS[:-1]]
    for row in rows:
        gold = set(row.gold)
        for name, score in zip(row.ranked, row.scores, strict=True):
            i = next(j for j in range(len(BINS) - 1) if score < BINS[j + 1])
            counts[i][0] += 1
            counts[i][1] += score
            counts[i][2] += name in gold
    return [
        {
            "bin": f"{BINS[i]:.2f}-{min(1.0, BINS[i + 1]):.2f}",
            "tables": n,
            "predicted": round(total / n, 4) if n else None,
            "observed": round(hits / n, 4) if n else None,
        }
        for i, (n, total, hits) in enumerate(counts)
    ]


def _strict(rows: Sequence[QuestionRow], k: int) -> float:
    return round(sum(set(r.gold) <= set(r.ranked[:k]) for r in rows) / len(rows), 4) if rows else 0.0


def by_gold_count(rows: Sequence[QuestionRow]) -> list[dict[str, Any]]:
    """Strict recall@5 and @10 of the questions with 1, 2-3 and 4+ gold tables."""
    groups = []
    for label, low, high in GOLD_GROUPS:
        group = [r for r in rows if low <= len(r.gold) <= high]
        groups.append(
            {
                "gold": label,
                "questions": len(group),
                "strict_recall@5": _strict(group, 5),
                "strict_recall@10": _strict(group, 10),
            }
        )
    return groups


def default_answer(rows: Sequence[QuestionRow], threshold: float, top_k: int) -> dict[str, float]:
    """How often the default answer (score >= threshold among the first top_k) holds every gold table."""
    complete, sizes, gold = [], [], []
    for row in rows:
        kept = [n for n, s in zip(row.ranked[:top_k], row.scores[:top_k], strict=True) if s >= threshold]
        complete.append(set(row.gold) <= set(kept))
        sizes.append(len(kept))
        gold.append(len(row.gold))
    n = len(rows) or 1
    return {
        "threshold": threshold,
        "top_k": top_k,
        "complete": round(sum(complete) / n, 4),
        "tables_mean": round(sum(sizes) / n, 3),
        "gold_mean": round(sum(gold) / n, 3),
    }


def threshold_sweep(rows: Sequence[QuestionRow], top_k: int) -> list[dict[str, float]]:
    """The default answer at each threshold of SWEEP."""
    return [default_answer(rows, threshold, top_k) for threshold in SWEEP]
