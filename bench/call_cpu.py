"""CPU per LM call: the service's route ÷ plain DSPy ``Predict.acall``, simulator at 0 ms.

Both sides send the same prompts (a 1,000-table catalog's chunks, the same questions) to the
same simulator, which runs in its own process so its CPU is not counted; both run 64 calls
at a time. Ours is a whole route through ``RouteService`` (limiter, judge, merge); plain is
``dspy.Predict(JudgeTables).acall`` with DSPy's stock ChatAdapter and ``dspy.LM``. CPU is
this process's CPU time (all threads) over the calls made. Rounds alternate A/B; medians.

Run: uv run python -m bench.call_cpu [--tables 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import dspy

from app.llm.backend import build_backend
from app.routing.deadline import Deadline
from app.routing.judging.judge import LMJudge
from app.routing.judging.signature import JudgeTables
from app.routing.preparation.chunks import Chunk
from app.routing.preparation.prepared import PreparedCatalog, prepare
from app.routing.query import RouteQuery
from app.routing.service import RouteService
from app.settings import Settings
from app.simulator.launcher import simulator_process
from bench.common import median, synthetic_catalog

CONCURRENCY = 64


async def _plain_dspy(sim: str, chunks: tuple[Chunk, ...], question: str) -> int:
    lm = dspy.LM("openai/tablerouter-sim", api_base=f"{sim}/v1", api_key="x", cache=False, num_retries=0)
    predict = dspy.Predict(JudgeTables)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(chunk: Chunk) -> None:
        async with slots:
            with dspy.context(lm=lm):
                await predict.acall(question=question, tables=chunk.text)

    await asyncio.gather(*(one(c) for c in chunks))
    return len(chunks)


async def _measure(run: Callable[[], Awaitable[int]]) -> tuple[float, int]:
    """CPU seconds and LM calls of one ``run``."""
    cpu = time.process_time()
    calls = await run()
    return time.process_time() - cpu, calls


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    settings = Settings()
    prepared: PreparedCatalog = prepare(
        synthetic_catalog(args.tables), settings.chunk_tokens, settings.votes, settings.seed
    )
    questions = [f"total sales order amount per customer, round {i}" for i in range(args.rounds + 1)]
    with simulator_process("--latency-ms", "0") as sim:
        ours_settings = Settings.model_validate(
            {
                "llm_model": "openai/tablerouter-sim",
                "llm_api_base": f"{sim}/v1",
                "llm_max_concurrency": CONCURRENCY,
            }
        )
        backend = build_backend(ours_settings)
        assert backend is not None
        service = RouteService(LMJudge(backend, 30.0))

        async def ours(q: str) -> int:
            query = RouteQuery.build(prepared, q, top_k=10, min_score=0.5, deadline=Deadline.after(30.0))
            result = await service.route(query)
            return result.stats.lm_calls

        await ours(questions[0])
        await _plain_dspy(sim, prepared.chunks, questions[0])
        ours_ms, plain_ms = [], []
        for q in questions[1:]:
            cpu, calls = await _measure(lambda q=q: ours(q))  # type: ignore[misc]
            ours_ms.append(cpu / calls * 1000)
            cpu, calls = await _measure(lambda q=q: _plain_dspy(sim, prepared.chunks, q))  # type: ignore[misc]
            plain_ms.append(cpu / calls * 1000)
        await backend.aclose()
    ours_med, plain_med = median(ours_ms), median(plain_ms)
    print(f"{args.tables} tables -> {len(prepared.chunks)} LM calls per round; {args.rounds} rounds")
    print(f"ours  (route through RouteService): {ours_med:.2f} ms CPU per LM call")
    print(f"plain (dspy.Predict.acall, stock):  {plain_med:.2f} ms CPU per LM call")
    print(f"RATIO ours / plain = {ours_med / plain_med:.3f}   (goal <= 0.3)")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
