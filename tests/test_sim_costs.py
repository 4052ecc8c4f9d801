"""The simulator prices calls as a real LM would: tokens, prefix cache, latency; the short reply format."""

from __future__ import annotations

import argparse
import json
import re
from array import array
from typing import Any

import dspy
import httpx
import pytest
import tiktoken

from app.simulator.costs import TokenLatency
from app.simulator.faults import FaultRates
from app.simulator.launcher import simulator_process
from app.simulator.prefix_cache import PrefixCache
from app.simulator.server import LATENCY_HEADER
from app.simulator.service import SimulatorConfig, add_arguments, config_from_args
from app.simulator.tokens import load_tokenizer
from tests.fixtures.judge_prompts import TABLES, StartSimulator, judge_prompt, short_prompt

SHORT_REPLY = re.compile(r"\A\[\[ ## relevant ## \]\]\n(\[.*\])\n\n\[\[ ## completed ## \]\]\Z", re.DOTALL)
OLD_REPLY = re.compile(r"\A\[\[ ## verdicts ## \]\]\n(\[.*\])\n\n\[\[ ## completed ## \]\]\Z", re.DOTALL)
# Small enough that a test waits milliseconds, distinct enough that each term shows in the sum.
MODEL = {"ttft_ms": 2.0, "prefill_ms_per_token": 0.001, "decode_ms_per_token": 0.01}


def long_chunk(tables: int = 60) -> str:
    """A chunk of cards well over 1,024 tokens, none named like the questions' words."""
    return "\n\n".join(
        f'### wh.fact_{i:03d}_ledger "Ledger facts of business unit {i}"\n'
        f'- id integer PK\n- unit_{i}_amount numeric null "booked amount in unit {i}"\n'
        f"- unit_{i}_booked_at timestamp"
        for i in range(tables)
    )


async def complete(
    client: httpx.AsyncClient, messages: list[dict[str, str]], model: str = "m"
) -> httpx.Response:
    response = await client.post("/v1/chat/completions", json={"model": model, "messages": messages})
    assert response.status_code == 200
    return response


def modelled_ms(usage: dict[str, Any], latency: TokenLatency) -> float:
    cached = usage["prompt_tokens_details"]["cached_tokens"]
    return latency.ms(usage["prompt_tokens"], cached, usage["completion_tokens"])


async def test_a_second_question_over_a_long_chunk_reads_the_cached_prefix(
    start_simulator: StartSimulator,
) -> None:
    client = await start_simulator(**MODEL)
    latency = TokenLatency(**MODEL)
    chunk = long_chunk()
    first = await complete(client, short_prompt("How many orders per customer?", chunk))
    second = await complete(client, short_prompt("Which employees earn most?", chunk))
    one, two = first.json()["usage"], second.json()["usage"]
    assert one["prompt_tokens"] >= 1024
    assert one["prompt_tokens_details"]["cached_tokens"] == 0
    cached = two["prompt_tokens_details"]["cached_tokens"]
    # The system message and the cards are shared; the question and instructions are not.
    assert cached % 128 == 0
    user = short_prompt("Which employees earn most?", chunk)[1]["content"]
    differing = load_tokenizer("o200k_base").count(user[user.index("[[ ## question ## ]]") :])
    assert 0 < two["prompt_tokens"] - cached < differing + 128
    for response, usage in ((first, one), (second, two)):
        assert float(response.headers[LATENCY_HEADER]) == pytest.approx(modelled_ms(usage, latency), abs=1e-3)
    assert float(second.headers[LATENCY_HEADER]) < float(first.headers[LATENCY_HEADER])
    stats = (await client.get("/stats")).json()
    assert stats["prompt_tokens"] == one["prompt_tokens"] + two["prompt_tokens"]
    assert stats["cached_prompt_tokens"] == cached
    assert stats["completion_tokens"] == one["completion_tokens"] + two["completion_tokens"]
    assert stats["latency_ms"] == pytest.approx(
        modelled_ms(one, latency) + modelled_ms(two, latency), abs=1e-2
    )


