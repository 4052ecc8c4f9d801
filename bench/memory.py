"""Route-memory benchmark: what memory lookups add to a route with 100,000 remembered questions.

Routes the same questions over one synthetic catalog (default 1,000 tables) with the lexical
judge, without a memory and, interleaved route by route, with a memory of N remembered
questions (default 100,000; made from the catalog's own words, each using 1-4 tables), first
lexical only and then with every question embedded too (the dense side: the simulator's
256-dimension vectors, made in-process, since the route pays the question's embeddings call
for its dense shortlist anyway), and prints p50/p99 of the route time for each, the
difference, the lookup alone, and the dense lookup's cost as a ratio of the lexical one's; then the
dense lookup alone, exact and approximate (the HNSW graph past 20,000 vectors) interleaved, and
the approximate one's recall of exact search's hits. The routes
are the real ``RouteService.route`` (shortlist, prior, ranking, join completion); only HTTP is
left out, which a memory does not touch. What it cannot show: the figures of a machine with
other load, or of questions unlike these synthetic ones (a lookup's cost grows with how many
remembered questions share the new one's words; the dense side's with the vectors' size).

Run: uv run python -m bench.memory [--remembered 100000] [--tables 1000] [--routes 400]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import numpy as np

from app.routing.deadline import Deadline
from app.routing.preparation.prepared import prepare
from app.routing.query import RouteQuery
from app.routing.retrieval.memory_index import MemoryIndex, MemoryMatch
from app.routing.retrieval.memory_vectors import MemoryVectors
from app.routing.retrieval.mined_joins import MinedJoins
from app.routing.service import RouteService
from app.simulator.embeddings import embed_text
from bench.common import synthetic_catalog

FILLER = ("show", "the", "total", "by", "for", "each", "last", "month", "top", "average", "count", "per")


DENSE_FLOOR = 0.2  # the MEMORY_DENSE_FLOOR default


class _Memory:
    """A MemorySource over one index (what RouteMemory serves once loaded); dense with ``vectors``."""

    def __init__(
        self,
        index: MemoryIndex,
        vectors: dict[str, np.ndarray] | None = None,
        neighbours: int = 5,
        min_similarity: float = 0.3,
    ) -> None:
        self._index, self._neighbours, self._min = index, neighbours, min_similarity
        self._vectors = vectors  # question → its vector (the route's embeddings call, already made)
        self._joins = MinedJoins(())

    async def search(self, source: str, question: str, embedded: str | None = None) -> MemoryMatch:
        if self._vectors is None:
            return self._index.similar(question, self._neighbours, self._min)
        vector = self._vectors[embedded or question]
        # As RouteMemory.search: the cosine over every vector in a worker thread.
        dense = await asyncio.to_thread(
            self._index.vectors.search, vector, self._neighbours, self._min, DENSE_FLOOR
        )
        return self._index.similar(question, self._neighbours, self._min, dense)

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
    remembered = []
    for i in range(args.remembered):
        question, used = _question(rng, tables, words)
        index.add(i + 1, question, used)
        remembered.append(question)
    print(f"{args.remembered:,} remembered questions indexed in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    for start in range(0, len(remembered), 1024):
        batch = remembered[start : start + 1024]
        index.vectors.add(list(range(start, start + len(batch))), np.stack([embed_text(q) for q in batch]))
    print(f"... and embedded in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    index.vectors.wait_indexed()
    print(f"... and put in the approximate index in {time.perf_counter() - started:.1f} s after that")
    questions = [_question(rng, tables, words)[0] for _ in range(args.routes)]
    vectors = {q: embed_text(q) for q in questions}
    lexical, dense = _Memory(index), _Memory(index, vectors)
    index.similar("warm up", 5, 0.3)
    services = {
        "without memory": RouteService(None),
        "lexical memory": RouteService(None, memory=lexical),
        "lexical + dense": RouteService(None, memory=dense),
    }
    times: dict[str, list[float]] = {name: [] for name in services}
    lookups: dict[str, list[float]] = {"lexical memory": [], "lexical + dense": []}
    for question in questions:
        for name, service in services.items():
            query = RouteQuery.build(prepared, question, top_k=10, min_score=0.0, deadline=Deadline.after(30))
            began = time.perf_counter()
            await service.route(query)
            times[name].append((time.perf_counter() - began) * 1000)
        for name, memory in (("lexical memory", lexical), ("lexical + dense", dense)):
            began = time.perf_counter()
            await memory.search("wh", question)
            lookups[name].append((time.perf_counter() - began) * 1000)
    print(f"routes over {args.tables} tables, {args.routes} questions, lexical judge, side by side (ms):")
    base = (_percentile(times["without memory"], 0.5), _percentile(times["without memory"], 0.99))
    for name, route_times in times.items():
        p50, p99 = _percentile(route_times, 0.5), _percentile(route_times, 0.99)
        added = f"added p50 {p50 - base[0]:6.2f}   p99 {p99 - base[1]:6.2f}"
        print(f"  route {name:17s} p50 {p50:7.2f}   p99 {p99:7.2f}   {added}")
    for name, looked in lookups.items():
        p50, p99 = _percentile(looked, 0.5), _percentile(looked, 0.99)
        print(f"  lookup alone, {name:17s} p50 {p50:7.2f}   p99 {p99:7.2f}")
    ratio = _percentile(lookups["lexical + dense"], 0.99) / _percentile(lookups["lexical memory"], 0.99)
    print(f"  lookup p99, lexical + dense / lexical: {ratio:.2f}")
    await _dense_exact_and_approximate(index.vectors, [vectors[q] for q in questions])


async def _dense_exact_and_approximate(memory: MemoryVectors, queries: list[np.ndarray]) -> None:
    """The dense lookup alone, exact and approximate interleaved, each in a worker thread; and recall."""
    searches = {"exact": memory.search_exact, "approximate": memory.search}
    times: dict[str, list[float]] = {name: [] for name in searches}
    found: dict[str, list[set[int]]] = {name: [] for name in searches}
    for vector in queries:
        for name, search in searches.items():
            began = time.perf_counter()
            positions, _ = await asyncio.to_thread(search, vector, 5, 0.3, DENSE_FLOOR)
            times[name].append((time.perf_counter() - began) * 1000)
            found[name].append(set(positions.tolist()))
    state = f"{memory.indexed:,} of {len(memory):,} vectors in the approximate index"
    print(f"dense lookup alone, {state}, side by side (ms):")
    for name, looked in times.items():
        print(f"  {name:11s} p50 {_percentile(looked, 0.5):7.2f}   p99 {_percentile(looked, 0.99):7.2f}")
    ratio = _percentile(times["exact"], 0.99) / _percentile(times["approximate"], 0.99)
    print(f"  p99, exact / approximate: {ratio:.1f}")
    # Bag-of-words vectors tie often (questions sharing the same two words): a hit as similar as
    # the exact k-th is as good as it, so recall is shown both by entry and counting ties.
    for k, least in ((5, 0.3), (10, -1.0)):  # the memory's own call, then the plain top 10
        kept = same = as_good = 0
        for vector in queries:
            exact, exact_similarity = memory.search_exact(vector, k, least, DENSE_FLOOR)
            approximate, similarity = memory.search(vector, k, least, DENSE_FLOOR)
            kept += len(exact)
            same += len(set(exact.tolist()) & set(approximate.tolist()))
            if len(exact):
                as_good += min(len(exact), int((similarity >= exact_similarity.min() - 1e-6).sum()))
        print(
            f"  recall@{k} (similarity >= {least}), of {kept} exact hits: {same / max(kept, 1):.3f} "
            f"by entry, {as_good / max(kept, 1):.3f} counting ties"
        )


if __name__ == "__main__":
    asyncio.run(main())
