"""Reliability benchmark: many concurrent routes over a 1,000-table warehouse with a faulty LM.

Two parts, each printed from this one run:

1. Faults. ``--routes`` routes at once, the simulator (own process) answering with
   ``--latency-ms`` and injecting 10 % 429 with Retry-After, 3 % 5xx and 2 % hangs. Prints the
   share of routes answered (goal 100 %) and whether any ran past its deadline, the share
   complete rather than partial or degraded (goal >= 99 %), and LM attempts per chunk
   (goal <= 1.15).
2. Tail. No faults, a tail-heavy latency (``--tail``, p99 = 10 x p50), routes a few at a time
   so the limiter never queues: route p99 / p50 without and with hedging, the p99 cut
   (goal >= 30 %) and the extra calls hedging cost (goal <= 5 %).

What was chosen, and why. A 1,000-table route costs the router (one event loop, one core)
~350 ms of CPU with the default 2,000-token chunks (130 calls of ~2.7 ms) and ~110 ms with
16,000-token chunks (16 calls of ~7 ms), measured one route at a time: 200 routes at once
are 20+ s of router CPU at best, more on a machine shared with others. So the fault run
uses 16,000-token chunks (16 calls per route, 3,200 per run), 64 calls in flight, 200 ms per
call, LLM_TIMEOUT 10 s (a hung call holds its slot that long; a tighter one times out
healthy calls that wait on a busy event loop) and a 120 s deadline, above the run's drain
time, so the deadline is a safety net and the run measures the retry layer. The tail run
sends routes three at a time (48 calls in flight under a limit of 64) so that the LM's
latency, not the router's queue, makes the route's.

Run: uv run python -m bench.reliability [--routes 200] [--tail-routes 300] [--budgets 0.1,0.25]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.demo.synthetic import synthetic_questions, synthetic_tables
from app.harness.service import service_client
from app.settings import Settings
from app.simulator.launcher import simulator_process
from bench.common import PG_URL, build_warehouse, drop_schema

SCHEMA = "bench_reliability"
FAULT_FLAGS = (
    "--rate-limit-rate 0.10 --retry-after-s 1 --server-error-rate 0.03 --hang-rate 0.02 --hang-s 600"
)


@dataclass
class Run:
    """What a batch of routes gave: HTTP statuses, bodies, wall times (s), simulator counters."""

    statuses: list[int]
    bodies: list[dict[str, Any]]
    walls: list[float]
    sim: dict[str, Any]
    why_failed: Counter[str] = field(default_factory=Counter)


class FailureTally(logging.Handler):
    """Counts why chunks failed, from the judge's "chunk N failed: ... (why)" debug lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        if str(record.msg).startswith("chunk %d failed") and len(args) > 1:
            error = str(args[1])
            why = re.search(r"\(([^()]*)\)$", error)
            what = re.sub(r" after .*| \(429\).*", "", error.split(":", maxsplit=1)[0])
            self.reasons[f"{what}, {why.group(1) if why else '?'}"] += 1


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _settings(sim: str, args: argparse.Namespace, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "sources": {"wh": {"url": PG_URL, "schemas": [SCHEMA]}},
            "llm_model": "openai/tablerouter-sim",
            "llm_api_base": f"{sim}/v1",
            "llm_max_concurrency": args.concurrency,
            "chunk_tokens": args.chunk_tokens,
            "route_queue_limit": max(256, args.routes),
            # The routes repeat 50 questions: with the caches on, most would never reach the LM,
            # and the run would measure the caches instead of the retry layer.
            "route_cache_size": 0,
            "verdict_cache_size": 0,
            **extra,
        }
    )


async def _one(client: httpx.AsyncClient, question: str) -> tuple[int, dict[str, Any], float]:
    started = time.perf_counter()
    response = await client.post("/route", json={"question": question})
    wall = time.perf_counter() - started
    return response.status_code, response.json() if response.status_code == 200 else {}, wall


async def run_routes(settings: Settings, sim: str, questions: list[str], at_once: int) -> Run:
    """Route every question, ``at_once`` in flight at a time, after one warm-up route."""
    tally = FailureTally()
    judge_log = logging.getLogger("app.routing.judging.attempts")
    judge_log.setLevel(logging.DEBUG)
    judge_log.addHandler(tally)
    async with service_client(settings) as client, httpx.AsyncClient(base_url=sim) as simc:
        for q in questions[:3]:  # connections open, the latency window learned
            await client.post("/route", json={"question": q})
        await simc.post("/stats/reset")
        tally.reasons.clear()
        gate = asyncio.Semaphore(at_once)

        async def gated(q: str) -> tuple[int, dict[str, Any], float]:
            async with gate:
                return await _one(client, q)

        results = await asyncio.gather(*(gated(q) for q in questions))
        sim_stats = (await simc.get("/stats")).json()
    judge_log.removeHandler(tally)
    statuses = [r[0] for r in results]
    bodies = [r[1] for r in results]
    walls = [r[2] for r in results]
    return Run(statuses, bodies, walls, sim_stats, tally.reasons)


