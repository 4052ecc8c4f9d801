"""Synthetic warehouses of any size (200 to 10,000+ tables) for tests and benchmarks.

Names come from domain vocabulary, ``<area>_<entity>[_<kind>][_<scope>]`` (``sales_order_line``,
``hr_leave_request_history``, ``finance_gl_journal_summary_2019``); a numeric suffix appears
only when that vocabulary is used up. Generation is deterministic for a seed, and the first
``n`` tables of a larger warehouse are the tables of the smaller one.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "SyntheticColumn",
    "SyntheticForeignKey",
    "SyntheticTable",
    "create_synthetic_warehouse",
    "synthetic_questions",
    "synthetic_tables",
]

# One line per area: the area, then its entities.
_AREA_LINES = """
sales order order_line quote invoice payment refund coupon discount customer customer_address shipment
      carrier channel contract target
catalog product product_variant category brand supplier price_list price_rule review attribute bundle
      image tag assortment barcode listing
inventory warehouse warehouse_location stock_level stock_movement stock_count transfer transfer_line lot
      serial_number reservation bin pallet adjustment cycle_count replenishment
procurement purchase_order purchase_order_line requisition vendor vendor_contract goods_receipt
      vendor_invoice rfq approval buyer
hr employee department position salary timesheet leave_request benefit payroll_run payslip training
      candidate interview performance_review org_unit contractor
finance gl_account gl_journal journal_line budget cost_center tax_rate currency exchange_rate
      fiscal_period ledger_balance accrual fixed_asset depreciation bank_statement reconciliation
marketing campaign campaign_channel email_send audience segment ad_spend ad_creative lead conversion
      attribution newsletter affiliate influencer landing_page survey
web session page_view click search_query cart cart_item wishlist visitor device referrer experiment event
support ticket ticket_comment sla_policy agent queue escalation satisfaction_score knowledge_article
      chat_transcript call_log
logistics route delivery driver vehicle depot parcel tracking_event freight_rate customs_declaration
      return_label
