"""Votes into probabilities of relevance, the ranking order, and completing FK join paths."""

from __future__ import annotations

import random

from app.catalog.fk_graph import fk_graph
from app.catalog.model import Column, ForeignKey, Table
from app.routing.ranking.merge import RankedTable, Vote, complete_join_paths, rank
from app.routing.ranking.relevance import RelevanceModel, RelevanceScorer, estimate_fpr

# Error rates given, not estimated: each test states the judge it assumes.
MODEL = RelevanceModel(fnr=0.1, fpr=0.05, estimate_fpr=False, expected_tables=2.0, prior_weight=0.2)


def _scores(
    votes: list[Vote], prior: dict[str, float] | None = None, judged: int = 100
) -> dict[str, RankedTable]:
    scorer = RelevanceScorer(MODEL, prior or {}, [f"t{i}" for i in range(judged)])
    return {t.name: t for t in scorer.ranked(votes)}


def test_scores_are_probabilities_that_follow_the_votes() -> None:
    scored = _scores(
        [
            *(Vote("both", True, 0.9) for _ in range(2)),
            Vote("split", True, 0.9),
            Vote("split", False, 0.9),
            *(Vote("none", False, 0.9) for _ in range(2)),
        ]
    )
    assert scored["both"].score > scored["split"].score > scored["none"].score
    assert 0 < scored["none"].score < 0.01  # two clear votes against: almost surely not needed
    assert (scored["both"].votes_for, scored["both"].votes_total) == (2, 2)
    assert [t.name for t in rank(scored.values())] == ["both", "split", "none"]


def test_a_third_vote_settles_a_split() -> None:
    split = [
        Vote("gold", True, 0.9),
        Vote("gold", False, 0.9),
        Vote("noise", True, 0.9),
        Vote("noise", False, 0.9),
    ]
    before = _scores(split)
    assert before["gold"].score == before["noise"].score  # one vote each way: a tie
    after = _scores([*split, Vote("gold", True, 0.9), Vote("noise", False, 0.9)])
    assert after["gold"].score > 10 * after["noise"].score


def test_an_unsure_vote_counts_less() -> None:
    scored = _scores([Vote("sure", True, 0.95), Vote("unsure", True, 0.55)])
    assert scored["sure"].score > scored["unsure"].score


def test_the_prior_lifts_a_table_the_question_names_among_equal_votes() -> None:
    votes = [
        Vote("gold", True, 0.8),
        Vote("gold", False, 0.8),
        Vote("noise", True, 0.8),
        Vote("noise", False, 0.8),
    ]
    scored = _scores(votes, {"gold": 1.0, "noise": 0.1})
    assert scored["gold"].score > scored["noise"].score
    assert scored["gold"].votes_for == 1


def test_fpr_is_estimated_from_disagreeing_pairs() -> None:
    draw = random.Random(7)
    true_fpr = 0.08
    votes = [Vote(f"t{i}", draw.random() < true_fpr, 0.9) for i in range(2000) for _ in range(2)]
    by_table: dict[str, list[Vote]] = {}
    for v in votes:
        by_table.setdefault(v.table, []).append(v)
    estimate = estimate_fpr(by_table, configured=0.02)
    assert 0.06 < estimate < 0.09  # shrunk a little toward the configured 0.02
    few = {name: by_table[name] for name in list(by_table)[:5]}
    assert abs(estimate_fpr(few, configured=0.02) - 0.02) < 0.015  # five pairs: mostly the configured rate


def _t(name: str, refs: tuple[str, ...] = ()) -> Table:
    fks = tuple(ForeignKey((f"{r}_id",), r, ("id",)) for r in refs)
    return Table(None, name, columns=(Column("id", "int"),), primary_key=("id",), foreign_keys=fks)


def test_join_path_tables_are_added_via_fk() -> None:
    # customers <- orders <- order_items -> products ; suppliers unrelated
    tables = [
        _t("customers"),
        _t("orders", ("customers",)),
        _t("order_items", ("orders", "products")),
        _t("products"),
        _t("suppliers"),
    ]
    graph = fk_graph(tables)
    selected = [RankedTable("customers", 1.0, 2, 2, ""), RankedTable("products", 0.8, 2, 2, "")]
    added = complete_join_paths(selected, graph)
    assert {t.name for t in added} == {"orders", "order_items"}
    assert all(t.via_fk and t.score == 0.72 for t in added)


def test_no_path_no_addition() -> None:
    graph = fk_graph([_t("a"), _t("b")])
    selected = [RankedTable("a", 0.9, 2, 2, ""), RankedTable("b", 0.9, 2, 2, "")]
    assert complete_join_paths(selected, graph) == []
