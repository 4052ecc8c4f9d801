"""The LM simulator over real HTTP on loopback: format, policies, concurrency, counters, DSPy."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path
from typing import Any

import dspy
import httpx
import pytest

from app.routing.judging.signature import JudgeTables, TableVerdict
from app.simulator.latency import Latency, parse_latency
from app.simulator.protocol import parse_prompt
from app.simulator.service import SimulatorConfig, add_arguments, config_from_args
from tests.fixtures.judge_prompts import TABLES, StartSimulator, judge_prompt

REPLY = re.compile(r"\A\[\[ ## verdicts ## \]\]\n(\[.*\])\n\n\[\[ ## completed ## \]\]\Z", re.DOTALL)
EMPTY_REPLY = "[[ ## verdicts ## ]]\n[]\n\n[[ ## completed ## ]]"


async def verdicts(client: httpx.AsyncClient, question: str, tables: str = TABLES) -> dict[str, bool]:
    """Table name → relevant, from one chat completion."""
    response = await client.post("/v1/chat/completions", json={"messages": judge_prompt(question, tables)})
    assert response.status_code == 200
    match = REPLY.match(response.json()["choices"][0]["message"]["content"])
    assert match is not None
    return {v["table"]: v["relevant"] for v in json.loads(match.group(1))}


@pytest.fixture
def oracle_file(tmp_path: Path) -> Path:
    path = tmp_path / "oracle.jsonl"
    entries = [
        {"question": "Total salary per region", "gold_tables": ["HR.Employees", "ops.shipment_facts"]},
        {"question": "Who ordered most", "gold_tables": ["sales.orders"]},
    ]
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\n", encoding="utf-8")
    return path


async def test_reply_is_an_openai_completion_in_the_judge_format(start_simulator: StartSimulator) -> None:
    client = await start_simulator(model_name="sim-x")
    messages = judge_prompt("How many orders?")
    response = await client.post(
        "/v1/chat/completions", json={"model": "whatever", "messages": messages, "temperature": 0.3}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "sim-x"
    assert body["id"].startswith("chatcmpl-")
    assert isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    match = REPLY.match(choice["message"]["content"])
    assert match is not None
    items = [TableVerdict.model_validate(v) for v in json.loads(match.group(1))]
    assert [v.table for v in items] == [
        "sales.orders",
        "sales.customers",
        "hr.employees",
        "ops.shipment_facts",
    ]
    usage = body["usage"]
    assert usage["completion_tokens"] == -(-len(choice["message"]["content"]) // 4)
    assert usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_lexical_policy_picks_tables_named_in_the_question(start_simulator: StartSimulator) -> None:
    client = await start_simulator()
    assert await verdicts(client, "How many orders did each customer place?") == {
        "sales.orders": True,
        "sales.customers": True,
        "hr.employees": False,
        "ops.shipment_facts": False,
    }


async def test_lexical_policy_needs_two_column_words_without_a_name_match(
    start_simulator: StartSimulator,
) -> None:
    client = await start_simulator()
    two = await verdicts(client, "Which carrier ships to each region?")
    one = await verdicts(client, "Which region is largest?")
    assert two["ops.shipment_facts"] is True
    assert one["ops.shipment_facts"] is False


async def test_oracle_without_errors_returns_exactly_the_gold_set(
    start_simulator: StartSimulator, oracle_file: Path
) -> None:
    client = await start_simulator(policy="oracle", oracle=oracle_file)
    got = await verdicts(client, "  total SALARY  per region ")
    assert {t for t, relevant in got.items() if relevant} == {"hr.employees", "ops.shipment_facts"}
    inside = await verdicts(client, "Who ordered most, last year?")
    assert {t for t, relevant in inside.items() if relevant} == {"sales.orders"}
    unknown = await verdicts(client, "Something nobody asked")
    assert not any(unknown.values())


async def test_oracle_with_fnr_one_misses_every_gold_table(
    start_simulator: StartSimulator, oracle_file: Path
) -> None:
    client = await start_simulator(policy="oracle", oracle=oracle_file, fnr=1.0)
    assert not any((await verdicts(client, "Total salary per region")).values())


async def test_oracle_flips_depend_on_seed_and_prompt_not_call_order(
    start_simulator: StartSimulator, oracle_file: Path
) -> None:
    options: dict[str, Any] = {"policy": "oracle", "oracle": oracle_file, "fnr": 0.5, "fpr": 0.5, "seed": 7}
    first, second = await start_simulator(**options), await start_simulator(**options)
    questions = ["Total salary per region", "Who ordered most", "Something else"]
    forward = [await verdicts(first, q) for q in questions]
    backward = await asyncio.gather(*(verdicts(second, q) for q in reversed(questions)))
    assert forward == list(reversed(backward))


async def test_concurrent_calls_overlap_during_latency(start_simulator: StartSimulator) -> None:
    client = await start_simulator(latency_ms="uniform:80:120")
    await asyncio.gather(*(verdicts(client, f"orders {i}") for i in range(20)))
    stats = (await client.get("/stats")).json()
    assert stats["calls"] == 20
    assert stats["max_in_flight"] > 1
    assert stats["in_flight"] == 0


async def test_malformed_requests_get_400_json_errors(start_simulator: StartSimulator) -> None:
    client = await start_simulator()
    bad_json = await client.post(
        "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    no_messages = await client.post("/v1/chat/completions", json={"model": "m"})
    streaming = await client.post(
        "/v1/chat/completions", json={"messages": judge_prompt("orders"), "stream": True}
    )
    for response in (bad_json, no_messages, streaming):
        assert response.status_code == 400
        assert response.json()["error"]["message"]


async def test_prompt_without_markers_gets_empty_verdicts(start_simulator: StartSimulator) -> None:
    client = await start_simulator()
    for messages in (
        [{"role": "user", "content": "hello"}],
        [{"role": "user", "content": [{"type": "text", "text": "[[ ## question ## ]]\nonly"}]}],
        [{"role": "system", "content": "no user at all"}],
        [],
    ):
        response = await client.post("/v1/chat/completions", json={"messages": messages})
        assert response.status_code == 200
        assert response.json()["choices"][0]["message"]["content"] == EMPTY_REPLY


async def test_stats_count_calls_and_tokens_and_reset(start_simulator: StartSimulator) -> None:
    client = await start_simulator()
    assert (await client.get("/healthz")).status_code == 200
    assert [m["id"] for m in (await client.get("/v1/models")).json()["data"]] == ["tablerouter-sim"]
    await verdicts(client, "orders")
    await verdicts(client, "customers")
    stats = (await client.get("/stats")).json()
    assert stats["calls"] == 2
    assert stats["max_in_flight"] == 1
    assert stats["prompt_tokens"] > 0
    assert stats["completion_tokens"] > 0
    assert (await client.post("/stats/reset")).status_code == 200
    assert (await client.get("/stats")).json() == {
        "calls": 0,
        "in_flight": 0,
        "max_in_flight": 0,
        "prompt_tokens": 0,
        "cached_prompt_tokens": 0,
        "completion_tokens": 0,
        "latency_ms": 0.0,
        "faults": {},
    }


async def test_dspy_chat_adapter_parses_the_simulators_verdicts(
    start_simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DSPy otherwise fetches LiteLLM's model cost map from GitHub on the first call.
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    client = await start_simulator()
    base_url = str(client.base_url).rstrip("/")
    lm = dspy.LM(
        "openai/tablerouter-sim", api_base=f"{base_url}/v1", api_key="sim", cache=False, num_retries=0
    )
    predict = dspy.Predict(JudgeTables)
    adapter = dspy.ChatAdapter(use_json_adapter_fallback=False)
    with dspy.context(lm=lm, adapter=adapter):
        result = await predict.acall(question="How many orders per customer?", tables=TABLES)
    assert all(isinstance(v, TableVerdict) for v in result.verdicts)
    assert {v.table for v in result.verdicts if v.relevant} == {"sales.orders", "sales.customers"}
    assert (await client.get("/stats")).json()["calls"] == 1


def test_prompt_parser_reads_names_comments_and_columns() -> None:
    prompt = parse_prompt(judge_prompt("Pay?", TABLES))
    assert prompt is not None
    assert prompt.question == "Pay?"
    employees = prompt.tables[2]
    assert employees.name == "hr.employees"
    assert employees.column_names == ("id", "salary")
    assert employees.column_comments == ('yearly, in "EUR"',)
    assert prompt.tables[0].comment == "One row per customer order"
    assert prompt.tables[1].name == "sales.customers"


def test_cli_options_build_the_config(oracle_file: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--oracle", str(oracle_file), "--fnr", "0.1", "--latency-ms", "lognormal:200:0.5"]
    )
    config = config_from_args(args)
    assert config.policy == "oracle"
    assert config.latency == Latency("lognormal", 200.0, 0.5)
    assert (config.host, config.port, config.model_name, config.seed) == (
        "127.0.0.1",
        8400,
        "tablerouter-sim",
        0,
    )
    assert parse_latency("150") == Latency("fixed", 150.0)
    for bad in ("uniform:5", "gamma:1:2", "normal:x:1", "-3", "uniform:9:1"):
        with pytest.raises(ValueError, match="bad latency"):
            parse_latency(bad)
    with pytest.raises(ValueError, match="oracle file"):
        SimulatorConfig(policy="oracle")


async def test_a_client_that_gives_up_leaves_no_call_in_flight(start_simulator: StartSimulator) -> None:
    client = await start_simulator(latency_ms=10_000)
    with pytest.raises(httpx.ReadTimeout):
        await client.post("/v1/chat/completions", json={"messages": judge_prompt("orders")}, timeout=0.3)
    for _ in range(100):
        stats = (await client.get("/stats")).json()
        if stats["in_flight"] == 0:
            break
        await asyncio.sleep(0.02)
    assert stats["in_flight"] == 0
    assert stats["calls"] == 1
