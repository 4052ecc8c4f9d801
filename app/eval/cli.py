"""``tablerouter eval``: table recall of the real service on a Spider-format benchmark.

The option names are a contract with scripts outside the project.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from app.eval.harness import DEFAULT_WAREHOUSE_URL, EvalOptions, evaluate
from app.eval.memory_eval import format_memory
from app.eval.report import format_comparison, format_report, load_report, plot_reports

__all__ = ["add_arguments", "run"]


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``eval`` options."""
    parser.add_argument("--tables", type=Path, help="Spider-format schema file (tables.json)")
    parser.add_argument("--questions", type=Path, help="questions: JSON list or JSON lines")
    parser.add_argument("--union", action="store_true", help="route each question over every table at once")
    parser.add_argument("--judge", choices=["oracle", "sim", "lexical", "lm"], default="oracle")
    parser.add_argument("--fnr", type=_rate, default=0.0, help="oracle: chance a gold table is missed")
    parser.add_argument("--fpr", type=_rate, default=0.0, help="oracle: chance another table is picked")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulator and of --limit")
    parser.add_argument("--warehouse-url", default=DEFAULT_WAREHOUSE_URL, help="PostgreSQL or SQLite URL")
    parser.add_argument("--schema-prefix", default="ev_", help="PostgreSQL schema of a db is PREFIX+db_id")
    parser.add_argument("--limit", type=int, help="a seeded sample of N questions")
    parser.add_argument("--use-evidence", action="store_true", help="append each question's evidence hint")
    parser.add_argument("--concurrency", type=int, default=32, help="routes in flight")
    parser.add_argument("--top-k", type=int, default=20, help="tables asked for per route")
    parser.add_argument(
        "--min-gold", type=int, default=0, help="only questions whose gold SQL reads at least N tables"
    )
    parser.add_argument("--keep-warehouse", action="store_true", help="do not drop the schemas at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--sim-profile",
        choices=["hosted-small", "vllm-8b"],
        help="the simulator's latency and prefix-cache model",
    )
    parser.add_argument(
        "--price-model", default="gpt-4o-mini", help="price the simulator's tokens as this model's (cost_usd)"
    )
    parser.add_argument(
        "--memory",
        type=Path,
        help="questions (as --questions) to import into the route memory through the service; the "
        "questions are routed without and with it, side by side",
    )
    parser.add_argument("--no-fks", action="store_true", help="load the warehouse without foreign keys")
    parser.add_argument(
        "--variant",
        choices=["copies", "codes", "codes-dbt"],
        help="copies: each table plus a backup and an empty staging copy; codes: tables renamed T0001 ...;"
        " codes-dbt: the same, described in a dbt manifest",
    )
    parser.add_argument("--out", type=Path, help="write the report as JSON")
    parser.add_argument("--plot", type=Path, help="write recall@k curves as PNG")
    parser.add_argument("--compare", type=Path, nargs="+", metavar="REPORT", help="compare saved reports")


def _options(args: argparse.Namespace) -> EvalOptions:
    return EvalOptions(
        tables=args.tables,
        questions=args.questions,
        union=args.union,
        judge=args.judge,
        fnr=args.fnr,
        fpr=args.fpr,
        seed=args.seed,
        warehouse_url=args.warehouse_url,
        schema_prefix=args.schema_prefix,
        limit=args.limit,
        use_evidence=args.use_evidence,
        concurrency=args.concurrency,
        top_k=args.top_k,
        keep_warehouse=args.keep_warehouse,
        min_gold=args.min_gold,
        out=args.out,
        progress=not args.no_progress,
        sim_profile=args.sim_profile,
        price_model=args.price_model,
        memory=args.memory,
        no_fks=args.no_fks,
        variant=args.variant,
    )


def _compare(args: argparse.Namespace) -> int:
    reports = [load_report(path) for path in args.compare]
    labels = [path.stem for path in args.compare]
    print(format_comparison(reports, labels))
    if args.plot:
        plot_reports(reports, labels, args.plot)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the evaluation (or the comparison); 2 on bad input."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.compare:
            return _compare(args)
        if args.tables is None or args.questions is None:
            print("eval: --tables and --questions are required (unless --compare)", file=sys.stderr)
            return 2
        if not 1 <= args.top_k <= 500 or args.concurrency < 1:
            print("eval: --top-k must be 1..500 and --concurrency at least 1", file=sys.stderr)
            return 2
        report = asyncio.run(evaluate(_options(args)))
    except (ValueError, OSError) as exc:
        print(f"eval: {exc}", file=sys.stderr)
        return 2
    print(format_report(report))
    if "memory" in report:
        print("\n" + format_memory(report))
    if "copies" in report:
        copies = report["copies"]
        print(f"a copy outranks its original in {copies['copy_outranks']} of {copies['questions']} questions")
    if args.plot:
        plot_reports([report], [args.out.stem if args.out else "run"], args.plot)
    return 0