def report_faults(run: Run, deadline_s: float, budget: float) -> None:
    n = len(run.statuses)
    bodies = [b for b in run.bodies if b]
    stats = [b["stats"] for b in bodies]
    complete = sum(not b["partial"] and not b["degraded"] for b in bodies)
    chunks = sum(s["chunks"] for s in stats)
    calls = sum(s["lm_calls"] for s in stats)
    late = sum(w > deadline_s for w in run.walls)
    print(
        f"[retry budget {budget:.0%} of calls] routes: {n} at once; "
        f"chunks per route {chunks / max(1, len(stats)):.1f}"
    )
    print(f"answered (200): {len(bodies)}/{n} = {len(bodies) / n:.1%}   (goal 100 %)")
    print(
        f"past their deadline ({deadline_s:g} s): {late}; slowest route "
        f"{max(run.walls):.2f} s = {max(run.walls) / deadline_s:.2f} x deadline"
    )
    print(
        f"complete (not partial, not degraded): {complete}/{n} = {complete / n:.1%}   (goal >= 99 %); "
        f"partial {sum(b['partial'] for b in bodies)}, degraded {sum(b['degraded'] for b in bodies)}"
    )
    rejected = run.sim["faults"].get("rate_limit", 0)
    print(
        f"LM attempts per chunk: {calls}/{chunks} = {calls / max(1, chunks):.3f}   (goal <= 1.15); "
        f"not counting 429s: {(calls - rejected) / max(1, chunks):.3f}"
    )
    print(f"simulator saw {run.sim['calls']} calls, faults {run.sim['faults']}")
    print(
        f"retries {sum(s['retries'] for s in stats)}, "
        f"failed chunks {sum(s['failed_chunks'] for s in stats)}, "
        f"unfinished at the deadline {sum(s['unfinished_chunks'] for s in stats)}; "
        f"chunks failed (error, why not retried): {dict(run.why_failed)}; "
        f"route wall p50 {quantile(run.walls, 0.5):.2f} s, p99 {quantile(run.walls, 0.99):.2f} s"
    )


def report_tail(plain: Run, hedged: Run) -> None:
    rows = []
    for name, run in (("no hedging", plain), ("hedging", hedged)):
        stats = [b["stats"] for b in run.bodies if b]
        chunks = sum(s["chunks"] for s in stats)
        hedges = sum(s["hedges"] for s in stats)
        p50, p99 = quantile(run.walls, 0.5), quantile(run.walls, 0.99)
        rows.append((p50, p99, hedges / max(1, chunks)))
        print(
            f"{name:>10}: route p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"p99/p50 {p99 / p50:.2f}; hedges {hedges} = {hedges / max(1, chunks):.1%} extra calls"
        )
    cut = 1 - rows[1][1] / rows[0][1]
    print(
        f"RATIO hedged p99 / plain p99 = {rows[1][1] / rows[0][1]:.3f}: p99 cut by {cut:.0%} (goal >= 30 %)"
    )
    print(f"extra calls from hedging: {rows[1][2]:.1%}   (goal <= 5 %)")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--routes", type=int, default=200)
    parser.add_argument("--latency-ms", default="200")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--chunk-tokens", type=int, default=16000)
    parser.add_argument("--llm-timeout", type=float, default=10.0)
    parser.add_argument("--deadline-ms", type=int, default=120_000)
    parser.add_argument(
        "--budgets", default="0.1,0.25", help="retry budgets (share of calls) of the fault runs, side by side"
    )
    parser.add_argument("--tail", default="tail:100:1000")
    parser.add_argument("--tail-routes", type=int, default=300)
    parser.add_argument("--skip-tail", action="store_true")
    parser.add_argument("--tail-at-once", type=int, default=3)
    parser.add_argument("--keep-warehouse", action="store_true", help="leave the schema for --reuse")
    parser.add_argument("--reuse", action="store_true", help="use the schema a --keep-warehouse run left")
    args = parser.parse_args()

    if args.reuse:  # the generator is deterministic: same tables, same questions
        made = synthetic_questions(synthetic_tables(args.tables, schema=SCHEMA, seed=0), 50, seed=0)
    else:
        made = await build_warehouse(args.tables, SCHEMA)
    questions = [q["question"] for q in made]
    try:
        budgets = [float(b) for b in args.budgets.split(",")]
        batch = [questions[i % len(questions)] for i in range(args.routes)]
        faults = []
        for budget in budgets:
            # A fresh simulator per run: the same fault draws for every budget.
            with simulator_process("--latency-ms", args.latency_ms, *FAULT_FLAGS.split()) as sim:
                settings = _settings(
                    sim,
                    args,
                    llm_timeout=args.llm_timeout,
                    route_deadline_ms=args.deadline_ms,
                    retry_budget_ratio=budget,
                )
                faults.append(await run_routes(settings, sim, batch, at_once=args.routes))
        with simulator_process("--latency-ms", args.tail) as sim:
            tail_batch = [questions[i % len(questions)] for i in range(args.tail_routes)]
            runs = []
            for hedging in () if args.skip_tail else (False, True):
                settings = _settings(sim, args, llm_timeout=30, hedging=hedging)
                runs.append(await run_routes(settings, sim, tail_batch, at_once=args.tail_at_once))
    finally:
        if not args.keep_warehouse:
            await drop_schema(SCHEMA)

    print(
        f"warehouse {args.tables} tables; chunk_tokens {args.chunk_tokens}; LM concurrency "
        f"{args.concurrency}; LLM_TIMEOUT {args.llm_timeout:g} s; deadline {args.deadline_ms} ms"
    )
    print(f"--- faults: latency {args.latency_ms} ms, {FAULT_FLAGS}")
    for budget, run in zip(budgets, faults, strict=True):
        report_faults(run, args.deadline_ms / 1000, budget)
    print(
        f"--- tail: latency {args.tail}, no faults, {args.tail_routes} routes "
        f"{args.tail_at_once} at a time, concurrency {args.concurrency}"
    )
    if runs:
        report_tail(*runs)


if __name__ == "__main__":
    asyncio.run(main())
