"""The shortlist over an in-memory catalog: top-M, schema and FK signals, scopes, dense fusion."""

from __future__ import annotations

import numpy as np

from app.catalog.model import Catalog, Column, ForeignKey, Table
from app.routing.preparation.cards import make_card, short_type
from app.routing.preparation.prepared import prepare
from app.routing.retrieval.shortlist import fused_scores, lexical_scores, shortlist


def _table(schema: str, name: str, columns: tuple[str, ...], refs: tuple[str, ...] = ()) -> Table:
    cols = (Column("id", "integer", False), *(Column(c, "text") for c in columns))
    cols += tuple(Column(f"{r}_id", "integer") for r in refs)
    fks = tuple(ForeignKey((f"{r}_id",), f"{schema}.{r}", ("id",)) for r in refs)
    return Table(schema, name, columns=cols, primary_key=("id",), foreign_keys=fks)


def _catalog() -> Catalog:
    music = [
        _table("concert_singer", "singer", ("name", "age"), refs=("nationality",)),
        _table("concert_singer", "concert", ("concert_name", "theme", "year")),
        _table("concert_singer", "performance_link", ("role",), refs=("singer", "concert")),
        _table("concert_singer", "stadium", ("location", "capacity")),
        # A lookup table: no word of it is in "which singers performed in concerts".
        _table("concert_singer", "nationality", ("label",)),
    ]
    hr = [_table("hr", f"payroll_{i}", ("salary", "grade", "bonus")) for i in range(30)]
    shops = [_table("retail", f"store_{i}", ("address", "manager", "opened")) for i in range(30)]
    return Catalog("t", tuple(music + hr + shops))


def test_top_m_holds_the_question_tables_and_their_fk_neighbours() -> None:
    prepared = prepare(_catalog(), 2000, 2, 0)
    short = shortlist(prepared, prepared.full, "Which singers performed in concerts?", size=5)
    assert short.cut
    assert len(short.names) == 5
    music = "concert_singer."
    assert {f"{music}{t}" for t in ("singer", "concert", "performance_link")} == set(short.names[:3])
    # The lookup table matches no word; its FK neighbour (singer) lifts it above the stadium,
    # which only shares the schema.
    assert short.names[3] == f"{music}nationality"
    assert short.prior[f"{music}nationality"] > short.prior[f"{music}stadium"]
    assert {n for c in short.chunks for n in c.names} == set(short.names)
    assert all(0 < p <= 1 for p in short.prior.values())
    assert max(short.prior.values()) == 1.0


def test_a_catalog_smaller_than_m_is_judged_whole() -> None:
    prepared = prepare(_catalog(), 2000, 2, 0)
    short = shortlist(prepared, prepared.full, "singers", size=1000)
    assert not short.cut
    assert short.chunks == prepared.chunks
    assert len(short.names) == len(prepared.cards)


def test_scope_keeps_other_schemas_out() -> None:
    prepared = prepare(_catalog(), 2000, 2, 0)
    scope = prepared.scope(["hr", "retail"])
    short = shortlist(prepared, scope, "Which singers performed in concerts?", size=5)
    assert all(not n.startswith("concert_singer.") for n in short.names)
    assert all(not n.startswith("concert_singer.") for n in short.prior)


def test_schema_words_lift_the_tables_of_the_matching_schema() -> None:
    prepared = prepare(_catalog(), 2000, 2, 0)
    scores = lexical_scores(prepared, "stadium capacity for concerts")
    names = prepared.lexical.names
    best = {names[i] for i in np.argsort(-scores)[:4]}
    assert best == {f"concert_singer.{t}" for t in ("singer", "concert", "performance_link", "stadium")}


def test_dense_fusion_can_bring_in_a_table_no_word_matches() -> None:
    prepared = prepare(_catalog(), 2000, 2, 0)
    names = prepared.lexical.names
    lexical = lexical_scores(prepared, "Which singers performed in concerts?")
    dense = np.zeros(len(names), dtype=np.float32)
    dense[names.index("retail.store_7")] = 1.0  # only the dense signal knows this one
    fused = fused_scores(lexical, dense)
    order = [names[i] for i in np.argsort(-fused, kind="stable")]
    assert order.index("retail.store_7") < 6
    assert all(order.index("retail.store_7") < order.index(n) for n in names if n.startswith("hr."))
    assert fused.max() == 1.0
    assert fused[names.index("hr.payroll_3")] == 0.0  # matched by neither: no prior


def test_compact_cards_use_short_types_and_drop_comments_that_repeat_the_name() -> None:
    assert short_type("timestamp without time zone") == "timestamp"
    assert short_type("TIMESTAMP(3) WITH TIME ZONE") == "timestamptz(3)"
    assert short_type("character varying(20)") == "varchar(20)"
    assert short_type("character(2)") == "char(2)"
    assert short_type("numeric(10, 2)") == "numeric(10, 2)"
    table = Table(
        "s",
        "orders",
        columns=(
            Column("customer_id", "integer", comment="References customers"),
            Column("placed_at", "timestamp without time zone", comment="Placed at"),
            Column("status", "text", comment="Lifecycle status"),
        ),
        foreign_keys=(ForeignKey(("customer_id",), "s.customers", ("id",)),),
    )
    columns = make_card(table, 500).text.splitlines()[1].split(", ")
    assert columns == [
        "customer_id integer FK s.customers.id",
        "placed_at timestamp",
        'status text "Lifecycle status"',
    ]
