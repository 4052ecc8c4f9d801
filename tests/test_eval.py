"""The evaluation harness: gold extraction, name mapping, and whole runs on PostgreSQL through the service."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from app.cli import main
from app.eval.ddl import database_ddl
from app.eval.harness import EvalOptions, evaluate
from app.eval.naming import PG_MAX_IDENTIFIER_BYTES, Namespace, fit_identifier
from app.eval.spider import gold_tables_from_sql, load_databases
from app.settings import get_settings
from app.simulator.launcher import simulator_process

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
SPIDER = DATASETS / "spider"
SLICE_DBS = ("concert_singer", "pets_1", "car_1")
LONG_TABLE = "Quarterly_Revenue_Recognition_Adjustments_By_Contract_Line_Item_Region"  # 70 chars


def test_gold_tables_from_sql_reads_joins_subqueries_and_aliases() -> None:
    sql = (
        "WITH recent AS (SELECT * FROM Orders WHERE year > 2020) "
        "SELECT T1.name FROM Customer AS T1 JOIN recent AS r ON T1.id = r.customer_id "
        "WHERE T1.id IN (SELECT customer_id FROM `Payment` AS p GROUP BY customer_id HAVING count(*) > 2)"
    )
    assert sorted(gold_tables_from_sql(sql)) == ["Customer", "Orders", "Payment"]


def test_gold_tables_from_sql_refuses_what_does_not_parse() -> None:
    with pytest.raises(ValueError, match="does not parse"):
        gold_tables_from_sql("SELECT FROM WHERE (")


def test_long_and_clashing_names_are_cut_hashed_and_unique() -> None:
    cut = fit_identifier(LONG_TABLE, PG_MAX_IDENTIFIER_BYTES)
    assert len(cut.encode()) <= PG_MAX_IDENTIFIER_BYTES
    assert cut != fit_identifier(LONG_TABLE + "_b", PG_MAX_IDENTIFIER_BYTES)
    space = Namespace(PG_MAX_IDENTIFIER_BYTES)
    assert space.take("Orders") == ("Orders", None)
    name, reason = space.take("orders")
    assert name == "orders_2"
    assert reason == "duplicate name"


def _spider_slice(tmp_path: Path, per_db: int = 10) -> tuple[Path, Path]:
    if not (SPIDER / "tables.json").exists():
        pytest.skip(f"Spider dev not found at {SPIDER} (CI has shared/ beside the checkout)")
    databases = [d for d in json.loads((SPIDER / "tables.json").read_text()) if d["db_id"] in SLICE_DBS]
    questions: list[dict[str, Any]] = []
    for record in json.loads((SPIDER / "dev.json").read_text()):
        if record["db_id"] in SLICE_DBS and sum(q["db_id"] == record["db_id"] for q in questions) < per_db:
            questions.append({k: record[k] for k in ("db_id", "question", "query")})
    tables, lines = tmp_path / "tables.json", tmp_path / "questions.jsonl"
    tables.write_text(json.dumps(databases))
    lines.write_text("".join(json.dumps(q) + "\n" for q in questions))
    return tables, lines


@pytest.fixture
async def prefix(pg_url: str) -> AsyncIterator[str]:
    """A schema prefix of this test alone; its schemas are dropped at the end whatever happens."""
    value = f"tr_ev_{secrets.token_hex(3)}_"
    yield value
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            like = value.replace("_", r"\_") + "%"
            found = await conn.execute(
                sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"), {"p": like}
            )
            for (schema,) in found.all():
                await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await engine.dispose()


async def test_oracle_without_errors_is_lossless_and_errors_show(
    tmp_path: Path, pg_url: str, prefix: str
) -> None:
    tables, questions = _spider_slice(tmp_path)
    options = EvalOptions(tables, questions, warehouse_url=pg_url, schema_prefix=prefix, progress=False)
    clean = await evaluate(options)
    m = clean["metrics"]
    assert m["questions"] == 30
    assert m["failed"] == 0
    assert m["strict_recall@10"] == 1.0
    assert m["lm_calls_mean"] >= 1
    assert clean["gold_problems"]["count"] == 0
    assert all(name.startswith(prefix) for row in clean["rows"] for name in row["gold"])
    noisy = (await evaluate(replace(options, fnr=0.5)))["metrics"]
    assert noisy["recall@threshold"] < m["recall@threshold"]
    assert noisy["mrr"] < m["mrr"]


def _long_name_files(tmp_path: Path) -> tuple[Path, Path]:
    database = {
        "db_id": "Ledger_DB",
        "table_names_original": ["ACCOUNTS", LONG_TABLE],
        "column_names_original": [
            [-1, "*"],
            [0, "Account_ID"],
            [0, "Name"],
            [1, "Line_ID"],
            [1, "account_id"],
        ],
        "column_types": ["text", "number", "text", "number", "text"],
        "primary_keys": [1, 3],
        "foreign_keys": [[4, 1]],
    }
    questions = [
        {
            "db_id": "Ledger_DB",
            "question": "Which accounts have revenue adjustments?",
            "SQL": (
                f"SELECT a.name FROM accounts AS a JOIN {LONG_TABLE.lower()} AS q"
                " ON q.account_id = a.account_id"
            ),
        },
        {
            "db_id": "Ledger_DB",
            "question": "List every account name.",
            "gold_tables": ["Accounts", "Budget"],
        },
    ]
    tables, lines = tmp_path / "tables.json", tmp_path / "questions.json"
    tables.write_text(json.dumps([database]))
    lines.write_text(json.dumps(questions))
    return tables, lines


def test_ddl_maps_types_and_makes_every_foreign_key_hold(tmp_path: Path) -> None:
    tables, _ = _long_name_files(tmp_path)
    ddl = database_ddl(load_databases(tables)["Ledger_DB"], PG_MAX_IDENTIFIER_BYTES)
    accounts, lines = ddl.tables
    assert accounts.columns == [("Account_ID", "NUMERIC"), ("Name", "TEXT")]
    assert accounts.primary_key == ["Account_ID"]
    # text → number: the referencing column takes the referenced column's type
    assert lines.columns[1] == ("account_id", "NUMERIC")
    assert ddl.coerced_fks == 1
    assert lines.foreign_keys == [("account_id", "ACCOUNTS", "Account_ID")]
    assert ddl.table_names[LONG_TABLE] == lines.name != LONG_TABLE


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_cli_eval_on_long_mixed_case_names(tmp_path: Path, pg_url: str, backend: str) -> None:
    tables, questions = _long_name_files(tmp_path)
    url = pg_url if backend == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 'wh.db'}"
    out, plot = tmp_path / "report.json", tmp_path / "recall.png"
    prefix = f"tr_ev_{secrets.token_hex(3)}_"
    argv = ["eval", "--tables", str(tables), "--questions", str(questions), "--warehouse-url", url]
    argv += ["--schema-prefix", prefix, "--no-progress", "--out", str(out), "--plot", str(plot)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["metrics"]["strict_recall@10"] == 1.0
    renamed = [r for r in report["warehouse"]["renamed"] if r["original"] == LONG_TABLE]
    if backend == "postgresql":
        assert len(renamed) == 1
        assert len(renamed[0]["name"].encode()) <= PG_MAX_IDENTIFIER_BYTES
        schema = f"{prefix}Ledger_DB"
        expected = {f"{schema}.ACCOUNTS", f"{schema}.{renamed[0]['name']}"}
        assert set(report["rows"][0]["gold"]) == expected
    else:
        assert renamed == []
        assert not list(tmp_path.glob("wh.*.db"))  # the per-database files it made are gone
    assert report["gold_problems"]["count"] == 1
    assert report["gold_problems"]["examples"][0]["name"] == "Budget"
    assert plot.stat().st_size > 0
    assert main(["eval", "--compare", str(out), str(out), "--plot", str(tmp_path / "cmp.png")]) == 0


@pytest.mark.replicas  # the simulator in its own process
def test_cli_eval_with_the_configured_lm_sends_evidence_hints_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--judge lm`` routes with whatever LM the settings name; here the simulator in its own
    process stands in for a provider, configured only through the environment."""
    tables, questions = _long_name_files(tmp_path)
    records = json.loads(questions.read_text())
    records[0]["evidence"] = "revenue adjustments live in the contract line items"
    questions.write_text(json.dumps(records))
    try:
        with simulator_process() as base:
            monkeypatch.setenv("TABLEROUTER_LLM_MODEL", "openai/tablerouter-sim")
            monkeypatch.setenv("TABLEROUTER_LLM_API_BASE", f"{base}/v1")
            get_settings.cache_clear()
            out = tmp_path / "report.json"
            argv = ["eval", "--tables", str(tables), "--questions", str(questions), "--judge", "lm"]
            argv += ["--warehouse-url", f"sqlite+aiosqlite:///{tmp_path / 'wh.db'}", "--use-evidence"]
            assert main([*argv, "--no-progress", "--out", str(out)]) == 0
            prompts = httpx.get(f"{base}/prompts").json()
    finally:
        get_settings.cache_clear()
    report = json.loads(out.read_text())
    assert report["metrics"]["lm_calls_mean"] >= 1
    text = json.dumps(prompts)
    assert "Hint: revenue adjustments live in the contract line items" in text
    assert "List every account name." in text
