"""One evaluation run: load, build the warehouse, start the judge and the service, route, score.

Judges: ``oracle`` is the LM simulator answering from the gold tables (flipped at ``fnr`` /
``fpr``); ``sim`` its lexical policy; ``lexical`` the service's BM25 judge without an LM;
``lm`` whatever ``TABLEROUTER_LLM_*`` the environment configures. The oracle file is keyed
by question text, so questions with the same text share the union of their gold tables
(counted as ``oracle_merged``); in union mode that can only add false positives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import secrets
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import SecretStr

from app.api.schemas import RouteRequest
from app.eval.calibration import by_gold_count, default_answer, reliability, threshold_sweep
from app.eval.memory_eval import declared_edges, import_memory, memory_rows, mined_edges, used_edges
from app.eval.metrics import QuestionRow, score_rows
from app.eval.report import save_report
from app.eval.runner import RouteJob, RouteOutcome, catalog_names, route_all, serving, write_oracle
from app.eval.spider import Database, GoldProblem, Question, load_databases, load_questions, resolve_gold
from app.eval.variants import (
    Codes,
    copy_outranks_share,
    fill_tables,
    renamed_gold,
    with_codes,
    with_copies,
    write_manifest,
)
from app.eval.warehouse import Warehouse, build_warehouse, drop_warehouse, plan_warehouse
from app.settings import Settings
from app.simulator.costs import ProfileName
from app.simulator.service import SimulatorConfig, running_simulator

__all__ = ["DEFAULT_WAREHOUSE_URL", "EvalOptions", "evaluate"]

DEFAULT_WAREHOUSE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SIM_MODEL = "openai/tablerouter-sim"
_EXAMPLES = 20

Judge = Literal["oracle", "sim", "lexical", "lm"]


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """Everything ``tablerouter eval`` can be told."""

    tables: Path
    questions: Path
    union: bool = False
    judge: Judge = "oracle"
    fnr: float = 0.0
    fpr: float = 0.0
    seed: int = 0
    warehouse_url: str = DEFAULT_WAREHOUSE_URL
    schema_prefix: str = "ev_"
    limit: int | None = None
    use_evidence: bool = False
    concurrency: int = 32
    top_k: int = 20
    keep_warehouse: bool = False
    progress: bool = True
    # Only the questions with at least this many gold tables (the multi-table questions).
    min_gold: int = 0
    # Where the report is written, before the warehouse is dropped (a failed clean-up loses nothing).
    out: Path | None = None
    # What the simulator's calls cost: its latency profile (and prefix cache), and the model whose
    # prices the report's dollars use.
    sim_profile: ProfileName | None = None
    price_model: str | None = "gpt-4o-mini"
    # Questions (as --questions) imported into the route memory between a pass without and one with it.
    memory: Path | None = None
    no_fks: bool = False  # load the warehouse without its foreign keys (mined joins only)
    # A harder warehouse made from the benchmark (app.eval.variants).
    variant: Literal["copies", "codes", "codes-dbt"] | None = None


def _sample(questions: list[Question], limit: int | None, seed: int) -> list[Question]:
    """A seeded sample of ``limit`` questions, in file order (all of them without a limit)."""
    if limit is None or limit >= len(questions):
        return questions
    keep = set(random.Random(seed).sample(range(len(questions)), limit))
    return [q for i, q in enumerate(questions) if i in keep]


def _text(question: Question, use_evidence: bool) -> str:
    if use_evidence and question.evidence.strip():
        return f"{question.question}\nHint: {question.evidence}"
    return question.question


@contextlib.asynccontextmanager
async def _judge_settings(
    options: EvalOptions, wh: Warehouse, oracle: dict[str, set[str]], manifest: Path | None = None
) -> AsyncIterator[tuple[Settings, str | None]]:
    """The service settings for the judge, with the simulator running if it needs one."""
    sources = wh.source_configs()
    if manifest is not None:
        sources = {name: c.model_copy(update={"dbt_manifest": str(manifest)}) for name, c in sources.items()}
    if options.judge == "lexical":
        yield Settings(sources=sources, llm_model=None), None
        return
    if options.judge == "lm":
        settings = Settings(sources=sources)
        if not settings.llm_model:
            raise ValueError(
                "--judge lm needs TABLEROUTER_LLM_MODEL (and its API settings) in the environment"
            )
        yield settings, None
        return
    with tempfile.TemporaryDirectory(prefix="tablerouter-eval-") as tmp:
        oracle_file = Path(tmp) / "oracle.jsonl"
        write_oracle(oracle_file, oracle)
        policy: Literal["oracle", "lexical"] = "oracle" if options.judge == "oracle" else "lexical"
        config = SimulatorConfig(
            port=0,
            policy=policy,
            oracle=oracle_file if policy == "oracle" else None,
            fnr=options.fnr,
            fpr=options.fpr,
            seed=options.seed,
            profile=options.sim_profile,
        )
        async with running_simulator(config) as sim_url:
            # No key from the environment travels to the simulator.
            yield (
                Settings(
                    sources=sources,
                    llm_model=SIM_MODEL,
                    llm_api_base=f"{sim_url}/v1",
                    llm_api_key=None,
                    llm_price_model=options.price_model,
                ),
                sim_url,
            )


def _with_admin_key(settings: Settings, admin_key: str, memory: bool = False) -> Settings:
    """``settings`` with keys required and ``admin_key`` as the admin key (no per-key limits).

    Measuring the memory turns the route and verdict caches off: the pass with the memory must
    not reuse the LM calls of the pass without it.
    """
    update: dict[str, Any] = {"auth": True, "admin_key": SecretStr(admin_key)}
    if memory:
        update |= {"route_cache_size": 0, "verdict_cache_size": 0, "memory_refresh_s": 0}
    return settings.model_copy(update=update)


async def _import_memory(
    client: httpx.AsyncClient,
    options: EvalOptions,
    databases: dict[str, Database],
    wh: Warehouse,
    routed: list[Question],
) -> dict[str, Any]:
    """Import ``options.memory`` through the service; counts and the join-graph figure."""
    assert options.memory is not None
    remembered = [q for q in load_questions(options.memory) if q.db_id in wh.placed]
    resolved, _ = resolve_gold(remembered, databases)
    result = await import_memory(client, memory_rows(remembered, resolved, wh, options.union))
    used = used_edges(routed, wh) & declared_edges(databases.values(), wh)
    recovered = used & mined_edges(result.pop("mined"))
    result["file"] = str(options.memory)
    result["join_graph"] = {
        "mined": result["joins"],
        "used_declared": len(used),
        "recovered": len(recovered),
        "recovered_share": round(len(recovered) / len(used), 4) if used else 0.0,
    }
    return result


async def _check_catalog(client: httpx.AsyncClient, wh: Warehouse) -> int:
    """Every planned table is in the service's snapshot under its planned name; returns the count."""
    listed = (await client.get("/sources")).json()["sources"]
    for source in listed:
        if source["catalog_version"] is None:
            raise RuntimeError(f"source {source['name']!r} has no snapshot: {source['last_error']}")
    total = 0
    for source in wh.urls:
        found = await catalog_names(client, source)
        planned = {n for p in wh.placed.values() if p.source == source for n in p.tables.values()}
        missing = sorted(planned - found)
        if missing:
            raise RuntimeError(f"the service's catalog lacks {len(missing)} tables, e.g. {missing[:5]}")
        total += len(found)
    return total


