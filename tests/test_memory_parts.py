"""The route memory's parts: question similarity, join conditions read from SQL, and its rows on
a PostgreSQL and a SQLite store (each migrated by Alembic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from app.harness.stores import STORE_BACKENDS, fresh_store_url
from app.memory.sql_reading import read_sql
from app.routing.retrieval.memory_index import MemoryIndex
from app.simulator.embeddings import embed_text
from app.store.database import Store
from app.store.migrate import upgrade_async
from app.store.route_memory import MemoryRepository, NewEntry


def test_similar_questions_rank_by_shared_rare_words() -> None:
    index = MemoryIndex()
    index.add(1, "how many singers are there", ["singer"])
    index.add(2, "list the names of all concerts in 2014", ["concert"])
    index.add(3, "what is the average age of singers from France", ["singer"])
    match = index.similar("average age of the French singers", limit=2, min_similarity=0.1)
    assert match.hits[0].entry_id == 3
    assert index.similar("stadium capacity", limit=2, min_similarity=0.1).hits == ()


def test_dense_hits_count_by_the_higher_of_the_two_similarities() -> None:
    index = MemoryIndex()
    # Most questions name orders and customers: those words weigh little among them.
    questions = [f"orders of customer segment s{i:03d} by quarter q{i % 4}" for i in range(299)]
    questions.append("total of the orders of each customer")
    for i, question in enumerate(questions):
        index.add(i + 1, question, [f"t{i}"])
    # Two batches, the second past the first buffer's capacity: positions stay with their vectors.
    for batch in (range(0, 200), range(200, 300)):
        index.vectors.add(list(batch), np.stack([embed_text(questions[i]) for i in batch]))
    asked = "how much did each customer spend on their orders altogether"
    dense = index.vectors.search(embed_text(asked), limit=5, min_similarity=0.3, floor=0.2)
    lexical_only = index.similar(asked, limit=5, min_similarity=0.3)
    fused = index.similar(asked, limit=5, min_similarity=0.3, dense=dense)
    assert lexical_only.hits == ()
    assert fused.hits[0].entry_id == 300
    cosine = float(embed_text(asked) @ embed_text(questions[-1]))
    assert fused.hits[0].similarity == pytest.approx((cosine - 0.2) / 0.8, abs=1e-4)
    # An exact repeat keeps its words' similarity (1) whatever the embeddings say.
    repeat = index.similar(questions[7], limit=1, min_similarity=0.3, dense=dense)
    assert repeat.hits[0].entry_id == 8
    assert repeat.hits[0].similarity == 1.0


def test_join_conditions_resolve_aliases_and_leave_unqualified_columns_of_a_join_out() -> None:
    read = read_sql(
        "SELECT * FROM a.t1 AS x JOIN a.t2 y ON x.k = y.k2 "
        "WHERE id = other AND x.v = (SELECT max(v) FROM a.t3)",
        "postgresql",
    )
    assert read.tables == (("a", "t1"), ("a", "t2"), ("a", "t3"))
    assert [((a.table, a.column), (b.table, b.column)) for a, b in read.joins] == [
        ((("a", "t1"), "k"), (("a", "t2"), "k2"))
    ]


@pytest.mark.parametrize("backend", STORE_BACKENDS)
async def test_the_repository_keeps_entries_and_counts_joins_on_each_store(
    backend: str, pg_url: str, tmp_path: Path
) -> None:
    async with fresh_store_url(backend, pg_url, tmp_path) as url:
        await upgrade_async(url)
        store = Store(url)
        try:
            memory = MemoryRepository(store)
            first = NewEntry("q one", ("s.a", "s.b"), "feedback", "v1", route_id="r1")
            await memory.add("src", [first, NewEntry(None, ("s.a",), "log", "v1")])
            # Feedback sent again for the same route replaces its entry.
            await memory.add("src", [NewEntry("q one again", ("s.b",), "feedback", "v1", route_id="r1")])
            rows = [r async for r in memory.rows_after("src", 0)]
            assert [(r.question, r.tables) for r in rows] == [(None, ("s.a",)), ("q one again", ("s.b",))]
            assert await memory.summary("src") == (2, rows[-1].id)
            assert await memory.summary("other") == (0, 0)
            edge = ("s.a", "id", "s.b", "a_id")
            await memory.add_joins("src", [edge, edge])
            await memory.add_joins("src", [edge])
            assert [j.count for j in await memory.joins("src")] == [3]
            assert await memory.forget("src", rows[0].id)
            assert not await memory.forget("src", rows[0].id)
            assert await memory.forget_before(datetime.now(UTC) + timedelta(seconds=1)) == 1
            assert await memory.summary("src") == (0, 0)
        finally:
            await store.aclose()
