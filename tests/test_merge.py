"""Merging votes into a ranking and completing FK join paths."""

from __future__ import annotations

from app.catalog.fk_graph import fk_graph
from app.catalog.model import Column, ForeignKey, Table
from app.routing.ranking.merge import Vote, blend_prior, complete_join_paths, merge_votes, rank


def test_scores_are_mean_probability_of_relevance() -> None:
    merged = merge_votes(
        [
            Vote("a", True, 0.9),
            Vote("a", True, 0.7),
            Vote("b", True, 0.8),
            Vote("b", False, 0.8),
            Vote("c", False, 1.0),
        ]
    )
    assert merged["a"].score == 0.8
    assert (merged["a"].votes_for, merged["a"].votes_total) == (2, 2)
    assert merged["b"].score == 0.5
    assert merged["c"].score == 0.0
    assert [t.name for t in rank(merged.values())] == ["a", "b", "c"]


def test_ties_break_on_votes_then_prior_then_name() -> None:
    merged = merge_votes([Vote("x", True, 0.5), Vote("y", False, 0.5), Vote("z", True, 0.5)])
    assert [t.name for t in rank(merged.values())] == ["x", "z", "y"]
    assert [t.name for t in rank(merged.values(), {"z": 0.9})] == ["z", "x", "y"]


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
    selected = list(merge_votes([Vote("customers", True, 1.0), Vote("products", True, 0.8)]).values())
    added = complete_join_paths(selected, graph)
    assert {t.name for t in added} == {"orders", "order_items"}
    assert all(t.via_fk and t.score == 0.72 for t in added)


def test_no_path_no_addition() -> None:
    graph = fk_graph([_t("a"), _t("b")])
    selected = list(merge_votes([Vote("a", True, 1.0), Vote("b", True, 1.0)]).values())
    assert complete_join_paths(selected, graph) == []


def test_prior_lifts_a_table_the_question_names_among_equal_votes() -> None:
    merged = merge_votes(
        [
            Vote("gold", True, 0.8),
            Vote("gold", False, 0.8),
            Vote("noise", True, 0.8),
            Vote("noise", False, 0.8),
        ]
    )
    blended = {t.name: t for t in blend_prior(merged, {"gold": 1.0}, 0.2)}
    assert blended["gold"].score == 0.6
    assert blended["noise"].score == 0.4
    assert blended["gold"].votes_for == 1
