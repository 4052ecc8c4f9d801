"""What a route costs, through the real service (PostgreSQL warehouse, simulator over HTTP):
token counts and dollars in the answer and the metrics, and a per-route token budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.harness.service import service_client
from app.llm.cache_hints import resolve_cache_hint
from app.settings import Settings
from app.simulator.service import SimulatorConfig, running_simulator
from tests.fixtures.warehouse import WarehouseBuilder

pytestmark = pytest.mark.asyncio(loop_scope="module")
N_TABLES = 120
# gpt-4o-mini's list prices, dollars per million tokens.
PRICES = {"llm_price_input": 0.15, "llm_price_cached_input": 0.075, "llm_price_output": 0.6}


@dataclass
class World:
    questions: list[dict[str, Any]]
    settings: dict[str, Any]
    # The same warehouse behind an oracle simulator that never errs and caches prompt prefixes.
    oracle_settings: dict[str, Any]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(build_warehouse: WarehouseBuilder) -> AsyncIterator[World]:
    async with build_warehouse(prefix="tr_cost", tables=N_TABLES, questions=6, seeds=(5, 3)) as wh:
        exact = SimulatorConfig(port=0, policy="oracle", oracle=wh.oracle, prefix_cache=True)
        async with (
            running_simulator(SimulatorConfig(port=0, latency_ms=5, oracle=wh.oracle)) as sim,
            running_simulator(exact) as oracle_sim,
        ):
            settings = {
                "sources": wh.source(),
                "llm_model": "openai/tablerouter-sim",
                "llm_api_base": f"{sim}/v1",
                "chunk_tokens": 800,
                "llm_timeout": 10,
                "route_cache_size": 0,
                "verdict_cache_size": 0,
            }
            oracle_settings = {**settings, "llm_api_base": f"{oracle_sim}/v1", "chunk_tokens": 2000}
            yield World(wh.questions, settings, oracle_settings)


async def test_cost_follows_the_tokens_at_the_configured_prices(world: World) -> None:
    async with service_client(Settings.model_validate({**world.settings, **PRICES})) as client:
        body = (await client.post("/route", json={"question": world.questions[0]["question"]})).json()
        metrics = (await client.get("/metrics")).text
    stats = body["stats"]
    uncached = stats["prompt_tokens"] - stats["cached_prompt_tokens"]
    expected = (
        uncached * 0.15 + stats["cached_prompt_tokens"] * 0.075 + stats["completion_tokens"] * 0.6
    ) / 1e6
    assert stats["prompt_tokens"] > 0
    assert stats["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert 'tablerouter_route_tokens_total{key="anonymous",kind="prompt",source="wh"}' in metrics
    assert 'tablerouter_route_cost_usd_total{key="anonymous",source="wh"}' in metrics


async def test_unknown_prices_give_a_null_cost(world: World) -> None:
    async with service_client(Settings.model_validate(world.settings)) as client:
        body = (await client.post("/route", json={"question": world.questions[1]["question"]})).json()
    assert body["stats"]["prompt_tokens"] > 0
    assert body["stats"]["cost_usd"] is None


async def test_a_priced_model_name_is_found_in_the_cost_map(world: World) -> None:
    settings = {**world.settings, "llm_price_model": "gpt-4o-mini"}
    async with service_client(Settings.model_validate(settings)) as client:
        body = (await client.post("/route", json={"question": world.questions[1]["question"]})).json()
    assert body["stats"]["cost_usd"] is not None
    assert body["stats"]["cost_usd"] > 0


async def test_a_token_budget_cuts_the_plan_and_says_so(world: World) -> None:
    question = world.questions[2]["question"]
    async with service_client(Settings.model_validate(world.settings)) as client:
        free = (await client.post("/route", json={"question": question, "min_score": 0})).json()
        budget = free["stats"]["estimated_tokens"] // 3
        cut = (
            await client.post("/route", json={"question": question, "min_score": 0, "token_budget": budget})
        ).json()
    assert free["budget_cut"] is False
    assert free["budget_unjudged"] == []
    assert free["stats"]["token_budget"] is None
    assert cut["budget_cut"] is True
    assert cut["stats"]["token_budget"] == budget
    assert 0 < cut["stats"]["estimated_tokens"] <= budget
    assert 0 < cut["stats"]["chunks"] < free["stats"]["chunks"]
    assert cut["stats"]["shortlisted"] < N_TABLES
    # The tables the budget kept from the LM are named, and none of them was judged.
    assert cut["budget_unjudged"]
    judged = {t["name"] for t in cut["tables"] if t["votes_total"] > 0}
    assert not judged & set(cut["budget_unjudged"])


async def test_the_service_budget_caps_the_request(world: World) -> None:
    settings = {**world.settings, "route_token_budget": 4000}
    async with service_client(Settings.model_validate(settings)) as client:
        question = world.questions[3]["question"]
        asked = (await client.post("/route", json={"question": question, "token_budget": 10**6})).json()
        default = (await client.post("/route", json={"question": question})).json()
    assert asked["stats"]["token_budget"] == 4000
    assert default["stats"]["token_budget"] == 4000
    assert asked["budget_cut"] is True
    assert asked["stats"]["estimated_tokens"] <= 4000


def _ranking(body: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [(t["name"], t["votes_for"], t["votes_total"]) for t in body["tables"]]


async def test_a_second_question_over_the_same_chunks_reads_them_from_the_prefix_cache(world: World) -> None:
    async with service_client(Settings.model_validate(world.oracle_settings)) as client:
        first = (await client.post("/route", json={"question": world.questions[0]["question"]})).json()
        second = (await client.post("/route", json={"question": world.questions[1]["question"]})).json()
    assert first["stats"]["chunks"] == second["stats"]["chunks"] > 1
    # The cards come before the question: only the question differs between the two routes.
    assert second["stats"]["cached_prompt_tokens"] > 0.7 * second["stats"]["prompt_tokens"]


async def test_the_short_format_ranks_as_the_old_one_with_an_exact_oracle(world: World) -> None:
    short = Settings.model_validate(world.oracle_settings)
    old = Settings.model_validate({**world.oracle_settings, "judge_format": "verdicts"})
    for question in world.questions[:3]:
        body = {"question": question["question"], "top_k": 10}
        async with service_client(short) as client:
            new_answer = (await client.post("/route", json=body)).json()
        async with service_client(old) as client:
            old_answer = (await client.post("/route", json=body)).json()
        assert _ranking(new_answer) == _ranking(old_answer)
        assert {t["name"] for t in new_answer["tables"]} >= set(question["gold_tables"])
        # A short reply names a few tables; the old one gave a verdict for every table.
        assert new_answer["stats"]["completion_tokens"] * 5 < old_answer["stats"]["completion_tokens"]


async def test_a_large_shortlist_is_narrowed_on_compact_cards_first(world: World) -> None:
    question = world.questions[4]
    one_pass = Settings.model_validate(world.oracle_settings)
    two_pass = Settings.model_validate(
        {**world.oracle_settings, "first_pass_above": 50, "first_pass_keep": 5}
    )
    body = {"question": question["question"], "top_k": 10}
    async with service_client(one_pass) as client:
        whole = (await client.post("/route", json=body)).json()
    async with service_client(two_pass) as client:
        narrowed = (await client.post("/route", json=body)).json()
    stats = narrowed["stats"]
    assert whole["stats"]["first_pass_chunks"] == 0
    assert stats["first_pass_chunks"] > 0
    assert stats["shortlisted"] == N_TABLES
    assert 5 <= stats["first_pass_kept"] < N_TABLES / 2
    assert stats["chunks"] > stats["first_pass_chunks"]  # the kept tables were judged on full cards
    assert stats["prompt_tokens"] < whole["stats"]["prompt_tokens"]
    assert {t["name"] for t in narrowed["tables"]} >= set(question["gold_tables"])


async def _hints(settings: dict[str, Any]) -> list[dict[str, Any]]:
    sim = settings["llm_api_base"].removesuffix("/v1")
    async with httpx.AsyncClient(base_url=sim) as client:
        hints: list[dict[str, Any]] = (await client.get("/prompts")).json()["hints"]
        await client.post("/stats/reset")
        return hints


@pytest.mark.parametrize("hint", ["prompt_cache_key", "cache_control", "auto"])
async def test_a_cache_hint_per_chunk_when_the_provider_takes_one(world: World, hint: str) -> None:
    settings = {**world.oracle_settings, "llm_cache_hint": hint}
    await _hints(settings)
    async with service_client(Settings.model_validate(settings)) as client:
        answers = [
            (await client.post("/route", json={"question": q["question"]})).json()
            for q in world.questions[:2]
        ]
    hints = await _hints(settings)
    chunks = answers[0]["stats"]["chunks"]
    assert len(hints) == chunks * 2
    assert {t["name"] for t in answers[1]["tables"]} >= set(world.questions[1]["gold_tables"])
    keys = [h["prompt_cache_key"] for h in hints]
    if hint == "prompt_cache_key":
        # One key per chunk, the same for both questions: a chunk's calls meet one cache.
        assert len(set(keys)) == chunks
        assert sorted(keys[:chunks]) == sorted(keys[chunks:])
    else:
        assert keys == [None] * len(hints)
    # Anthropic's breakpoint: the cards part of each call marked, the question after it.
    marked = [h["cache_control_parts"] for h in hints]
    assert marked == [1 if hint == "cache_control" else 0] * len(hints)


async def test_auto_sends_a_hint_to_the_providers_that_take_one() -> None:
    assert resolve_cache_hint("auto", "openai/gpt-4o-mini", None) == "prompt_cache_key"
    assert resolve_cache_hint("auto", "anthropic/claude-haiku-4-5", None) == "cache_control"
    # A self-hosted OpenAI-compatible server (vLLM, llama.cpp) caches on its own and may refuse the key.
    assert resolve_cache_hint("auto", "openai/qwen", "http://vllm:8000/v1") == "off"
    assert resolve_cache_hint("off", "anthropic/claude-haiku-4-5", None) == "off"
