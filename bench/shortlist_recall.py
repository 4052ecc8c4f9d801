"""Shortlist recall on Spider dev: the union of all 166 databases (876 tables) as one catalog.

One schema per ``db_id``, tables named ``db_id.table``, built in memory from ``tables.json``
(no database needed). For each question: are all its gold tables in the top M, M in
20, 50, 100? Printed side by side: BM25 over the cards alone, and the shortlist (cards +
schema BM25 + FK neighbours); with ``--sim-embeddings`` also fused with the simulator's
hashed bag-of-words vectors (a stand-in for a real embedding model: it shows the fusion
works, not what a real model adds).

Run: uv run python -m bench.shortlist_recall [--spider /work/shared/datasets/spider]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.catalog.model import Catalog, Column, ForeignKey, Table
from app.eval.spider import Database, load_databases, load_questions, resolve_gold
from app.routing.preparation.prepared import PreparedCatalog, prepare
from app.routing.retrieval.shortlist import fused_scores, lexical_scores
from app.simulator.embeddings import embed_text

SIZES = (20, 50, 100)
SPIDER_TYPES = {"number": "numeric", "text": "text", "time": "timestamp", "boolean": "boolean"}


def _tables(db: Database) -> list[Table]:
    columns: dict[int, list[Column]] = defaultdict(list)
    where: dict[int, tuple[int, str]] = {}
    for index, (table, name, type_) in enumerate(db.columns):
        if table >= 0:
            columns[table].append(Column(name, SPIDER_TYPES.get(type_, type_)))
            where[index] = (table, name)
    tables = []
    for t, name in enumerate(db.tables):
        pk = tuple(where[c][1] for key in db.primary_keys for c in key if where[c][0] == t)
        fks = tuple(
            ForeignKey((where[a][1],), f"{db.db_id}.{db.tables[where[b][0]]}", (where[b][1],))
            for a, b in db.foreign_keys
            if where[a][0] == t
        )
        tables.append(Table(db.db_id, name, columns=tuple(columns[t]), primary_key=pk, foreign_keys=fks))
    return tables


def _recall(
    prepared: PreparedCatalog, questions: list[tuple[str, list[str]]], score: Callable[[str], np.ndarray]
) -> dict[int, float]:
    position = {name: i for i, name in enumerate(prepared.lexical.names)}
    kept = dict.fromkeys(SIZES, 0)
    for question, gold in questions:
        order = np.argsort(-score(question), kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        worst = max(int(rank[position[g]]) for g in gold)
        for m in SIZES:
            kept[m] += worst < m
    return {m: 100 * kept[m] / len(questions) for m in SIZES}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spider", type=Path, default=Path("/work/shared/datasets/spider"))
    parser.add_argument("--sim-embeddings", action="store_true")
    args = parser.parse_args()
    databases = load_databases(args.spider / "tables.json")
    loaded = load_questions(args.spider / "dev.gold_tables.jsonl")
    gold, problems = resolve_gold(loaded, databases)
    questions = [(q.question, [f"{q.db_id}.{t}" for t in gold[q.id]]) for q in loaded if gold[q.id]]
    catalog = Catalog("spider", tuple(t for db in databases.values() for t in _tables(db)))
    started = time.perf_counter()
    prepared = prepare(catalog, 2000, 2, 0)
    print(
        f"{len(databases)} databases, {len(catalog.tables)} tables, {len(questions)} questions "
        f"({len(problems)} gold names unresolved); prepared in {time.perf_counter() - started:.2f} s"
    )
    cards = _recall(prepared, questions, prepared.lexical.scores)
    ours = _recall(prepared, questions, lambda q: lexical_scores(prepared, q))
    rows = [("BM25 over cards", cards), ("shortlist (cards + schema + FK)", ours)]
    if args.sim_embeddings:
        vectors = np.stack([embed_text(c.text) for c in prepared.cards])

        def fused(q: str) -> np.ndarray:
            return fused_scores(lexical_scores(prepared, q), vectors @ embed_text(q))

        rows.append(("shortlist + simulator embeddings (RRF)", _recall(prepared, questions, fused)))
    print("all gold tables in the top M:" + "".join(f"   M={m:>3}" for m in SIZES))
    for label, recall in rows:
        print(f"  {label:<40}" + "".join(f"  {recall[m]:6.1f}%" for m in SIZES))
    missed = (100 - ours[100]) / max(1e-9, 100 - cards[100])
    print(f"RATIO shortlist misses / cards-BM25 misses at M=100 = {missed:.2f}")
    print(f"shortlist recall at M=100: {ours[100]:.1f}%   (goal >= 98%)")


if __name__ == "__main__":
    main()