async def test_a_short_prompt_or_another_model_gets_no_cached_tokens(start_simulator: StartSimulator) -> None:
    client = await start_simulator(**MODEL)
    for _ in range(2):
        usage = (await complete(client, short_prompt("How many orders?"))).json()["usage"]
        assert usage["prompt_tokens"] < 1024
        assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    chunk = long_chunk()
    await complete(client, short_prompt("orders?", chunk), model="a")
    other = (await complete(client, short_prompt("orders?", chunk), model="b")).json()["usage"]
    assert other["prompt_tokens_details"]["cached_tokens"] == 0


async def test_the_short_format_lists_only_the_relevant_tables(start_simulator: StartSimulator) -> None:
    client = await start_simulator(**MODEL)
    content = (await complete(client, short_prompt("How many orders did each customer place?"))).json()
    match = SHORT_REPLY.match(content["choices"][0]["message"]["content"])
    assert match is not None
    items = [item.split(" | ") for item in json.loads(match.group(1))]
    assert [name for name, _, _ in items] == ["sales.orders", "sales.customers"]
    assert all(0 < float(confidence) <= 1 for _, confidence, _ in items)
    assert all(0 < len(reason.split()) <= 5 for _, _, reason in items)
    none = (await complete(client, short_prompt("Something about weather?"))).json()
    assert none["choices"][0]["message"]["content"] == "[[ ## relevant ## ]]\n[]\n\n[[ ## completed ## ]]"


async def test_the_old_format_answers_as_before_with_the_token_model_on(
    start_simulator: StartSimulator,
) -> None:
    plain = await start_simulator()
    priced = await start_simulator(**MODEL)
    question = "How many orders did each customer place?"
    before = (await complete(plain, judge_prompt(question))).json()
    after = (await complete(priced, judge_prompt(question))).json()
    content = after["choices"][0]["message"]["content"]
    assert content == before["choices"][0]["message"]["content"]
    match = OLD_REPLY.match(content)
    assert match is not None
    assert {v["table"]: v["relevant"] for v in json.loads(match.group(1))} == {
        "sales.orders": True,
        "sales.customers": True,
        "hr.employees": False,
        "ops.shipment_facts": False,
    }
    assert "prompt_tokens_details" not in before["usage"]


async def test_token_counts_come_from_the_text(start_simulator: StartSimulator) -> None:
    client = await start_simulator(**MODEL)
    encoding = load_tokenizer("o200k_base")
    assert encoding.name == "o200k_base"  # the bundled encoding loads with no network
    counts = []
    for question in ("orders?", "orders placed by each customer in each region over the last three years?"):
        messages = short_prompt(question)
        usage = (await complete(client, messages)).json()["usage"]
        assert usage["prompt_tokens"] == sum(encoding.count(m["content"]) for m in messages)
        counts.append(usage["prompt_tokens"])
    assert counts[0] < counts[1]
    short = (await complete(client, short_prompt("How many orders?"))).json()["usage"]["completion_tokens"]
    full = (await complete(client, judge_prompt("How many orders?"))).json()["usage"]["completion_tokens"]
    assert 0 < short < full


def test_sections_are_tokenized_as_the_whole_text_is() -> None:
    tokenizer = load_tokenizer("o200k_base")
    # A quote may take the blank line after it into its token; the split must not change that.
    cards = long_chunk(5) + '\n\n### x.y "ends with a quote"\n- z text "and so does this"'
    text = short_prompt('Orders "placed" in 2024?', cards)[1]["content"]
    assert tokenizer.encode_messages([text]).tolist() == tiktoken.get_encoding("o200k_base").encode_ordinary(
        text
    )


def test_the_prefix_cache_keeps_shared_heads_and_evicts_tails_first() -> None:
    cache = PrefixCache(block_tokens=4, min_prompt_tokens=8, capacity_blocks=3)
    head = array("I", range(100, 108))
    first = head + array("I", [1, 2, 3, 4, 5])
    assert cache.use("m", first) == 0
    assert cache.use("m", first) == 12  # three whole blocks; the last token is always computed
    assert cache.use("m", head + array("I", [9, 9, 9, 9, 9])) == 8
    assert len(cache) == 3
    # Full, the cache dropped the first prompt's tail block, not the head both prompts share.
    assert cache.use("m", first) == 8
    assert cache.use("m", array("I", range(7))) == 0  # under the minimum: not read, not stored
    assert cache.use("other", head + array("I", [9])) == 0


