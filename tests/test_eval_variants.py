"""The harder eval warehouses: copies of every table, coded names described in a dbt manifest."""

from __future__ import annotations

import json
from pathlib import Path

from app.catalog.dbt_artifacts import enrich, read_metadata
from app.catalog.model import Catalog, Column, Table
from app.eval.spider import Database, Question
from app.eval.variants import copy_outranks_share, renamed_gold, with_codes, with_copies, write_manifest

SHOP = Database(
    db_id="shop",
    tables=("singer", "concert"),
    columns=((-1, "*", "text"), (0, "id", "number"), (0, "name", "text"), (1, "id", "number")),
    primary_keys=((1,), (3,)),
    foreign_keys=(),
)


def test_every_table_gets_a_backup_and_a_staging_copy_with_its_columns() -> None:
    copied = with_copies(SHOP)
    assert copied.tables == (
        "singer",
        "concert",
        "singer_backup_2019",
        "concert_backup_2019",
        "singer_staging",
        "concert_staging",
    )
    by_table = {
        copied.tables[t]: [n for i, n, _ in copied.columns if i == t] for t in range(len(copied.tables))
    }
    assert by_table["singer_staging"] == by_table["singer"] == ["id", "name"]
    assert copied.primary_keys == SHOP.primary_keys  # the copies have no keys


def test_a_copy_above_its_gold_table_is_counted_once_per_question() -> None:
    rows = [
        {"status": 200, "gold": ["s.singer"], "ranked": ["s.singer_backup_2019", "s.singer"]},
        {"status": 200, "gold": ["s.singer", "s.concert"], "ranked": ["s.concert_staging", "s.singer"]},
        {"status": 200, "gold": ["s.singer"], "ranked": ["s.singer", "s.singer_staging"]},
        {"status": 502, "gold": ["s.singer"], "ranked": []},
    ]
    assert copy_outranks_share(rows) == {"questions": 3, "copy_outranks": 2, "share": 0.6667}


def test_coded_tables_are_described_by_the_manifest_the_service_reads(tmp_path: Path) -> None:
    coded, codes = with_codes({"shop": SHOP})
    assert coded["shop"].tables == ("T0001", "T0002")
    question = Question("q1", "shop", "How many singers?", "", ("Singer",), "sql")
    assert renamed_gold(question, codes).gold == ("T0001",)
    manifest = tmp_path / "manifest.json"
    write_manifest(manifest, {"shop": SHOP}, codes, {"shop": "ev_shop"})
    metadata = read_metadata(json.loads(manifest.read_text()))
    catalog = Catalog("eval", (Table("ev_shop", "T0001", columns=(Column("id", "integer"),)),))
    assert enrich(catalog, metadata).tables[0].comment == "singer"
