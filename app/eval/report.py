"""Reports: printed as tables, saved as JSON, plotted as recall@k curves, compared side by side."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.eval.metrics import KS

__all__ = ["format_comparison", "format_report", "load_report", "plot_reports", "save_report"]

_COMPARED = (
    *(f"strict_recall@{k}" for k in KS),
    *(f"recall@{k}" for k in KS),
    "precision@threshold",
    "recall@threshold",
    "mrr",
    "lm_calls_mean",
    "tokens_mean",
    "tokens_vs_first_round",
    "wall_ms_p50",
    "wall_ms_p95",
    "failed",
    "partial",
)


def _number(key: str, value: Any) -> str:
    if isinstance(value, float):
        is_rate = "recall" in key or "precision" in key or key == "mrr"
        return f"{value:.4f}" if is_rate else f"{value:.1f}"
    return str(value)


def _describe(config: dict[str, Any]) -> str:
    mode = "union" if config.get("union") else "per database"
    judge = str(config.get("judge"))
    if judge == "oracle":
        judge += f" (fnr {config.get('fnr')}, fpr {config.get('fpr')})"
    return f"{Path(str(config.get('questions'))).name} — {mode}, judge {judge}"


def format_report(report: dict[str, Any]) -> str:
    """A run's report as text tables."""
    m, config = report["metrics"], report["config"]
    lines = [
        _describe(config),
        f"questions {m['questions']} (scored {m['scored']}, no gold in schema {m['no_gold']}), "
        f"failed {m['failed']}, partial {m['partial']}; tables {report['warehouse']['tables']}",
        "",
        f"{'k':<22}" + "".join(f"{k:>8}" for k in KS),
        f"{'recall@k':<22}" + "".join(f"{m[f'recall@{k}']:>8.4f}" for k in KS),
        f"{'strict recall@k':<22}" + "".join(f"{m[f'strict_recall@{k}']:>8.4f}" for k in KS),
        "",
        f"precision@threshold {m['precision@threshold']:.4f}  recall@threshold {m['recall@threshold']:.4f}"
        f"  (threshold {config.get('relevance_threshold')}, {m['selected_mean']:.2f} tables selected,"
        f" {m['selected_empty']} empty)",
        f"MRR {m['mrr']:.4f}",
        "",
        f"{'per question':<22}{'mean':>10}{'p50':>10}{'p95':>10}",
    ]
    rows = (
        ("lm_calls", "LM calls"),
        ("tokens", "tokens"),
        ("prompt_tokens", "prompt tokens"),
        ("cached_prompt_tokens", "cached prompt tokens"),
        ("completion_tokens", "completion tokens"),
        ("wall_ms", "wall ms"),
    )
    for key, label in rows:
        if f"{key}_mean" in m:
            lines.append(
                f"{label:<22}" + "".join(f"{m[f'{key}_{s}']:>10.1f}" for s in ("mean", "p50", "p95"))
            )
    if "cost_usd_mean" in m:
        lines.append(f"{'dollars':<22}{m['cost_usd_mean']:>10.5f}{'':>10}{m['cost_usd_p95']:>10.5f}")
    if "cached_prompt_share" in m:
        lines.append(f"prompt tokens served from the provider's prefix cache: {m['cached_prompt_share']:.1%}")
    if m.get("tokens_vs_first_round"):
        lines.append(f"tokens per route vs its first round alone: {m['tokens_vs_first_round']:.3f}x")
    if "calibration" in report:
        lines += _calibration(report["calibration"])
    problems = report["gold_problems"]
    if problems["count"]:
        examples = ", ".join(f"{p['db_id']}:{p['name']}" for p in problems["examples"][:5])
        lines.append(f"gold tables not in the schema: {problems['count']} (e.g. {examples})")
    renamed = report["warehouse"]["renamed"]
    if renamed:
        examples = ", ".join(f"{r['original']} → {r['name']}" for r in renamed[:3])
        lines.append(f"renamed in the warehouse: {len(renamed)} (e.g. {examples})")
    return "\n".join(lines)


def _calibration(calibration: dict[str, Any]) -> list[str]:
    """The reliability table, recall by gold count and the default answer, as text."""
    d = calibration["default_answer"]
    lines = [
        "",
        f"default answer (score >= {d['threshold']}, top {d['top_k']}): every gold table in it for "
        f"{d['complete']:.1%} of questions, {d['tables_mean']:.2f} tables for {d['gold_mean']:.2f} gold",
        "",
        f"{'gold tables':<14}{'questions':>10}{'strict@5':>10}{'strict@10':>10}",
    ]
    for g in calibration["by_gold_count"]:
        lines.append(
            f"{g['gold']:<14}{g['questions']:>10}{g['strict_recall@5']:>10.4f}{g['strict_recall@10']:>10.4f}"
        )
    lines += [
        "",
        f"{'min_score':<14}{'complete':>10}{'tables':>10}  (the default answer at other thresholds)",
    ]
    for d in calibration.get("threshold_sweep", []):
        lines.append(f"{d['threshold']:<14}{d['complete']:>10.4f}{d['tables_mean']:>10.2f}")
    lines += ["", f"{'score':<14}{'tables':>10}{'predicted':>10}{'observed':>10}  (reliability)"]
    for b in calibration["reliability"]:
        if b["tables"]:
            lines.append(f"{b['bin']:<14}{b['tables']:>10}{b['predicted']:>10.4f}{b['observed']:>10.4f}")
    return lines


def format_comparison(reports: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    """Several runs' metrics side by side, one column per run."""
    width = max(12, *(len(label) + 2 for label in labels))
    lines = [f"{'':<22}" + "".join(f"{label:>{width}}" for label in labels)]
    lines += [f"  {label}: {_describe(r['config'])}" for label, r in zip(labels, reports, strict=True)]
    for key in _COMPARED:
        values = [r["metrics"].get(key, "") for r in reports]
        lines.append(f"{key:<22}" + "".join(f"{_number(key, v):>{width}}" for v in values))
    return "\n".join(lines)


def save_report(report: dict[str, Any], path: Path) -> None:
    """Write ``report`` as indented JSON."""
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def load_report(path: Path) -> dict[str, Any]:
    """A report written by ``save_report``."""
    report = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(report, dict) or "metrics" not in report:
        raise ValueError(f"{path}: not an eval report (no 'metrics')")
    return report


def plot_reports(reports: Sequence[dict[str, Any]], labels: Sequence[str], path: Path) -> None:
    """Recall@k and strict recall@k curves of each run, as a PNG."""
    import matplotlib as mpl  # noqa: PLC0415 - plotting is optional and slow to import

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, prefix, title in ((axes[0], "recall", "recall@k"), (axes[1], "strict_recall", "strict recall@k")):
        for report, label in zip(reports, labels, strict=True):
            ax.plot(KS, [report["metrics"][f"{prefix}@{k}"] for k in KS], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xticks(KS, [str(k) for k in KS])
        ax.set_xlabel("k (tables returned)")
        ax.set_title(title)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean over questions")
    axes[1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