def _row(question: Question, gold: list[str], outcome: RouteOutcome) -> QuestionRow:
    return QuestionRow(
        id=question.id,
        db_id=question.db_id,
        question=question.question,
        gold=gold,
        status=outcome.status,
        ranked=[name for name, _, _ in outcome.tables],
        scores=[score for _, score, _ in outcome.tables],
        via_fk=[via for _, _, via in outcome.tables],
        lm_calls=outcome.lm_calls,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        cached_prompt_tokens=outcome.cached_prompt_tokens,
        extra_tokens=outcome.extra_tokens,
        coverage=outcome.coverage,
        cost_usd=outcome.cost_usd,
        wall_ms=round(outcome.wall_ms, 1),
        service_ms=outcome.service_ms,
        partial=outcome.partial,
        error=outcome.error,
    )


def _benchmark(
    options: EvalOptions,
) -> tuple[dict[str, Database], dict[str, Database], Codes | None, list[Question], list[Question]]:
    """The databases as the run loads them (and as the file has them), the variant's renames, the
    questions to route and the questions naming no database of the file."""
    databases = load_databases(options.tables)
    if options.variant == "copies":
        databases = {db_id: with_copies(db) for db_id, db in databases.items()}
    all_questions = load_questions(options.questions)
    originals, codes = databases, None
    if options.variant in ("codes", "codes-dbt"):
        databases, codes = with_codes(databases)
        all_questions = [renamed_gold(q, codes) for q in all_questions]
    questions = [q for q in all_questions if q.db_id in databases]
    unknown_db = [q for q in all_questions if q.db_id not in databases]
    if options.min_gold > 0:
        # Gold tables come from the gold SQL, so the filter resolves every question first.
        every, _ = resolve_gold(questions, databases)
        questions = [q for q in questions if len(every[q.id]) >= options.min_gold]
    return databases, originals, codes, _sample(questions, options.limit, options.seed), unknown_db