loyalty member tier points_ledger reward redemption referral
store location register shift receipt receipt_line footfall planogram staff_roster
"""
AREAS: dict[str, tuple[str, ...]] = {
    words[0]: tuple(words[1:])
    for words in (line.split() for line in _AREA_LINES.replace("\n      ", " ").strip().splitlines())
}
# A word list reads better as one line than as twelve.
KINDS = tuple("history archive snapshot daily monthly summary staging audit detail backup raw agg".split())  # noqa: SIM905
SCOPES = tuple("2019 2020 2021 2022 2023 2024 eu us apac latam legacy".split())  # noqa: SIM905
_KIND_WORDS = {"agg": "aggregated", "raw": "raw import of"}

# Descriptive columns, drawn per table: name, type, optional comment.
_ATTRIBUTE_LINES = """
name VARCHAR(120)
code VARCHAR(32) Business key used by upstream systems
status VARCHAR(20) Lifecycle status
description TEXT
created_at TIMESTAMP When the row was created in the source system
updated_at TIMESTAMP
amount NUMERIC(14,2) Amount in the reporting currency
quantity INTEGER
unit_price NUMERIC(12,2) Price per unit before discounts
currency_code CHAR(3) ISO 4217 currency code
is_active BOOLEAN
valid_from DATE
valid_to DATE Last day of validity, null while current
region VARCHAR(40)
country_code CHAR(2) ISO 3166 country code
email VARCHAR(160)
phone VARCHAR(32)
score NUMERIC(6,2)
priority SMALLINT 1 is the highest priority
notes TEXT Free text entered by staff
external_ref VARCHAR(64) Identifier in the partner's system
weight_kg NUMERIC(10,3)
started_at TIMESTAMP
ended_at TIMESTAMP
channel VARCHAR(30)
source_system VARCHAR(30) System the row was loaded from
version INTEGER
tax_amount NUMERIC(14,2)
discount_pct NUMERIC(5,2)
url TEXT
"""
ATTRIBUTES: tuple[tuple[str, str, str | None], ...] = tuple(
    (parts[0], parts[1], parts[2] if len(parts) > 2 else None)
    for parts in (line.split(maxsplit=2) for line in _ATTRIBUTE_LINES.strip().splitlines())
)


@dataclass(frozen=True, slots=True)
class SyntheticColumn:
    """One column of a synthetic table."""

    name: str
    type: str
    nullable: bool = True
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class SyntheticForeignKey:
    """``column`` references ``ref_table.id`` (same schema)."""

    column: str
    ref_table: str


@dataclass(frozen=True, slots=True)
class SyntheticTable:
    """A synthetic table; ``columns[0]`` is the ``id`` primary key."""

    schema: str | None
    name: str
    comment: str
    columns: tuple[SyntheticColumn, ...]
    fks: tuple[SyntheticForeignKey, ...]

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


def table_names(n_tables: int, seed: int = 0) -> list[str]:
    """``n_tables`` unique names: plain entities first, then qualified ones, then numbered."""
    rng = random.Random(seed)
    bases = [f"{area}_{entity}" for area, entities in AREAS.items() for entity in entities]
    tiers = [
        bases,
        [f"{b}_{q}" for b in bases for q in (*KINDS, *SCOPES)],
        [f"{b}_{k}_{s}" for b in bases for k in KINDS for s in SCOPES],
    ]
    names: list[str] = []
    for tier in tiers:
        shuffled = tier[:]
        rng.shuffle(shuffled)
        names.extend(shuffled[: n_tables - len(names)])
    all_named = list(names) or bases
    for i in itertools.count(2):
        if len(names) >= n_tables:
            break
        names.extend(f"{name}_{i}" for name in all_named[: n_tables - len(names)])
    return names


def synthetic_tables(
    n_tables: int, *, schema: str | None, seed: int = 0, columns_per_table: int = 8
) -> list[SyntheticTable]:
    """Deterministic tables with an ``id`` key, FKs to a few earlier tables and described columns."""
    if columns_per_table < 2:
        raise ValueError("columns_per_table must be at least 2 (id and one attribute)")
    tables: list[SyntheticTable] = []
    earlier: list[str] = []
    by_area: dict[str, list[str]] = {}
    for name in table_names(n_tables, seed):
        rng = random.Random(f"{seed}:{name}")
        area = name.split("_", 1)[0]
        refs = _pick_refs(rng, name, by_area.get(area, []), earlier, columns_per_table - 2)
        fks = tuple(SyntheticForeignKey(f"{ref}_id", ref) for ref in refs)
        columns = [SyntheticColumn("id", "BIGINT", nullable=False, comment=None)]
        columns += [
            SyntheticColumn(fk.column, "BIGINT", nullable=i > 0, comment=f"References {_words(fk.ref_table)}")
            for i, fk in enumerate(fks)
        ]
        columns += _attributes(rng, columns_per_table - len(columns))
        tables.append(SyntheticTable(schema, name, _describe(name), tuple(columns), fks))
        by_area.setdefault(area, []).append(name)
        earlier.append(name)
    return tables


def _pick_refs(
    rng: random.Random, name: str, same_area: list[str], earlier: list[str], limit: int
) -> list[str]:
    """Up to three earlier tables: the unqualified base first, then mostly same-area tables."""
    refs: list[str] = []
    base = _base_name(name)
    if base != name:  # bases come first, so they are always earlier
        refs.append(base)
    want = min(rng.choice((0, 1, 1, 2, 2, 3)), limit)
    for _ in range(8):
        if len(refs) >= want or not earlier:
            break
        pool = same_area if same_area and rng.random() < 0.7 else earlier
        ref = pool[rng.randrange(len(pool))]
        if ref not in refs:
            refs.append(ref)
    return refs[:limit]


def _attributes(rng: random.Random, count: int) -> list[SyntheticColumn]:
    picked = rng.sample(ATTRIBUTES, min(count, len(ATTRIBUTES)))
    columns = [SyntheticColumn(n, t, nullable=rng.random() < 0.6, comment=c) for n, t, c in picked]
    columns += [SyntheticColumn(f"attr_{i}", "VARCHAR(60)") for i in range(len(picked) + 1, count + 1)]
    return columns


def _base_name(name: str) -> str:
    """``sales_order_daily_2019`` → ``sales_order``: the name without kind, scope or number."""
    tokens = name.split("_")
    while len(tokens) > 2 and (tokens[-1] in KINDS or tokens[-1] in SCOPES or tokens[-1].isdigit()):
        tokens.pop()
    return "_".join(tokens)


def _words(name: str) -> str:
    return name.replace("_", " ")


def _describe(name: str) -> str:
    tokens = name.split("_")
    area, rest = tokens[0], tokens[1:]
    kinds = [t for t in rest if t in KINDS]
    scopes = [t for t in rest if t in SCOPES or t.isdigit()]
    entity = " ".join(t for t in rest if t not in kinds and t not in scopes)
    prefix = " ".join(_KIND_WORDS.get(k, k) for k in kinds)
    text = f"{prefix + ' ' if prefix else ''}{entity} records of the {area} area"
    if scopes:
        text += f" ({', '.join(scopes)})"
    return text[0].upper() + text[1:] + "."


async def create_synthetic_warehouse(
    engine: AsyncEngine, tables: list[SyntheticTable], *, schema: str | None, connections: int = 4
) -> None:
    """Create ``tables`` (in order) in ``schema``, or the default schema when it is None.

    ``schema`` decides where the tables go; the tables' own ``schema`` only names them (in
    ``qualified_name`` and the questions' gold tables).

    PostgreSQL gets ``CREATE SCHEMA IF NOT EXISTS`` and ``COMMENT ON``; MySQL/MariaDB gets
    inline ``COMMENT`` clauses; SQLite keeps no comments. On asyncpg, tables and comments are
    built over ``connections`` pooled connections in multi-statement scripts (one round trip
    each), then the foreign keys are added; other drivers run one statement at a time.
    """
    ddl = _Ddl(engine, schema)
    if engine.dialect.driver == "asyncpg":
        await _create_on_asyncpg(engine, ddl, tables, max(1, connections))
        return
    async with engine.connect() as conn:
        if schema and engine.dialect.name != "sqlite":
            await conn.exec_driver_sql(ddl.create_schema())
        for table in tables:
            for statement in ddl.create_table(table, inline_fks=True):
                await conn.exec_driver_sql(statement)
        await conn.commit()


# Every table a transaction creates stays locked until it commits, and the lock table is
# shared by the whole server (max_locks_per_transaction times max_connections): batches stay small.
_TABLES_PER_SCRIPT = 100
_FKS_PER_SCRIPT = 500


async def _create_on_asyncpg(
    engine: AsyncEngine, ddl: _Ddl, tables: list[SyntheticTable], workers: int
) -> None:
    # A prepared statement holds one command; asyncpg's execute() without arguments sends a
    # simple query, which may hold many. PostgreSQL fsyncs every new index, so tables are
    # built concurrently: on a two-core machine four connections took 0.7 of one's time.
    if ddl.schema:
        await _run_scripts(engine, [[ddl.create_schema()]])
    table_batches = [
        [statement for table in tables[i : i + _TABLES_PER_SCRIPT] for statement in ddl.create_table(table)]
        for i in range(0, len(tables), _TABLES_PER_SCRIPT)
    ]
    await _run_concurrently(engine, table_batches, workers)
    # One foreign key per transaction locks only its child, then an earlier parent: the waits
    # always point to earlier tables, so concurrent workers cannot deadlock.
    fks = [
        f"BEGIN; SET LOCAL synchronous_commit TO off; {statement}; COMMIT"
        for table in tables
        for statement in ddl.add_foreign_keys(table)
    ]
    fk_batches = [fks[i : i + _FKS_PER_SCRIPT] for i in range(0, len(fks), _FKS_PER_SCRIPT)]
    await _run_concurrently(engine, fk_batches, workers)


async def _run_concurrently(engine: AsyncEngine, batches: list[list[str]], workers: int) -> None:
    shares = [batches[i::workers] for i in range(workers)]
    try:
        async with asyncio.TaskGroup() as group:
            for share in shares:
                if share:
                    group.create_task(_run_scripts(engine, share))
    except ExceptionGroup as failed:  # callers want the database's error, not a wrapper
        raise failed.exceptions[0] from failed


async def _run_scripts(engine: AsyncEngine, batches: list[list[str]]) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            for batch in batches:
                await driver.execute(";\n".join(batch))
        except BaseException:
            # A script that failed inside BEGIN … COMMIT leaves an aborted transaction that
            # SQLAlchemy does not know about: never hand that connection back to the pool.
            await conn.invalidate()
            raise


class _Ddl:
    """DDL text for one engine's dialect and one target schema."""

    def __init__(self, engine: AsyncEngine, schema: str | None) -> None:
        self.schema = schema
        self.dialect = engine.dialect.name
        self.quote = engine.dialect.identifier_preparer.quote
        self.prefix = f"{engine.dialect.identifier_preparer.quote_schema(schema)}." if schema else ""
        self.mysql = self.dialect in ("mysql", "mariadb")

    def create_schema(self) -> str:
        keyword = "DATABASE" if self.mysql else "SCHEMA"
        return f"CREATE {keyword} IF NOT EXISTS {self.prefix.rstrip('.')}"

    def create_table(self, table: SyntheticTable, *, inline_fks: bool = False) -> list[str]:
        """CREATE TABLE (with FKs when ``inline_fks``) and, on PostgreSQL, its COMMENT ONs."""
        q, qualified = self.quote, self._qualified(table.name)
        parts = [self._column(col) for col in table.columns]
        parts.append(f"PRIMARY KEY ({q(table.columns[0].name)})")
        if inline_fks:
            parts += [f"FOREIGN KEY ({q(fk.column)}) REFERENCES {self._reference(fk)}" for fk in table.fks]
        create = f"CREATE TABLE {qualified} (\n  " + ",\n  ".join(parts) + "\n)"
        if self.mysql:
            return [f"{create} COMMENT={self._literal(table.comment)}"]
        if self.dialect != "postgresql":
            return [create]
        comments = [f"COMMENT ON TABLE {qualified} IS {self._literal(table.comment)}"]
        comments += [
            f"COMMENT ON COLUMN {qualified}.{q(col.name)} IS {self._literal(col.comment)}"
            for col in table.columns
            if col.comment
        ]
        return [create, *comments]

    def add_foreign_keys(self, table: SyntheticTable) -> list[str]:
        """One ALTER TABLE … ADD FOREIGN KEY per foreign key of ``table``."""
        return [
            f"ALTER TABLE {self._qualified(table.name)} "
            f"ADD FOREIGN KEY ({self.quote(fk.column)}) REFERENCES {self._reference(fk)}"
            for fk in table.fks
        ]

    def _qualified(self, name: str) -> str:
        return f"{self.prefix}{self.quote(name)}"

    def _reference(self, fk: SyntheticForeignKey) -> str:
        return f"{self._qualified(fk.ref_table)} ({self.quote('id')})"

    def _column(self, col: SyntheticColumn) -> str:
        # MySQL's TIMESTAMP carries implicit defaults; DATETIME is the plain type.
        col_type = "DATETIME" if self.mysql and col.type == "TIMESTAMP" else col.type
        sql = f"{self.quote(col.name)} {col_type}{'' if col.nullable else ' NOT NULL'}"
        return f"{sql} COMMENT {self._literal(col.comment)}" if self.mysql and col.comment else sql

    def _literal(self, text: str) -> str:
        if self.mysql:
            text = text.replace("\\", "\\\\")
        return "'" + text.replace("'", "''") + "'"


