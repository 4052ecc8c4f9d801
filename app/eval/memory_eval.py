"""``tablerouter eval --memory FILE``: the route memory imported through the service, measured.

FILE has the format of ``--questions``. Its rows are imported through ``POST
/sources/{source}/memory`` - with their SQL (table names qualified with the schema each database
was placed in, so the service can read its joins) when they have SQL, else with their gold
tables. The questions are routed before and after the import by the same service, with the
route and verdict caches off, so the two passes are measured side by side and neither reuses
the other's LM calls.

The join figure: of the declared foreign keys that the routed questions' gold SQL joins on, the
share the service mined from FILE's SQL (compared as table pairs with their columns).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import httpx

from app.catalog.table_names import SQLNotParsedError
from app.eval.metrics import KS
from app.eval.spider import Database, Question
from app.eval.warehouse import Placed, Warehouse
from app.memory.sql_reading import read_sql

__all__ = ["declared_edges", "format_memory", "import_memory", "memory_rows", "mined_edges", "used_edges"]

_BATCH_BYTES = 48 * 1024  # per request, under the service's default body limit (64 KiB)
Edge = tuple[tuple[str, str], tuple[str, str]]  # sorted ((table, column), (table, column)), case-folded


def _qualified_sql(sql: str, placed: Placed) -> str | None:
    """``sql`` with every table of its database written as the service names it (None: not readable)."""
    import sqlglot  # noqa: PLC0415  (only an eval with --memory parses SQL)
    from sqlglot import exp  # noqa: PLC0415

    names = {t.casefold(): reported for t, reported in placed.tables.items()}
    for dialect in ("sqlite", "mysql"):
        try:
            tree = sqlglot.parse_one(sql, read=dialect)
        except sqlglot.errors.ParseError:
            continue
        for table in tree.find_all(exp.Table):
            reported = names.get(table.name.casefold())
            if reported is None:
                continue
            schema, _, name = reported.rpartition(".")
            table.set("this", exp.to_identifier(name, quoted=True))
            if schema:
                table.set("db", exp.to_identifier(schema, quoted=True))
        return tree.sql(dialect="postgres")
    return None


def memory_rows(
    questions: Sequence[Question],
    resolved: dict[str, tuple[str, ...]],
    wh: Warehouse,
    union: bool,
) -> dict[str, list[dict[str, Any]]]:
    """The import rows of ``questions`` per source: question and SQL, or question and tables."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in questions:
        placed = wh.placed[q.db_id]
        source, _ = wh.route_scope(q.db_id, union)
        sql = _qualified_sql(q.sql, placed) if q.sql and placed.schema else None
        if sql is not None:
            rows[source].append({"question": q.question, "sql": sql})
        elif resolved.get(q.id):
            rows[source].append(
                {"question": q.question, "tables": [placed.tables[t] for t in resolved[q.id]]}
            )
    return rows


