"""Follow-up questions on Spider and BIRD: strict recall@10 with and without the conversation.

Conversations are built from each benchmark's gold tables (``app/eval/followups.py``): a
benchmark question, then a follow-up whose text names no table and whose gold keeps the first
one's (a refinement: "Only the first ten of those, please.") or extends it by a table a foreign
key joins to ("And also their billing city?"). Every database of the file is one schema of one
PostgreSQL warehouse and every route runs over all of them (union: Spider 876 tables, BIRD 75).

Per judge, in one run: the first questions alone, then each follow-up three ways - with
``previous_route_id`` (the first route: its question is read before the follow-up and its tables
get their score there as a prior), with ``history`` only (the first question, no prior), and
alone. Strict recall@10: all gold tables in the answer's top 10 (``min_score`` 0).

Judges: ``oracle`` is the LM simulator answering from gold; it knows a follow-up's gold only
when it reads the follow-up with its first question, as an LM needs the context to know what
"those" are (alone it knows nothing). ``lexical`` is the service's BM25 judge without an LM.
Neither is an LM: the figures show that the conversation reaches the judge and the prior, not
how well a real model reads one.

Run: uv run --frozen python -m bench.followups [--count 150] [--judges oracle lexical]
     [--datasets spider bird] [--shared /work/shared/datasets] [--fnr 0.1 --fpr 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from app.eval.followups import Conversation, build_conversations
from app.eval.runner import serving
from app.eval.spider import load_databases, load_questions, resolve_gold
from app.eval.warehouse import Warehouse, build_warehouse, drop_warehouse, plan_warehouse
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator
from bench.common import PG_URL

K = 10
FILES = {
    "spider": ("spider/tables.json", "spider/dev.gold_tables.jsonl"),
    "bird": ("bird/dev_tables.json", "bird/dev.gold_tables.jsonl"),
}


def _oracle_lines(conversations: Sequence[Conversation], names: dict[str, dict[str, str]]) -> list[str]:
    """First questions by their text; follow-ups by their text and the first question (``history``)."""
    gold: dict[str, set[str]] = {}
    lines = []
    for c in conversations:
        gold.setdefault(c.first, set()).update(names[c.db_id][t] for t in c.first_gold)
    for c in conversations:
        tables = sorted(names[c.db_id][t] for t in c.follow_up_gold)
        lines.append(json.dumps({"question": c.follow_up, "history": [c.first], "gold_tables": tables}))
    lines += [json.dumps({"question": q, "gold_tables": sorted(t)}) for q, t in gold.items()]
    return lines


@contextlib.asynccontextmanager
async def _service(
    judge: str, wh: Warehouse, oracle: list[str], errors: tuple[float, float]
) -> AsyncIterator[tuple[str, str]]:
    """The service for ``judge`` over ``wh`` (with the simulator for the oracle); its URL and key."""
    key = secrets.token_urlsafe(32)
    settings = Settings(sources=wh.source_configs(), llm_model=None, auth=True, admin_key=SecretStr(key))
    async with contextlib.AsyncExitStack() as stack:
        if judge == "oracle":
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tablerouter-followups-")))
            (tmp / "oracle.jsonl").write_text("\n".join(oracle) + "\n", encoding="utf-8")
            fnr, fpr = errors
            config = SimulatorConfig(port=0, policy="oracle", oracle=tmp / "oracle.jsonl", fnr=fnr, fpr=fpr)
            sim_url = await stack.enter_async_context(running_simulator(config))
            settings = settings.model_copy(
                update={"llm_model": "openai/tablerouter-sim", "llm_api_base": f"{sim_url}/v1"}
            )
        url = await stack.enter_async_context(serving(settings))
        yield url, key


async def _route_all(client: httpx.AsyncClient, bodies: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    gate = asyncio.Semaphore(8)

    async def one(body: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            response = await client.post("/route", json={**body, "top_k": 20, "min_score": 0})
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    return list(await asyncio.gather(*(one(b) for b in bodies)))


def _strict_recall(answers: Sequence[dict[str, Any]], golds: Sequence[set[str]]) -> float:
    hits = [gold <= {t["name"] for t in a["tables"][:K]} for a, gold in zip(answers, golds, strict=True)]
    return sum(hits) / len(hits)


async def _measure(
    judge: str,
    wh: Warehouse,
    conversations: Sequence[Conversation],
    names: dict[str, dict[str, str]],
    errors: tuple[float, float],
) -> dict[str, float]:
    source = next(iter(wh.urls))
    firsts_gold = [{names[c.db_id][t] for t in c.first_gold} for c in conversations]
    follow_gold = [{names[c.db_id][t] for t in c.follow_up_gold} for c in conversations]
    async with (
        _service(judge, wh, _oracle_lines(conversations, names), errors) as (url, key),
        httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=300) as client,
    ):
        firsts = await _route_all(client, [{"question": c.first, "source": source} for c in conversations])
        previous = await _route_all(
            client,
            [
                {"question": c.follow_up, "source": source, "previous_route_id": f["route_id"]}
                for c, f in zip(conversations, firsts, strict=True)
            ],
        )
        history = await _route_all(
            client, [{"question": c.follow_up, "source": source, "history": [c.first]} for c in conversations]
        )
        alone = await _route_all(client, [{"question": c.follow_up, "source": source} for c in conversations])
    return {
        "first questions": _strict_recall(firsts, firsts_gold),
        "follow-ups, previous_route_id": _strict_recall(previous, follow_gold),
        "follow-ups, history only": _strict_recall(history, follow_gold),
        "follow-ups alone": _strict_recall(alone, follow_gold),
    }


async def _dataset(
    name: str, shared: Path, count: int, judges: Sequence[str], seed: int, errors: tuple[float, float]
) -> None:
    tables_file, questions_file = (shared / f for f in FILES[name])
    databases = load_databases(tables_file)
    questions = [q for q in load_questions(questions_file) if q.db_id in databases]
    resolved, _ = resolve_gold(questions, databases)
    conversations = build_conversations(databases, questions, resolved, count, seed)
    wh = plan_warehouse(list(databases.values()), PG_URL, union=True, prefix=f"fu_{name}_")
    names = {db: placed.tables for db, placed in wh.placed.items()}
    kinds = {k: sum(c.kind == k for c in conversations) for k in ("keep", "extend")}
    n_tables = sum(len(p.tables) for p in wh.placed.values())
    print(f"\n{name}: {len(conversations)} conversations ({kinds}), routed over all {n_tables} tables")
    await build_warehouse(wh)
    try:
        for judge in judges:
            figures = await _measure(judge, wh, conversations, names, errors)
            shown = f" (fnr {errors[0]}, fpr {errors[1]})" if judge == "oracle" and any(errors) else ""
            print(f"  judge {judge}{shown}: strict recall@{K}")
            for label, value in figures.items():
                print(f"    {label:<32} {value:.3f}")
            context = figures["follow-ups, previous_route_id"]
            print(
                f"    with context - first questions: {context - figures['first questions']:+.3f}; "
                f"with context - alone: {context - figures['follow-ups alone']:+.3f}"
            )
    finally:
        await drop_warehouse(wh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--shared", type=Path, default=Path("/work/shared/datasets"))
    parser.add_argument("--datasets", nargs="+", choices=sorted(FILES), default=["spider", "bird"])
    parser.add_argument("--judges", nargs="+", choices=["oracle", "lexical"], default=["oracle", "lexical"])
    parser.add_argument("--count", type=int, default=150, help="conversations per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fnr", type=float, default=0.0, help="oracle: chance a gold table is missed")
    parser.add_argument("--fpr", type=float, default=0.0, help="oracle: chance another table is picked")
    args = parser.parse_args()
    for name in args.datasets:
        asyncio.run(_dataset(name, args.shared, args.count, args.judges, args.seed, (args.fnr, args.fpr)))


if __name__ == "__main__":
    main()