# Words a question may use besides the gold tables' name tokens; none is a name token.
_ONE_TABLE = (
    "how many {a} rows were added last week",
    "show the latest {a} entries",
    "break down {a} records by status",
    "what is the average value in {a} over the past quarter",
)
_TWO_TABLES = (
    "total {a} per {b}",
    "which {b} has the most {a} entries",
    "show {a} records together with their {b}",
    "{a} figures for each {b} last year",
)
_THREE_TABLES = (
    "{a} totals per {b} and {c}",
    "for each {c}, how many {a} rows link to a {b}",
    "compare {a} with {b} across every {c}",
)
QUESTION_GLUE_WORDS = frozenset(
    " ".join(_ONE_TABLE + _TWO_TABLES + _THREE_TABLES)
    .replace("{a}", "")
    .replace("{b}", "")
    .replace("{c}", "")
    .replace(",", "")
    .split()
)


def synthetic_questions(tables: list[SyntheticTable], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` questions over one to three FK-related tables, worded from the gold tables' name tokens.

    Each item is ``{"id", "question", "gold_tables"}`` with qualified gold table names.
    """
    rng = random.Random(seed)
    by_name = {t.name: t for t in tables}
    questions: list[dict[str, Any]] = []
    for i in range(n):
        table = tables[rng.randrange(len(tables))]
        # A table's own base (``sales_order`` for ``sales_order_2021``) makes a dull partner.
        partners = [by_name[fk.ref_table] for fk in table.fks if fk.ref_table != _base_name(table.name)]
        gold = [table, *rng.sample(partners, min(len(partners), rng.choice((0, 1, 1, 2))))]
        templates = (_ONE_TABLE, _TWO_TABLES, _THREE_TABLES)[len(gold) - 1]
        words = dict(zip("abc", (_words(t.name) for t in gold), strict=False))
        questions.append(
            {
                "id": f"syn-{seed}-{i}",
                "question": rng.choice(templates).format(**words),
                "gold_tables": [t.qualified_name for t in gold],
            }
        )
    return questions
