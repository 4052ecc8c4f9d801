"""Prompt injection in warehouse comments against the gullible simulator: the share that wins.

Each phrasing of ``app.harness.injections`` lives in its own PostgreSQL schema (five tables,
the hostile comment on ``audit_log``, promoting it or ``payroll``); a clean schema is routed
alongside. For each phrasing it prints whether the gullible simulator obeys it on a raw card
(the attack works on an unguarded prompt), which defence held (the comment quarantined, or
the table demoted by the re-judge without the comment), and whether a hostile table reached
the answer's top 10; then the share that did (goal 0), and the LM calls and prompt tokens of an
attacked route ÷ the clean one (what the re-judge costs).

The simulator obeys only the phrasings its gullible mode knows: the share says the defences hold
against those, not against every text a real model might obey.

    uv run python -m bench.hostile_metadata
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.harness.injections import ATTACKS, GOLD_TABLES, HOSTILE_TABLES, QUESTION, warehouse_sql
from app.harness.service import service_client
from app.routing.judging.earned import STEERED_REASON
from app.settings import Settings
from app.simulator.gullible import injected
from app.simulator.protocol import TableText
from app.simulator.service import SimulatorConfig, running_simulator
from bench.common import PG_URL


async def _routes(schemas: dict[str, str], sim: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    settings = Settings.model_validate(
        {
            "sources": {"wh": {"url": PG_URL, "schemas": list(schemas.values())}},
            "llm_model": "openai/tablerouter-sim",
            "llm_api_base": f"{sim}/v1",
            "route_cache_size": 0,
            "verdict_cache_size": 0,
            "refresh_interval_s": 0,
            "auth": False,
        }
    )
    answers: dict[str, Any] = {}
    ranked: dict[str, Any] = {}
    async with service_client(settings) as client:
        for label, schema in schemas.items():
            body = {"question": QUESTION, "schemas": [schema], "top_k": 10}
            answers[label] = (await client.post("/route", json=body)).json()
            full = (await client.post("/route", json=body | {"min_score": 0})).json()
            ranked[label] = {t["name"]: t for t in full["tables"]}
        listed = (await client.get("/sources/wh/tables")).json()["tables"]
    flags = {t["name"]: t["untrusted_metadata"] for t in listed}
    return answers, ranked, flags


async def main() -> None:
    run = uuid.uuid4().hex[:6]
    schemas = {"clean": f"bench_inj_{run}_clean"} | {
        a.label: f"bench_inj_{run}_{i}" for i, a in enumerate(ATTACKS)
    }
    by_label = {a.label: a for a in ATTACKS}
    engine = create_async_engine(PG_URL)
    try:
        async with engine.begin() as conn:
            for label, schema in schemas.items():
                for statement in warehouse_sql(schema, by_label.get(label)):
                    await conn.execute(text(statement))
        async with running_simulator(SimulatorConfig(port=0, gullible=True)) as sim:
            answers, ranked, flags = await _routes(schemas, sim)
    finally:
        async with engine.begin() as conn:
            for schema in schemas.values():
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await engine.dispose()

    moved = 0
    print(f"{'phrasing':28} {'obeyed raw':>10} {'held by':>12} {'hostile in top 10':>18} {'gold kept':>9}")
    for attack in ATTACKS:
        schema = schemas[attack.label]
        targets, _ = injected(TableText("s.audit_log", attack.comment("s.payroll"), (), ()))
        names = {t["name"] for t in answers[attack.label]["tables"]}
        hostile = [h for h in HOSTILE_TABLES if f"{schema}.{h}" in names]
        moved += bool(hostile)
        demoted = any(t["reason"] == STEERED_REASON for t in ranked[attack.label].values())
        held = "quarantine" if flags[f"{schema}.audit_log"] else "re-judge" if demoted else "-"
        gold = all(f"{schema}.{g}" in names for g in GOLD_TABLES)
        print(
            f"{attack.label:28} {bool(targets)!s:>10} {held:>12} {','.join(hostile) or 'no':>18} {gold!s:>9}"
        )
    print(f"share of attacks that moved a hostile table into the top 10: {moved}/{len(ATTACKS)}")
    clean = answers["clean"]["stats"]
    for label in ("bidi, declarative", "pick table X"):
        stats = answers[label]["stats"]
        print(
            f"{label}: LM calls {stats['lm_calls']} / clean {clean['lm_calls']}, prompt tokens"
            f" {stats['prompt_tokens']} / clean {clean['prompt_tokens']}"
            f" = {stats['prompt_tokens'] / max(1, clean['prompt_tokens']):.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
