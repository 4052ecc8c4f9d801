"""The route memory's pure parts: question similarity, and join conditions read from SQL."""

from __future__ import annotations

from app.memory.sql_reading import read_sql
from app.routing.retrieval.memory_index import MemoryIndex


def test_similar_questions_rank_by_shared_rare_words() -> None:
    index = MemoryIndex()
    index.add(1, "how many singers are there", ["singer"])
    index.add(2, "list the names of all concerts in 2014", ["concert"])
    index.add(3, "what is the average age of singers from France", ["singer"])
    match = index.similar("average age of the French singers", limit=2, min_similarity=0.1)
    assert match.hits[0].entry_id == 3
    assert index.similar("stadium capacity", limit=2, min_similarity=0.1).hits == ()


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
