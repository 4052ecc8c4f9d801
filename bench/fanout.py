"""Fan-out benchmark: one route over a 1,000-table warehouse, simulator at 200 ms per call.

Prints, from one run, side by side:
- concurrent route wall time ÷ ideal, ideal = ceil(chunks / concurrency) * latency (goal ≤ 1.15);
- the same route chunk after chunk (concurrency 1) ÷ concurrent;
- the HTTP pool: with a limit of 128, calls in flight at the simulator (DSPy's engine: 100);
- one prompt with every card vs the chunked prompts (tokens, and whether it fits 128k).

Run: uv run python -m bench.fanout [--tables 1000] [--latency-ms 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy.ext.asyncio import create_async_engine

from app.catalog.introspect import introspect
from app.harness.service import service_client
from app.routing.preparation.prepared import prepare
from app.settings import Settings
from app.simulator.launcher import simulator_process
from bench.common import PG_URL, build_warehouse, drop_schema, listener_cpu_seconds, median

SCHEMA = "bench_fanout"


async def _routes(
    settings: Settings, questions: list[str], sim: str
) -> tuple[list[float], dict[str, Any], dict[str, Any]]:
    """Route each question one at a time; wall times (s), the last route's stats, simulator stats
    (with the router's and the simulator's CPU seconds over these routes added)."""
    walls: list[float] = []
    body: dict[str, Any] = {}
    port = urlsplit(sim).port or 0
    async with service_client(settings) as client, httpx.AsyncClient(base_url=sim) as simc:
        await client.post("/route", json={"question": "warm up the connections"})
        await simc.post("/stats/reset")
        cpu, sim_cpu = time.process_time(), listener_cpu_seconds(port)
        for q in questions:
            started = time.perf_counter()
            response = await client.post("/route", json={"question": q})
            walls.append(time.perf_counter() - started)
            response.raise_for_status()
            body = response.json()
        stats = (await simc.get("/stats")).json()
        stats["router_cpu"] = time.process_time() - cpu
        stats["simulator_cpu"] = listener_cpu_seconds(port) - sim_cpu
    return walls, body["stats"], stats


def _settings(sim: str, concurrency: int, **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "sources": {"wh": {"url": PG_URL, "schemas": [SCHEMA]}},
            "llm_model": "openai/tablerouter-sim",
            "llm_api_base": f"{sim}/v1",
            "llm_max_concurrency": concurrency,
            "llm_timeout": 60,
            **extra,
        }
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=200)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    questions = [q["question"] for q in await build_warehouse(args.tables, SCHEMA)]
    engine = create_async_engine(PG_URL)
    catalog = await introspect(engine, "wh", [SCHEMA])
    await engine.dispose()
    defaults = Settings()
    prepared = prepare(catalog, defaults.chunk_tokens, defaults.votes, defaults.seed)
    latency = args.latency_ms / 1000
    try:
        with simulator_process("--latency-ms", str(args.latency_ms)) as sim:
            conc_walls, stats, sim_stats = await _routes(
                _settings(sim, args.concurrency), questions[: args.repeats], sim
            )
            seq_walls, _, _ = await _routes(_settings(sim, 1), questions[:1], sim)
            pool_settings = _settings(sim, 128, chunk_tokens=600)
            _, pool_stats, pool_sim = await _routes(pool_settings, questions[:1], sim)
    finally:
        await drop_schema(SCHEMA)

    chunks = stats["chunks"]
    ideal = math.ceil(chunks / args.concurrency) * latency
    concurrent = median(conc_walls)
    sequential = median(seq_walls)
    prompt_per_call = stats["prompt_tokens"] / max(1, stats["lm_calls"])
    print(
        f"warehouse: {args.tables} tables; simulator latency {args.latency_ms:.0f} ms; "
        f"chunks per route {chunks}; concurrency {args.concurrency}"
    )
    print(
        f"concurrent route wall (median of {len(conc_walls)}): {concurrent * 1000:.0f} ms; "
        f"ideal ceil({chunks}/{args.concurrency}) x {args.latency_ms:.0f} ms = {ideal * 1000:.0f} ms"
    )
    print(f"RATIO concurrent / ideal      = {concurrent / ideal:.3f}   (goal <= 1.15)")
    print(f"sequential route wall: {sequential * 1000:.0f} ms")
    print(f"RATIO sequential / concurrent = {sequential / concurrent:.1f}")
    print(f"simulator max in flight (limit {args.concurrency}): {sim_stats['max_in_flight']}")
    calls = max(1, sim_stats["calls"])
    router_ms, sim_ms = sim_stats["router_cpu"] / calls * 1000, sim_stats["simulator_cpu"] / calls * 1000
    print(
        f"CPU per LM call during the concurrent routes: router {router_ms:.2f} ms, "
        f"simulator {sim_ms:.2f} ms; per route "
        f"{(sim_stats['router_cpu'] + sim_stats['simulator_cpu']) / len(conc_walls) * 1000:.0f} ms of CPU "
        f"on {os.cpu_count()} cores shared with other work (load {os.getloadavg()[0]:.1f})"
    )
    print(
        f"pool: limit 128, {pool_stats['chunks']} chunks -> simulator max in flight "
        f"{pool_sim['max_in_flight']} (DSPy's default engine pool allows 100)"
    )
    # One prompt with every card = the prompt's fixed part plus every card once.
    card_tokens = sum(c.tokens for c in prepared.cards)
    chunk_tokens = sum(c.tokens for c in prepared.chunks) / len(prepared.chunks)
    one_prompt = prompt_per_call - chunk_tokens + card_tokens
    print(
        f"single prompt with every card: ~{one_prompt:,.0f} tokens (fits 128k: {one_prompt <= 128_000}); "
        f"chunked: {prompt_per_call:,.0f} tokens per call x {stats['lm_calls']} calls"
    )


if __name__ == "__main__":
    asyncio.run(main())
