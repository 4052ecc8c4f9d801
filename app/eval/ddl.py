"""DDL for one Spider-format database: tables, mapped column types, keys and foreign keys.

The warehouse holds no rows, so constraints that real data might break are always safe to
add. PostgreSQL wants a foreign key to point at a unique column set of a matching type: a
referenced column that is not its table's whole primary key gets a UNIQUE constraint, and a
referencing column takes the type of the column it references (counted as coerced). A key
that still cannot hold (a column referencing two columns of different types) is skipped and
reported. SQLite checks neither, so it gets foreign keys inline in CREATE TABLE.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from app.eval.naming import Namespace, Renamed
from app.eval.spider import Database

__all__ = ["SQLITE_RESERVED", "DatabaseDDL", "TableSpec", "database_ddl", "quote"]

SQLITE_RESERVED = "sqlite_"
# Spider's and BIRD's column types; anything else is text.
COLUMN_TYPES = {
    "text": "TEXT",
    "number": "NUMERIC",
    "time": "TIMESTAMP",
    "boolean": "BOOLEAN",
    "others": "TEXT",
    "integer": "INTEGER",
    "real": "DOUBLE PRECISION",
    "date": "DATE",
    "datetime": "TIMESTAMP",
}


def quote(name: str) -> str:
    """A double-quoted identifier (PostgreSQL and SQLite both read it, case kept)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class TableSpec:
    """One table as it will be created."""

    name: str  # the physical name (prefixed in a SQLite union)
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, SQL type)
    primary_key: list[str] = field(default_factory=list)
    unique: list[str] = field(default_factory=list)
    foreign_keys: list[tuple[str, str, str]] = field(default_factory=list)  # (column, ref table, ref column)


@dataclass
class DatabaseDDL:
    """The tables of one database, the original → physical table names, and what had to change."""

    tables: list[TableSpec]
    table_names: dict[str, str]
    renamed: list[Renamed] = field(default_factory=list)
    coerced_fks: int = 0
    skipped_fks: list[str] = field(default_factory=list)

    def statements(self, qualifier: str, inline_fks: bool) -> tuple[list[str], list[str]]:
        """CREATE TABLE statements, then the ALTER TABLE … FOREIGN KEY ones (none when inline)."""
        creates, alters = [], []
        for table in self.tables:
            parts = [f"{quote(name)} {type_}" for name, type_ in table.columns]
            if table.primary_key:
                parts.append(f"PRIMARY KEY ({', '.join(quote(c) for c in table.primary_key)})")
            parts += [f"UNIQUE ({quote(c)})" for c in table.unique]
            fks = [
                f"FOREIGN KEY ({quote(c)}) REFERENCES {qualifier}{quote(ref)} ({quote(ref_c)})"
                for c, ref, ref_c in table.foreign_keys
            ]
            if inline_fks:
                parts += fks
            else:
                alters += [f"ALTER TABLE {qualifier}{quote(table.name)} ADD {fk}" for fk in fks]
            creates.append(f"CREATE TABLE {qualifier}{quote(table.name)} ({', '.join(parts)})")
        return creates, alters


def database_ddl(
    db: Database,
    max_bytes: int | None,
    *,
    table_prefix: str = "",
    coerce: bool = True,
    reserved: str | None = None,
) -> DatabaseDDL:
    """The tables of ``db``, names fitted to ``max_bytes`` (None: no limit).

    A table name starting with ``reserved`` (SQLite's ``sqlite_``) gets ``t_`` in front.
    """
    names = Namespace(max_bytes)
    result = DatabaseDDL([], {})
    for original in db.tables:
        wanted = table_prefix + original
        if reserved and wanted.casefold().startswith(reserved):
            wanted = f"t_{wanted}"
        physical, reason = names.take(wanted)
        if wanted != table_prefix + original:
            reason = f"reserved prefix {reserved}" + (f"; {reason}" if reason else "")
        if reason:
            result.renamed.append(Renamed("table", db.db_id, original, physical, reason))
        result.table_names.setdefault(original, physical)
        result.tables.append(TableSpec(physical))
    column_at = _columns(db, result, max_bytes)
    _keys(db, result, column_at, coerce)
    return result


def _columns(db: Database, result: DatabaseDDL, max_bytes: int | None) -> dict[int, tuple[int, int]]:
    """Columns of each table; returns column index → (table index, position in the table)."""
    spaces = [Namespace(max_bytes) for _ in db.tables]
    column_at: dict[int, tuple[int, int]] = {}
    for index, (table_index, original, spider_type) in enumerate(db.columns):
        if not 0 <= table_index < len(db.tables):
            continue  # the "*" pseudo-column
        name, reason = spaces[table_index].take(original)
        if reason:
            label = f"{db.tables[table_index]}.{original}"
            result.renamed.append(Renamed("column", db.db_id, label, name, reason))
        table = result.tables[table_index]
        column_at[index] = (table_index, len(table.columns))
        table.columns.append((name, COLUMN_TYPES.get(spider_type.lower(), "TEXT")))
    return column_at


def _keys(db: Database, result: DatabaseDDL, column_at: dict[int, tuple[int, int]], coerce: bool) -> None:
    def name_of(index: int) -> str:
        t, c = column_at[index]
        return result.tables[t].columns[c][0]

    pk_columns: dict[int, list[str]] = defaultdict(list)
    for key in db.primary_keys:  # Spider lists a composite key as one index per column
        for index in key:
            if index in column_at and name_of(index) not in pk_columns[column_at[index][0]]:
                pk_columns[column_at[index][0]].append(name_of(index))
    for t, columns in pk_columns.items():
        result.tables[t].primary_key = columns
    pairs = list(
        dict.fromkeys((s, r) for s, r in db.foreign_keys if s in column_at and r in column_at and s != r)
    )
    types = _key_types(result, column_at, pairs if coerce else [])
    for src, ref in pairs:
        (st, sc), (rt, _) = column_at[src], column_at[ref]
        source, target, ref_name = result.tables[st], result.tables[rt], name_of(ref)
        if coerce and types[src] != types[ref]:
            result.skipped_fks.append(
                f"{db.db_id}: {source.name}.{name_of(src)} → {target.name}.{ref_name} (types differ)"
            )
            continue
        result.coerced_fks += types[src] != source.columns[sc][1]
        if target.primary_key != [ref_name] and ref_name not in target.unique:
            target.unique.append(ref_name)
        source.foreign_keys.append((name_of(src), target.name, ref_name))
    for index, (t, c) in column_at.items():
        result.tables[t].columns[c] = (result.tables[t].columns[c][0], types[index])


def _key_types(
    result: DatabaseDDL, column_at: dict[int, tuple[int, int]], pairs: list[tuple[int, int]]
) -> dict[int, str]:
    """Column types after each referencing column took its referenced column's type, to a fixed point."""
    types = {index: result.tables[t].columns[c][1] for index, (t, c) in column_at.items()}
    for _ in range(len(pairs) + 1):  # a referenced column may itself have been coerced
        if all(types[s] == types[r] for s, r in pairs):
            break
        for s, r in pairs:
            types[s] = types[r]
    return types
