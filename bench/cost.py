"""What a route costs with a provider-like LM: before (a verdict for every table, the question first)
and after (short answers, the cards first), side by side in one run.

Part 1, on Spider's 876 tables as one PostgreSQL warehouse (``../shared/datasets/spider``): the
simulator on the ``hosted-small`` profile (400 ms to first token, 0.1 ms per uncached prompt
token, 12 ms per output token, OpenAI-style prefix caching) with the oracle at fnr 0.1 / fpr
0.05; per format 16 cold routes, then 16 other questions warm, 2 at a time; the caches of the
service off. Prints route wall p50/p95, prompt / cached / completion tokens and dollars per
route (gpt-4o-mini prices from LiteLLM's cost map) and strict recall@10.

Part 2, on a synthetic 2,500-table warehouse: tokens per route and strict recall@10 judged
whole (one pass of full cards) and in two passes (compact cards first), with the oracle and with
the lexical policy - an oracle knows the gold tables whatever a card says, so only the lexical
policy shows what compact cards lose.

    uv run python -m bench.cost [--questions 16] [--synthetic-questions 12]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.eval.spider import Question, load_databases, load_questions, resolve_gold
from app.eval.warehouse import Warehouse, build_warehouse, drop_warehouse, plan_warehouse
from app.harness.service import service_client
from app.settings import Settings
from app.simulator.launcher import simulator_process
from bench.common import PG_URL, drop_schema
from bench.common import build_warehouse as build_synthetic

DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
PRICE_MODEL = "gpt-4o-mini"
AT_ONCE = 2
TOP_K = 10
SYNTHETIC_TABLES = 2500
Job = tuple[dict[str, Any], set[str]]  # a route's body and its gold tables


@dataclass
class Routed:
    """One answered route's figures."""

    wall_s: float
    prompt: int
    cached: int
    completion: int
    cost: float
    calls: int
    hit: bool  # every gold table in the top 10


def _service_settings(sources: dict[str, Any], sim: str, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "sources": sources,
            "llm_model": "openai/tablerouter-sim",
            "llm_api_base": f"{sim}/v1",
            "llm_price_model": PRICE_MODEL,
            "llm_timeout": 120,
            "route_deadline_ms": 600_000,
            "route_cache_size": 0,
            "verdict_cache_size": 0,
            "refresh_interval_s": 0,
            **extra,
        }
    )


async def _route(client: httpx.AsyncClient, body: dict[str, Any], gold: set[str]) -> Routed:
    started = time.perf_counter()
    response = await client.post("/route", json={**body, "top_k": TOP_K, "min_score": 0})
    wall = time.perf_counter() - started
    response.raise_for_status()
    answer = response.json()
    stats = answer["stats"]
    names = {t["name"] for t in answer["tables"][:TOP_K]}
    return Routed(
        wall,
        stats["prompt_tokens"],
        stats["cached_prompt_tokens"],
        stats["completion_tokens"],
        stats["cost_usd"] or 0.0,
        stats["lm_calls"],
        gold <= names,
    )


async def _route_all(client: httpx.AsyncClient, jobs: Sequence[Job]) -> list[Routed]:
    """``jobs`` routed ``AT_ONCE`` at a time, in order."""
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(body: dict[str, Any], gold: set[str]) -> Routed:
        async with slots:
            return await _route(client, body, gold)

    return list(await asyncio.gather(*(one(b, g) for b, g in jobs)))


def _pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def _line(label: str, rows: Sequence[Routed]) -> str:
    n = len(rows)
    prompt = sum(r.prompt for r in rows) / n
    cached = sum(r.cached for r in rows) / n
    return (
        f"{label:<14} wall p50 {_pct([r.wall_s for r in rows], 0.5):6.2f} s  p95 "
        f"{_pct([r.wall_s for r in rows], 0.95):6.2f} s | prompt {prompt:8.0f}  cached {cached:8.0f} "
        f"({cached / prompt if prompt else 0:4.0%})  completion {sum(r.completion for r in rows) / n:7.0f} "
        f"| calls {sum(r.calls for r in rows) / n:5.1f} | ${sum(r.cost for r in rows) / n:.4f} "
        f"| recall@10 {sum(r.hit for r in rows) / n:.3f}"
    )


def _spider_jobs(wh: Warehouse, questions: Sequence[Question], gold: dict[str, list[str]]) -> list[Job]:
    return [
        ({"question": q.question, "source": wh.route_scope(q.db_id, True)[0]}, set(gold[q.id]))
        for q in questions
    ]


FORMATS = {"before": "verdicts", "after": "short"}