async def evaluate(options: EvalOptions) -> dict[str, Any]:
    """Run one evaluation and return its report (``config``, ``metrics``, ``rows`` and the rest)."""
    databases, originals, codes, questions, unknown_db = _benchmark(options)
    resolved, problems = resolve_gold(questions, databases)
    used = {q.db_id for q in questions}
    chosen = [db for db in databases.values() if options.union or db.db_id in used]
    loaded = [dataclasses.replace(db, foreign_keys=()) for db in chosen] if options.no_fks else chosen
    wh = plan_warehouse(loaded, options.warehouse_url, options.union, options.schema_prefix)
    gold = {q.id: [wh.placed[q.db_id].tables[t] for t in resolved[q.id]] for q in questions}
    oracle: dict[str, set[str]] = defaultdict(set)
    for q in questions:
        oracle[q.question].update(gold[q.id])
    merged = len(questions) - len(oracle)
    jobs = [
        RouteJob(q.id, _text(q, options.use_evidence), *wh.route_scope(q.db_id, options.union))
        for q in questions
    ]
    await build_warehouse(wh)
    if options.variant == "copies" and wh.dialect == "postgresql":
        await fill_tables(wh.urls[next(iter(wh.urls))], [p.schema for p in wh.placed.values() if p.schema])
    started = datetime.now(UTC)
    # The run's service requires a key like any deployment; the harness holds the only one.
    admin_key = secrets.token_urlsafe(32)
    memory: dict[str, Any] | None = None
    without: list[RouteOutcome] | None = None
    manifest_dir = tempfile.TemporaryDirectory(prefix="tablerouter-eval-dbt-")
    manifest = None
    if options.variant == "codes-dbt" and codes is not None:
        manifest = Path(manifest_dir.name) / "manifest.json"
        write_manifest(manifest, originals, codes, {p.db_id: p.schema for p in wh.placed.values()})
    try:
        async with (
            _judge_settings(options, wh, oracle, manifest) as (settings, sim_url),
            serving(_with_admin_key(settings, admin_key, options.memory is not None)) as url,
            httpx.AsyncClient(
                base_url=url,
                headers={"authorization": f"Bearer {admin_key}"},
                timeout=httpx.Timeout(settings.llm_timeout * 4 + 60),
                limits=httpx.Limits(max_connections=options.concurrency),
            ) as client,
        ):
            n_tables = await _check_catalog(client, wh)
            if options.memory is not None:
                without = await route_all(
                    client,
                    jobs,
                    top_k=options.top_k,
                    concurrency=options.concurrency,
                    progress=options.progress,
                )
                memory = await _import_memory(client, options, databases, wh, questions)
            outcomes = await route_all(
                client, jobs, top_k=options.top_k, concurrency=options.concurrency, progress=options.progress
            )
            sim_stats = (await client.get(f"{sim_url}/stats")).json() if sim_url else None
        rows = [_row(q, gold[q.id], o) for q, o in zip(questions, outcomes, strict=True)]
        report = _report(options, settings, rows, started, wh, chosen, n_tables, problems, unknown_db, merged)
        report["simulator_stats"] = sim_stats
        if memory is not None and without is not None:
            before = [_row(q, gold[q.id], o) for q, o in zip(questions, without, strict=True)]
            report["memory"] = memory
            report["without_memory"] = score_rows(before, settings.relevance_threshold)
        if options.out is not None:
            save_report(report, options.out)
    finally:
        manifest_dir.cleanup()
        if not options.keep_warehouse:
            await drop_warehouse(wh)
    return report


def _report(  # noqa: PLR0917 - one run's parts, put together once
    options: EvalOptions,
    settings: Settings,
    rows: list[QuestionRow],
    started: datetime,
    wh: Warehouse,
    chosen: list[Database],
    n_tables: int,
    problems: list[GoldProblem],
    unknown_db: list[Question],
    merged: int,
) -> dict[str, Any]:
    scored = [r for r in rows if r.gold]
    top_k = RouteRequest.model_fields["top_k"].default
    config = {
        **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "judge_model": settings.llm_model or "lexical",
        "relevance_threshold": settings.relevance_threshold,
        "votes": settings.votes,
        "max_extra_votes": settings.max_extra_votes,
        "extra_vote_token_share": settings.extra_vote_token_share,
        "chunk_tokens": settings.chunk_tokens,
        "llm_max_concurrency": settings.llm_max_concurrency,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
    }
    report_rows = [r.to_dict() for r in rows]
    return {
        "config": config,
        "metrics": score_rows(rows, settings.relevance_threshold),
        "calibration": {
            "reliability": reliability(scored),
            "by_gold_count": by_gold_count(scored),
            "default_answer": default_answer(scored, settings.relevance_threshold, top_k),
            "threshold_sweep": threshold_sweep(scored, top_k),
        },
        **({"copies": copy_outranks_share(report_rows)} if options.variant == "copies" else {}),
        "warehouse": {
            "dialect": wh.dialect,
            "databases": len(chosen),
            "tables": n_tables,
            "schemas": {p.db_id: p.schema for p in wh.placed.values()},
            "renamed": [asdict(r) for r in wh.renamed],
            "coerced_fks": sum(d.coerced_fks for d in wh.ddl.values()),
            "skipped_fks": [s for d in wh.ddl.values() for s in d.skipped_fks],
        },
        "gold_problems": {"count": len(problems), "examples": [asdict(p) for p in problems[:_EXAMPLES]]},
        "unknown_db": {"count": len(unknown_db), "examples": [q.db_id for q in unknown_db[:_EXAMPLES]]},
        "oracle_merged": merged,
        "rows": report_rows,
    }