@pytest.mark.parametrize(
    ("fault", "check"), [("truncated", "cut"), ("malformed", "prose"), ("invented", "ghost")]
)
async def test_faults_spoil_the_short_format_too(
    start_simulator: StartSimulator, fault: str, check: str
) -> None:
    client = await start_simulator(faults=FaultRates.from_mapping({fault: 1.0}), **MODEL)
    body = (await complete(client, short_prompt("How many orders did each customer place?"))).json()
    content = body["choices"][0]["message"]["content"]
    assert content.startswith("[[ ## relevant ## ]]")
    if check == "cut":
        assert "[[ ## completed ## ]]" not in content
        assert body["choices"][0]["finish_reason"] == "length"
    elif check == "prose":
        section = content.split("\n")[1]
        with pytest.raises(json.JSONDecodeError):
            json.loads(section)
    else:
        match = SHORT_REPLY.match(content)
        assert match is not None
        names = [item.split(" | ")[0] for item in json.loads(match.group(1))]
        assert any("ghost_table" in name for name in names)
        assert {"sales.orders", "sales.customers"} <= set(names)


class JudgeShort(dspy.Signature):  # type: ignore[misc]  # DSPy ships no type information
    """Name the tables an SQL query answering the question must read."""

    tables: str = dspy.InputField(desc="table cards, one per table")
    question: str = dspy.InputField(desc="the user's question")
    relevant: list[str] = dspy.OutputField(desc="'name | confidence | reason' per relevant table")


async def test_dspy_renders_and_parses_the_short_format(
    start_simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    client = await start_simulator(**MODEL)
    base_url = str(client.base_url).rstrip("/")
    lm = dspy.LM("openai/sim", api_base=f"{base_url}/v1", api_key="sim", cache=False, num_retries=0)
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter(use_json_adapter_fallback=False)):
        result = await dspy.Predict(JudgeShort).acall(tables=TABLES, question="How many orders per customer?")
    assert {entry.split(" | ")[0] for entry in result.relevant} == {"sales.orders", "sales.customers"}


def test_a_profile_sets_the_model_and_options_override_it() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--profile", "hosted-small", "--decode-ms-per-token", "5"]))
    meter = config.build_meter()
    assert meter.latency == TokenLatency(400.0, 0.1, 5.0)
    assert meter.cache is not None
    assert (meter.cache.block_tokens, meter.cache.min_prompt_tokens) == (128, 1024)
    assert meter.tokenizer is not None
    assert meter.tokenizer.name == "o200k_base"
    plain = config_from_args(parser.parse_args([])).build_meter()
    assert (plain.latency, plain.cache, plain.tokenizer) == (None, None, None)
    off = config_from_args(parser.parse_args(["--ttft-ms", "1", "--no-prefix-cache"])).build_meter()
    assert off.latency == TokenLatency(1.0, 0.0, 0.0)
    assert off.cache is None
    with pytest.raises(ValueError, match="ttft_ms"):
        SimulatorConfig(ttft_ms=-1.0)


def test_lmsim_with_the_vllm_profile_caches_in_small_blocks() -> None:
    zero = ["--ttft-ms", "0", "--prefill-ms-per-token", "0", "--decode-ms-per-token", "0"]
    with (
        simulator_process("--profile", "vllm-8b", *zero) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        for question in ("orders?", "customers?"):
            response = client.post(
                "/v1/chat/completions", json={"model": "m", "messages": short_prompt(question)}
            )
            assert response.status_code == 200
        usage = response.json()["usage"]
        # Far under 1,024 tokens, yet vLLM-style 16-token blocks are shared.
        assert usage["prompt_tokens"] < 1024
        assert usage["prompt_tokens_details"]["cached_tokens"] > 0
        assert usage["prompt_tokens_details"]["cached_tokens"] % 16 == 0
        assert float(response.headers[LATENCY_HEADER]) == 0.0