async def spider_part(n: int, seed: int, labels: Sequence[str] = tuple(FORMATS)) -> dict[str, list[Routed]]:
    """Both formats over the Spider union: cold then warm routes; returns the rows per label."""
    folder = DATASETS / "spider"
    databases = load_databases(folder / "tables.json")
    questions = [q for q in load_questions(folder / "dev.json") if q.db_id in databases]
    chosen = random.Random(seed).sample(questions, 2 * n)
    resolved, _ = resolve_gold(chosen, databases)
    wh = plan_warehouse(databases.values(), PG_URL, union=True, prefix="cost_")
    gold = {q.id: [wh.placed[q.db_id].tables[t] for t in resolved[q.id]] for q in chosen}
    oracle = [{"question": q.question, "gold_tables": gold[q.id]} for q in chosen]
    print(f"building the Spider union: {len(databases)} databases ...", flush=True)
    await build_warehouse(wh)
    results: dict[str, list[Routed]] = {}
    try:
        for label in labels:
            judge_format = FORMATS[label]
            sim_args = ("--profile", "hosted-small", "--policy", "oracle", "--fnr", "0.1", "--fpr", "0.05")
            with simulator_process(*sim_args, "--seed", str(seed), oracle=oracle) as sim:
                settings = _service_settings(wh.source_configs(), sim, judge_format=judge_format)
                async with service_client(settings) as client:
                    client.timeout = httpx.Timeout(900)
                    cold = await _route_all(client, _spider_jobs(wh, chosen[:n], gold))
                    warm = await _route_all(client, _spider_jobs(wh, chosen[n:], gold))
            results[f"{label} cold"], results[f"{label} warm"] = cold, warm
            print(_line(f"{label} cold", cold), flush=True)
            print(_line(f"{label} warm", warm), flush=True)
    finally:
        await drop_warehouse(wh)
    return results


async def synthetic_part(n: int, seed: int) -> dict[str, list[Routed]]:
    """One pass vs two on 2,500 synthetic tables, with the oracle and the lexical policy."""
    schema = "bench_cost"
    print(f"building a synthetic warehouse of {SYNTHETIC_TABLES} tables ...", flush=True)
    questions = (await build_synthetic(SYNTHETIC_TABLES, schema, seed=seed))[:n]
    sources = {"wh": {"url": PG_URL, "schemas": [schema]}}
    jobs = [({"question": q["question"]}, set(q["gold_tables"])) for q in questions]
    results: dict[str, list[Routed]] = {}
    try:
        for policy in ("oracle", "lexical"):
            sim_args = ["--latency-ms", "20", "--policy", policy, "--fnr", "0.1", "--fpr", "0.05"]
            with simulator_process(*sim_args, oracle=questions if policy == "oracle" else None) as sim:
                for label, above in (("one pass", 0), ("two passes", 1500)):
                    settings = _service_settings(sources, sim, first_pass_above=above)
                    async with service_client(settings) as client:
                        client.timeout = httpx.Timeout(900)
                        rows = await _route_all(client, jobs)
                    results[f"{policy}, {label}"] = rows
                    print(_line(f"{policy[:3]} {label}", rows), flush=True)
    finally:
        await drop_schema(schema)
    return results


def _summary(spider: dict[str, list[Routed]], synthetic: dict[str, list[Routed]]) -> None:
    def mean(rows: list[Routed], key: str) -> float:
        return statistics.fmean(getattr(r, key) for r in rows)

    before, after = spider["before warm"], spider["after warm"]
    print("\n--- warm pass, Spider union (876 tables), hosted-small, 2 routes at a time")
    print(
        f"completion tokens per route: {mean(before, 'completion'):.0f} -> {mean(after, 'completion'):.0f}"
        "   (goal <= 3,000)"
    )
    share = sum(r.cached for r in after) / max(1, sum(r.prompt for r in after))
    print(f"prompt tokens served from the prefix cache: {share:.1%}   (goal >= 70 %)")
    print(
        f"route wall p50: {_pct([r.wall_s for r in before], 0.5):.2f} s -> "
        f"{_pct([r.wall_s for r in after], 0.5):.2f} s   (goal <= 2.5 s)"
    )
    print(f"dollars per route: ${mean(before, 'cost'):.4f} -> ${mean(after, 'cost'):.4f}   (goal <= $0.008)")
    cold_warm = spider["after cold"] + after
    print(
        f"strict recall@10 (oracle fnr 0.1 / fpr 0.05, all {len(cold_warm)} questions): before "
        f"{mean(spider['before cold'] + before, 'hit'):.3f}, after {mean(cold_warm, 'hit'):.3f}"
        "   (goal >= 0.95)"
    )
    if synthetic:
        print(f"\n--- synthetic {SYNTHETIC_TABLES}-table warehouse: tokens per route (goal <= 250,000)")
        for policy in ("oracle", "lexical"):
            one, two = synthetic[f"{policy}, one pass"], synthetic[f"{policy}, two passes"]
            tokens_one = mean(one, "prompt") + mean(one, "completion")
            tokens_two = mean(two, "prompt") + mean(two, "completion")
            print(
                f"{policy:<8} one pass {tokens_one:9.0f} tokens, recall@10 {mean(one, 'hit'):.3f}"
                f" | two passes {tokens_two:9.0f} tokens, recall@10 {mean(two, 'hit'):.3f}"
                " | recall lost by the first pass "
                f"{mean(one, 'hit') - mean(two, 'hit'):+.3f}"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--questions", type=int, default=16, help="cold routes, and as many warm ones")
    parser.add_argument("--synthetic-questions", type=int, default=12)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write every route's figures as JSON")
    parser.add_argument(
        "--only", choices=tuple(FORMATS), help="run one format of the Spider part (no side-by-side summary)"
    )
    args = parser.parse_args()
    spider = await spider_part(args.questions, args.seed, (args.only,) if args.only else tuple(FORMATS))
    synthetic = await synthetic_part(args.synthetic_questions, args.seed) if args.synthetic_questions else {}
    if not args.only:
        _summary(spider, synthetic)
    if args.out:
        rows = {k: [r.__dict__ for r in v] for k, v in {**spider, **synthetic}.items()}
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        asyncio.run(main())
