"""Spider-format schemas and questions, and the gold tables of each question.

A schema file is a JSON list of databases (``db_id``, ``table_names_original``,
``column_names_original`` as ``[table_index, name]`` with -1 for ``*``, ``column_types``,
``primary_keys`` as column indexes or lists of them, ``foreign_keys`` as column index pairs).
A question file is a JSON list or JSON lines of records with ``db_id``, ``question`` and
either ``gold_tables`` or gold SQL (``query`` or ``SQL``), read with sqlglot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

__all__ = [
    "Database",
    "GoldProblem",
    "Question",
    "gold_tables_from_sql",
    "load_databases",
    "load_questions",
    "resolve_gold",
]

# Spider's gold SQL is SQLite; BIRD's uses backticks, which the SQLite reader takes as well.
_SQL_DIALECTS = ("sqlite", "mysql", None)


@dataclass(frozen=True, slots=True)
class Database:
    """One database of a schema file, as written there."""

    db_id: str
    tables: tuple[str, ...]
    columns: tuple[tuple[int, str, str], ...]  # (table index, name, Spider type)
    primary_keys: tuple[tuple[int, ...], ...]  # column indexes, one tuple per key
    foreign_keys: tuple[tuple[int, int], ...]  # (column index, referenced column index)


@dataclass(frozen=True, slots=True)
class Question:
    """One question with its gold table names as the file or its SQL gives them."""

    id: str
    db_id: str
    question: str
    evidence: str
    gold: tuple[str, ...]
    gold_from: str  # "gold_tables" or "sql"
    sql: str | None = None  # the gold SQL, when the file has it


@dataclass(frozen=True, slots=True)
class GoldProblem:
    """A gold table name that is not a table of the question's database."""

    question_id: str
    db_id: str
    name: str


def _read_json_records(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        records = json.loads(text)
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list")
        return records
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _database(record: dict[str, Any]) -> Database:
    columns = tuple(
        (int(index), str(name), str(type_))
        for (index, name), type_ in zip(record["column_names_original"], record["column_types"], strict=True)
    )
    keys: list[tuple[int, ...]] = []
    for key in record.get("primary_keys", []):
        keys.append(tuple(int(k) for k in key) if isinstance(key, list) else (int(key),))
    return Database(
        db_id=str(record["db_id"]),
        tables=tuple(str(t) for t in record["table_names_original"]),
        columns=columns,
        primary_keys=tuple(keys),
        foreign_keys=tuple((int(a), int(b)) for a, b in record.get("foreign_keys", [])),
    )


def load_databases(path: Path) -> dict[str, Database]:
    """The databases of a Spider-format schema file, by ``db_id``."""
    databases: dict[str, Database] = {}
    for number, record in enumerate(_read_json_records(path)):
        try:
            database = _database(record)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: database #{number} is not in Spider format: {exc!r}") from exc
        if database.db_id in databases:
            raise ValueError(f"{path}: db_id {database.db_id!r} appears twice")
        databases[database.db_id] = database
    return databases


def gold_tables_from_sql(sql: str) -> tuple[str, ...]:
    """The tables ``sql`` reads (CTE names excluded), in first-seen order."""
    last: Exception | None = None
    for dialect in _SQL_DIALECTS:
        try:
            tree = sqlglot.parse_one(sql, read=dialect)
        except sqlglot.errors.ParseError as exc:
            last = exc
            continue
        ctes = {cte.alias_or_name.casefold() for cte in tree.find_all(exp.CTE)}
        names = (t.name for t in tree.find_all(exp.Table) if t.name and t.name.casefold() not in ctes)
        return tuple(dict.fromkeys(names))
    raise ValueError(f"gold SQL does not parse: {last}")


def _question(record: dict[str, Any], number: int) -> Question:
    ident = record.get("id", record.get("question_id", number))
    gold_tables = record.get("gold_tables")
    sql_text = record.get("query", record.get("SQL"))
    if gold_tables is not None:
        gold, gold_from = tuple(str(t) for t in gold_tables), "gold_tables"
    else:
        sql = record.get("query", record.get("SQL"))
        if not isinstance(sql, str):
            raise ValueError("needs gold_tables or gold SQL (query or SQL)")
        gold, gold_from = gold_tables_from_sql(sql), "sql"
    return Question(
        id=str(ident),
        db_id=str(record["db_id"]),
        question=str(record["question"]),
        evidence=str(record.get("evidence") or ""),
        gold=gold,
        gold_from=gold_from,
        sql=sql_text if isinstance(sql_text, str) else None,
    )


def load_questions(path: Path) -> list[Question]:
    """The questions of a JSON or JSON-lines file, gold tables read from ``gold_tables`` or SQL."""
    questions: list[Question] = []
    seen: set[str] = set()
    for number, record in enumerate(_read_json_records(path)):
        try:
            question = _question(record, number)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: question #{number}: {exc}") from exc
        if question.id in seen:  # rows are keyed by id: keep them apart
            question = replace(question, id=f"{question.id}#{number}")
        seen.add(question.id)
        questions.append(question)
    return questions


def resolve_gold(
    questions: Iterable[Question], databases: dict[str, Database]
) -> tuple[dict[str, tuple[str, ...]], list[GoldProblem]]:
    """Gold names matched case-insensitively to their database's tables, and the ones that did not match.

    Returns question id → original table names, and one problem per unmatched name.
    """
    resolved: dict[str, tuple[str, ...]] = {}
    problems: list[GoldProblem] = []
    for question in questions:
        tables = _by_folded_name(databases[question.db_id].tables)
        found: list[str] = []
        for name in question.gold:
            table = tables.get(name.casefold())
            if table is None:
                problems.append(GoldProblem(question.id, question.db_id, name))
            elif table not in found:
                found.append(table)
        resolved[question.id] = tuple(found)
    return resolved, problems


def _by_folded_name(tables: Sequence[str]) -> dict[str, str]:
    # A first table wins over a later one differing only in case: SQL could not tell them apart.
    by_name: dict[str, str] = {}
    for table in tables:
        by_name.setdefault(table.casefold(), table)
    return by_name
