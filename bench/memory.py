"""Route-memory benchmark: what memory lookups add to a route with 100,000 remembered questions.

Routes the same questions over one synthetic catalog (default 1,000 tables) with the lexical
judge, without a memory and, interleaved route by route, with a memory of N remembered
questions (default 100,000; made from the catalog's own words, each using 1-4 tables), and
prints p50/p99 of the route time for both, the difference, and the lookup alone. The routes
are the real ``RouteService.route`` (shortlist, prior, ranking, join completion); only HTTP is
left out, which a memory does not touch. What it cannot show: the figures of a machine with
other load, or of questions unlike these synthetic ones (a lookup's cost grows with how many
remembered questions share the new one's words).

Run: uv run python -m bench.memory [--remembered 100000] [--tables 1000] [--routes 400]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from app.routing.deadline import Deadline
from app.routing.preparation.prepared import prepare
from app.routing.query import RouteQuery
from app.routing.retrieval.memory_index import MemoryIndex, MemoryMatch
from app.routing.retrieval.mined_joins import MinedJoins
from app.routing.service import RouteService
from bench.common import synthetic_catalog

FILLER = ("show", "the", "total", "by", "for", "each", "last", "month", "top", "average", "count", "per")


class _Memory:
    """A MemorySource over one index (what RouteMemory serves once loaded)."""

    def __init__(self, index: MemoryIndex, neighbours: int = 5, min_similarity: float = 0.3) -> None:
        self._index, self._neighbours, self._min = index, neighbours, min_similarity
        self._joins = MinedJoins(())

    def lookup(self, source: str, question: str) -> MemoryMatch:
        return self._index.similar(question, self._neighbours, self._min)

    def index(self, source: str) -> MemoryIndex | None:
        return self._index

    def joins(self, source: str) -> MinedJoins:
        return self._joins

    def version(self, source: str) -> str:
        return str(self._index.entries)


def _question(rng: random.Random, tables: list[str], words: list[str]) -> tuple[str, list[str]]:
    used = rng.sample(tables, rng.randint(1, 4))
    text = [w for t in used for w in t.rsplit(".", 1)[-1].split("_")]
    text += rng.sample(words, 3) + rng.sample(FILLER, 3)
    rng.shuffle(text)
    return " ".join(text), used


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--remembered", type=int, default=100_000)
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--routes", type=int, default=400)
    args = parser.parse_args()
    prepared = prepare(synthetic_catalog(args.tables), 2000, 2, 0)
    tables = [c.name for c in prepared.cards]
    words = sorted({w for c in prepared.cards for w in c.text.split() if w.isalpha() and len(w) > 3})
    rng = random.Random(0)
    index = MemoryIndex()
    started = time.perf_counter()
    for i in range(args.remembered):
        question, used = _question(rng, tables, words)
        index.add(i + 1, question, used)
    print(f"{args.remembered:,} remembered questions indexed in {time.perf_counter() - started:.1f} s")
    memory = _Memory(index)
    index.similar("warm up", 5, 0.3)
    plain, remembering = RouteService(None), RouteService(None, memory=memory)
    questions = [_question(rng, tables, words)[0] for _ in range(args.routes)]
    without: list[float] = []
    with_memory: list[float] = []
    lookups: list[float] = []
    for question in questions:
        for service, times in ((plain, without), (remembering, with_memory)):
            query = RouteQuery.build(prepared, question, top_k=10, min_score=0.0, deadline=Deadline.after(30))
            began = time.perf_counter()
            await service.route(query)
            times.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        memory.lookup("wh", question)
        lookups.append((time.perf_counter() - began) * 1000)
    p50 = (_percentile(without, 0.5), _percentile(with_memory, 0.5))
    p99 = (_percentile(without, 0.99), _percentile(with_memory, 0.99))
    print(f"routes over {args.tables} tables, {args.routes} questions, lexical judge, side by side:")
    print(f"  route ms without memory   p50 {p50[0]:7.2f}   p99 {p99[0]:7.2f}")
    print(f"  route ms with memory      p50 {p50[1]:7.2f}   p99 {p99[1]:7.2f}")
    print(f"  added by the memory       p50 {p50[1] - p50[0]:7.2f}   p99 {p99[1] - p99[0]:7.2f}")
    alone = (_percentile(lookups, 0.5), _percentile(lookups, 0.99))
    print(f"  lookup alone              p50 {alone[0]:7.2f}   p99 {alone[1]:7.2f}")
    print(f"  p99 route time with / without memory: {p99[1] / p99[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