async def import_memory(client: httpx.AsyncClient, rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Import ``rows`` through the service; the counts, the bad rows' first reasons, the mined joins."""
    imported = joins = 0
    bad: list[dict[str, Any]] = []
    mined: list[dict[str, Any]] = []
    for source, source_rows in rows.items():
        for start, batch in _batches(source_rows):
            response = await _post(client, f"/sources/{source}/memory", {"rows": batch})
            response.raise_for_status()
            body = response.json()
            imported += body["imported"]
            joins += body["joins"]
            bad += [{**b, "line": b["line"] + start, "source": source} for b in body["bad"]]
        state = (await client.get(f"/sources/{source}/memory")).json()
        mined += state["joins"]
    return {"imported": imported, "joins": joins, "bad": len(bad), "bad_examples": bad[:10], "mined": mined}


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    try:
        return await client.post(path, json=body)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        # A kept-alive connection the server closed while the first pass ran fails at once, before
        # the server read the request (as in app/eval/runner.py): sent again on a new connection.
        return await client.post(path, json=body)


def _batches(rows: list[dict[str, Any]]) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Consecutive rows in requests of at most ``_BATCH_BYTES`` of JSON, with their first row's offset."""
    start, size = 0, 0
    for i, row in enumerate(rows):
        length = len(json.dumps(row, ensure_ascii=False).encode()) + 2
        if i > start and size + length > _BATCH_BYTES:
            yield start, rows[start:i]
            start, size = i, 0
        size += length
    if start < len(rows):
        yield start, rows[start:]


def _column_names(db: Database) -> list[tuple[str, str]]:
    # Column indexes count every column of the file's database, "*" (table -1) first.
    return [(db.tables[t] if t >= 0 else "", name) for t, name, _ in db.columns]


def _edge(a: tuple[str, str], b: tuple[str, str]) -> Edge:
    x = (a[0].casefold(), a[1].casefold())
    y = (b[0].casefold(), b[1].casefold())
    return (x, y) if x <= y else (y, x)


def declared_edges(databases: Iterable[Database], wh: Warehouse) -> set[Edge]:
    """Every declared foreign key of ``databases``, as the service names its tables."""
    edges: set[Edge] = set()
    for db in databases:
        placed = wh.placed.get(db.db_id)
        if placed is None:
            continue
        columns = _column_names(db)
        for src, ref in db.foreign_keys:
            (st, sc), (rt, rc) = columns[src], columns[ref]
            if st in placed.tables and rt in placed.tables and st != rt:
                edges.add(_edge((placed.tables[st], sc), (placed.tables[rt], rc)))
    return edges


def used_edges(questions: Iterable[Question], wh: Warehouse) -> set[Edge]:
    """The join conditions the gold SQL of ``questions`` uses, as the service names the tables."""
    edges: set[Edge] = set()
    for q in questions:
        if not q.sql:
            continue
        names = {t.casefold(): reported for t, reported in wh.placed[q.db_id].tables.items()}
        try:
            read = read_sql(q.sql, "sqlite")
        except SQLNotParsedError:
            continue
        for a, b in read.joins:
            left, right = names.get(a.table[1].casefold()), names.get(b.table[1].casefold())
            if left and right and left != right:
                edges.add(_edge((left, a.column), (right, b.column)))
    return edges


def mined_edges(mined: Iterable[dict[str, Any]]) -> set[Edge]:
    """The service's mined joins as edges."""
    return {_edge((j["left_table"], j["left_column"]), (j["right_table"], j["right_column"])) for j in mined}


def format_memory(report: dict[str, Any]) -> str:
    """Recall and LM spend without and with the memory, side by side, and the join figure."""
    memory = report["memory"]
    before, after = report["without_memory"], report["metrics"]
    lines = [
        f"memory: {memory['imported']} entries imported from {memory['file']}, {memory['bad']} bad rows, "
        f"{memory['joins']} join conditions read",
        "",
        f"{'':<26}{'without memory':>16}{'with memory':>16}{'change':>10}",
    ]
    keys = [*(f"strict_recall@{k}" for k in KS), *(f"recall@{k}" for k in KS), "mrr"]
    for key in keys:
        lines.append(f"{key:<26}{before[key]:>16.4f}{after[key]:>16.4f}{after[key] - before[key]:>+10.4f}")
    for key in ("tokens_mean", "prompt_tokens_mean", "lm_calls_mean"):
        if key in before and key in after:
            change = f"{after[key] / before[key] - 1:>+10.1%}" if before[key] else f"{'':>10}"
            lines.append(f"{key:<26}{before[key]:>16.1f}{after[key]:>16.1f}{change}")
    joins = memory.get("join_graph")
    if joins:
        lines += [
            "",
            f"join graph: {joins['mined']} mined edges; the routed questions' gold SQL joins on "
            f"{joins['used_declared']} declared FK edges, {joins['recovered']} of them mined "
            f"({joins['recovered_share']:.1%})",
        ]
    return "\n".join(lines)
